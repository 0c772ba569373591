"""Every registered backbone builds offline (or fails with a clear message), has the
expected shapes, and the CLIP interface of vision-language backbones is deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.backbones import backbone_metadata, create_backbone, list_backbones
from bench.errors import MissingWeightsError

OFFLINE = [n for n in list_backbones() if backbone_metadata(n)["offline"]]
ONLINE = [n for n in list_backbones() if not backbone_metadata(n)["offline"]]
SMALL_OPTIONS = {"effnet_lite0.imagenet": {"image_size": 64}}


def raw_batch(modality: str):
    if modality == "vision":
        return np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    return ["a short text", "another, somewhat longer text to pad against", "x"]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_backbone_builds_and_encodes(name):
    backbone = create_backbone(name, **SMALL_OPTIONS.get(name, {}))
    meta = backbone_metadata(name)
    assert backbone.name == name and backbone.modality == meta["modality"]
    backbone.eval()
    with torch.no_grad():
        features = backbone(backbone.prepare(raw_batch(backbone.modality)))
    assert features.shape == (3, backbone.feature_dim)
    assert torch.isfinite(features).all()
    groups = backbone.parameter_groups()
    grouped = {id(p) for params in groups.values() for p in params}
    assert grouped == {id(p) for p in backbone.parameters()}, "groups must cover every parameter"
    info = backbone.run_info()
    assert info["parameters"] == sum(p.numel() for p in backbone.parameters())


@pytest.mark.parametrize("name", OFFLINE)
def test_random_weights_are_identical_in_every_build(name):
    first = create_backbone(name, **SMALL_OPTIONS.get(name, {}))
    torch.manual_seed(123)  # must not matter
    second = create_backbone(name, **SMALL_OPTIONS.get(name, {}))
    for (n1, p1), (_, p2) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(p1, p2), n1


@pytest.mark.parametrize("name", ONLINE)
def test_hub_backbone_offline_fails_with_the_fix(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises((OSError, RuntimeError), match="weights_path"):
        create_backbone(name)


@pytest.mark.parametrize("name", [n for n in OFFLINE if backbone_metadata(n)["vision_language"]])
def test_clip_interface_and_deterministic_zero_shot_head(name):
    backbone = create_backbone(name).eval()
    classnames, templates = ["cat", "dog", "truck"], ["a photo of a {}.", "a drawing of a {}."]
    first = backbone.zero_shot_weights(classnames, templates)
    again = backbone.zero_shot_weights(classnames, templates)
    assert torch.equal(first, again)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(3))
    tokens = backbone.tokenize(["a photo of a cat."])
    batch = backbone.prepare(raw_batch("vision"))
    with torch.no_grad():
        text = backbone.encode_text(tokens)
        image = backbone.encode_image(batch)
        # The feature cache stores forward(); project_image maps it to the joint space.
        torch.testing.assert_close(backbone.project_image(backbone(batch)), image)
    assert first.shape[1] == text.shape[-1] == image.shape[-1]
    assert backbone.logit_scale.numel() == 1
    assert set(backbone.parameter_groups()) >= {"visual", "text", "logit_scale"}
    assert set(backbone.preprocess) == {"train", "eval"}


def test_text_eval_in_length_order_matches_input_order():
    from bench.engine import Engine
    from bench.engine.loop import extract_features
    from bench.tasks.base import Split, SplitInfo

    backbone = create_backbone("tiny_bert.random")
    texts = ["b " * 20, "a", "c c c", "d d", "e " * 9]
    split = Split(SplitInfo("test", "id"), texts, np.zeros(5, dtype=np.int64))
    engine = Engine.create("cpu", "fp32", eval_batch_size=2)
    batched = extract_features(backbone, split, engine)
    with torch.no_grad():
        one_by_one = np.concatenate([backbone(backbone.prepare([t])).numpy() for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


CLIP_NAMES = [n for n in list_backbones("clip_*") if n != "clip_tiny.random"]


def test_clip_catalog_covers_the_issue_architectures_and_tags():
    from bench.backbones import CLIP_WEIGHTS

    assert {"ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50"} <= {a for a, _ in CLIP_WEIGHTS.values()}
    assert {"clip_vit_b16.openai", "clip_vit_b32.laion2b_s34b_b79k", "clip_rn50.openai"} <= set(
        CLIP_NAMES
    )


@pytest.mark.parametrize("name", CLIP_NAMES)
def test_every_clip_tag_is_known_to_open_clip(name):
    """Each registered (arch, tag) exists in open_clip's table, so only the download is
    missing offline, and the tag's preprocessing and activation are what we use."""
    import open_clip

    defaults = backbone_metadata(name)["defaults"]
    cfg = open_clip.get_pretrained_cfg(defaults["arch"], defaults["pretrained"])
    assert cfg, f"open_clip does not know {defaults}"
    # OpenAI's checkpoints were trained with QuickGELU: building them without it is wrong.
    if defaults["pretrained"] == "openai":
        assert cfg.get("quick_gelu") is True


