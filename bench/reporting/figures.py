"""Paper figures per (task, backbone), drawn from the tidy table and the saved predictions.

:func:`make_figures` writes, for every (task, backbone) of ``results/tables/runs.parquet``,
into ``out_dir/{task}/{backbone}/`` a PDF, a PNG and a caption file
(``{name}.caption.md``) of each figure whose data exist:

* ``reliability``: reliability diagrams, one row per method and one column per evaluation
  split (the id split, up to six shift splits, the ``new`` split);
* ``risk_coverage``: selective risk against coverage on the id split;
* ``shift_severity`` (graded shifts) and/or ``shift_splits`` (shifts without a severity):
  accuracy and ECE under shift, mean ± std over seeds, read from the table;
* ``ood_roc``: ROC curves of the maximum-softmax-probability OOD score, one panel per
  OOD split;
* ``ece_vs_acc``: ECE against accuracy per method, on the id split and under shift;
* ``base_to_new``: base, new and harmonic-mean accuracy (base-to-new transfer tasks);
* ``cost_quality``: id ECE and AURC against training device-hours, with the Pareto front
  (only with a costs table, ``costs_path``);
* ``seed_variance``: every seed's value of the headline metrics, per method;
* ``wise_ft``: WiSE-FT's ID against shift accuracy along alpha (``<method>+wise`` runs);

plus ``out_dir/index.md``, one line per figure with its caption. :data:`FIGURE_DESCRIPTIONS`
holds a static description of each figure; ``docs/figures.md`` describes them in full.

Every number on a figure comes from :mod:`bench.metrics` (curves and per-run numbers) or
from the tidy table (which :mod:`bench.metrics` filled); this module only converts
predictions to ``(confidence, correct)`` pairs the way the score step does (restricted to
a split's evaluation classes, then top-1 probability and arg-max), averages over splits and
seeds (per run through ``bench.reporting.aggregate.cell_summary``, as the leaderboard
does), and draws.

Per-run figures (reliability, risk-coverage, OOD ROC) show one run per method: seed
``"0"`` (or the lowest seed present); ensemble methods (``<method>+ens``) their
``"ensemble"`` run. A run whose predictions are missing or unreadable is left out of those
figures with a warning on stderr and named in the caption; the other methods are still
drawn.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Collection, Mapping, Sequence
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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

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
#: Most shift splits given a column of the reliability grid.
MAX_SHIFT_COLUMNS = 6
#: Suffix of the caption file written beside each figure's PDF and PNG.
CAPTION_SUFFIX = ".caption.md"

REQUIRED_COLUMNS = (
    "task", "backbone", "method", "seed", "split", "split_kind", "family", "severity",
    "metric", "value", "run_dir",
)  # fmt: skip
#: Columns the costs table (``make_figures(costs_path=...)``) must have.
COST_TABLE_COLUMNS = ("task", "backbone", "method", "seed", "device", "device_hours")

#: What each figure shows, independent of the data drawn (for reports and index pages).
#: The caption file of a drawn figure starts with this text and adds the specifics.
FIGURE_DESCRIPTIONS: dict[str, str] = {
    "reliability": (
        "Reliability diagrams with 15 equal-width confidence bins, one row per method and "
        "one column per evaluation split (in-distribution, shift, new classes): bars give "
        "the accuracy of each bin against the dashed diagonal, the hatched gap to the bin's "
        "mean confidence is what ECE averages, and the strip below counts examples per bin "
        "(log scale). Each panel's title gives its ECE, equal to the table's cal/ece."
    ),
    "risk_coverage": (
        "Selective risk (error rate among accepted examples) against coverage on the "
        "in-distribution split, accepting the most confident examples (maximum softmax "
        "probability) first; the legend gives each run's AURC (lower is better)."
    ),
    "shift_severity": (
        "Accuracy and ECE against shift severity (0 = in-distribution split), averaged over "
        "shift families and read from the results table; mean ± std over seeds."
    ),
    "shift_splits": (
        "Accuracy and ECE on the in-distribution split and on each shift split without a "
        "severity, read from the results table; mean ± std over seeds."
    ),
    "ood_roc": (
        "ROC curves of OOD detection by maximum softmax probability with in-distribution "
        "inputs as positives, one panel per OOD split; the legend gives each run's AUROC."
    ),
    "ece_vs_acc": (
        "ECE against accuracy, one point per method (mean over seeds, thin bars ± one std): "
        "filled circles on the in-distribution split, open triangles averaged over the shift "
        "splits. Lower right is better."
    ),
    "base_to_new": (
        "Base-to-new transfer: accuracy on the base classes (in-distribution split), on the "
        "held-out new classes, and their harmonic mean 2bn/(b+n) computed per seed; mean "
        "± std over seeds."
    ),
    "cost_quality": (
        "In-distribution ECE and AURC against the training cost of a run in device-hours "
        "(log scale), one point per method (mean over seeds); the step line is the Pareto "
        "front, the methods that no other method beats on both cost and value."
    ),
    "seed_variance": (
        "Spread over seeds of the headline metrics, one panel per metric: one dot per seed "
        "run, a horizontal tick at the mean over seeds, and a diamond for a deep ensemble's "
        "single run."
    ),
    "wise_ft": (
        "WiSE-FT: mean accuracy over the shift splits against in-distribution accuracy as "
        "the weights move from the zero-shot model (alpha 0) to the fine-tuned one (alpha 1), "
        "one line per <method>+wise, mean over seeds; the star marks the alpha most seeds "
        "chose on the validation split (the leaderboard's <method>+wise row)."
    ),
}

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

# Split kinds scored with classification and calibration metrics (the reliability columns).
_EVALUATED_KINDS = ("id", "shift", "new")
# Size of one reliability panel (diagram plus count strip), in inches.
_RELIABILITY_PANEL = (2.35, 2.75)
# Font size of the method names written beside scatter points.
_POINT_LABEL_SIZE = 6.5


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


@dataclass(frozen=True)
class _Reliability:
    """Reliability-diagram statistics of one run on one split (``bench.metrics``)."""

    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    bin_count: np.ndarray
    ece: float


@dataclass
class _RunCurves:
    """Everything the per-run figures draw for one run.

    Computed once per run so that its predictions (possibly ``[S, N, C]`` Monte Carlo
    arrays) can be freed right away.
    """

    choice: _RunChoice
    id_split: str
    reliability: dict[str, _Reliability]  # by split name; always holds the id split
    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    roc: dict[str, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)

    # The id split's reliability, the numbers of the risk-coverage and OOD companions.
    @property
    def ece(self) -> float:
        return self.reliability[self.id_split].ece

    @property
    def bin_count(self) -> np.ndarray:
        return self.reliability[self.id_split].bin_count


def _seed_number(seed: str) -> int | None:
    try:
        return int(seed)
    except ValueError:
        return None


def _seed_order(seed: str) -> tuple[int, int | str]:
    """Sort key: numeric seeds by value, then any other label by name."""
    number = _seed_number(seed)
    return (0, number) if number is not None else (1, seed)


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

    Formed exactly as the score step (``bench.reporting.score``) forms them: a split with
    a ``label_map`` is first restricted to its evaluation classes, then
    ``bench.metrics.score_predictions``' convention applies (the first index wins ties).
    So the figures match the table.
    """
    from bench.metrics import to_probs
    from bench.tasks.base import restrict_scores

    values = pred.values
    if pred.info.label_map is not None:
        values = restrict_scores(values, pred.info.label_map, pred.kind)
    probs = to_probs(values, pred.kind)
    top = probs.argmax(axis=1)
    confidence = np.take_along_axis(probs, top[:, None], axis=1)[:, 0]
    return confidence, top == pred.labels


