"""Paper figures per (task, backbone), drawn from the tidy table and the saved predictions.

:func:`make_figures` writes, for every (task, backbone) of ``results/tables/runs.parquet``,
into ``out_dir/{task}/{backbone}/`` a PDF and a PNG of:

* ``reliability``: reliability diagrams on the id split, one panel per method;
* ``risk_coverage``: selective risk against coverage on the id split;
* ``shift_severity`` (graded shifts) and/or ``shift_splits`` (shifts without a severity):
  accuracy and ECE under shift, mean ± std over seeds, read from the table;
* ``ood_roc``: ROC curves of the maximum-softmax-probability OOD score, one panel per
  OOD split;

plus ``out_dir/index.md``, one line per figure. ``docs/figures.md`` describes each figure.

Every number on a figure comes from :mod:`bench.metrics` (curves and per-run numbers) or
from the tidy table (which :mod:`bench.metrics` filled); this module only converts
predictions to ``(confidence, correct)`` pairs the way ``bench.metrics.score_predictions``
does (top-1 probability and arg-max), averages over families and seeds, and draws.

Per-run figures (reliability, risk-coverage, OOD ROC) show one run per method: seed
``"0"`` (or the lowest seed present); ensemble methods (``<method>+ens``) their
``"ensemble"`` run. A run whose predictions are missing or unreadable is left out of those
figures with a warning on stderr; the other methods are still drawn.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

# Figures are drawn by batch jobs (Snakemake, cluster nodes, CI) without a display; Agg must
# be chosen before pyplot is imported, or pyplot may try to open a GUI backend.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bench.io import SplitPrediction, atomic_write_bytes, load_predictions  # noqa: E402

#: Equal-width bins of the reliability diagrams; the same 15 bins as the table's ``cal/ece``.
N_BINS = 15
#: Most points drawn per curve; metrics always use every example, only drawing is thinned.
MAX_CURVE_POINTS = 2000
#: Resolution of the PNG copies (the PDFs are vector graphics).
PNG_DPI = 150
#: Seed label of deep-ensemble runs in the tidy table.
ENSEMBLE_SEED = "ensemble"
#: Suffix of deep-ensemble method names (``bench.config.ENSEMBLE_SUFFIX``).
ENSEMBLE_SUFFIX = "+ens"

REQUIRED_COLUMNS = (
    "task", "backbone", "method", "seed", "split", "split_kind", "family", "severity",
    "metric", "value", "run_dir",
)  # fmt: skip

# seaborn's "colorblind" palette, then matplotlib's tab20 for grids with many methods;
# hard-coded so that colours never depend on the installed seaborn version.
_PALETTE = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

# Paper-sized, readable defaults, applied only while this module draws (rc_context), so
# importing it never changes anybody else's plots.
_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 10.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "lines.linewidth": 1.5,
    # TrueType fonts in PDFs keep text editable and avoid Type 3 fonts, which some
    # publishers reject.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}

_CAPTIONS = {
    "reliability": (
        "Reliability diagrams on the id split `{id_split}` ({n_bins} equal-width bins): "
        "accuracy per confidence bin against the diagonal, gap to the bin's mean confidence "
        "shaded, examples per bin below; ECE (`ece_equal_width`) in each title."
    ),
    "risk_coverage": (
        "Selective risk (error rate among accepted examples) against coverage on the id "
        "split `{id_split}`, accepting the most confident (MSP) first; AURC in the legend."
    ),
    "shift_severity": (
        "Accuracy and ECE (`cls/acc`, `cal/ece` from the table) against shift severity "
        "(0 = id split), averaged over shift families; mean ± std over seeds."
    ),
    "shift_splits": (
        "Accuracy and ECE (`cls/acc`, `cal/ece` from the table) on the id split and each "
        "shift split without a severity; mean ± std over seeds."
    ),
    "ood_roc": (
        "ROC curves of OOD detection with the MSP score (id split `{id_split}` positive), "
        "one panel per OOD split; AUROC in the legend."
    ),
}


def _warn(message: str) -> None:
    """Prints a warning on stderr (Snakemake keeps it in the rule's log)."""
    print(f"bench figures: warning: {message}", file=sys.stderr, flush=True)


# --- run selection and predictions ------------------------------------------------------


@dataclass(frozen=True)
class _RunChoice:
    """The run of a method shown in the per-run figures."""

    method: str
    seed: str
    run_dir: str  # as written in the table

    @property
    def label(self) -> str:
        return "ensemble" if self.seed == ENSEMBLE_SEED else f"seed {self.seed}"


@dataclass
class _RunCurves:
    """Everything the per-run figures draw for one run.

    Computed once per run so that its predictions (possibly ``[S, N, C]`` Monte Carlo
    arrays) can be freed right away.
    """

    choice: _RunChoice
    id_split: str
    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    bin_count: np.ndarray
    ece: float
    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    roc: dict[str, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)


def _seed_number(seed: str) -> int | None:
    try:
        return int(seed)
    except ValueError:
        return None


def _preferred_seed(method: str, seeds: Collection[str]) -> str:
    """Seed ``"0"`` or the lowest numeric seed; the ``"ensemble"`` run for ensembles."""
    if method.endswith(ENSEMBLE_SUFFIX) and ENSEMBLE_SEED in seeds:
        return ENSEMBLE_SEED
    numeric = [(n, s) for s in seeds if (n := _seed_number(s)) is not None]
    if numeric:
        return min(numeric)[1]
    if ENSEMBLE_SEED in seeds:
        return ENSEMBLE_SEED
    return sorted(seeds)[0]


def _choose_runs(cell: pd.DataFrame) -> list[_RunChoice]:
    """One run per method of a (task, backbone) block, methods in sorted order."""
    choices = []
    for method, rows in cell.groupby("method", sort=True):
        seed = _preferred_seed(str(method), set(rows["seed"]))
        run_dirs = sorted(rows.loc[rows["seed"] == seed, "run_dir"].dropna().unique())
        if not run_dirs:
            _warn(f"{method} seed {seed}: no run_dir in the table; left out of per-run figures")
            continue
        if len(run_dirs) > 1:
            _warn(f"{method} seed {seed}: several run dirs {run_dirs}; using {run_dirs[0]}")
        choices.append(_RunChoice(str(method), seed, str(run_dirs[0])))
    return choices


class _RunDirLookup:
    """Maps the table's ``run_dir`` strings to the run directories passed in.

    The table records run dirs relative to the repository root
    (``results/runs/<task>/<backbone>/<method>/<seed>``) while callers may pass absolute
    paths or a copy of the results elsewhere; a table entry therefore matches a given
    directory by resolved path or, failing that, by its last four path components.
    """

    TAIL = 4  # task / backbone / method / seed directory

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        self._resolved: dict[Path, Path] = {}
        self._tails: dict[tuple[str, ...], list[Path]] = {}
        for run_dir in map(Path, run_dirs):
            self._resolved[run_dir.resolve()] = run_dir
            self._tails.setdefault(run_dir.parts[-self.TAIL :], []).append(run_dir)

    def find(self, table_run_dir: str) -> Path | None:
        path = Path(table_run_dir)
        hit = self._resolved.get(path.resolve())
        if hit is not None:
            return hit
        candidates = self._tails.get(path.parts[-self.TAIL :], [])
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            _warn(f"run dir {table_run_dir} matches several given dirs {candidates}")
        return None


def _confidence_correct(pred: SplitPrediction) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 probability and whether the arg-max is right.

    Formed exactly as ``bench.metrics.score_predictions`` forms them (the first index wins
    ties), so the figures match the table.
    """
    from bench.metrics import to_probs

    probs = to_probs(pred.values, pred.kind)
    top = probs.argmax(axis=1)
    confidence = np.take_along_axis(probs, top[:, None], axis=1)[:, 0]
    return confidence, top == pred.labels


def _curves_for_run(choice: _RunChoice, predictions: dict[str, SplitPrediction]) -> _RunCurves:
    """Reliability bins, risk-coverage and OOD ROC curves of one run (bench.metrics)."""
    from bench import metrics

    id_names = [name for name, p in predictions.items() if p.info.kind == "id"]
    if len(id_names) != 1:
        raise ValueError(f"expected exactly one id split, found {id_names}")
    id_pred = predictions[id_names[0]]
    confidence, correct = _confidence_correct(id_pred)
    bin_conf, bin_acc, bin_count = metrics.reliability_bins(confidence, correct, n_bins=N_BINS)
    coverage, risk = metrics.risk_coverage_curve(confidence, correct)
    coverage, risk = downsample_curve(coverage, risk)
    curves = _RunCurves(
        choice=choice,
        id_split=id_names[0],
        bin_confidence=bin_conf,
        bin_accuracy=bin_acc,
        bin_count=np.asarray(bin_count),
        ece=metrics.ece_equal_width(confidence, correct, n_bins=N_BINS),
        coverage=coverage,
        risk=risk,
        aurc=metrics.aurc(confidence, correct),
    )
    ood_names = sorted(name for name, p in predictions.items() if p.info.kind == "ood")
    if ood_names:
        score_id = metrics.score_msp(id_pred.values, id_pred.kind)
        for name in ood_names:
            pred = predictions[name]
            try:
                score_ood = metrics.score_msp(pred.values, pred.kind)
                fpr, tpr = metrics.ood_roc_curve(score_id, score_ood)
                auroc = metrics.ood_auroc(score_id, score_ood)
            except ValueError as error:
                _warn(f"{choice.run_dir}: OOD split {name} skipped: {error}")
                continue
            curves.roc[name] = (*downsample_curve(fpr, tpr), auroc)
    return curves


def _curves_from_file(choice: _RunChoice, path: Path) -> _RunCurves:
    """Loads one predictions.npz and reduces it to curves.

    The arrays are freed on return, so only one run's predictions are held in memory.
    """
    predictions, _ = load_predictions(path)
    return _curves_for_run(choice, predictions)


def _load_curves(choices: list[_RunChoice], lookup: _RunDirLookup) -> list[_RunCurves]:
    """Curves of every chosen run; unusable runs are skipped with a warning."""
    out = []
    for choice in choices:
        run_dir = lookup.find(choice.run_dir)
        if run_dir is None:
            _warn(
                f"{choice.method} ({choice.label}): run dir {choice.run_dir} is not among the "
                "given run dirs; left out of per-run figures"
            )
            continue
        path = run_dir / "predictions.npz"
        if not path.is_file():
            _warn(
                f"{choice.method} ({choice.label}): {path} is missing; left out of per-run figures"
            )
            continue
        try:
            out.append(_curves_from_file(choice, path))
        except Exception as error:  # a corrupt run must not take every other figure down
            _warn(
                f"{choice.method} ({choice.label}): cannot use {path} "
                f"({type(error).__name__}: {error}); left out of per-run figures"
            )
    return out


def downsample_curve(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Thins a curve for drawing, keeping its first and last points and its shape.

    Half of the points are spread evenly over the index (where the data are dense), half
    evenly along the curve's length in axis-normalised units (so steep stretches, such as
    an ROC curve's rise near FPR 0, keep their detail).

    Args:
        x: ``[n]`` abscissae, in curve order.
        y: ``[n]`` ordinates.
        max_points: Most points to keep (at least 4).

    Returns:
        ``(x, y)`` restricted to at most ``max_points`` points, in the original order.

    """
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if n <= max_points:
        return x, y
    max_points = max(4, int(max_points))
    half = (max_points - 2) // 2
    by_index = np.linspace(0, n - 1, half).round().astype(np.int64)
    span_x = float(np.ptp(x)) or 1.0
    span_y = float(np.ptp(y)) or 1.0
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x) / span_x, np.diff(y) / span_y))])
    by_length = np.searchsorted(arc, np.linspace(0.0, arc[-1], half), side="left")
    keep = np.unique(np.concatenate([[0, n - 1], by_index, np.clip(by_length, 0, n - 1)]))
    return x[keep], y[keep]


