"""Splits whose label space is not the task's: class subsets (ImageNet-R/A, ObjectNet),
base-to-new *new* classes, and the few-shot draws per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.io import SplitPrediction, load_predictions, save_predictions
from bench.methods.base import closed_vocabulary_view
from bench.reporting.score import score_predictions_file
from bench.tasks.base import FewShot, Split, SplitInfo, TaskData, base_to_new, restrict_scores


def test_singleton_groups_select_columns_and_groups_take_the_max():
    logits = np.array([[1.0, 5.0, 2.0, 0.5], [3.0, 0.0, 4.0, 1.0]])
    np.testing.assert_allclose(restrict_scores(logits, ((2,), (0,)), "logits"), [[2, 1], [4, 3]])
    # ObjectNet-style: evaluation class 0 pools task classes 1 and 3.
    pooled = restrict_scores(logits, ((1, 3), (2,)), "logits")
    np.testing.assert_allclose(pooled, [[5.0, 2.0], [1.0, 4.0]])


def test_restricted_log_probabilities_stay_distributions():
    rng = np.random.default_rng(0)
    logprobs = np.log(rng.dirichlet(np.ones(5), size=(3, 4)))  # [S, N, C]
    out = restrict_scores(logprobs, ((0,), (3,), (1, 4)), "logprobs")
    assert out.shape == (3, 4, 3)
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-5)


def test_scoring_restricts_before_any_metric(tmp_path):
    # Task classes 0..3; the shift split is scored over task classes (3, 1) only. The
    # unrestricted argmax (class 0) is never right; restricted, every example is.
    logits = np.array([[9.0, 1.0, 0.0, 2.0], [9.0, 2.0, 0.0, 1.0]], dtype=np.float32)
    info = SplitInfo("shift_r", "shift", "r", classnames=("d", "b"), label_map=((3,), (1,)))
    predictions = {
        "test": SplitPrediction(SplitInfo("test", "id"), np.array([0, 0]), logits, "logits"),
        "shift_r": SplitPrediction(info, np.array([0, 1]), logits, "logits"),
    }
    save_predictions(tmp_path / "p.npz", predictions, ["a", "b", "c", "d"])
    loaded, _ = load_predictions(tmp_path / "p.npz")
    assert loaded["shift_r"].info == info  # label map survives the JSON round trip
    scores = score_predictions_file(tmp_path / "p.npz")
    assert scores["shift_r"]["metrics"]["cls/acc"] == 1.0
    assert scores["test"]["metrics"]["cls/acc"] == 1.0


def make_task(num_classes: int = 5, per_class: int = 4) -> TaskData:
    labels = np.repeat(np.arange(num_classes), per_class)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)

    def split(name, kind):
        return Split(SplitInfo(name, kind), images.copy(), labels.copy())

    splits = {n: split(n, k) for n, k in (("train", "train"), ("val", "val"), ("test", "id"))}
    splits["shift_x"] = split("shift_x", "shift")
    names = [f"c{i}" for i in range(num_classes)]
    return TaskData("toy", "vision", names, splits, ["a {}."])


def test_base_to_new_halves_the_classes_and_relabels_the_new_ones():
    task = base_to_new(make_task(5))
    assert task.classnames == ["c0", "c1", "c2"]  # ceil(5 / 2) base classes
    assert set(task.splits) == {"train", "val", "test", "test_new"}
    new = task.splits["test_new"]
    assert new.info.kind == "new" and new.info.classnames == ("c3", "c4")
    np.testing.assert_array_equal(np.unique(new.labels), [0, 1])
    # The images of the new split are the original class-3/4 test images.
    np.testing.assert_array_equal(new.inputs[:, 0, 0], np.arange(12, 20))
    view = closed_vocabulary_view(task)
    assert "test_new" not in view.splits and "test_new" in task.splits


def test_few_shot_draws_depend_on_the_seed_only():
    task = make_task(3, per_class=6)
    task.few_shot = FewShot(shots=2, val_shots=1)
    first, again, other = task.for_seed(0), task.for_seed(0), task.for_seed(1)
    np.testing.assert_array_equal(np.bincount(first.splits["train"].labels), [2, 2, 2])
    np.testing.assert_array_equal(np.bincount(first.splits["val"].labels), [1, 1, 1])
    np.testing.assert_array_equal(first.splits["train"].inputs, again.splits["train"].inputs)
    assert not np.array_equal(first.splits["train"].inputs, other.splits["train"].inputs)
    assert len(first.splits["test"]) == 18  # evaluation splits are never drawn


def test_few_shot_feature_cache_covers_the_grid_seeds(tmp_path):
    from bench.backbones import create_backbone
    from bench.engine import Engine
    from bench.engine.features import compute_features, load_features, save_features

    task = make_task(3, per_class=6)
    task.few_shot = FewShot(shots=2, val_shots=1)
    engine = Engine.create("cpu", "fp32")
    features = compute_features(task, create_backbone("tiny_cnn.random"), engine, seeds=[0, 1])
    save_features(tmp_path / "f.npz", features)
    cached = load_features(tmp_path / "f.npz")
    assert cached.templates == ["a {}."]
    for seed in (0, 1):
        drawn = task.for_seed(seed).splits["train"]
        rows = cached.for_seed(seed).splits["train"]
        np.testing.assert_array_equal(rows.labels, drawn.labels)
        assert rows.features.shape == (6, create_backbone("tiny_cnn.random").feature_dim)
    assert len(cached.splits["train"].features) < 18  # only the union of the draws
    with pytest.raises(ValueError, match="lacks the train draw of seed 7"):
        cached.for_seed(7)
    json.dumps(cached.splits["test"].info.__dict__)  # plain JSON-able record
