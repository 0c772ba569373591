"""Tests of bench.reporting.figures on a small synthetic results tree.

Two tasks: ``graded`` (corruptions at severities 1..3 in two families, two OOD splits)
and ``unordered`` (shift splits without a severity, no OOD). Three methods: ``full_ft``
(logits), ``mc_dropout`` (Monte Carlo log-probabilities) and ``full_ft+ens`` (an
ensemble, seed "ensemble"). The table is built the way the aggregate step builds it: from
``bench.metrics`` on the saved predictions, with run dirs relative to the results root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.io import SplitPrediction, save_predictions
from bench.metrics import score_ood, score_predictions
from bench.reporting.figures import (
    MAX_CURVE_POINTS,
    downsample_curve,
    make_figures,
    method_colours,
)
from bench.tasks.base import SplitInfo

N_CLASSES = 4
N_EXAMPLES = 240
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GRADED_SPLITS = [
    SplitInfo("val", "val"),
    SplitInfo("test", "id"),
    *[
        SplitInfo(f"shift_{fam}_s{sev}", "shift", fam, sev)
        for fam in ("gaussian_noise", "blur")
        for sev in (1, 2, 3)
    ],
    SplitInfo("ood_heldout", "ood", "heldout"),
    SplitInfo("ood_far", "ood", "far"),
]
UNORDERED_SPLITS = [
    SplitInfo("val", "val"),
    SplitInfo("test", "id"),
    SplitInfo("shift_mr", "shift", "mr"),
    SplitInfo("shift_yelp", "shift", "yelp"),
]
TASKS = {("graded", "tiny.v1"): GRADED_SPLITS, ("unordered", "text_bb"): UNORDERED_SPLITS}
# method -> (prediction kind, Monte Carlo samples, seeds)
METHODS = {
    "full_ft": ("logits", 0, ["0", "1"]),
    "mc_dropout": ("logprobs", 4, ["0", "1"]),
    "full_ft+ens": ("logprobs", 3, ["ensemble"]),
}
GRADED_FIGURES = ["reliability", "risk_coverage", "shift_severity", "ood_roc"]
UNORDERED_FIGURES = ["reliability", "risk_coverage", "shift_splits"]


def _split_predictions(info: SplitInfo, kind: str, samples: int, rng) -> SplitPrediction:
    """Logits that get noisier with the shift severity; flat, low-margin logits for OOD."""
    if info.kind == "ood":
        labels = np.full(N_EXAMPLES, -1, dtype=np.int64)
        logits = rng.normal(0.0, 1.0, (max(samples, 1), N_EXAMPLES, N_CLASSES))
    else:
        labels = rng.integers(0, N_CLASSES, N_EXAMPLES)
        noise = 1.0 + 0.6 * (info.severity or (1 if info.kind == "shift" else 0))
        signal = 2.5 * np.eye(N_CLASSES)[labels]
        logits = signal + rng.normal(0.0, noise, (max(samples, 1), N_EXAMPLES, N_CLASSES))
    if kind == "logits":
        return SplitPrediction(info, labels, logits[0].astype(np.float32), "logits")
    logprobs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return SplitPrediction(info, labels, logprobs.astype(np.float32), "logprobs")


def _tidy_rows(task, backbone, method, seed, run_dir, predictions) -> list[dict]:
    id_pred = next(p for p in predictions.values() if p.info.kind == "id")
    rows = []
    for name, pred in predictions.items():
        if pred.info.kind == "ood":
            metrics = score_ood(id_pred.values, pred.values, pred.kind)
        else:
            metrics = score_predictions(pred.values, pred.labels, pred.kind)
        for metric, value in metrics.items():
            rows.append({
                "task": task, "backbone": backbone, "method": method, "seed": seed,
                "split": name, "split_kind": pred.info.kind, "family": pred.info.family,
                "severity": np.nan if pred.info.severity is None else float(pred.info.severity),
                "metric": metric, "value": value, "higher_is_better": True,
                "n_examples": len(pred.labels), "config_hash": "abc", "run_dir": run_dir,
            })  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def results_tree(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """(table path, run dirs, results root) of the synthetic benchmark."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    rows, run_dirs = [], []
    for (task, backbone), splits in TASKS.items():
        for method, (kind, samples, seeds) in METHODS.items():
            for seed in seeds:
                rel = f"results/runs/{task}/{backbone}/{method}/" + (
                    seed if seed == "ensemble" else f"seed{seed}"
                )
                predictions = {
                    info.name: _split_predictions(info, kind, samples, rng) for info in splits
                }
                save_predictions(root / rel / "predictions.npz", predictions, ["a", "b", "c", "d"])
                run_dirs.append(root / rel)
                rows += _tidy_rows(task, backbone, method, seed, rel, predictions)
    table_path = root / "results" / "tables" / "runs.parquet"
    table_path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(table_path, index=False)
    return table_path, run_dirs, root


def _assert_valid(path: Path) -> None:
    data = path.read_bytes()
    assert data, f"{path} is empty"
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC), path
    else:
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:], path


def _index_line(index: str, task: str, backbone: str, name: str) -> str:
    target = f"]({task}/{backbone}/{name}.png)"
    lines = [line for line in index.splitlines() if target in line]
    assert len(lines) == 1, f"{target} listed {len(lines)} times in index.md"
    return lines[0]


@pytest.fixture(scope="module")
def figures(results_tree, tmp_path_factory) -> tuple[Path, list[Path]]:
    """(out dir, returned paths) of one full make_figures call, shared by the tests."""
    table_path, run_dirs, _ = results_tree
    out = tmp_path_factory.mktemp("figures")
    return out, make_figures(table_path, run_dirs, out)


