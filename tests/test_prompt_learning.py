"""CoOp, KgCoOp and DOR (``+dor``): the backbones' prompt interface, the learned context,
the outlier vocabulary and pool, the regulariser's terms, objective-modifier names, and
base-to-new Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_data import write_outlier_wordnet
from test_methods import cached_context

from bench.backbones import create_backbone
from bench.config import load_grid
from bench.data.wordnet import outlier_nouns, read_noun_synsets
from bench.engine import Engine
from bench.engine.features import text_embeddings
from bench.errors import ConfigError
from bench.methods import (
    create_method,
    fit_stem,
    objective_modifiers,
    split_method_name,
    weights_stem,
)
from bench.methods.coop import PromptLearner
from bench.methods.dor import DORRegularizer, OutlierSampler
from bench.methods.kgcoop import knowledge_guided_term


def engine():
    return Engine.create("cpu", "fp32", threads=2, eval_batch_size=64)


@pytest.mark.parametrize("name", ["clip_tiny.random", "devise_lite0_minilm.imagenet"])
def test_text_tower_from_token_embeddings_equals_encode_text(name):
    backbone = create_backbone(name).eval()
    tokens = backbone.tokenize(["X X X X a photo of a cat.", "a dog."])
    with torch.no_grad():
        direct = backbone.encode_text(tokens)
        via_embeddings = backbone.encode_token_embeddings(backbone.token_embeddings(tokens), tokens)
    torch.testing.assert_close(via_embeddings, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["clip_tiny.random", "devise_lite0_minilm.imagenet"])
def test_placeholders_sit_right_after_the_start_token(name):
    backbone = create_backbone(name).eval()
    learner = PromptLearner(backbone, 5, "", torch.Generator().manual_seed(0))
    tokens = backbone.tokenize(learner.texts(["cat"]))
    ids = tokens["input_ids"] if isinstance(tokens, dict) else tokens
    placeholder = (backbone.tokenize(["X"])["input_ids"] if isinstance(tokens, dict) else
                   backbone.tokenize(["X"]))[0, 1]  # fmt: skip
    assert (ids[0, 1:6] == placeholder).all() and ids[0, 6] != placeholder
    assert learner.context.shape[0] == 5
    assert float(learner.context.detach().std()) == pytest.approx(0.02, rel=0.3)


def test_context_from_ctx_init_reproduces_the_template_prompt():
    backbone = create_backbone("clip_tiny.random").eval()
    learner = PromptLearner(backbone, 16, "a photo of a", torch.Generator().manual_seed(0))
    assert learner.n_ctx == 4
    with torch.no_grad():
        learned = learner.encode(["cat", "dog"])
        template = backbone.encode_text(
            backbone.tokenize(["a photo of a cat.", "a photo of a dog."])
        )
    torch.testing.assert_close(learned, template, atol=1e-5, rtol=1e-5)


def test_gradients_reach_only_the_context(clip_tiny_cache):
    backbone = create_backbone("clip_tiny.random")
    learner = PromptLearner(backbone, 4, "", torch.Generator().manual_seed(0))
    features = torch.randn(3, learner.encode(["a"]).shape[1])
    logits = features @ learner.encode(["cat", "dog"]).T
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0])).backward()
    assert learner.context.grad is not None and float(learner.context.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())


# --- the outlier vocabulary and pool --------------------------------------------------------


def test_outlier_nouns_drop_class_names_their_parts_synonyms_and_compounds(tmp_path):
    synsets = read_noun_synsets(write_outlier_wordnet(tmp_path) / "data.noun")
    words = outlier_nouns(synsets, ["dog", "t-shirt/top"])
    for excluded in ("dog", "domestic dog", "canis familiaris", "hot dog", "top", "cover", ".22"):
        assert excluded not in words
    assert {"violin", "oak", "kettle", "pebble", "zebra", "lantern", "fern", "bicycle"} == set(
        words
    )


def test_the_outlier_pool_never_contains_a_class_name_on_real_wordnet():
    from bench.data.fashion_mnist import CLASSNAMES

    synsets = read_noun_synsets("/usr/share/wordnet/data.noun")
    words = set(outlier_nouns(synsets, CLASSNAMES))
    assert len(words) > 100_000
    names = {c.lower() for c in CLASSNAMES} | {"t-shirt", "top", "trouser", "pullover", "coat"}
    assert not names & words
    assert "shirt" not in words and "ankle boot" not in words and "bag" not in words


def test_pool_is_ranked_by_mean_cosine_to_the_classes(clip_tiny_cache):
    task, features = clip_tiny_cache
    pool = features.outliers
    assert len(pool.words) == 6 and not set(pool.words) & set(task.classnames)
    backbone = create_backbone("clip_tiny.random")
    classes = text_embeddings(backbone, [f"a photo of a {c}." for c in task.classnames], engine())
    frozen = text_embeddings(backbone, [f"a photo of a {w}." for w in pool.words], engine())
    np.testing.assert_allclose(pool.embeddings, frozen, atol=1e-5)
    scores = frozen @ classes.mean(0)
    assert (np.diff(scores) <= 1e-6).all()  # most similar first


def test_outlier_batches_cover_the_pool_before_repeating():
    sampler = OutlierSampler(10, 4, seed=0)
    first = [sampler.next_batch() for _ in range(2)]
    seen = np.concatenate(first)
    assert len(set(seen.tolist())) == 8
    assert len(sampler.next_batch()) == 4  # reshuffled: a new permutation


# --- the regularisers ---------------------------------------------------------------------


def test_dor_term_is_zero_at_initialisation_from_the_template(clip_tiny_cache):
    """Context = the embeddings of "a photo of a", DOR's frozen branch "a photo of a {}.":
    both branches are the same prompt, so 1 - cos is 0."""
    task, features = clip_tiny_cache
    hp = create_method("coop", ctx_init="a photo of a").hparams
    learner = PromptLearner(
        create_backbone("clip_tiny.random"), 16, "a photo of a", torch.Generator()
    )
    dor = DORRegularizer(features, hp, num_classes=4, seed=0, method="coop")
    for _ in range(3):
        assert float(dor.loss(learner).detach()) == pytest.approx(0.0, abs=1e-5)
    random_start = PromptLearner(create_backbone("clip_tiny.random"), 4, "", torch.Generator())
    assert float(dor.loss(random_start).detach()) > 1e-3


def test_dor_needs_the_pool_the_features_job_built(clip_tiny_cache):
    task, features = clip_tiny_cache
    hp = create_method("coop", dor_template="itap of a {}.").hparams
    with pytest.raises(ValueError, match="embedded in 'a photo of a {}.'"):
        DORRegularizer(features, hp, 4, 0, "coop")
    bare = features.__class__(**{**features.__dict__, "outliers": None})
    with pytest.raises(ValueError, match="no outlier pool"):
        DORRegularizer(bare, create_method("coop").hparams, 4, 0, "coop")


def test_knowledge_guided_term_is_one_minus_mean_cosine():
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    expected = (
        1
        - torch.stack(
            [torch.dot(x / x.norm(), y / y.norm()) for x, y in zip(a, b, strict=True)]
        ).mean()
    )
    torch.testing.assert_close(knowledge_guided_term(a, b), expected)
    assert float(knowledge_guided_term(a, a)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "regularize"), [("coop", False), ("coop", True), ("kgcoop", False), ("kgcoop", True)]
)
def test_prompt_learners_learn_and_are_deterministic(name, regularize, clip_tiny_cache):
    def run(seed):
        # AdamW: CoOp's SGD at 2e-3 needs hundreds of epochs on a random text tower, and
        # the published weights (8) hold it at its chance-level zero-shot head.
        extra = {"kg_weight": 0.5} if name == "kgcoop" else {}
        method = create_method(
            name, epochs=15, train_views=2, optimizer="adamw", lr=0.01, weight_decay=0.0,
            dor_weight=0.5, **extra,
        )  # fmt: skip
        if regularize:
            method.enable_regularizer("dor")
        return method, method.run(cached_context(clip_tiny_cache, seed))

    method, preds = run(0)
    task, _ = clip_tiny_cache
    assert set(preds) == set(task.eval_splits())
    assert preds["test"].values.shape == (60, 4)
    assert method.summary()["regularizers"] == (["dor"] if regularize else [])
    assert (method.summary()["mean_dor"] is not None) == regularize
    np.testing.assert_array_equal(run(0)[1]["test"].values, preds["test"].values)
    assert not np.array_equal(run(1)[1]["test"].values, preds["test"].values)
    accuracy = float((preds["test"].values.argmax(1) == preds["test"].labels).mean())
    assert accuracy > 0.6  # chance is 0.25


# --- names and the grid -------------------------------------------------------------------


def test_objective_modifier_names():
    assert split_method_name("coop+dor+ts") == ("coop", ["dor", "ts"])
    assert objective_modifiers("kgcoop+dor+ts") == ["dor"]
    assert fit_stem("coop+dor+ts") == "coop+dor" == weights_stem("coop+dor+ts")
    assert fit_stem("flyp+wise") == "flyp" and weights_stem("flyp+wise") == "flyp+wise"
    with pytest.raises(ValueError, match=r"\+dor regularises the training of coop, kgcoop"):
        split_method_name("full_ft+dor")
    with pytest.raises(ValueError, match="must come right after the method"):
        split_method_name("coop+ts+dor")


def test_dor_grid_asks_the_features_job_for_the_pool(shared_data, tmp_path):
    wordnet = write_outlier_wordnet(tmp_path / "wordnet")
    config = {
        "data": {"root": str(shared_data), "wordnet": str(wordnet)},
        "seeds": [0],
        "methods": ["coop", "coop+dor", "coop+dor+ts", "kgcoop+dor"],
        "tasks": {
            "fmnist": {
                "backbones": ["devise_lite0_minilm.imagenet"],
                "options": {"shots": 4, "base_to_new": True},
            }
        },
    }
    grid = load_grid(config)
    assert grid.feature_extras("fmnist")["outliers"] == {
        "size": 5000,
        "template": "a photo of a {}.",
    }
    assert {c.method for c in grid.cells} == {"coop", "coop+dor", "coop+dor+ts", "kgcoop+dor"}
    assert grid.runs(
        grid.cells[0].__class__("fmnist", "devise_lite0_minilm.imagenet", "coop+dor", 0)
    )
    missing = {**config, "data": {"root": str(shared_data), "wordnet": str(tmp_path / "none")}}
    with pytest.raises(ConfigError, match=r"coop\+dor draws outlier words from WordNet"):
        load_grid(missing)
    mixed = {**config, "hparams": {"kgcoop": {"dor_template": "itap of a {}."}}}
    with pytest.raises(ConfigError, match="different dor_template values"):
        load_grid(mixed)


def test_fmnist_base_to_new_splits_the_classes(shared_data):
    from bench.tasks import DataPaths, SizeLimits, create_task

    task = create_task(
        "fmnist", DataPaths(root=shared_data), SizeLimits(max_eval=80), base_to_new=True
    )
    assert task.classnames == ["t-shirt/top", "trouser", "pullover", "dress"]
    new = task.splits["test_new"]
    assert new.info.kind == "new"
    assert new.info.classnames == ("coat", "shirt", "sneaker", "ankle boot")
    assert set(new.labels.tolist()) == {0, 1, 2, 3} and task.splits["test"].labels.max() == 3
    assert not [n for n, s in task.splits.items() if s.info.kind in ("shift", "ood")]