def test_clip_weights_settings_follow_the_tag():
    """ViT-L/14 LAION-2B normalises with 0.5/0.5 and GELU; OpenAI tags with CLIP's mean/std
    and QuickGELU. Random weights, so this runs offline."""
    laion = create_backbone("clip_vit_b32.laion2b_s34b_b79k", random_init=True)
    openai = create_backbone("clip_rn50.openai", random_init=True)
    assert openai.quick_gelu and not laion.quick_gelu
    assert openai.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    import open_clip

    l14 = open_clip.get_pretrained_cfg("ViT-L-14", "laion2b_s32b_b82k")
    assert tuple(l14["mean"]) == (0.5, 0.5, 0.5)  # what OpenCLIPBackbone reads


@pytest.mark.parametrize(
    ("name", "dim"),
    [("clip_vit_b32.openai", 512), ("clip_vit_b16.openai", 512), ("clip_rn50.openai", 1024)],
)
def test_real_clip_architectures_build_with_random_weights(name, dim):
    backbone = create_backbone(name, random_init=True).eval()
    assert backbone.image_size == 224 and backbone.feature_dim == dim
    batch = backbone.prepare(np.random.default_rng(0).integers(0, 256, (2, 40, 50, 3), np.uint8))
    with torch.no_grad():
        image = backbone.encode_image(batch)
        text = backbone.encode_text(backbone.tokenize(["a photo of a dog."]))
    assert image.shape == (2, dim) and text.shape == (1, dim)
    groups = backbone.parameter_groups()
    assert all(groups[g] for g in ("visual", "visual_projection", "text", "text_projection"))
    grouped = {id(p) for params in groups.values() for p in params}
    assert grouped == {id(p) for p in backbone.parameters()}


def test_clip_local_checkpoint_and_unknown_tag_errors(tmp_path):
    with pytest.raises(MissingWeightsError, match="weights_path"):
        create_backbone("clip_vit_b32.openai", weights_path=str(tmp_path / "missing.pt"))
    from bench.backbones.clip import OpenCLIPBackbone

    with pytest.raises(ValueError, match="valid tags: .*openai"):
        OpenCLIPBackbone("ViT-B-32", "no_such_tag")


def test_clip_local_checkpoint_loads(tmp_path):
    """weights_path loads a saved state dict into the same architecture."""
    model = create_backbone("clip_tiny.random")
    with torch.no_grad():
        model.model.logit_scale.fill_(1.234)
    path = tmp_path / "tiny.pt"
    torch.save(model.model.state_dict(), path)
    loaded = create_backbone("clip_tiny.random", weights_path=str(path))
    assert float(loaded.logit_scale.detach()) == pytest.approx(1.234)


def test_deberta_v3_code_path_from_a_local_folder(tmp_path):
    """hf_deberta_v3_base loads from weights_path laid out like the hub repo (a
    SentencePiece spm.model, no tokenizer.json): a tiny random copy made here."""
    import sentencepiece
    from transformers import DebertaV2Config, DebertaV2Model

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the movie was great fun", "a boring film", "we loved it"] * 40))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "spm"), vocab_size=24, minloglevel=2
    )
    folder = tmp_path / "deberta"
    folder.mkdir()
    (tmp_path / "spm.model").rename(folder / "spm.model")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": false, "vocab_type": "spm"}')
    config = DebertaV2Config(
        vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, position_buckets=16,
        relative_attention=True, pos_att_type=["p2c", "c2p"],
    )  # fmt: skip
    DebertaV2Model(config).save_pretrained(folder)
    backbone = create_backbone("hf_deberta_v3_base", weights_path=str(folder)).eval()
    assert backbone.pooling == "cls" and backbone.feature_dim == 32
    with torch.no_grad():
        features = backbone(backbone.prepare(["the movie was great", "a film"]))
    assert features.shape == (2, 32) and torch.isfinite(features).all()


def test_ridge_map_strength_is_chosen_on_held_out_classes():
    """The DeViSE map's ridge strength minimises the error on classes left out of the fit."""
    from bench.backbones.devise import fit_ridge_map

    rng = np.random.default_rng(0)
    text = rng.normal(size=(200, 16))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    true_map = rng.normal(size=(16, 8))
    weights = text @ true_map + 0.05 * rng.normal(size=(200, 8))
    projection, strength, errors = fit_ridge_map(text, weights, grid=(1e-3, 1e-1, 10.0, 1e3))
    assert str(strength) == min(errors, key=errors.get)  # the held-out-class optimum
    assert strength == 1e-3  # little noise: the least shrinkage wins
    assert errors["1000.0"] > errors["0.001"]  # heavy shrinkage underfits
    np.testing.assert_allclose(projection, true_map, atol=0.2)


def test_vit_l14_architecture_matches_its_published_dimensions():
    """ViT-L/14 is not instantiated here (428M parameters); its config is checked instead."""
    import open_clip

    cfg = open_clip.get_model_config("ViT-L-14")
    assert cfg["embed_dim"] == 768 and cfg["vision_cfg"]["patch_size"] == 14
    assert cfg["vision_cfg"]["image_size"] == 224