def _reliability_of(confidence: np.ndarray, correct: np.ndarray) -> _Reliability:
    from bench import metrics

    bin_conf, bin_acc, bin_count = metrics.reliability_bins(confidence, correct, n_bins=N_BINS)
    return _Reliability(
        bin_confidence=bin_conf,
        bin_accuracy=bin_acc,
        bin_count=np.asarray(bin_count),
        ece=metrics.ece_equal_width(confidence, correct, n_bins=N_BINS),
    )


def _curves_for_run(
    choice: _RunChoice,
    predictions: dict[str, SplitPrediction],
    reliability_splits: Collection[str] | None = None,
) -> _RunCurves:
    """Reliability bins, risk-coverage and OOD ROC curves of one run (bench.metrics).

    Args:
        choice: The run.
        predictions: Its predictions by split name.
        reliability_splits: Splits that get reliability statistics besides the id split
            (which always does); ``None`` for every id, shift and new split.

    """
    from bench import metrics

    id_names = [name for name, p in predictions.items() if p.info.kind == "id"]
    if len(id_names) != 1:
        raise ValueError(f"expected exactly one id split, found {id_names}")
    id_name = id_names[0]
    id_pred = predictions[id_name]
    confidence, correct = _confidence_correct(id_pred)
    coverage, risk = metrics.risk_coverage_curve(confidence, correct)
    coverage, risk = downsample_curve(coverage, risk)
    reliability = {id_name: _reliability_of(confidence, correct)}
    for name, pred in predictions.items():
        wanted = reliability_splits is None or name in reliability_splits
        if name != id_name and pred.info.kind in _EVALUATED_KINDS and wanted:
            reliability[name] = _reliability_of(*_confidence_correct(pred))
    curves = _RunCurves(
        choice=choice,
        id_split=id_name,
        reliability=reliability,
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


def _curves_from_file(
    choice: _RunChoice, path: Path, reliability_splits: Collection[str] | None
) -> _RunCurves:
    """Loads one predictions.npz and reduces it to curves.

    The arrays are freed on return, so only one run's predictions are held in memory.
    """
    predictions, _ = load_predictions(path)
    return _curves_for_run(choice, predictions, reliability_splits)


def _load_curves(
    choices: list[_RunChoice],
    lookup: _RunDirLookup,
    reliability_splits: Collection[str] | None = None,
) -> tuple[list[_RunCurves], dict[str, str]]:
    """Curves of every chosen run; unusable runs are skipped with a warning.

    Returns:
        The curves, and for each method left out, why (for the captions).

    """
    out, left_out = [], {}
    for choice in choices:
        run_dir = lookup.find(choice.run_dir)
        if run_dir is None:
            _warn(
                f"{choice.method} ({choice.label}): run dir {choice.run_dir} is not among the "
                "given run dirs; left out of per-run figures"
            )
            left_out[choice.method] = f"{choice.label}: run dir not given"
            continue
        path = run_dir / "predictions.npz"
        if not path.is_file():
            _warn(
                f"{choice.method} ({choice.label}): {path} is missing; left out of per-run figures"
            )
            left_out[choice.method] = f"{choice.label}: predictions.npz missing"
            continue
        try:
            out.append(_curves_from_file(choice, path, reliability_splits))
        except Exception as error:  # a corrupt run must not take every other figure down
            _warn(
                f"{choice.method} ({choice.label}): cannot use {path} "
                f"({type(error).__name__}: {error}); left out of per-run figures"
            )
            left_out[choice.method] = f"{choice.label}: predictions.npz unreadable"
    return out, left_out


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


# --- evaluation splits of the reliability grid --------------------------------------------


@dataclass(frozen=True)
class _ShiftSplit:
    name: str
    family: str | None
    severity: float | None

    @property
    def family_key(self) -> str:
        # A shift without a family is a family of its own.
        return self.family or self.name

    @property
    def order(self) -> tuple[str, float, str]:
        # Ungraded splits sort before graded ones of the same family.
        return (self.family_key, -math.inf if self.severity is None else self.severity, self.name)


def _select_shift_splits(
    shifts: Sequence[_ShiftSplit], max_columns: int = MAX_SHIFT_COLUMNS
) -> list[_ShiftSplit]:
    """The shift splits that get a reliability column, in a stable order.

    All of them when there are at most ``max_columns``; otherwise (graded corruptions,
    family × severity) the highest severity of each family, then the first
    ``max_columns`` families by name.
    """
    ordered = sorted(shifts, key=lambda s: s.order)
    if len(ordered) <= max_columns:
        return ordered
    hardest: dict[str, _ShiftSplit] = {}
    for split in ordered:  # ascending severity: the last one of a family is its hardest
        hardest[split.family_key] = split
    return sorted(hardest.values(), key=lambda s: s.order)[:max_columns]


@dataclass(frozen=True)
class _SplitColumns:
    """Columns of the reliability grid and the caption sentence that explains them."""

    splits: list[str]
    kinds: dict[str, str]
    note: str


def _reliability_columns(cell: pd.DataFrame) -> _SplitColumns:
    """The id split, the chosen shift splits and any new split of a (task, backbone)."""
    rows = cell[cell["split_kind"].isin(_EVALUATED_KINDS)].drop_duplicates("split")
    kinds = dict(zip(rows["split"].astype(str), rows["split_kind"].astype(str), strict=True))
    shifts = [
        _ShiftSplit(
            str(r.split),
            r.family if isinstance(r.family, str) and r.family else None,
            None if pd.isna(r.severity) else float(r.severity),
        )
        for r in rows[rows["split_kind"] == "shift"].itertuples(index=False)
    ]
    kept = _select_shift_splits(shifts)
    id_splits = sorted(s for s, k in kinds.items() if k == "id")
    new_splits = sorted(s for s, k in kinds.items() if k == "new")
    names = ", ".join(f"`{s.name}`" for s in kept)
    if not shifts:
        note = "No shift splits."
    elif len(kept) == len(shifts):
        note = f"Shift splits shown: all {len(shifts)} ({names})."
    else:
        families = len({s.family_key for s in shifts})
        note = (
            f"Shift splits shown: {len(kept)} of {len(shifts)}, the highest severity of "
            + (
                f"each of the {families} families"
                if families <= MAX_SHIFT_COLUMNS
                else f"the first {MAX_SHIFT_COLUMNS} of {families} families by name"
            )
            + f" ({names})."
        )
    return _SplitColumns(id_splits + [s.name for s in kept] + new_splits, kinds, note)


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
            # The first rendering settled the constrained layout (positions are stored in
            # figure fractions, whatever the dpi); the PNG reuses it instead of solving it
            # again, which is a good part of the drawing time of a big grid.
            fig.set_layout_engine("none")
            path = directory / f"{name}.{fmt}"
            atomic_write_bytes(path, buffer.getvalue())
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _save_caption(directory: Path, name: str, caption: str) -> Path:
    """Writes ``name.caption.md``: the figure's full caption, one paragraph."""
    path = directory / f"{name}{CAPTION_SUFFIX}"
    atomic_write_bytes(path, (caption + "\n").encode())
    return path


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.2f}%"


