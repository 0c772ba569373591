"""Tests of bench.reporting.figures on a small synthetic results tree.

Three tasks: ``graded`` (corruptions at severities 1..4 in two families, so eight shift
splits, more than the reliability grid shows; two OOD splits), ``unordered`` (shift splits
without a severity, no OOD) and ``fewshot`` (base-to-new: an id split and a ``new`` split,
which ``mc_dropout``, standing in for a closed-vocabulary method, does not predict). Three
methods: ``full_ft`` (logits), ``mc_dropout`` (Monte Carlo log-probabilities) and
``full_ft+ens`` (an ensemble, seed "ensemble"). The table is built the way the aggregate
step builds it: from ``bench.metrics`` on the saved predictions, with run dirs relative to
the results root. A costs table gives the ``graded`` runs a fit cost on CUDA and the
``unordered`` runs none (NaN).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bench.io import SplitPrediction, load_predictions, save_predictions
from bench.metrics import score_ood, score_predictions
from bench.reporting import figures as F
from bench.reporting.figures import (
    CAPTION_SUFFIX,
    FIGURE_DESCRIPTIONS,
    MAX_CURVE_POINTS,
    PNG_DPI,
    downsample_curve,
    make_figures,
    method_colours,
    pareto_front,
)
from bench.tasks.base import SplitInfo

N_CLASSES = 4
N_EXAMPLES = 160
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GRADED_FAMILIES = ("gaussian_noise", "blur")
GRADED_SEVERITIES = (1, 2, 3, 4)
GRADED_SPLITS = [
    SplitInfo("val", "val"),
    SplitInfo("test", "id"),
    *[
        SplitInfo(f"shift_{fam}_s{sev}", "shift", fam, sev)
        for fam in GRADED_FAMILIES
        for sev in GRADED_SEVERITIES
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
FEWSHOT_SPLITS = [
    SplitInfo("val", "val"),
    SplitInfo("test", "id"),
    SplitInfo("test_new", "new", classnames=("e", "f", "g", "h")),
]
TASKS = {
    ("graded", "tiny.v1"): GRADED_SPLITS,
    ("unordered", "text_bb"): UNORDERED_SPLITS,
    ("fewshot", "clip_b16"): FEWSHOT_SPLITS,
}
# method -> (prediction kind, Monte Carlo samples, seeds)
METHODS = {
    "full_ft": ("logits", 0, ["0", "1"]),
    "mc_dropout": ("logprobs", 4, ["0", "1"]),
    "full_ft+ens": ("logprobs", 3, ["ensemble"]),
}
CLOSED_VOCABULARY = {"mc_dropout"}  # no predictions on new classes
# Fit seconds of the graded runs in the costs table: (method, seed) -> seconds.
GRADED_FIT_SECONDS = {
    ("full_ft", "0"): 3600.0,
    ("full_ft", "1"): 7200.0,
    ("mc_dropout", "0"): 1800.0,
    ("mc_dropout", "1"): 1800.0,
    ("full_ft+ens", "ensemble"): 10800.0,
}
FIGURES = {
    ("graded", "tiny.v1"): [
        "reliability", "risk_coverage", "shift_severity", "ood_roc", "ece_vs_acc",
        "cost_quality", "seed_variance",
    ],
    ("unordered", "text_bb"): [
        "reliability", "risk_coverage", "shift_splits", "ece_vs_acc", "seed_variance",
    ],
    ("fewshot", "clip_b16"): [
        "reliability", "risk_coverage", "ece_vs_acc", "base_to_new", "seed_variance",
    ],
}  # fmt: skip
ALL_FIGURES = [
    "reliability", "risk_coverage", "shift_severity", "shift_splits", "ood_roc", "ece_vs_acc",
    "base_to_new", "cost_quality", "seed_variance", "wise_ft",
]  # fmt: skip


def _split_predictions(info: SplitInfo, kind: str, samples: int, rng) -> SplitPrediction:
    """Logits that get noisier with the shift severity; flat, low-margin logits for OOD."""
    if info.kind == "ood":
        labels = np.full(N_EXAMPLES, -1, dtype=np.int64)
        logits = rng.normal(0.0, 1.0, (max(samples, 1), N_EXAMPLES, N_CLASSES))
    else:
        labels = rng.integers(0, N_CLASSES, N_EXAMPLES)
        noise = 1.0 + 0.6 * (info.severity or (1 if info.kind in ("shift", "new") else 0))
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


def _cost_rows(task, backbone, method, seed, run_dir) -> dict:
    seconds = GRADED_FIT_SECONDS[(method, seed)] if task == "graded" else np.nan
    return {
        "run_dir": run_dir, "task": task, "backbone": backbone, "method": method, "seed": seed,
        "fit_seconds": seconds, "fit_max_rss_mb": 900.0, "device": "cuda:0",
        "device_hours": seconds / 3600,
    }  # fmt: skip


@pytest.fixture(scope="module")
def results_tree(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """(table path, run dirs, results root) of the synthetic benchmark."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    rows, run_dirs, costs = [], [], []
    for (task, backbone), splits in TASKS.items():
        for method, (kind, samples, seeds) in METHODS.items():
            for seed in seeds:
                rel = f"results/runs/{task}/{backbone}/{method}/" + (
                    seed if seed == "ensemble" else f"seed{seed}"
                )
                predictions = {
                    info.name: _split_predictions(info, kind, samples, rng)
                    for info in splits
                    if not (info.kind == "new" and method in CLOSED_VOCABULARY)
                }
                save_predictions(root / rel / "predictions.npz", predictions, ["a", "b", "c", "d"])
                run_dirs.append(root / rel)
                rows += _tidy_rows(task, backbone, method, seed, rel, predictions)
                costs.append(_cost_rows(task, backbone, method, seed, rel))
    table_path = root / "results" / "tables" / "runs.parquet"
    table_path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(table_path, index=False)
    pd.DataFrame(costs).to_parquet(root / "results" / "tables" / "costs.parquet", index=False)
    return table_path, run_dirs, root


