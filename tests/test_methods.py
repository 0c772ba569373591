"""Methods on tiny models and synthetic tasks (CPU, seconds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT

from bench.backbones import create_backbone
from bench.engine import Engine, seed_everything
from bench.engine.features import compute_features, load_features, save_features
from bench.io import SplitPrediction, load_predictions, save_predictions
from bench.methods import (
    create_method,
    list_methods,
    method_class,
    method_metadata,
    modifier_function,
    split_method_name,
)
from bench.methods.base import FitContext
from bench.methods.deep_ensemble import ensemble_predictions
from bench.methods.linear_probe import fit_logistic_regression
from bench.methods.temperature_scaling import apply_temperature_scaling, fit_temperature
from bench.registry import UnknownNameError

FAST = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "head_lr": 1e-2}


def make_context(task, backbone_name, seed=0, tmp_path=None):
    engine = Engine.create("cpu", "fp32", threads=2, eval_batch_size=64)
    engine.log_every = 1000

    def features():
        fs = compute_features(task, create_backbone(backbone_name), engine)
        if tmp_path is None:
            return fs
        save_features(tmp_path / "features.npz", fs)  # exercise the round trip
        return load_features(tmp_path / "features.npz")

    return FitContext(
        task_name=task.name,
        backbone_name=backbone_name,
        seed=seed,
        engine=engine,
        load_task=lambda: task,
        load_backbone=lambda: create_backbone(backbone_name),
        load_features=features,
    )


def cached_context(clip_tiny_cache, seed=0):
    """A clip_tiny.random context that reads the session's feature cache (conftest)."""
    task, features = clip_tiny_cache
    ctx = make_context(task, "clip_tiny.random", seed=seed)
    ctx._cache["features"] = features
    return ctx


def accuracy(pred: SplitPrediction) -> float:
    """Accuracy of the predictive (the mean softmax over samples for ``logprobs``)."""
    scores = np.exp(pred.values).mean(0) if pred.kind == "logprobs" else pred.values
    return float((scores.argmax(-1) == pred.labels).mean())


@pytest.mark.parametrize("name", list_methods())
def test_defaults_file_matches_hparams_dataclass(name):
    """config/methods/<name>.yaml repeats the code defaults exactly (one truth, checked)."""
    cls = method_class(name)
    defaults = {
        f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls.Hparams)
    }
    on_disk = yaml.safe_load((REPO_ROOT / "config" / "methods" / f"{name}.yaml").read_text())
    assert on_disk == defaults


def test_unknown_hparam_is_rejected_with_valid_names():
    with pytest.raises(TypeError, match="valid"):
        create_method("full_ft", learning_rate=0.1)


def test_split_method_name_and_errors():
    assert split_method_name("full_ft+ts") == ("full_ft", ["ts"])
    with pytest.raises(UnknownNameError, match="valid choices"):
        split_method_name("nope+ts")
    with pytest.raises(UnknownNameError, match="valid modifiers"):
        split_method_name("full_ft+nope")


TRAINED = [m for m in list_methods() if not method_metadata(m)["vision_language"]]


@pytest.mark.parametrize("name", TRAINED)
def test_every_method_learns_tiny_vision_task(name, tiny_vision_task, tmp_path):
    seed_everything(0)
    method = create_method(name, **({} if name == "linear_probe" else FAST))
    ctx = make_context(tiny_vision_task, "tiny_cnn.random", tmp_path=tmp_path)
    preds = method.run(ctx)
    assert set(preds) == set(tiny_vision_task.eval_splits())
    for split_name, pred in preds.items():
        split = tiny_vision_task.splits[split_name]
        # Sampling methods keep their Monte Carlo draws: [S, N, C] log-probabilities.
        assert pred.values.shape[-2:] == (len(split), 4)
        assert pred.values.ndim == (3 if pred.kind == "logprobs" else 2)
        assert np.isfinite(pred.values).all()
        np.testing.assert_array_equal(pred.labels, split.labels)
    assert accuracy(preds["test"]) > 0.5, f"{name} did not beat chance (0.25) by a margin"
    assert method_metadata(name)["uses_features"] == ("features" in ctx._cache)


def test_full_ft_is_deterministic_per_seed(tiny_vision_task):
    def run(seed):
        seed_everything(seed)
        method = create_method("full_ft", **{**FAST, "epochs": 1})
        return method.run(make_context(tiny_vision_task, "tiny_cnn.random", seed))

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first["test"].values, again["test"].values)
    assert not np.array_equal(first["test"].values, other["test"].values)


def test_full_ft_learns_tiny_text_task(tiny_text_task):
    seed_everything(0)
    preds = create_method("full_ft", **FAST).run(make_context(tiny_text_task, "tiny_bert.random"))
    assert accuracy(preds["test"]) > 0.8