def _names(items: Collection[str]) -> str:
    return ", ".join(items)


# Where a point's name may go, tried in order: (dx, dy) in points from the point and the
# text alignment that keeps the text on that side. Near positions first, then further out.
_LABEL_OFFSETS = tuple(
    (radius * dx, radius * dy, ha, va)
    for radius in (1.0, 2.0, 3.2)
    for dx, dy, ha, va in (
        (4, 3, "left", "bottom"),
        (4, -3, "left", "top"),
        (-4, 3, "right", "bottom"),
        (-4, -3, "right", "top"),
        (0, 5, "center", "bottom"),
        (0, -5, "center", "top"),
        (6, 0, "left", "center"),
        (-6, 0, "right", "center"),
    )
)


def _overlap_area(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two ``(x0, y0, x1, y1)`` boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _label_points(ax: Axes, points: Sequence[tuple[float, float, str, str]]) -> None:
    """Writes each point's name beside it, where it covers the fewest names and points.

    A greedy placement in display coordinates: every candidate position of
    ``_LABEL_OFFSETS`` is measured with the renderer, and the first that overlaps no
    earlier name, no point and stays inside the axes is kept (else the least bad one).
    Deterministic, so reruns give the same figure.

    Args:
        ax: Axes holding the points, with its limits final.
        points: ``(x, y, name, colour)`` in data coordinates.

    """
    fig = ax.get_figure()
    # One draw settles the constrained layout and the limits, so display coordinates are
    # final; the names are kept out of the layout so that they cannot move the axes again.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    half = 4.0 * fig.dpi / 72.0  # a marker's half width, in pixels
    taken = []
    for x, y, _, _ in points:
        px, py = ax.transData.transform((x, y))
        taken.append((px - half, py - half, px + half, py + half))
    frame = ax.get_window_extent(renderer).extents
    for x, y, name, colour in points:
        best = None
        for dx, dy, ha, va in _LABEL_OFFSETS:
            label = ax.annotate(
                name, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=_POINT_LABEL_SIZE, color=colour, annotation_clip=False,
            )  # fmt: skip
            label.set_in_layout(False)
            box = label.get_window_extent(renderer).extents
            outside = _overlap_area(box, box) - _overlap_area(box, frame)
            # Leaving the axes is worse than covering a name: the text may be cut off.
            badness = sum(_overlap_area(box, t) for t in taken) + 4 * outside
            if best is None or badness < best[0]:
                if best is not None:
                    best[1].remove()
                best = (badness, label, box)
            else:
                label.remove()
            if badness == 0:
                break
        if best is not None:
            taken.append(tuple(best[2]))


def pareto_front(costs: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Indices of the points no other point beats on both cost and value (lower is better).

    A point is dominated when another point costs no more and has no higher value, and is
    strictly better in at least one of the two. Identical points do not dominate each
    other, so both stay on the front. Points with a non-finite cost or value are ignored.

    Args:
        costs: ``[n]`` costs (lower is better).
        values: ``[n]`` values (lower is better).

    Returns:
        Indices of the front, by increasing cost (then value), int64.

    """
    cost = np.asarray(costs, dtype=np.float64)
    value = np.asarray(values, dtype=np.float64)
    if cost.shape != value.shape or cost.ndim != 1:
        raise ValueError(
            f"costs and values must be 1-d of one length, got {cost.shape} and {value.shape}"
        )
    finite = np.flatnonzero(np.isfinite(cost) & np.isfinite(value))
    front = []
    for i in finite:
        no_worse = (cost[finite] <= cost[i]) & (value[finite] <= value[i])
        better = (cost[finite] < cost[i]) | (value[finite] < value[i])
        if not np.any(no_worse & better):
            front.append(i)
    front = np.asarray(front, dtype=np.int64)
    return front[np.lexsort((value[front], cost[front]))]


# --- per-run figures ----------------------------------------------------------------------


def _split_label(split: str, kind: str) -> str:
    return split if kind == "shift" else f"{split} ({kind})"


def _plot_reliability(
    runs: list[_RunCurves],
    colours: dict[str, str],
    title: str,
    splits: Sequence[str] | None = None,
    split_kinds: Mapping[str, str] | None = None,
) -> Figure:
    """Reliability diagrams: one row per run, one column per split.

    With a single split (a task without shift or new splits) the panels wrap four to a
    row instead, so the figure does not become one tall column.

    Args:
        runs: One run per method (the rows).
        colours: Colour per method.
        title: Figure title.
        splits: Column splits; default the first run's id split.
        split_kinds: Kind of each split, for the column headers.

    Returns:
        The figure; its axes carry labels ``reliability:<method>:<split>`` and
        ``count:<method>:<split>``.

    """
    splits = list(splits or [runs[0].id_split])
    split_kinds = dict(split_kinds or {runs[0].id_split: "id"})
    grid = len(splits) > 1
    if grid:
        rows, cols = len(runs), len(splits)
    else:
        rows, cols = _grid(len(runs), 4)
    panel_width, panel_height = _RELIABILITY_PANEL
    fig = plt.figure(
        figsize=(panel_width * cols + 0.3, panel_height * rows + 0.7), layout="constrained"
    )
    # One flat grid, diagram rows alternating with count-strip rows: nested gridspecs
    # would make constrained layout reserve title space above every count strip too.
    gridspec = fig.add_gridspec(2 * rows, cols, height_ratios=(3, 1) * rows)
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    left, width = edges[:-1], np.diff(edges)
    # One count scale for every panel, so bin populations compare across methods and splits.
    count_top = 10.0
    for run in runs:
        for rel in run.reliability.values():
            count_top = max(count_top, 2.0 * float(rel.bin_count.max()))
    for r, run in enumerate(runs):
        who = f"{run.choice.method} ({run.choice.label})"
        for c, split in enumerate(splits):
            row, col = (r, c) if grid else divmod(r, cols)
            # Reliability on top, examples per bin in a short strip below: a histogram
            # inside the same panel would hide behind (or cover) the accuracy bars.
            ax: Axes = fig.add_subplot(
                gridspec[2 * row, col], label=f"reliability:{run.choice.method}:{split}"
            )
            ax_n: Axes = fig.add_subplot(
                gridspec[2 * row + 1, col], sharex=ax, label=f"count:{run.choice.method}:{split}"
            )
            if grid:
                header = _split_label(split, split_kinds.get(split, "")) + "\n" if r == 0 else ""
                ylabel = f"{who}\naccuracy" if c == 0 else None
            else:
                header, ylabel = f"{who}\n", "accuracy" if col == 0 else None
            rel = run.reliability.get(split)
            if rel is None:
                # The method was not evaluated on this split (e.g. a closed-vocabulary
                # model on new classes); an empty panel keeps the grid aligned.
                ax.text(
                    0.5, 0.5, "no predictions\non this split", ha="center", va="center",
                    transform=ax.transAxes, color="0.4", fontsize=8,
                )  # fmt: skip
                ax.set(xticks=[], yticks=[])
                ax.grid(False)
                ax.set_title(header + "ECE n/a")
                if ylabel:
                    ax.set_ylabel(ylabel)
                ax_n.set_visible(False)
                continue
            filled = rel.bin_count > 0
            ax.bar(
                left[filled], rel.bin_accuracy[filled], width=width[filled], align="edge",
                color=colours[run.choice.method], edgecolor="white", linewidth=0.5,
                label="accuracy",
            )  # fmt: skip
            # Gap between accuracy and the bin's mean confidence: exactly what ECE averages.
            gap = rel.bin_confidence[filled] - rel.bin_accuracy[filled]
            ax.bar(
                left[filled], gap, bottom=rel.bin_accuracy[filled], width=width[filled],
                align="edge", color="#d62728", alpha=0.25, edgecolor="#d62728", linewidth=0.5,
                hatch="///", label="gap",
            )  # fmt: skip
            ax.plot([0, 1], [0, 1], ls="--", color="0.35", lw=1.0, label="ideal")
            ax.set(xlim=(0, 1), ylim=(0, 1))
            ax.set_title(f"{header}ECE {_pct(rel.ece)}")
            ax.tick_params(labelbottom=False)
            if ylabel:
                ax.set_ylabel(ylabel)
            ax_n.bar(left, rel.bin_count, width=width, align="edge", color="0.55", alpha=0.45, lw=0)
            # Log scale: counts pile up in the top bins, and a nearly empty bin (whose
            # accuracy is noise) must still be visibly non-empty.
            ax_n.set_yscale("log")
            ax_n.set_ylim(0.7, count_top)
            # At most three plain labels (1, 10, 100, ...) and no minor ticks: the strip
            # only needs the order of magnitude, and mathtext labels and minor ticks on
            # every panel of a big grid slow drawing down.
            ax_n.yaxis.set_major_locator(LogLocator(base=10.0, numticks=3))
            ax_n.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax_n.yaxis.set_minor_locator(NullLocator())
            ax_n.tick_params(axis="y", labelsize=7)
            if not grid or r == len(runs) - 1:
                ax_n.set_xlabel("confidence")
            if col == 0:
                ax_n.set_ylabel("count", fontsize=8)
    # Below the grid rather than in a panel, where it would cover bars.
    handles = [
        Line2D([], [], ls="--", color="0.35", lw=1.0, label="ideal (accuracy = confidence)"),
        Patch(facecolor="0.5", edgecolor="white", label="accuracy per bin (method colour)"),
        Patch(
            facecolor=(0.84, 0.15, 0.16, 0.25),
            edgecolor="#d62728",
            hatch="///",
            label="gap to the bin's mean confidence",
        ),
        Patch(facecolor=(0.55, 0.55, 0.55, 0.45), label="examples per bin (log)"),
    ]
    fig_width = fig.get_size_inches()[0]
    ncols = 4 if fig_width >= 9.5 else 2 if fig_width >= 5.0 else 1  # a row is ~9 in wide
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
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


# --- per-run summaries: ECE vs accuracy, base-to-new, cost, seed variance --------------------

# Headline metrics of the seed-variance figure: (cell_summary column, axis label).
_HEADLINE_METRICS = (
    ("id_acc", "ID accuracy (%)"),
    ("id_ece", "ID ECE (%)"),
    ("id_aurc", "ID AURC (%)"),
    ("shift_acc", "shift accuracy (%)"),
    ("shift_ece", "shift ECE (%)"),
    ("ood_auroc", "OOD AUROC, MSP (%)"),
)
# Bars of the base-to-new figure, left to right: base (id) accuracy, new, harmonic mean.
_BASE_NEW_COLUMNS = ("id_acc", "new_acc", "base_new_hm")
_COST_PANELS = (("id_ece", "ID ECE (%)"), ("id_aurc", "ID AURC (%)"))


def _run_summary(cell: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a (task, backbone): method, seed and the leaderboard's columns.

    Built by ``bench.reporting.aggregate.cell_summary``, so each number (a metric
    averaged over the splits of a kind, the base/new harmonic mean) is the leaderboard's:
    ``id_acc``, ``id_ece``, ``id_aurc``, ``shift_acc``, ``shift_ece`` (means over the
    shift splits), ``ood_auroc`` (MSP, mean over the OOD splits), ``new_acc``,
    ``base_new_hm``, ... (NaN where the run has no such split).
    """
    from bench.reporting.aggregate import cell_summary

    # Runs are keyed by (method, seed) rather than by run_dir, which cell_summary groups
    # by: a hand-made table may lack run dirs or share one between runs.
    key = cell["method"].astype(str) + "\x1f" + cell["seed"].astype(str)
    summary = cell_summary(cell.assign(run_dir=key)).drop(columns="run_dir")
    # Methods by name, seeds by number, so that seed dots always come in the same order.
    order = sorted(
        range(len(summary)),
        key=lambda i: (str(summary["method"].iat[i]), _seed_order(str(summary["seed"].iat[i]))),
    )
    return summary.iloc[order].reset_index(drop=True)


def _pool_seeds(per_run: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean, std and n over seeds per (method, column), by :func:`_seed_stats`' rules.

    Non-finite values are left out first, so a method without a metric has no row.

    Returns:
        Indexed by ``(method, column)``, columns ``mean``, ``std`` and ``n``.

    """
    long = per_run.melt(
        id_vars=["method", "seed"], value_vars=list(columns), var_name="column", value_name="value"
    )
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = long[np.isfinite(long["value"])]
    if long.empty:
        index = pd.MultiIndex.from_tuples([], names=["method", "column"])
        return pd.DataFrame({"mean": [], "std": [], "n": []}, index=index)
    return _seed_stats(long, "column").set_index(["method", "column"])


def _stat(stats: pd.DataFrame, method: str, column: str) -> tuple[float, float]:
    """``(mean, std)`` of a pooled metric; NaN where absent (std NaN for a single run)."""
    if (method, column) not in stats.index:
        return math.nan, math.nan
    row = stats.loc[(method, column)]
    return float(row["mean"]), float(row["std"])


def _has(stats: pd.DataFrame, method: str, *columns: str) -> bool:
    """Whether a method has a finite pooled mean of every one of these columns."""
    return all(np.isfinite(_stat(stats, method, column)[0]) for column in columns)


def _error_bar(std: float) -> float | None:
    """An error-bar length in percent, or None for a single run (no spread to show)."""
    return 100 * std if np.isfinite(std) else None


def _runs_text(per_run: pd.DataFrame) -> str:
    """Caption sentence naming the runs a pooled figure uses, per method."""
    parts = []
    for method, rows in per_run.groupby("method", sort=True):
        seeds = sorted(set(rows["seed"]) - {ENSEMBLE_SEED}, key=_seed_order)
        if seeds:
            parts.append(f"{method} seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}")
        else:
            parts.append(f"{method} its ensemble run")
    return "Runs: " + "; ".join(parts) + "."


def _plot_ece_vs_acc(
    stats: pd.DataFrame,
    methods: Sequence[str],
    colours: dict[str, str],
    id_split: str,
    n_shift: int,
    title: str,
) -> Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    groups = [("id_acc", "id_ece", "o", True)]
    if n_shift:
        groups.append(("shift_acc", "shift_ece", "^", False))
    labels = []
    for method in methods:
        colour = colours[method]
        drawn = []
        for acc_column, ece_column, marker, filled in groups:
            acc, acc_std = _stat(stats, method, acc_column)
            ece, ece_std = _stat(stats, method, ece_column)
            if not (np.isfinite(acc) and np.isfinite(ece)):
                continue
            ax.errorbar(
                100 * acc, 100 * ece, xerr=_error_bar(acc_std), yerr=_error_bar(ece_std),
                fmt=marker, color=colour, mfc=colour if filled else "white", mec=colour,
                mew=1.2, ms=6, elinewidth=0.6, capsize=1.5, capthick=0.6, zorder=3,
            )  # fmt: skip
            drawn.append((100 * acc, 100 * ece))
            labels.append((100 * acc, 100 * ece, method, colour))
        if len(drawn) == 2:
            # Joins a method's id and shift points, so the drift under shift reads at once.
            ax.plot(*zip(*drawn, strict=True), color=colour, lw=0.6, alpha=0.5, zorder=2)
    handles = [Line2D([], [], marker="o", ls="none", color="0.3", label=f"id split '{id_split}'")]
    if n_shift:
        handles.append(
            Line2D(
                [],
                [],
                marker="^",
                ls="none",
                color="0.3",
                mfc="white",
                label=f"shift (mean over {n_shift} split{'s' if n_shift > 1 else ''})",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    ax.margins(0.15)
    ax.set_ylim(bottom=0)
    ax.set(xlabel="accuracy (%)", ylabel="ECE (%), 15 equal-width bins", title=title)
    _label_points(ax, labels)
    return fig


def _base_to_new_stats(per_run: pd.DataFrame) -> pd.DataFrame:
    """Base, new and harmonic-mean accuracy pooled over seeds.

    The harmonic mean is formed per run (``cell_summary``'s ``base_new_hm``) before seeds
    are pooled, as the leaderboard does; only runs with both accuracies enter.
    """
    both = per_run[np.isfinite(per_run["id_acc"]) & np.isfinite(per_run["new_acc"])]
    return _pool_seeds(both, _BASE_NEW_COLUMNS)


def _plot_base_to_new(
    stats: pd.DataFrame,
    methods: Sequence[str],
    colours: dict[str, str],
    id_split: str,
    title: str,
) -> Figure:
    from matplotlib.colors import to_rgba

    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(methods) + 2.6), 3.8), layout="constrained")
    width = 0.26
    x = np.arange(len(methods))
    top = 0.0
    for j, column in enumerate(_BASE_NEW_COLUMNS):
        for i, method in enumerate(methods):
            position = x[i] + (j - 1) * width
            mean, std = _stat(stats, method, column)
            colour = colours[method]
            # The same method colour for the three bars; fill and hatch tell them apart.
            style = {
                "id_acc": {"color": to_rgba(colour, 0.75), "edgecolor": "white"},
                "new_acc": {"color": to_rgba(colour, 0.3), "edgecolor": colour, "hatch": "////"},
                "base_new_hm": {"color": colour, "edgecolor": "black"},
            }[column]
            ax.bar(
                position, 100 * mean, width, yerr=_error_bar(std), linewidth=0.7,
                error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.2"}, **style,
            )  # fmt: skip
            upper = 100 * (mean + (std if np.isfinite(std) else 0.0))
            top = max(top, upper)
            if column == "base_new_hm":
                ax.annotate(
                    f"{100 * mean:.1f}", (position, upper), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom",
                    fontsize=_POINT_LABEL_SIZE,
                )  # fmt: skip
    handles = [
        Patch(facecolor=to_rgba("0.45", 0.75), edgecolor="white", label=f"base ({id_split})"),
        Patch(facecolor=to_rgba("0.45", 0.3), edgecolor="0.45", hatch="////", label="new"),
        Patch(facecolor="0.45", edgecolor="black", label="harmonic mean"),
    ]
    fig.legend(handles=handles, loc="outside right upper")
    ax.set_xticks(
        x,
        methods,
        rotation=25 if len(methods) > 4 else 0,
        ha="right" if len(methods) > 4 else "center",
    )
    ax.set_ylim(0, max(top * 1.12, 1.0))
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="x", visible=False)
    ax.set_title(title)
    return fig


@dataclass(frozen=True)
class _Costs:
    """The costs table (``costs_path``), or why there is none."""

    runs: pd.DataFrame | None
    problem: str = ""


def _read_costs(costs_path: Path | None) -> _Costs:
    """Reads the costs parquet; a missing or malformed one is reported, never raised."""
    if costs_path is None:
        return _Costs(None, "no costs table given (costs_path=None)")
    path = Path(costs_path)
    if not path.is_file():
        return _Costs(None, f"costs table {path} not found")
    try:
        costs = pd.read_parquet(path)
    except Exception as error:  # a broken costs file must not stop the other figures
        return _Costs(None, f"cannot read costs table {path} ({type(error).__name__}: {error})")
    missing = [c for c in COST_TABLE_COLUMNS if c not in costs.columns]
    if missing:
        return _Costs(None, f"costs table {path} lacks columns {missing}")
    costs = costs.copy()
    for column in ("task", "backbone", "method", "seed", "device"):
        costs[column] = costs[column].astype(str)
    costs["device_hours"] = pd.to_numeric(costs["device_hours"], errors="coerce")
    return _Costs(costs)


def _cell_costs(costs: pd.DataFrame, task: str, backbone: str) -> pd.DataFrame:
    """Runs of one (task, backbone) with a usable cost: finite and positive (log axis)."""
    rows = costs[(costs["task"] == task) & (costs["backbone"] == backbone)]
    hours = rows["device_hours"].to_numpy(dtype=np.float64)
    return rows[np.isfinite(hours) & (hours > 0)]


def _device_name(device: object) -> str:
    """A run's device as written in the costs table; ``unknown`` when it was not recorded."""
    name = str(device).strip()
    return "unknown" if name.lower() in ("", "nan", "none") else name


def _device_axis_label(devices: Collection[str]) -> str:
    """Cost-axis label: GPU-hours only when every run ran on CUDA."""
    names = [_device_name(d).lower() for d in devices]
    if names and all(d.startswith("cuda") for d in names):
        return "GPU-hours per run"
    if names and all(d.startswith("cpu") for d in names):
        return "device-hours per run (CPU)"
    if names and all(d == "unknown" for d in names):
        return "device-hours per run (device not recorded)"
    return "device-hours per run (mixed devices)"


def _plot_cost_quality(
    points: pd.DataFrame, colours: dict[str, str], xlabel: str, title: str
) -> tuple[Figure, dict[str, list[str]]]:
    """Two panels of id metric against cost, each with its Pareto front.

    Args:
        points: Indexed by method; ``cost`` (device-hours) and the ``_COST_PANELS``
            columns (fractions), means over seeds.
        colours: Colour per method.
        xlabel: Cost axis label.
        title: Figure title.

    Returns:
        The figure and, per panel column, the methods on its Pareto front.

    """
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.2), layout="constrained")
    fronts: dict[str, list[str]] = {}
    labelled = []
    # Plain numbers at 1, 2 and 5 per decade when costs span few decades, where the
    # default labels every minor tick in overlapping scientific notation.
    decades = math.log10(points["cost"].max() / points["cost"].min())
    subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
    for ax, (column, ylabel) in zip(axes, _COST_PANELS, strict=True):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel=xlabel, ylabel=ylabel)
        data = points[["cost", column]].dropna()
        if data.empty:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            fronts[column] = []
            continue
        methods = [str(m) for m in data.index]
        cost = data["cost"].to_numpy(dtype=np.float64)
        value = 100 * data[column].to_numpy(dtype=np.float64)
        front = pareto_front(cost, value)
        fronts[column] = [methods[i] for i in front]
        on_front_indices = set(front.tolist())
        for i, method in enumerate(methods):
            on_front = i in on_front_indices
            ax.scatter(
                cost[i], value[i], s=38, color=colours[method], zorder=3,
                edgecolor="black" if on_front else "white", linewidth=1.1 if on_front else 0.5,
            )  # fmt: skip
        # Best value reachable at each cost: flat until the next front point, then down.
        ax.step(
            np.append(cost[front], cost.max()), np.append(value[front], value[front][-1]),
            where="post", color="0.25", lw=1.0, ls="--", zorder=2,
        )  # fmt: skip
        ax.margins(x=0.12, y=0.15)
        labelled.append((ax, [(cost[i], value[i], m, colours[m]) for i, m in enumerate(methods)]))
    handles = [
        Line2D([], [], color="0.25", lw=1.0, ls="--", label="Pareto front (lower is better)"),
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            color="0.6",
            mec="black",
            mew=1.1,
            label="method on the front",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    fig.suptitle(title)
    for ax, labels in labelled:
        _label_points(ax, labels)
    return fig, fronts


def _plot_seed_variance(
    per_run: pd.DataFrame,
    metrics: Sequence[tuple[str, str]],
    methods: Sequence[str],
    colours: dict[str, str],
    title: str,
) -> Figure:
    rows, cols = _grid(len(metrics), 3)
    panel_width = max(2.8, 0.45 * len(methods) + 1.0)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_width * cols, 3.0 * rows + 0.5), layout="constrained",
        squeeze=False,
    )  # fmt: skip
    x = np.arange(len(methods))
    has_ensemble = False
    for ax, (column, ylabel) in zip(axes.flat, metrics, strict=False):
        for i, method in enumerate(methods):
            colour = colours[method]
            runs = per_run[(per_run["method"] == method) & np.isfinite(per_run[column])]
            seeded = runs[runs["seed"] != ENSEMBLE_SEED]  # already in seed order
            values = 100 * seeded[column].to_numpy(dtype=np.float64)
            if len(values):
                # Spread by seed rank, not at random: the same table gives the same figure.
                jitter = np.linspace(-0.14, 0.14, len(values)) if len(values) > 1 else [0.0]
                ax.scatter(
                    i + np.asarray(jitter), values, s=16, color=colour, edgecolor="white",
                    linewidth=0.4, zorder=3,
                )  # fmt: skip
                ax.hlines(values.mean(), i - 0.28, i + 0.28, color=colour, lw=1.8, zorder=2)
            ensemble = 100 * runs.loc[runs["seed"] == ENSEMBLE_SEED, column].to_numpy()
            if len(ensemble):
                has_ensemble = True
                ax.scatter(
                    np.full(len(ensemble), i), ensemble, marker="D", s=34, color=colour,
                    edgecolor="black", linewidth=0.8, zorder=4,
                )  # fmt: skip
        ax.set_xticks(x, methods, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(ylabel)
        ax.grid(axis="x", visible=False)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], marker="o", ls="none", color="0.45", label="one seed"),
        Line2D([], [], color="0.45", lw=1.8, label="mean over seeds"),
    ]
    if has_ensemble:
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                ls="none",
                color="0.45",
                mec="black",
                label="deep ensemble (one run)",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
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
    table["method"] = table["method"].astype(str)
    table["severity"] = pd.to_numeric(table["severity"], errors="coerce")
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table