def _assert_valid(path: Path) -> None:
    data = path.read_bytes()
    assert data, f"{path} is empty"
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC), path
    elif path.suffix == ".pdf":
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:], path
    else:
        assert path.name.endswith(CAPTION_SUFFIX), path


def _index_line(index: str, task: str, backbone: str, name: str) -> str:
    target = f"]({task}/{backbone}/{name}.png)"
    lines = [line for line in index.splitlines() if target in line]
    assert len(lines) == 1, f"{target} listed {len(lines)} times in index.md"
    return lines[0]


def _caption(out: Path, task: str, backbone: str, name: str) -> str:
    return (out / task / backbone / f"{name}{CAPTION_SUFFIX}").read_text()


def _figure_files(out: Path, task: str, backbone: str, name: str) -> list[Path]:
    folder = out / task / backbone
    return [folder / f"{name}.pdf", folder / f"{name}.png", folder / f"{name}{CAPTION_SUFFIX}"]


@pytest.fixture(scope="module")
def figures(results_tree, tmp_path_factory) -> tuple[Path, list[Path]]:
    """(out dir, returned paths) of one full make_figures call, shared by the tests."""
    table_path, run_dirs, _ = results_tree
    out = tmp_path_factory.mktemp("figures")
    costs = table_path.parent / "costs.parquet"
    return out, make_figures(table_path, run_dirs, out, costs_path=costs)


def test_writes_every_figure(figures):
    out, written = figures
    expected = [
        path
        for (task, backbone), names in sorted(FIGURES.items())
        for name in ALL_FIGURES
        if name in names
        for path in _figure_files(out, task, backbone, name)
    ] + [out / "index.md"]
    # PDF, PNG and caption of each figure (pairs sorted, figures in a fixed order), then
    # the index; nothing written twice.
    assert written == expected
    for path in expected[:-1]:
        _assert_valid(path)
    # Graded shifts never get the unordered bar chart, a task without OOD no ROC, a task
    # without a new split no base-to-new bars, a pair without a finite cost no cost plot.
    assert not (out / "graded" / "tiny.v1" / "shift_splits.png").exists()
    assert not (out / "unordered" / "text_bb" / "ood_roc.png").exists()
    assert not (out / "graded" / "tiny.v1" / "base_to_new.png").exists()
    assert not (out / "unordered" / "text_bb" / "cost_quality.png").exists()

    index = (out / "index.md").read_text()
    for (task, backbone), names in FIGURES.items():
        for name in names:
            line = _index_line(index, task, backbone, name)
            assert f"({task}/{backbone}/{name}.pdf)" in line
            # The index repeats the caption file's text.
            assert line.endswith(": " + _caption(out, task, backbone, name).strip())
    reliability = _index_line(index, "graded", "tiny.v1", "reliability")
    assert "Methods: full_ft, full_ft+ens, mc_dropout." in reliability
    assert "Left out" not in reliability


