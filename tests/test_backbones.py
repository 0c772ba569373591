"""Every registered backbone builds offline (or fails with a clear message), has the
expected shapes, and the CLIP interface of vision-language backbones is deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.backbones import backbone_metadata, create_backbone, list_backbones

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
    assert first.shape == (3, backbone.feature_dim)
    assert torch.equal(first, again)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(3))
    tokens = backbone.tokenize(["a photo of a cat."])
    with torch.no_grad():
        text = backbone.encode_text(tokens)
        image = backbone.encode_image(backbone.normalize(backbone.prepare(raw_batch("vision"))))
    assert text.shape[-1] == image.shape[-1] == backbone.feature_dim
    assert backbone.logit_scale.numel() == 1
    assert set(backbone.parameter_groups()) >= {"visual", "text", "logit_scale"}


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