def _shown(runs: Sequence[_RunCurves], methods: Sequence[str], left_out: Mapping[str, str]) -> str:
    """Caption sentences naming the runs drawn and the methods left out, with why."""
    drawn = [r.choice.method for r in runs]
    text = "Methods: " + _names(drawn) + "."
    text += " Runs shown: " + _names([f"{r.choice.method} {r.choice.label}" for r in runs]) + "."
    missing = [m for m in methods if m not in drawn]
    if missing:
        text += " Left out (predictions unavailable): " + _names(missing) + "."
        text += " Why: " + "; ".join(f"{m} ({left_out.get(m, 'no run')})" for m in missing) + "."
    return text


def _split_list(splits: Sequence[str], most: int = 8) -> str:
    """Caption list of split names, shortened for long lists."""
    named = ", ".join(f"`{s}`" for s in splits[:most])
    return named + (f" and {len(splits) - most} more" if len(splits) > most else "")


def _left_out_text(reason: str, methods: Sequence[str]) -> str:
    return f" Left out ({reason}): {_names(methods)}." if methods else ""


@dataclass
class _Cell:
    """Everything the figures of one (task, backbone) are drawn from."""

    task: str
    backbone: str
    table: pd.DataFrame  # the pair's rows of the tidy table
    methods: list[str]
    id_split: str  # as named in the table ("n/a" if it has none)
    shift_splits: list[str]
    ood_splits: list[str]
    new_splits: list[str]
    columns: _SplitColumns  # of the reliability grid
    runs: list[_RunCurves]  # one per method with usable predictions
    left_out: dict[str, str]  # methods without usable predictions, and why
    per_run: pd.DataFrame  # _run_summary of the table rows
    colours: dict[str, str]
    markers: dict[str, str]
    costs: _Costs
    wise: pd.DataFrame  # bench.reporting.wise.summarise_curves of the pair's +wise runs

    @property
    def where(self) -> str:
        return f"{self.task} / {self.backbone}"

    @property
    def runs_text(self) -> str:
        return _runs_text(self.per_run)