def test_pngs_decode_with_their_figure_size(figures):
    out, written = figures
    for path in (p for p in written if p.suffix == ".png"):
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50, path
        assert float(image[..., :3].std()) > 0.01, f"{path} is blank"
    # Graded: 3 methods x 3 columns (id + the hardest split of each shift family) of
    # reliability panels; fewshot: 3 x 2 (id, new). Same rows, so the same height; one
    # more column, so one panel wider.
    graded = matplotlib.image.imread(out / "graded" / "tiny.v1" / "reliability.png")
    fewshot = matplotlib.image.imread(out / "fewshot" / "clip_b16" / "reliability.png")
    assert graded.shape[0] == fewshot.shape[0]
    panel_width = F._RELIABILITY_PANEL[0] * PNG_DPI
    assert abs(graded.shape[1] - fewshot.shape[1] - panel_width) <= 1
    # Two side-by-side panels: landscape.
    cost = matplotlib.image.imread(out / "graded" / "tiny.v1" / "cost_quality.png")
    assert cost.shape[1] > 1.8 * cost.shape[0]


def test_figure_descriptions_are_static_and_complete():
    assert list(FIGURE_DESCRIPTIONS) == ALL_FIGURES
    assert list(F._DRAWERS) == ALL_FIGURES  # every figure has a drawer, in index order
    for name, text in FIGURE_DESCRIPTIONS.items():
        assert text and not re.search(r"[{}]", text), name  # no format placeholders
        sentences = [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]
        assert 1 <= len(sentences) <= 2, (name, sentences)


def test_captions_name_what_each_figure_shows(figures):
    out, _ = figures
    for (task, backbone), names in FIGURES.items():
        for name in names:
            caption = _caption(out, task, backbone, name)
            assert caption.startswith(FIGURE_DESCRIPTIONS[name]), (task, name)
            assert f"{task} / {backbone}" in caption
            assert "\n" not in caption.strip()  # one paragraph: one line of index.md

    graded = _caption(out, "graded", "tiny.v1", "reliability")
    assert "id split `test`" in graded
    # Eight graded shift splits: the hardest of each of the two families is kept.
    assert "2 of 8, the highest severity of each of the 2 families" in graded
    for family in GRADED_FAMILIES:
        assert f"`shift_{family}_s4`" in graded and f"`shift_{family}_s3`" not in graded
    assert "Runs shown: full_ft seed 0, full_ft+ens ensemble, mc_dropout seed 0." in graded

    fewshot = _caption(out, "fewshot", "clip_b16", "reliability")
    assert "new-class split `test_new`" in fewshot
    assert "Empty panels (no predictions on that split): mc_dropout on `test_new`." in fewshot

    base_new = _caption(out, "fewshot", "clip_b16", "base_to_new")
    assert "Left out (no accuracy on the new classes): mc_dropout." in base_new
    assert "full_ft seeds 0, 1; full_ft+ens its ensemble run." in base_new

    cost = _caption(out, "graded", "tiny.v1", "cost_quality")
    assert "x = GPU-hours per run" in cost and "devices: cuda:0" in cost
    # full_ft costs 1.5 h (mean of 1 and 2) for ID ECE/AURC that mc_dropout (0.5 h) or the
    # ensemble (3 h) may beat; whatever the values, the cheapest method is on both fronts.
    assert re.search(r"Pareto front, ID ECE: mc_dropout\b", cost)
    assert re.search(r"ID AURC: mc_dropout\b", cost)

    ece = _caption(out, "graded", "tiny.v1", "ece_vs_acc")
    assert "shift points average the 8 shift splits" in ece
    seeds = _caption(out, "graded", "tiny.v1", "seed_variance")
    assert "OOD AUROC, MSP (%)" in seeds and "shift ECE (%)" in seeds