# --- colours ------------------------------------------------------------------------------


def method_colours(methods: Collection[str]) -> dict[str, str]:
    """A fixed colour per method, assigned in sorted-name order.

    A method therefore has the same colour in every figure drawn from one table.
    """
    return {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(sorted(set(methods)))}


def _method_markers(methods: Collection[str]) -> dict[str, str]:
    return {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(sorted(set(methods)))}


# --- figure output ------------------------------------------------------------------------


@dataclass
class _Written:
    """One figure written to disk, for index.md."""

    task: str
    backbone: str
    name: str
    caption: str
    files: list[Path]


def _save(fig: Figure, directory: Path, name: str) -> list[Path]:
    """Writes ``name.pdf`` and ``name.png`` atomically and closes the figure."""
    paths = []
    try:
        for fmt, extra in (
            # No creation date: the same results give byte-identical PDFs.
            ("pdf", {"metadata": {"CreationDate": None}}),
            ("png", {"dpi": PNG_DPI}),
        ):
            buffer = io.BytesIO()
            # No bbox_inches="tight": constrained layout already fits titles and
            # outside legends, and "tight" would draw every figure once more.
            fig.savefig(buffer, format=fmt, **extra)
            path = directory / f"{name}.{fmt}"
            atomic_write_bytes(path, buffer.getvalue())
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.2f}%"