def _cell_data(
    table: pd.DataFrame,
    task: str,
    backbone: str,
    lookup: _RunDirLookup,
    colours: dict[str, str],
    markers: dict[str, str],
    costs: _Costs,
) -> _Cell:
    """Reads a pair's predictions (one run per method) and summarises its table rows."""
    kinds = table.drop_duplicates("split").set_index("split")["split_kind"]
    splits_of = {kind: sorted(kinds.index[kinds == kind]) for kind in ("id", "shift", "ood", "new")}
    methods = sorted(table["method"].unique())
    columns = _reliability_columns(table)
    choices = _choose_runs(table)
    runs, left_out = _load_curves(choices, lookup, set(columns.splits))
    chosen = {c.method for c in choices}
    left_out.update({m: "no run_dir in the table" for m in methods if m not in chosen})
    return _Cell(
        task=task,
        backbone=backbone,
        table=table,
        methods=methods,
        id_split=splits_of["id"][0] if splits_of["id"] else "n/a",
        shift_splits=splits_of["shift"],
        ood_splits=splits_of["ood"],
        new_splits=splits_of["new"],
        columns=columns,
        runs=runs,
        left_out=left_out,
        per_run=_run_summary(table),
        colours=colours,
        markers=markers,
        costs=costs,
        wise=_wise_summary(table, lookup),
    )