def test_missing_predictions_drops_only_that_method(results_tree, tmp_path, capsys):
    table_path, run_dirs, root = results_tree
    # Runs given by another root: the table's relative run dirs must still be matched.
    copies = []
    for run_dir in run_dirs:
        rel = run_dir.relative_to(root)
        if rel.parts[2] != "graded":
            continue
        copy = tmp_path / "elsewhere" / rel
        copy.mkdir(parents=True)
        if rel.parts[-3:] != ("tiny.v1", "mc_dropout", "seed0"):
            (copy / "predictions.npz").write_bytes((run_dir / "predictions.npz").read_bytes())
        copies.append(copy)
    out = tmp_path / "figs"
    # `only` keeps the test fast and is itself checked: the other tasks are not drawn.
    written = make_figures(table_path, copies, out, only=[("graded", "tiny.v1")])
    assert all(p.parts[-3] == "graded" for p in written[:-1])

    err = capsys.readouterr().err
    assert "mc_dropout (seed 0)" in err and "missing" in err
    # Without costs_path the cost plot is skipped with a warning, not an error.
    assert "cost_quality skipped: no costs table given" in err
    assert not (out / "graded" / "tiny.v1" / "cost_quality.pdf").exists()
    index = (out / "index.md").read_text()
    for name in ("reliability", "risk_coverage", "ood_roc"):
        line = _index_line(index, "graded", "tiny.v1", name)
        assert "Methods: full_ft, full_ft+ens." in line
        assert "Left out (predictions unavailable): mc_dropout." in line
        assert "mc_dropout (seed 0: predictions.npz missing)" in line
        _assert_valid(out / "graded" / "tiny.v1" / f"{name}.png")
    # The table figures do not need predictions.
    for name in ("shift_severity", "ece_vs_acc", "seed_variance"):
        assert out / "graded" / "tiny.v1" / f"{name}.pdf" in written


def test_no_predictions_at_all_keeps_table_figures(results_tree, tmp_path, capsys):
    table_path, _, root = results_tree
    missing_costs = root / "no_such_costs.parquet"
    written = make_figures(
        table_path, [], tmp_path / "figs", only=[("unordered", "text_bb")], costs_path=missing_costs
    )
    names = {p.name for p in written}
    assert names == {
        f"{name}{suffix}"
        for name in ("shift_splits", "ece_vs_acc", "seed_variance")
        for suffix in (".pdf", ".png", CAPTION_SUFFIX)
    } | {"index.md"}
    err = capsys.readouterr().err
    assert "no usable predictions" in err
    assert f"cost_quality skipped: costs table {missing_costs} not found" in err


def test_cost_table_problems_are_reported_not_raised(results_tree):
    table_path, _, root = results_tree
    costs = pd.read_parquet(table_path.parent / "costs.parquet")
    malformed = root / "bad_costs.parquet"
    costs.drop(columns="device").to_parquet(malformed, index=False)
    assert "lacks columns ['device']" in F._read_costs(malformed).problem
    assert F._read_costs(None).runs is None
    read = F._read_costs(table_path.parent / "costs.parquet")
    assert read.runs is not None and not read.problem
    # NaN costs (the unordered pair) leave nothing to draw: make_figures skips the plot
    # (checked in test_writes_every_figure); non-positive costs cannot go on a log axis.
    assert F._cell_costs(read.runs, "unordered", "text_bb").empty
    assert len(F._cell_costs(read.runs, "graded", "tiny.v1")) == len(GRADED_FIT_SECONDS)
    zero = read.runs.assign(device_hours=0.0)
    assert F._cell_costs(zero, "graded", "tiny.v1").empty


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


def _cell(table_path: Path, task: str) -> pd.DataFrame:
    table = pd.read_parquet(table_path)
    return table[table["task"] == task]


