"""File formats (atomic writes, predictions round trip), scoring and the leaderboard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.io import (
    SplitPrediction,
    atomic_write_bytes,
    atomic_write_json,
    load_predictions,
    save_predictions,
)
from bench.metrics import score_ood, score_predictions
from bench.reporting.aggregate import aggregate, build_table
from bench.reporting.score import score_run
from bench.tasks.base import SplitInfo


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a" / "result.json"
    atomic_write_json(target, {"x": 1.0, "nan": float("nan")})
    assert json.loads(target.read_text()) == {"nan": None, "x": 1.0}
    assert oct(target.stat().st_mode & 0o777) != oct(0o600), "results must be readable by the group"

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content")
    # The earlier result survives a failed write, and no temporary file is left behind.
    assert json.loads(target.read_text())["x"] == 1.0
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_prediction_shapes_are_checked():
    info = SplitInfo("test", "id")
    with pytest.raises(ValueError, match="must have 2 dims"):
        SplitPrediction(info, np.zeros(3, dtype=np.int64), np.zeros((2, 3, 4)), "logits")
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        SplitPrediction(info, np.zeros(2, dtype=np.int64), np.zeros((3, 4)), "logits")
    with pytest.raises(ValueError, match="kind"):
        SplitPrediction(info, np.zeros(3, dtype=np.int64), np.zeros((3, 4)), "probs")


def write_cell(root: Path, task: str, method: str, seed: str, rng, acc_shift: float = 0.0) -> Path:
    run_dir = root / "results" / "runs" / task / "bb" / method / f"seed{seed}"
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)).astype(np.float32)
    logits[np.arange(200), labels] += 1.0 + acc_shift
    preds = {
        "val": SplitPrediction(SplitInfo("val", "val"), labels[:50], logits[:50], "logits"),
        "test": SplitPrediction(SplitInfo("test", "id"), labels, logits, "logits"),
        "shift_a_s1": SplitPrediction(
            SplitInfo("shift_a_s1", "shift", "a", 1), labels, logits * 0.5, "logits"
        ),
        "ood_x": SplitPrediction(
            SplitInfo("ood_x", "ood", "x"),
            np.full(80, -1),
            rng.normal(size=(80, 3)).astype(np.float32),
            "logits",
        ),
    }
    save_predictions(run_dir / "predictions.npz", preds, ["a", "b", "c"])
    atomic_write_json(
        run_dir / "run.json",
        {
            "cell": {"task": task, "backbone": "bb", "method": method, "seed": seed},
            "config_hash": "abc",
            "wall_seconds": 1.0,
        },
    )
    atomic_write_json(run_dir / "metrics.json", score_run(run_dir))
    return run_dir


def test_score_run_matches_the_metric_functions(tmp_path):
    run_dir = write_cell(tmp_path, "t", "m", "0", np.random.default_rng(0))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    preds, _ = load_predictions(run_dir / "predictions.npz")
    expected_id = score_predictions(preds["test"].values, preds["test"].labels, "logits")
    assert metrics["splits"]["test"]["metrics"] == pytest.approx(expected_id)
    expected_ood = score_ood(preds["test"].values, preds["ood_x"].values, "logits")
    assert metrics["splits"]["ood_x"]["metrics"] == pytest.approx(expected_ood)
    assert metrics["splits"]["shift_a_s1"]["severity"] == 1
    assert metrics["splits"]["ood_x"]["kind"] == "ood"


def test_aggregate_builds_tidy_table_and_sorted_leaderboard(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    files = []
    for method, shift in (("weak", -0.8), ("strong", 1.5)):
        for seed in ("0", "1", "2"):
            files.append(write_cell(tmp_path, "t", method, seed, rng, shift) / "metrics.json")
    monkeypatch.chdir(tmp_path)  # undone after the test: later tests read relative paths
    board = aggregate(
        [str(f.relative_to(tmp_path)) for f in files], Path("results/benchmarks"), Path("results")
    )
    table = pd.read_parquet(tmp_path / "results" / "tables" / "runs.parquet")
    assert len(table) == len(build_table(files))
    assert table.groupby(["method", "seed", "split", "metric"]).size().max() == 1  # tidy
    assert list(board.method) == ["strong", "weak"]  # best accuracy first
    assert (board.n == 3).all()
    weak = table[(table.method == "weak") & (table.split == "test") & (table.metric == "cls/acc")]
    row = board[board.method == "weak"].iloc[0]
    assert row.id_acc_mean == pytest.approx(weak.value.mean())
    assert row.id_acc_std == pytest.approx(weak.value.std(ddof=1))
    assert np.isnan(row.fit_seconds_mean)  # no benchmark files: shown as missing, not zero
    costs = pd.read_parquet(tmp_path / "results" / "tables" / "costs.parquet")
    assert len(costs) == 6 and costs.fit_seconds.isna().all()
    csv = pd.read_csv(tmp_path / "results" / "leaderboard" / "leaderboard.csv")
    assert csv.select_dtypes("object").columns.tolist() == ["task", "backbone", "method"]