def _wise_summary(table: pd.DataFrame, lookup: _RunDirLookup) -> pd.DataFrame:
    """Per-alpha summary of the pair's ``<method>+wise`` runs that have ``wise_curve.csv``."""
    from bench.reporting.wise import read_curves, summarise_curves

    rows = table[table["method"].str.endswith("+wise") & table["run_dir"].notna()]
    found = (lookup.find(d) for d in sorted(rows["run_dir"].unique()))
    run_dirs = [d for d in found if d is not None and (d / "wise_curve.csv").is_file()]
    return summarise_curves(read_curves(run_dirs))


# Each drawer returns the figure and the caption's specifics, or None when its data are
# missing for the pair.
_Drawn = tuple[Figure, str] | None


def _draw_reliability(cell: _Cell) -> _Drawn:
    if not cell.runs:
        return None
    id_split = cell.runs[0].id_split
    splits = cell.columns.splits
    if id_split not in splits:  # the table lacks the id split the predictions have
        splits = [id_split, *splits]
    title = (
        f"{cell.where}: reliability (rows: methods, columns: splits)"
        if len(splits) > 1
        else f"{cell.where}: reliability on id split '{id_split}'"
    )
    fig = _plot_reliability(
        cell.runs, cell.colours, title, splits=splits,
        split_kinds={**cell.columns.kinds, id_split: "id"},
    )  # fmt: skip
    if len(splits) > 1:
        details = f"first column: id split `{id_split}`. {cell.columns.note}"
    else:
        details = (
            f"only the id split `{id_split}` (no shift or new splits), so the method panels "
            "wrap four to a row."
        )
    if cell.new_splits:
        plural = "s" if len(cell.new_splits) > 1 else ""
        details += f" Last column{plural}: new-class split{plural} {_split_list(cell.new_splits)}."
    details += " " + _shown(cell.runs, cell.methods, cell.left_out)
    empty = [
        f"{r.choice.method} on `{s}`" for r in cell.runs for s in splits if s not in r.reliability
    ]
    if empty:
        details += " Empty panels (no predictions on that split): " + _names(empty) + "."
    return fig, details