def _curves(cell: pd.DataFrame, run_dirs: list[Path], splits=None) -> list:
    curves = []
    for choice in F._choose_runs(cell):
        run_dir = F._RunDirLookup(run_dirs).find(choice.run_dir)
        predictions = load_predictions(run_dir / "predictions.npz")[0]
        curves.append(F._curves_for_run(choice, predictions, splits))
    return curves


def test_figure_numbers_match_the_table(results_tree):
    """ECE, AURC and AUROC drawn on the per-run figures are the table's numbers."""
    table_path, run_dirs, _ = results_tree
    cell = _cell(table_path, "graded")
    choices = F._choose_runs(cell)
    assert [(c.method, c.seed) for c in choices] == [
        ("full_ft", "0"),
        ("full_ft+ens", "ensemble"),
        ("mc_dropout", "0"),
    ]
    for curves in _curves(cell, run_dirs):
        rows = cell[cell["run_dir"] == curves.choice.run_dir].set_index(["split", "metric"])
        rows = rows["value"]
        assert curves.ece == pytest.approx(rows[("test", "cal/ece")], abs=1e-12)
        assert curves.aurc == pytest.approx(rows[("test", "sc/aurc")], abs=1e-12)
        assert set(curves.roc) == {"ood_heldout", "ood_far"}
        for split, (_, _, auroc) in curves.roc.items():
            assert auroc == pytest.approx(rows[(split, "ood/auroc_msp")], abs=1e-12)
        assert curves.bin_count.sum() == N_EXAMPLES
        # Every shift panel's ECE is the table's too (no split given: all are computed).
        assert len(curves.reliability) == 1 + len(GRADED_SEVERITIES) * len(GRADED_FAMILIES)
        for split, reliability in curves.reliability.items():
            assert reliability.ece == pytest.approx(rows[(split, "cal/ece")], abs=1e-12)


def test_reliability_grid_has_a_panel_per_method_and_split(results_tree, figures):
    table_path, run_dirs, _ = results_tree
    out, _ = figures
    colours = method_colours(METHODS)
    for task, backbone, n_columns in (("graded", "tiny.v1", 3), ("fewshot", "clip_b16", 2)):
        cell = _cell(table_path, task)
        columns = F._reliability_columns(cell)
        assert len(columns.splits) == n_columns and columns.splits[0] == "test"
        runs = _curves(cell, run_dirs, set(columns.splits))
        with plt.rc_context(F._STYLE):
            fig = F._plot_reliability(
                runs, colours, "t", splits=columns.splits, split_kinds=columns.kinds
            )
        try:
            panels = [ax.get_label() for ax in fig.axes if ax.get_label().startswith("rel")]
            assert sorted(panels) == sorted(
                f"reliability:{m}:{s}" for m in METHODS for s in columns.splits
            )
            # The written PNG is this figure at PNG_DPI.
            png = matplotlib.image.imread(out / task / backbone / "reliability.png")
            width, height = fig.get_size_inches() * PNG_DPI
            assert png.shape[:2] == (round(height), round(width))
        finally:
            plt.close(fig)
    # mc_dropout has no predictions on the new classes: its panel is empty, its count
    # strip hidden.
    strips = {ax.get_label(): ax.get_visible() for ax in fig.axes}
    assert strips["count:mc_dropout:test_new"] is False
    assert strips["count:full_ft:test_new"] is True


def test_select_shift_splits_keeps_the_hardest_of_each_family():
    graded = [
        F._ShiftSplit(f"shift_{family}_s{severity}", family, float(severity))
        for family in ("h", "b", "g", "a", "f", "c", "e", "d")  # 8 families, shuffled
        for severity in (2, 1, 3)
    ]
    kept = F._select_shift_splits(graded)
    assert [s.name for s in kept] == [f"shift_{f}_s3" for f in "abcdef"]
    # At most six: every split, ordered by family then severity.
    few = graded[:6]
    assert [s.name for s in F._select_shift_splits(few)] == [
        "shift_b_s1", "shift_b_s2", "shift_b_s3", "shift_h_s1", "shift_h_s2", "shift_h_s3",
    ]  # fmt: skip
    # Splits without a family or severity count as families of their own.
    loose = [F._ShiftSplit(f"shift_{i}", None, None) for i in "zyxwvuts"]
    assert [s.name for s in F._select_shift_splits(loose)] == [f"shift_{i}" for i in "stuvwx"]