def test_writes_every_figure(figures):
    out, written = figures
    expected = {out / "index.md"}
    for (task, backbone), names in (
        (("graded", "tiny.v1"), GRADED_FIGURES),
        (("unordered", "text_bb"), UNORDERED_FIGURES),
    ):
        for name in names:
            expected |= {out / task / backbone / f"{name}.{ext}" for ext in ("pdf", "png")}
    assert set(written) == expected
    assert len(written) == len(expected)  # nothing written twice
    for path in expected - {out / "index.md"}:
        _assert_valid(path)
    # Graded shifts never get the unordered bar chart, and a task without OOD no ROC.
    assert not (out / "graded" / "tiny.v1" / "shift_splits.png").exists()
    assert not (out / "unordered" / "text_bb" / "ood_roc.png").exists()

    index = (out / "index.md").read_text()
    for task, backbone, names in (
        ("graded", "tiny.v1", GRADED_FIGURES),
        ("unordered", "text_bb", UNORDERED_FIGURES),
    ):
        for name in names:
            line = _index_line(index, task, backbone, name)
            assert f"({task}/{backbone}/{name}.pdf)" in line
    reliability = _index_line(index, "graded", "tiny.v1", "reliability")
    assert "Methods: full_ft, full_ft+ens, mc_dropout." in reliability
    assert "Left out" not in reliability


def test_missing_predictions_drops_only_that_method(results_tree, tmp_path, capsys):
    table_path, run_dirs, root = results_tree
    # Runs given by another root: the table's relative run dirs must still be matched.
    copies = []
    for run_dir in run_dirs:
        rel = run_dir.relative_to(root)
        copy = tmp_path / "elsewhere" / rel
        copy.mkdir(parents=True)
        if rel.parts[-3:] != ("tiny.v1", "mc_dropout", "seed0"):
            (copy / "predictions.npz").write_bytes((run_dir / "predictions.npz").read_bytes())
        copies.append(copy)
    out = tmp_path / "figs"
    # `only` keeps the test fast and is itself checked: the other task is not drawn.
    written = make_figures(table_path, copies, out, only=[("graded", "tiny.v1")])
    assert all("unordered" not in p.parts for p in written)

    err = capsys.readouterr().err
    assert "mc_dropout (seed 0)" in err and "missing" in err
    index = (out / "index.md").read_text()
    for name in ("reliability", "risk_coverage", "ood_roc"):
        line = _index_line(index, "graded", "tiny.v1", name)
        assert "Methods: full_ft, full_ft+ens." in line
        assert "Left out (predictions unavailable): mc_dropout." in line
        _assert_valid(out / "graded" / "tiny.v1" / f"{name}.png")
    # The table figures do not need predictions.
    assert out / "graded" / "tiny.v1" / "shift_severity.pdf" in written


def test_no_predictions_at_all_keeps_table_figures(results_tree, tmp_path, capsys):
    table_path, _, _ = results_tree
    written = make_figures(table_path, [], tmp_path / "figs")
    names = {p.name for p in written}
    assert names == {
        "shift_severity.pdf", "shift_severity.png", "shift_splits.pdf", "shift_splits.png",
        "index.md",
    }  # fmt: skip
    assert "no usable predictions" in capsys.readouterr().err


def test_empty_table_raises(results_tree, tmp_path):
    table_path, run_dirs, _ = results_tree
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(table_path).iloc[:0].to_parquet(empty, index=False)
    with pytest.raises(ValueError, match="empty"):
        make_figures(empty, run_dirs, tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_table_without_required_columns_raises(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"task": ["t"], "value": [0.5]}).to_parquet(path, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        make_figures(path, [], tmp_path / "figs")


def test_downsample_curve_keeps_ends_and_order():
    x = np.linspace(0.0, 1.0, 50_000)
    y = np.sqrt(x)
    xs, ys = downsample_curve(x, y)
    assert 2 <= len(xs) <= MAX_CURVE_POINTS
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (x[0], y[0], x[-1], y[-1])
    assert np.all(np.diff(xs) > 0)
    np.testing.assert_allclose(ys, np.sqrt(xs))
    short = np.arange(10.0)
    np.testing.assert_array_equal(downsample_curve(short, short)[0], short)


def test_method_colours_follow_sorted_names():
    a = method_colours(["b", "a", "c"])
    b = method_colours(["c", "a", "b", "a"])
    assert a == b
    assert len(set(a.values())) == 3


def test_figure_numbers_match_the_table(results_tree):
    """ECE, AURC and AUROC drawn on the per-run figures are the table's numbers."""
    from bench.io import load_predictions
    from bench.reporting import figures as F

    table_path, run_dirs, _ = results_tree
    table = pd.read_parquet(table_path)
    cell = table[table["task"] == "graded"]
    choices = F._choose_runs(cell)
    assert [(c.method, c.seed) for c in choices] == [
        ("full_ft", "0"),
        ("full_ft+ens", "ensemble"),
        ("mc_dropout", "0"),
    ]
    for choice in choices:
        run_dir = F._RunDirLookup(run_dirs).find(choice.run_dir)
        curves = F._curves_for_run(choice, load_predictions(run_dir / "predictions.npz")[0])
        rows = cell[cell["run_dir"] == choice.run_dir].set_index(["split", "metric"])["value"]
        assert curves.ece == pytest.approx(rows[("test", "cal/ece")], abs=1e-12)
        assert curves.aurc == pytest.approx(rows[("test", "sc/aurc")], abs=1e-12)
        assert set(curves.roc) == {"ood_heldout", "ood_far"}
        for split, (_, _, auroc) in curves.roc.items():
            assert auroc == pytest.approx(rows[(split, "ood/auroc_msp")], abs=1e-12)
        assert curves.bin_count.sum() == N_EXAMPLES