def _draw_risk_coverage(cell: _Cell) -> _Drawn:
    if not cell.runs:
        return None
    id_split = cell.runs[0].id_split
    fig = _plot_risk_coverage(
        cell.runs, cell.colours, f"{cell.where}: risk-coverage on id split '{id_split}'"
    )
    return fig, f"id split `{id_split}`. " + _shown(cell.runs, cell.methods, cell.left_out)


def _draw_shift_severity(cell: _Cell) -> _Drawn:
    shift = cell.table[(cell.table["split_kind"] == "shift") & cell.table["severity"].notna()]
    if shift.empty:
        return None
    fig = _plot_shift_severity(
        cell.table, cell.colours, cell.markers, f"{cell.where}: graded shift"
    )
    return fig, (
        f"id split `{cell.id_split}`; {shift['split'].nunique()} graded shift splits in "
        f"{shift['family'].dropna().nunique()} families. {cell.runs_text}"
    )


def _draw_shift_splits(cell: _Cell) -> _Drawn:
    shift = cell.table[(cell.table["split_kind"] == "shift") & cell.table["severity"].isna()]
    if shift.empty:
        return None
    fig = _plot_shift_splits(cell.table, cell.colours, f"{cell.where}: shift splits")
    return fig, (
        f"id split `{cell.id_split}`; shift splits "
        f"{_split_list(sorted(shift['split'].unique()))}. {cell.runs_text}"
    )


def _draw_ood_roc(cell: _Cell) -> _Drawn:
    ood_runs = [r for r in cell.runs if r.roc]
    if not ood_runs:
        return None
    ood_splits = sorted({s for r in ood_runs for s in r.roc})
    no_ood = {
        r.choice.method: f"{r.choice.label}: no OOD predictions" for r in cell.runs if not r.roc
    }
    fig = _plot_ood_roc(ood_runs, ood_splits, cell.colours, f"{cell.where}: OOD detection (MSP)")
    return fig, (
        f"id split `{ood_runs[0].id_split}`; OOD splits {_split_list(ood_splits)}. "
        + _shown(ood_runs, cell.methods, {**cell.left_out, **no_ood})
    )


def _draw_ece_vs_acc(cell: _Cell) -> _Drawn:
    stats = _pool_seeds(cell.per_run, ["id_acc", "id_ece", "shift_acc", "shift_ece"])
    drawn = [
        m
        for m in cell.methods
        if _has(stats, m, "id_acc", "id_ece") or _has(stats, m, "shift_acc", "shift_ece")
    ]
    if not drawn:
        return None
    n_shift = len(cell.shift_splits)
    fig = _plot_ece_vs_acc(
        stats, drawn, cell.colours, cell.id_split, n_shift, f"{cell.where}: ECE vs accuracy"
    )
    shift_text = (
        f"shift points average the {n_shift} shift splits ({_split_list(cell.shift_splits)}) "
        "per run before seeds are pooled"
        if n_shift
        else "the task has no shift splits"
    )
    return fig, (
        f"id split `{cell.id_split}`; {shift_text}. Error bars: ± one std over seeds (none "
        f"for a single run or an ensemble). {cell.runs_text}"
        + _left_out_text(
            "no accuracy and ECE in the table", [m for m in cell.methods if m not in drawn]
        )
    )


def _draw_base_to_new(cell: _Cell) -> _Drawn:
    if not cell.new_splits:
        return None
    stats = _base_to_new_stats(cell.per_run)
    drawn = [m for m in cell.methods if _has(stats, m, "base_new_hm")]
    if not drawn:
        _warn(f"{cell.where}: base_to_new skipped: no run has accuracies on both base and new")
        return None
    fig = _plot_base_to_new(stats, drawn, cell.colours, cell.id_split, f"{cell.where}: base-to-new")
    return fig, (
        f"base = id split `{cell.id_split}`, new = {_split_list(cell.new_splits)}; the "
        "harmonic mean is formed per run, then mean ± std over seeds. "
        + _runs_text(cell.per_run[cell.per_run["method"].isin(drawn)])
        + _left_out_text(
            "no accuracy on the new classes", [m for m in cell.methods if m not in drawn]
        )
    )