def test_pareto_front_on_a_hand_worked_example():
    # (cost, value), lower is better on both:
    #   0: (1, 5)  cheapest                          -> front
    #   1: (2, 3)  beats 0 on value                  -> front
    #   2: (3, 4)  dominated by 1                    -> not
    #   3: (4, 1)  best value                        -> front
    #   4: (2, 3)  identical to 1: neither dominates -> front
    #   5: (5, 1)  same value as 3 at higher cost    -> not
    #   6: (nan, 0) no cost                          -> ignored
    costs = [1.0, 2.0, 3.0, 4.0, 2.0, 5.0, np.nan]
    values = [5.0, 3.0, 4.0, 1.0, 3.0, 1.0, 0.0]
    np.testing.assert_array_equal(pareto_front(costs, values), [0, 1, 4, 3])
    np.testing.assert_array_equal(pareto_front([3.0], [1.0]), [0])
    assert pareto_front([], []).size == 0
    with pytest.raises(ValueError):
        pareto_front([1.0, 2.0], [1.0])


def test_device_axis_label():
    assert F._device_axis_label(["cuda", "cuda:1"]) == "GPU-hours per run"
    assert F._device_axis_label(["cpu", "cpu"]) == "device-hours per run (CPU)"
    assert F._device_axis_label(["cpu", "cuda"]) == "device-hours per run (mixed devices)"
    # The aggregate step writes "" when a run's run.json names no device.
    assert F._device_axis_label(["cuda", ""]) == "device-hours per run (mixed devices)"
    assert F._device_axis_label(["", None]) == "device-hours per run (device not recorded)"


def test_base_to_new_harmonic_mean_is_formed_per_seed(results_tree):
    table_path, _, _ = results_tree
    cell = _cell(table_path, "fewshot")
    stats = F._base_to_new_stats(F._run_summary(cell))
    acc = cell[cell["metric"] == "cls/acc"].pivot_table(
        index=["method", "seed"], columns="split", values="value"
    )
    for method, seeds in (("full_ft", ["0", "1"]), ("full_ft+ens", ["ensemble"])):
        base = np.array([acc.loc[(method, s), "test"] for s in seeds])
        new = np.array([acc.loc[(method, s), "test_new"] for s in seeds])
        harmonic = 2 * base * new / (base + new)
        mean, std = F._stat(stats, method, "base_new_hm")
        assert mean == pytest.approx(harmonic.mean(), abs=1e-12)
        if len(seeds) > 1:
            assert std == pytest.approx(harmonic.std(ddof=1), abs=1e-12)
            # Per seed, then averaged: not the harmonic mean of the averages.
            assert mean != pytest.approx(
                2 * base.mean() * new.mean() / (base.mean() + new.mean()), abs=1e-15
            )
        else:
            assert np.isnan(std)
        assert F._stat(stats, method, "id_acc")[0] == pytest.approx(base.mean(), abs=1e-12)
        assert F._stat(stats, method, "new_acc")[0] == pytest.approx(new.mean(), abs=1e-12)
    assert np.isnan(F._stat(stats, "mc_dropout", "base_new_hm")[0])


def test_pooled_points_average_splits_then_seeds(results_tree):
    """ece_vs_acc's shift point: mean over shift splits per run, then over seeds."""
    table_path, _, _ = results_tree
    cell = _cell(table_path, "graded")
    stats = F._pool_seeds(F._run_summary(cell), ["id_ece", "shift_acc"])
    full_ft = cell[(cell["method"] == "full_ft")]
    shift_acc = full_ft[(full_ft["split_kind"] == "shift") & (full_ft["metric"] == "cls/acc")]
    per_seed = shift_acc.groupby("seed")["value"].mean()
    assert F._stat(stats, "full_ft", "shift_acc") == pytest.approx(
        (per_seed.mean(), per_seed.std(ddof=1)), abs=1e-12
    )
    id_ece = full_ft[(full_ft["split"] == "test") & (full_ft["metric"] == "cal/ece")]["value"]
    assert F._stat(stats, "full_ft", "id_ece")[0] == pytest.approx(id_ece.mean(), abs=1e-12)