def test_logistic_regression_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) * np.array([1, 10, 0.1, 1, 3])
    y = (x[:, 0] + x[:, 1] / 10 > 0).astype(int) + (x[:, 2] > 0.05).astype(int)
    weight, bias = fit_logistic_regression(x, y, 3, l2=1e-3, max_iter=500)
    ours = x @ weight.T + bias
    # The probe rescales by one global scale (mean per-dimension std); sklearn minimises
    # sum CE + ||W||^2 / (2 C), which equals n * (mean CE + l2 ||W||^2) for C = 1 / (2 l2 n).
    z = (x - x.mean(0)) / x.std(0, ddof=1).mean()
    ref = LogisticRegression(C=1 / (2 * 1e-3 * len(x)), max_iter=2000, tol=1e-8).fit(z, y)
    np.testing.assert_allclose(
        torch.softmax(torch.tensor(ours), 1).numpy(), ref.predict_proba(z), atol=2e-3
    )


def test_temperature_recovers_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5000, 10)) * 3
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    labels = np.array([rng.choice(10, p=p) for p in probs])
    # Labels were drawn from softmax(logits), so logits * 2.5 are overconfident by T = 2.5.
    assert fit_temperature(logits * 2.5, labels) == pytest.approx(2.5, rel=0.05)


def test_temperature_scaling_keeps_argmax_and_needs_val(tiny_vision_task):
    rng = np.random.default_rng(0)

    def pred(name, kind, n):
        info = tiny_vision_task.splits[name].info
        return SplitPrediction(
            info, np.arange(n) % 4, rng.normal(size=(n, 4)).astype(np.float32) * 5, kind
        )

    preds = {"val": pred("val", "logits", 40), "test": pred("test", "logits", 60)}
    scaled, info = modifier_function("ts")(preds)
    assert info["temperature"] > 0
    np.testing.assert_array_equal(scaled["test"].values.argmax(1), preds["test"].values.argmax(1))
    with pytest.raises(ValueError, match="'val' split"):
        apply_temperature_scaling({"test": preds["test"]})


def test_deep_ensemble_stacks_members(tiny_vision_task, tmp_path):
    rng = np.random.default_rng(0)
    info = tiny_vision_task.splits["test"].info
    members = [
        {
            "test": SplitPrediction(
                info, np.arange(6) % 4, rng.normal(size=(6, 4)).astype(np.float32), "logits"
            )
        }
        for _ in range(3)
    ]
    ens = ensemble_predictions(members)["test"]
    assert ens.kind == "logprobs" and ens.values.shape == (3, 6, 4)
    np.testing.assert_allclose(np.exp(ens.values).sum(-1), 1.0, rtol=1e-5)
    save_predictions(tmp_path / "p.npz", {"test": ens}, ["a", "b", "c", "d"])
    loaded, classnames = load_predictions(tmp_path / "p.npz")
    assert classnames == ["a", "b", "c", "d"] and loaded["test"].kind == "logprobs"
    with pytest.raises(ValueError, match="at least 2"):
        ensemble_predictions(members[:1])


def test_zero_shot_head_is_the_scaled_cosine_to_prompt_ensembles(tiny_vision_task, tmp_path):
    """zero_shot on a tiny random CLIP: logits = exp(logit_scale) * cos(image, class
    embedding), identical for every seed, and a split of new class names gets a head of
    its own size."""
    from bench.tasks.base import Split, SplitInfo

    task = dataclasses.replace(tiny_vision_task, templates=["a photo of a {}.", "a {}."])
    test = task.splits["test"]
    new_info = SplitInfo("test_new", "new", classnames=("kite", "lamp", "boat"))
    task.splits["test_new"] = Split(new_info, test.inputs, test.labels % 3)
    runs = []
    for seed in (0, 1):
        seed_everything(seed)
        runs.append(
            create_method("zero_shot").run(make_context(task, "clip_tiny.random", seed, tmp_path))
        )
    first, second = runs
    assert set(first) == set(task.eval_splits())
    np.testing.assert_array_equal(first["test"].values, second["test"].values)
    assert first["test"].values.shape == (len(test), task.num_classes)
    assert first["test_new"].values.shape == (len(test), 3)

    backbone = create_backbone("clip_tiny.random").eval()
    with torch.no_grad():
        image = torch.nn.functional.normalize(backbone(backbone.prepare(test.inputs[:5])), dim=-1)
        weights = backbone.zero_shot_weights(task.classnames, task.templates)
        expected = backbone.logit_scale.exp() * image @ weights.T
    # The cache stores features as float16 (relative rounding 2^-11).
    np.testing.assert_allclose(first["test"].values[:5], expected.numpy(), rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="exactly one"):
        create_method("zero_shot", templates=["no slot"]).run(
            make_context(task, "clip_tiny.random")
        )