def _draw_cost_quality(cell: _Cell) -> _Drawn:
    # Costs come from outside the table, so each reason for skipping is reported.
    if cell.costs.runs is None:
        _warn(f"{cell.where}: cost_quality skipped: {cell.costs.problem}")
        return None
    run_costs = _cell_costs(cell.costs.runs, cell.task, cell.backbone)
    run_costs = run_costs[run_costs["method"].isin(cell.methods)]
    if run_costs.empty:
        _warn(f"{cell.where}: cost_quality skipped: no finite, positive cost for this pair")
        return None
    cost_stats = _pool_seeds(run_costs, ["device_hours"])
    metric_stats = _pool_seeds(cell.per_run, [c for c, _ in _COST_PANELS])
    points = pd.DataFrame(
        {
            "cost": [_stat(cost_stats, m, "device_hours")[0] for m in cell.methods],
            **{c: [_stat(metric_stats, m, c)[0] for m in cell.methods] for c, _ in _COST_PANELS},
        },
        index=pd.Index(cell.methods, name="method"),
    )
    points = points[np.isfinite(points["cost"])]
    points = points[np.isfinite(points[[c for c, _ in _COST_PANELS]]).any(axis=1)]
    if points.empty:
        _warn(f"{cell.where}: cost_quality skipped: no method has a cost and an id ECE or AURC")
        return None
    devices = run_costs.loc[run_costs["method"].isin(points.index), "device"]
    xlabel = _device_axis_label(devices)
    fig, fronts = _plot_cost_quality(
        points, cell.colours, xlabel, f"{cell.where}: cost and quality"
    )
    front_text = "; ".join(
        f"{label.removesuffix(' (%)')}: {_names(fronts[c]) or 'none'}" for c, label in _COST_PANELS
    )
    return fig, (
        f"x = {xlabel}, the costs table's device_hours (fit seconds / 3600), mean over seeds; "
        f"devices: {_names(sorted({_device_name(d) for d in devices}))}. An ensemble's cost "
        f"is the sum of its members'. Pareto front, {front_text}. "
        + _runs_text(cell.per_run[cell.per_run["method"].isin(points.index)])
        + _left_out_text(
            "no finite cost or id metric", [m for m in cell.methods if m not in points.index]
        )
    )


def _draw_seed_variance(cell: _Cell) -> _Drawn:
    headline = [
        (column, label)
        for column, label in _HEADLINE_METRICS
        if np.isfinite(cell.per_run[column]).any()
    ]
    if not headline:
        return None
    fig = _plot_seed_variance(
        cell.per_run, headline, cell.methods, cell.colours, f"{cell.where}: seed variance"
    )
    averaged = []
    if cell.shift_splits:
        averaged.append(f"shift values average the {len(cell.shift_splits)} shift splits")
    if cell.ood_splits:
        averaged.append(f"OOD AUROC averages the {len(cell.ood_splits)} OOD splits")
    return fig, (
        f"id split `{cell.id_split}`; panels: {_names([label for _, label in headline])}"
        + "".join(f"; {text}" for text in averaged)
        + f". {cell.runs_text}"
    )


def _draw_wise_ft(cell: _Cell) -> _Drawn:
    from bench.reporting.wise import plot_wise_curve

    if cell.wise.empty:
        return None
    fig = plot_wise_curve(cell.wise, cell.colours, f"{cell.where}: WiSE-FT")
    if fig is None:
        _warn(f"{cell.where}: wise_ft skipped: the curves have no id and shift accuracies")
        return None
    methods = sorted(cell.wise["method"].unique())
    alphas = sorted(cell.wise["alpha"].unique())
    return fig, (
        f"id split `{cell.id_split}`, shift = mean over {_split_list(cell.shift_splits)}; "
        f"alphas {', '.join(f'{a:g}' for a in alphas)}; methods {_names(methods)}; "
        f"seeds per method: {int(cell.wise['seeds'].max())}. Per-alpha numbers: "
        "results/leaderboard/wise_ft.md."
    )


# Every figure's drawer, in the order of FIGURE_DESCRIPTIONS (the order of index.md).
_DRAWERS = {
    "reliability": _draw_reliability,
    "risk_coverage": _draw_risk_coverage,
    "shift_severity": _draw_shift_severity,
    "shift_splits": _draw_shift_splits,
    "ood_roc": _draw_ood_roc,
    "ece_vs_acc": _draw_ece_vs_acc,
    "base_to_new": _draw_base_to_new,
    "cost_quality": _draw_cost_quality,
    "seed_variance": _draw_seed_variance,
    "wise_ft": _draw_wise_ft,
}


def _figures_for_cell(cell: _Cell, fig_dir: Path) -> list[_Written]:
    """Every figure of one (task, backbone) whose data exist, with its caption file."""
    if not cell.runs:
        _warn(
            f"{cell.where}: no usable predictions; reliability, risk-coverage and OOD ROC skipped"
        )
    written = []
    for name, draw in _DRAWERS.items():
        drawn = draw(cell)
        if drawn is None:
            continue
        fig, details = drawn
        caption = f"{FIGURE_DESCRIPTIONS[name]} {cell.where}: {details}"
        files = _save(fig, fig_dir, name)
        files.append(_save_caption(fig_dir, name, caption))
        written.append(_Written(cell.task, cell.backbone, name, caption, files))
    return written


def _write_index(out_dir: Path, table_path: Path, written: list[_Written], path: Path) -> Path:
    lines = [
        "# Figures",
        "",
        f"Generated by `bench.reporting.figures.make_figures` from `{table_path}`; do not "
        "edit. Definitions of every figure: `docs/figures.md`; each figure's caption is also "
        f"in `<name>{CAPTION_SUFFIX}` beside it.",
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
    costs_path: Path | None = None,
) -> list[Path]:
    """Draws every figure of every (task, backbone) in the tidy table.

    A figure is drawn for a (task, backbone) only when its data exist (shift splits,
    OOD splits, a ``new`` split, costs, predictions); see :data:`FIGURE_DESCRIPTIONS`.

    Args:
        table_path: ``results/tables/runs.parquet`` (see ``bench.reporting.aggregate``).
        run_dirs: Run directories holding ``predictions.npz``; the table's ``run_dir``
            entries are matched to them by path (or by their last four components).
            Runs not given, or without predictions, are left out of the per-run figures
            with a warning on stderr and named in the captions.
        out_dir: Figures go to ``out_dir/{task}/{backbone}/{name}.{pdf,png}`` with their
            caption in ``{name}.caption.md``, the index to ``out_dir/index.md``.
        only: If given, only these ``(task, backbone)`` pairs are drawn (e.g. one
            Snakemake job per pair); colours still follow every method of the table.
        index_path: Where the index goes (default ``out_dir/index.md``); one Snakemake
            job per pair puts it in the pair's own folder so jobs never share a file.
        costs_path: Parquet of fit costs per run (columns :data:`COST_TABLE_COLUMNS`;
            ``device_hours`` = fit seconds / 3600, an ensemble's the sum of its members)
            for the ``cost_quality`` figure. If None, missing, unreadable or without a
            finite cost for a pair, that figure is skipped with a warning on stderr.

    Returns:
        Every file written: each figure's PDF, PNG and caption file, then ``index.md``.

    Raises:
        ValueError: If the table is empty or lacks required columns.

    """
    table_path, out_dir = Path(table_path), Path(out_dir)
    table = _read_table(table_path)
    costs = _read_costs(None if costs_path is None else Path(costs_path))
    colours = method_colours(table["method"].unique())
    markers = _method_markers(table["method"].unique())
    lookup = _RunDirLookup([Path(p) for p in run_dirs])
    wanted = None if only is None else {(str(t), str(b)) for t, b in only}
    written: list[_Written] = []
    with plt.rc_context(_STYLE):
        for (task, backbone), cell in table.groupby(["task", "backbone"], sort=True):
            if wanted is not None and (task, backbone) not in wanted:
                continue
            data = _cell_data(cell, str(task), str(backbone), lookup, colours, markers, costs)
            written += _figures_for_cell(data, out_dir / str(task) / str(backbone))
    index = _write_index(out_dir, table_path, written, Path(index_path or out_dir / "index.md"))
    return [path for item in written for path in item.files] + [index]