# --- per-run figures ----------------------------------------------------------------------


def _plot_reliability(runs: list[_RunCurves], colours: dict[str, str], title: str) -> Figure:
    rows, cols = _grid(len(runs), 4)
    fig = plt.figure(figsize=(2.7 * cols, 3.5 * rows), layout="constrained")
    outer = fig.add_gridspec(rows, cols)
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    # One count scale for every panel, so bin populations compare across methods.
    count_top = max(10.0, 2.0 * max(float(r.bin_count.max()) for r in runs))
    left, width = edges[:-1], np.diff(edges)
    for i, run in enumerate(runs):
        # Reliability on top, examples per bin in a short strip below: a histogram inside
        # the same panel would hide behind (or cover) the accuracy bars.
        inner = outer[i // cols, i % cols].subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
        ax: Axes = fig.add_subplot(inner[0])
        ax_n: Axes = fig.add_subplot(inner[1], sharex=ax)
        filled = run.bin_count > 0
        ax.bar(
            left[filled], run.bin_accuracy[filled], width=width[filled], align="edge",
            color=colours[run.choice.method], edgecolor="white", linewidth=0.5,
            label="accuracy",
        )  # fmt: skip
        # Gap between accuracy and the bin's mean confidence: exactly what ECE averages.
        gap = run.bin_confidence[filled] - run.bin_accuracy[filled]
        ax.bar(
            left[filled], gap, bottom=run.bin_accuracy[filled], width=width[filled],
            align="edge", color="#d62728", alpha=0.25, edgecolor="#d62728", linewidth=0.5,
            hatch="///", label="gap",
        )  # fmt: skip
        ax.plot([0, 1], [0, 1], ls="--", color="0.35", lw=1.0, label="ideal")
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{run.choice.method} ({run.choice.label})\nECE {_pct(run.ece)}")
        ax.tick_params(labelbottom=False)
        if i % cols == 0:
            ax.set_ylabel("accuracy")
        if i == 0:
            ax.legend(loc="upper left", handlelength=1.2)
        ax_n.bar(left, run.bin_count, width=width, align="edge", color="0.55", alpha=0.45, lw=0)
        # Log scale: counts pile up in the top bins, and a nearly empty bin (whose accuracy
        # is noise) must still be visibly non-empty.
        ax_n.set_yscale("log")
        ax_n.set_ylim(0.7, count_top)
        ax_n.set_xlabel("confidence")
        ax_n.tick_params(axis="y", labelsize=7)
        if i % cols == 0:
            ax_n.set_ylabel("count", fontsize=8)
    fig.suptitle(title)
    return fig


def _plot_risk_coverage(runs: list[_RunCurves], colours: dict[str, str], title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7.6, 3.6), layout="constrained")
    for run in runs:
        ax.plot(
            run.coverage, 100 * run.risk, color=colours[run.choice.method],
            label=f"{run.choice.method} ({run.choice.label}), AURC {_pct(run.aurc)}",
        )  # fmt: skip
    ax.set(xlim=(0, 1), xlabel="coverage (fraction of id examples accepted)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("selective risk (error %)")
    # Outside the axes: at low coverage the risk of a few examples jumps anywhere.
    fig.legend(loc="outside right upper")
    ax.set_title(title)
    return fig


def _plot_ood_roc(
    runs: list[_RunCurves], ood_splits: list[str], colours: dict[str, str], title: str
) -> Figure:
    rows, cols = _grid(len(ood_splits), 3)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.7 * cols, 3.5 * rows), layout="constrained", squeeze=False
    )
    for ax, split in zip(axes.flat, ood_splits, strict=False):
        ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1.0)
        for run in runs:
            if split not in run.roc:
                continue
            fpr, tpr, auroc = run.roc[split]
            ax.plot(
                fpr,
                tpr,
                color=colours[run.choice.method],
                label=f"{run.choice.method}  {100 * auroc:.1f}",
            )
        ax.set(xlim=(0, 1), ylim=(0, 1.01), title=split)
        ax.set_xlabel("FPR (OOD accepted as id)")
        ax.set_ylabel("TPR (id accepted)")
        # Curves bend towards the top left, so the bottom right stays free for the legend.
        ax.legend(loc="lower right", fontsize=7, framealpha=0.85, title="AUROC (%)")
    for ax in axes.flat[len(ood_splits) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


# --- table figures ------------------------------------------------------------------------

_TABLE_METRICS = (("cls/acc", "accuracy (%)"), ("cal/ece", "ECE (%)"))


def _seed_stats(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean and std over seeds of one metric, per (method, key).

    Rows sharing (method, seed, key), e.g. the families of one severity, are averaged
    first. Ensemble runs (seed ``"ensemble"``) never enter a std: they are used only for a
    method that has no other run, whose mean is then that single value with no std.

    Returns:
        Columns ``method``, ``key``, ``mean``, ``std`` (NaN with one seed), ``n``.

    """
    per_seed = rows.groupby(["method", "seed", key], as_index=False)["value"].mean()
    ensemble = per_seed["seed"] == ENSEMBLE_SEED
    has_seeds = per_seed.loc[~ensemble, "method"].unique()
    per_seed = per_seed[~ensemble | ~per_seed["method"].isin(has_seeds)]
    stats = per_seed.groupby(["method", key])["value"].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}).reset_index()


def _dodge(n: int, spread: float) -> np.ndarray:
    """Horizontal offsets that keep n methods' error bars apart."""
    return (np.arange(n) - (n - 1) / 2) * min(0.08, spread / max(n, 1))


def _plot_shift_severity(
    cell: pd.DataFrame, colours: dict[str, str], markers: dict[str, str], title: str
) -> Figure:
    base = cell[cell["metric"].isin([m for m, _ in _TABLE_METRICS])]
    id_rows = base[base["split_kind"] == "id"].assign(severity=0.0)
    shift_rows = base[(base["split_kind"] == "shift") & base["severity"].notna()]
    rows = pd.concat([id_rows, shift_rows], ignore_index=True)
    methods = sorted(rows["method"].unique())
    offsets = dict(zip(methods, _dodge(len(methods), 0.4), strict=True))
    severities = sorted(rows["severity"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.4), layout="constrained")
    for ax, (metric, ylabel) in zip(axes, _TABLE_METRICS, strict=True):
        stats = _seed_stats(rows[rows["metric"] == metric], "severity")
        for method in methods:
            s = stats[stats["method"] == method].sort_values("severity")
            if s.empty:
                continue
            std = s["std"].to_numpy()
            ax.errorbar(
                s["severity"].to_numpy() + offsets[method], 100 * s["mean"].to_numpy(),
                yerr=None if np.isnan(std).all() else 100 * np.nan_to_num(std),
                color=colours[method], marker=markers[method], ms=4.5, capsize=2.5,
                elinewidth=1.0, label=method,
            )  # fmt: skip
        ax.set_xticks(severities, ["id" if s == 0 else f"{s:g}" for s in severities])
        ax.set_xlabel("shift severity (mean over families)")
        ax.set_ylabel(ylabel)
        if metric == "cal/ece":
            ax.set_ylim(bottom=0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="method")
    fig.suptitle(title)
    return fig


def _plot_shift_splits(cell: pd.DataFrame, colours: dict[str, str], title: str) -> Figure:
    base = cell[cell["metric"].isin([m for m, _ in _TABLE_METRICS])]
    rows = base[
        (base["split_kind"] == "id") | ((base["split_kind"] == "shift") & base["severity"].isna())
    ]
    id_splits = sorted(rows.loc[rows["split_kind"] == "id", "split"].unique())
    shift_splits = sorted(rows.loc[rows["split_kind"] == "shift", "split"].unique())
    splits = id_splits + shift_splits
    methods = sorted(rows["method"].unique())
    width = 0.8 / len(methods)
    x = np.arange(len(splits))
    # Panels stacked (shared x) so that many methods x splits stay a readable width.
    fig_width = min(11.0, max(4.5, 0.2 * len(splits) * len(methods) + 1.5))
    fig, axes = plt.subplots(
        2, 1, figsize=(fig_width + 1.6, 5.2), sharex=True, layout="constrained"
    )
    for ax, (metric, ylabel) in zip(axes, _TABLE_METRICS, strict=True):
        stats = _seed_stats(rows[rows["metric"] == metric], "split").set_index(["method", "split"])
        for j, method in enumerate(methods):
            mean = np.array([stats["mean"].get((method, s), np.nan) for s in splits])
            std = np.array([stats["std"].get((method, s), np.nan) for s in splits])
            ax.bar(
                x + (j - (len(methods) - 1) / 2) * width, 100 * mean, width=width,
                yerr=None if np.isnan(std).all() else 100 * np.nan_to_num(std),
                color=colours[method], edgecolor="white", linewidth=0.5, label=method,
                error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.2"},
            )  # fmt: skip
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
    labels = [f"{s} (id)" if s in id_splits else s for s in splits]
    # Rotate only when the names would not fit side by side (~0.075 in per character).
    rotate = max(map(len, labels)) * 0.075 > 0.9 * fig_width / len(splits)
    axes[-1].set_xticks(x, labels, rotation=25 if rotate else 0, ha="right" if rotate else "center")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="method")
    fig.suptitle(title)
    return fig


# --- driver -------------------------------------------------------------------------------


def _read_table(table_path: Path) -> pd.DataFrame:
    table = pd.read_parquet(table_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results table {table_path} lacks columns {missing}")
    if table.empty:
        raise ValueError(
            f"results table {table_path} is empty: no scored runs to draw figures from "
            "(did the aggregate step find any metrics.json?)"
        )
    table = table.copy()
    # Seeds are strings in the table ("0", "ensemble"); an int column (hand-made tables)
    # is normalised so that run selection and the ensemble rule behave the same.
    table["seed"] = table["seed"].astype(str)
    table["severity"] = pd.to_numeric(table["severity"], errors="coerce")
    return table


def _shown(runs: Sequence[Any], choices: Sequence[_RunChoice]) -> str:
    """Caption suffix naming the methods drawn and those left out."""
    drawn = [r.choice.method for r in runs]
    text = " Methods: " + ", ".join(drawn) + "."
    left_out = [c.method for c in choices if c.method not in drawn]
    if left_out:
        text += " Left out (predictions unavailable): " + ", ".join(left_out) + "."
    return text


def _figures_for_cell(
    cell: pd.DataFrame,
    task: str,
    backbone: str,
    lookup: _RunDirLookup,
    colours: dict[str, str],
    markers: dict[str, str],
    fig_dir: Path,
) -> list[_Written]:
    """Every figure of one (task, backbone) block of the table."""
    written: list[_Written] = []

    def emit(name: str, fig: Figure, caption: str) -> None:
        written.append(_Written(task, backbone, name, caption, _save(fig, fig_dir, name)))

    where = f"{task} / {backbone}"
    choices = _choose_runs(cell)
    runs = _load_curves(choices, lookup)
    if runs:
        id_split = runs[0].id_split
        shown = _shown(runs, choices)
        fmt = {"id_split": id_split, "n_bins": N_BINS}
        emit(
            "reliability",
            _plot_reliability(runs, colours, f"{where}: reliability on id split '{id_split}'"),
            _CAPTIONS["reliability"].format(**fmt) + shown,
        )
        emit(
            "risk_coverage",
            _plot_risk_coverage(runs, colours, f"{where}: risk-coverage on id split '{id_split}'"),
            _CAPTIONS["risk_coverage"].format(**fmt) + shown,
        )
        ood_splits = sorted({s for r in runs for s in r.roc})
        if ood_splits:
            ood_runs = [r for r in runs if r.roc]
            emit(
                "ood_roc",
                _plot_ood_roc(ood_runs, ood_splits, colours, f"{where}: OOD detection (MSP)"),
                _CAPTIONS["ood_roc"].format(**fmt) + _shown(ood_runs, choices),
            )
    else:
        _warn(f"{where}: no usable predictions; reliability, risk-coverage and OOD ROC skipped")

    shift = cell[cell["split_kind"] == "shift"]
    if shift["severity"].notna().any():
        emit(
            "shift_severity",
            _plot_shift_severity(cell, colours, markers, f"{where}: graded shift"),
            _CAPTIONS["shift_severity"],
        )
    if shift["severity"].isna().any():
        emit(
            "shift_splits",
            _plot_shift_splits(cell, colours, f"{where}: shift splits"),
            _CAPTIONS["shift_splits"],
        )
    return written


def _write_index(out_dir: Path, table_path: Path, written: list[_Written], path: Path) -> Path:
    lines = [
        "# Figures",
        "",
        f"Generated by `bench.reporting.figures.make_figures` from `{table_path}`; do not "
        "edit. Definitions of every figure: `docs/figures.md`.",
    ]
    block = None
    for item in written:
        if (item.task, item.backbone) != block:
            block = (item.task, item.backbone)
            lines += ["", f"## {item.task} · {item.backbone}", ""]
        png, pdf = (
            os.path.relpath(out_dir / item.task / item.backbone / f"{item.name}.{ext}", path.parent)
            for ext in ("png", "pdf")
        )
        lines.append(f"- [{item.name}]({png}) ([PDF]({pdf})): {item.caption}")
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def make_figures(
    table_path: Path,
    run_dirs: list[Path],
    out_dir: Path,
    *,
    only: Collection[tuple[str, str]] | None = None,
    index_path: Path | None = None,
) -> list[Path]:
    """Draws every figure of every (task, backbone) in the tidy table.

    Args:
        table_path: ``results/tables/runs.parquet`` (see ``bench.reporting.aggregate``).
        run_dirs: Run directories holding ``predictions.npz``; the table's ``run_dir``
            entries are matched to them by path (or by their last four components).
            Runs not given, or without predictions, are left out of the per-run figures
            with a warning on stderr.
        out_dir: Figures go to ``out_dir/{task}/{backbone}/{name}.{pdf,png}``, the index
            to ``out_dir/index.md``.
        only: If given, only these ``(task, backbone)`` pairs are drawn (e.g. one
            Snakemake job per pair); colours still follow every method of the table.
        index_path: Where the index goes (default ``out_dir/index.md``); one Snakemake
            job per pair puts it in the pair's own folder so jobs never share a file.

    Returns:
        Every file written: each figure's PDF and PNG, then ``index.md``.

    Raises:
        ValueError: If the table is empty or lacks required columns.

    """
    table_path, out_dir = Path(table_path), Path(out_dir)
    table = _read_table(table_path)
    colours = method_colours(table["method"].unique())
    markers = _method_markers(table["method"].unique())
    lookup = _RunDirLookup([Path(p) for p in run_dirs])
    wanted = None if only is None else {(str(t), str(b)) for t, b in only}
    written: list[_Written] = []
    with plt.rc_context(_STYLE):
        for (task, backbone), cell in table.groupby(["task", "backbone"], sort=True):
            if wanted is not None and (task, backbone) not in wanted:
                continue
            fig_dir = out_dir / str(task) / str(backbone)
            written += _figures_for_cell(
                cell, str(task), str(backbone), lookup, colours, markers, fig_dir
            )
    index = _write_index(out_dir, table_path, written, Path(index_path or out_dir / "index.md"))
    return [path for item in written for path in item.files] + [index]
