"""Leaderboard views: tables of methods x columns cut from the summary table.

A :class:`View` holds numbers, directions and missing-cell reasons, never formatted text;
:mod:`bench.reporting.render` turns any view into CSV, Markdown, LaTeX or HTML. The views:

* :func:`overview_view`: per (task, backbone), the headline columns (ID, mean of shifts,
  mean of OOD splits, base-to-new, cost);
* :func:`task_views`: per (task, backbone), one block per evaluation split (ID, each shift
  set, each OOD set, the means, base-to-new, cost);
* :func:`metric_views`: per headline column, methods x (task, backbone) with the mean rank;
* :func:`shift_views`: the ImageNet-literature shift table (ID, V2, R, A, Sketch,
  ObjectNet, average of shifts) for accuracy and ECE, for every task with shift splits;
* :func:`base_to_new_view`: base, new and harmonic-mean accuracy per few-shot task, and
  their average over tasks;
* :func:`selective_views`: selective prediction on the ID split (AURC, E-AURC, accuracy
  at 90 / 80 / 50% coverage), the headline table of IVON and the Bayesian baselines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.reporting.stats import BASE_TO_NEW, HARMONIC_MEAN, OOD_MEAN, SHIFT_MEAN
from bench.reporting.summary import COST

#: Where each metric is defined (linked from results/leaderboard/README.md).
METRIC_DOCS = {
    "cls/": "docs/metrics.md#classification-cls",
    "cal/": "docs/metrics.md#calibration-cal",
    "sc/": "docs/metrics.md#selective-classification-sc",
    "ood/": "docs/metrics.md#ood-detection-ood",
    HARMONIC_MEAN: "docs/leaderboards.md#base-to-new",
    "cost/": "docs/leaderboards.md#cost",
    "rank": "docs/leaderboards.md#mean-rank",
}

# Display names of the metrics the views show; percent metrics (summary.is_percent) are
# fractions in the tables and x100 when rendered.
METRIC_LABELS = {
    "cls/acc": "acc (%)",
    "cal/ece": "ECE (%)",
    "cls/nll": "NLL",
    "sc/aurc": "AURC (%)",
    "sc/eaurc": "E-AURC (%)",
    "sc/acc_at_90": "acc @ 90% cov. (%)",
    "sc/acc_at_80": "acc @ 80% cov. (%)",
    "sc/acc_at_50": "acc @ 50% cov. (%)",
    "ood/auroc_msp": "AUROC (%)",
    "ood/fpr95_msp": "FPR95 (%)",
    HARMONIC_MEAN: "HM (%)",
    "cost/fit_seconds": "fit time (s)",
    "cost/device_hours": "device-hours",
    "cost/peak_rss_mb": "peak mem (MB)",
}
LABELLED = ("cls/acc", "cal/ece", "cls/nll", "sc/aurc")
OOD = ("ood/auroc_msp", "ood/fpr95_msp")
COSTS = ("cost/fit_seconds", "cost/device_hours", "cost/peak_rss_mb")

#: Headline columns: (key, split kind or block, metric, header).
HEADLINE = [
    ("id_acc", "id", "cls/acc", "ID acc (%)"),
    ("id_ece", "id", "cal/ece", "ID ECE (%)"),
    ("id_nll", "id", "cls/nll", "ID NLL"),
    ("id_aurc", "id", "sc/aurc", "ID AURC (%)"),
    ("shift_acc", "shift_mean", "cls/acc", "shift acc (%)"),
    ("shift_ece", "shift_mean", "cal/ece", "shift ECE (%)"),
    ("ood_auroc", "ood_mean", "ood/auroc_msp", "OOD AUROC (%)"),
    ("ood_fpr95", "ood_mean", "ood/fpr95_msp", "OOD FPR95 (%)"),
    ("new_acc", "new", "cls/acc", "new acc (%)"),
    ("base_new_hm", "base_to_new", HARMONIC_MEAN, "base/new HM (%)"),
    ("fit_seconds", "cost", "cost/fit_seconds", "fit time (s)"),
]

#: Column order of the shift table: ImageNet's shifts as the literature orders them, then
#: any other shift split by name.
SHIFT_ORDER = ["shift_v2", "shift_r", "shift_a", "shift_sketch", "shift_objectnet"]
SHIFT_HEADERS = {
    "shift_v2": "V2",
    "shift_r": "R",
    "shift_a": "A",
    "shift_sketch": "Sketch",
    "shift_objectnet": "ObjectNet",
}


@dataclass
class Column:
    """One column of a view.

    Attributes:
        key: Stable identifier (CSV column prefix).
        header: Display header.
        metric: The metric it shows (for its definition and direction).
        higher_is_better: Direction; ``None`` means no best/second marking.
        percent: Render x100.
        group: Optional header group spanning adjacent columns (e.g. a task).
    """

    key: str
    header: str
    metric: str
    higher_is_better: bool | None
    percent: bool
    group: str = ""


@dataclass
class Entry:
    """One cell: numbers, or the reason it is missing."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    n_expected: int = 0
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_holm: float = math.nan
    #: ``"better"`` / ``"worse"``: significantly different from the reference method.
    mark: str | None = None
    missing: str | None = None


@dataclass
class View:
    """A methods x columns table with everything a renderer needs."""

    slug: str
    title: str
    caption: str
    rows: list[str]
    columns: list[Column]
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    reference: str | None = None
    show_ci: bool = False
    row_notes: dict[str, str] = field(default_factory=dict)

    def entry(self, row: str, key: str) -> Entry:
        return self.entries.get((row, key), Entry(missing="not run"))


def _direction_mark(row: pd.Series) -> str | None:
    if not bool(row["significant"]) or not np.isfinite(row["diff"]) or row["diff"] == 0:
        return None
    improves = (row["diff"] > 0) == bool(row["higher_is_better"])
    return "better" if improves else "worse"


def _entry(row: pd.Series) -> Entry:
    return Entry(
        mean=float(row["mean"]),
        std=float(row["std"]),
        n=int(row["n"]),
        n_expected=int(row["n_expected"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        p_holm=float(row["p_holm"]),
        mark=_direction_mark(row),
    )


def method_order(summary: pd.DataFrame, cells: pd.DataFrame | None) -> list[str]:
    """Methods in grid order (first appearance among the expected cells), then the rest."""
    order: list[str] = []
    for source in (cells, summary):
        if source is not None and not source.empty:
            order += [m for m in dict.fromkeys(source["method"]) if m not in order]
    return order


def _missing_reason(cells: pd.DataFrame | None, task: str, backbone: str, method: str) -> str:
    if cells is None or cells.empty:
        return "not run"
    rows = cells[(cells.task == task) & (cells.backbone == backbone) & (cells.method == method)]
    if rows.empty:
        return "not run (not in this grid)"
    failed = rows[rows.status == "failed"]
    if not failed.empty:
        return f"failed ({len(failed)}/{len(rows)} runs)"
    not_run = rows[rows.status == "not run"]
    if not not_run.empty:
        return "not run"
    return "n/a"


def _partial_note(cells: pd.DataFrame | None, task: str, backbone: str, method: str) -> str:
    if cells is None or cells.empty:
        return ""
    rows = cells[(cells.task == task) & (cells.backbone == backbone) & (cells.method == method)]
    bad = rows[rows.status != "ok"]
    if bad.empty or len(bad) == len(rows):
        return ""
    seeds = ", ".join(f"{r.seed}: {r.status}" for r in bad.itertuples())
    return f"{len(rows) - len(bad)}/{len(rows)} runs ({seeds})"


def _fill(
    view: View,
    summary: pd.DataFrame,
    cells: pd.DataFrame | None,
    task: str,
    backbone: str,
    selectors: dict[str, tuple[str, str, str]],
) -> None:
    """Fills a view's entries; ``selectors[key] = (column of summary, value, metric)``."""
    block = summary[(summary.task == task) & (summary.backbone == backbone)]
    for key, (by, value, metric) in selectors.items():
        rows = block[(block[by] == value) & (block.metric == metric)].set_index("method")
        for method in view.rows:
            if method in rows.index:
                row = rows.loc[method]
                view.entries[(method, key)] = (
                    _entry(row) if np.isfinite(row["mean"]) else Entry(missing="n/a")
                )
            else:
                reason = _missing_reason(cells, task, backbone, method)
                view.entries[(method, key)] = Entry(missing=reason)
    for method in view.rows:
        note = _partial_note(cells, task, backbone, method)
        if note:
            view.row_notes[method] = note


def _column(key: str, metric: str, header: str | None = None, group: str = "") -> Column:
    from bench.reporting.summary import higher_is_better, is_percent

    label = METRIC_LABELS.get(metric, metric)
    return Column(key, header or label, metric, higher_is_better(metric), is_percent(metric), group)


def _pairs(summary: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(
        summary[["task", "backbone"]].drop_duplicates().itertuples(index=False, name=None)
    )


def _reference(summary: pd.DataFrame, task: str, backbone: str) -> str | None:
    refs = summary[(summary.task == task) & (summary.backbone == backbone)]["reference"].dropna()
    return str(refs.iloc[0]) if not refs.empty else None


def _rows_for(summary, cells, task, backbone) -> list[str]:
    methods = method_order(summary, cells)
    present = set(summary[(summary.task == task) & (summary.backbone == backbone)].method)
    if cells is not None and not cells.empty:
        present |= set(cells[(cells.task == task) & (cells.backbone == backbone)].method)
    return [m for m in methods if m in present]


def _has(block: pd.DataFrame, by: str, value: str, metric: str) -> bool:
    rows = block[(block[by] == value) & (block.metric == metric)]
    return bool(rows["mean"].notna().any())


def overview_view(
    summary: pd.DataFrame, cells: pd.DataFrame | None, task: str, backbone: str
) -> View:
    """The headline columns of one (task, backbone); absent columns are left out."""
    block = summary[(summary.task == task) & (summary.backbone == backbone)]
    selectors, columns = {}, []
    for key, kind, metric, header in HEADLINE:
        if _has(block, "split_kind", kind, metric):
            selectors[key] = ("split_kind", kind, metric)
            columns.append(_column(key, metric, header))
    view = View(
        slug=f"{task}__{backbone}",
        title=f"{task} · {backbone}",
        caption=(
            "Mean ± std over seeds. ID = the in-distribution test split; shift and OOD "
            "columns average over the task's shift / OOD splits (OOD score: maximum softmax "
            "probability)."
        ),
        rows=_rows_for(summary, cells, task, backbone),
        columns=columns,
        reference=_reference(summary, task, backbone),
    )
    _fill(view, summary, cells, task, backbone, selectors)
    return view


def _split_order(block: pd.DataFrame, kind: str) -> list[str]:
    names = block[block.split_kind == kind].split.drop_duplicates().tolist()
    known = [s for s in SHIFT_ORDER if s in names]
    return known + sorted(s for s in names if s not in known)


def task_views(
    summary: pd.DataFrame, cells: pd.DataFrame | None, task: str, backbone: str
) -> list[View]:
    """One view per evaluation block of a (task, backbone), in protocol order."""
    block = summary[(summary.task == task) & (summary.backbone == backbone)]
    reference = _reference(summary, task, backbone)
    rows = _rows_for(summary, cells, task, backbone)
    blocks: list[tuple[str, str, str, Sequence[str]]] = []  # (split, kind, title, metrics)
    for split in _split_order(block, "id"):
        blocks.append((split, "id", f"ID ({split})", LABELLED))
    for split in _split_order(block, "shift"):
        blocks.append((split, "shift", f"shift: {SHIFT_HEADERS.get(split, split)}", LABELLED))
    if (block.split_kind == "shift_mean").any():
        blocks.append((SHIFT_MEAN, "shift_mean", "shift: mean over shift splits", LABELLED))
    for split in sorted(block[block.split_kind == "severity"].split.unique()):
        blocks.append((split, "severity", f"shift: {split} (mean over families)", LABELLED))
    for split in _split_order(block, "new"):
        blocks.append((split, "new", f"new classes ({split})", LABELLED))
    if (block.split_kind == "base_to_new").any():
        blocks.append((BASE_TO_NEW, "base_to_new", "base-to-new", (HARMONIC_MEAN,)))
    for split in _split_order(block, "ood"):
        blocks.append((split, "ood", f"OOD: {split}", OOD))
    if (block.split_kind == "ood_mean").any():
        blocks.append((OOD_MEAN, "ood_mean", "OOD: mean over OOD splits", OOD))
    if (block.split_kind == COST).any():
        blocks.append((COST, COST, "cost of the fit", COSTS))
    views = []
    for split, _kind, title, metrics in blocks:
        present = [m for m in metrics if _has(block, "split", split, m)]
        if not present:
            continue
        view = View(
            slug=f"{task}__{backbone}__{split}",
            title=f"{task} · {backbone} · {title}",
            caption="",
            rows=rows,
            columns=[_column(m, m) for m in present],
            reference=None if split == COST else reference,
            show_ci=split != COST,
        )
        _fill(view, summary, cells, task, backbone, {m: ("split", split, m) for m in present})
        views.append(view)
    return views


def mean_ranks(view: View) -> dict[str, tuple[float, int]]:
    """Mean rank of each row over the view's columns (1 = best, ties share the mean rank).

    Only columns where a row has a value count for it; returns ``{row: (rank, columns)}``.
    """
    ranks: dict[str, list[float]] = {row: [] for row in view.rows}
    for column in view.columns:
        values = {r: view.entry(r, column.key).mean for r in view.rows}
        finite = {r: v for r, v in values.items() if np.isfinite(v)}
        if len(finite) < 2 or column.higher_is_better is None:
            continue
        sign = -1.0 if column.higher_is_better else 1.0
        order = list(finite)
        for row, rank in zip(order, rankdata([sign * finite[r] for r in order]), strict=True):
            ranks[row].append(float(rank))
    return {r: (float(np.mean(v)) if v else math.nan, len(v)) for r, v in ranks.items()}


def metric_views(summary: pd.DataFrame, cells: pd.DataFrame | None) -> list[View]:
    """Per headline column: methods x (task, backbone), plus the mean rank."""
    pairs = _pairs(summary)
    methods = method_order(summary, cells)
    views = []
    for key, kind, metric, header in HEADLINE:
        if kind == COST:
            continue
        present = [
            (t, b)
            for t, b in pairs
            if _has(
                summary[(summary.task == t) & (summary.backbone == b)], "split_kind", kind, metric
            )
        ]
        if not present:
            continue
        rows = [m for m in methods if m in set(summary.method)]
        view = View(
            slug=key,
            title=f"{header} across tasks",
            caption=(
                f"{header}: mean ± std over seeds per task; last column: mean rank over the "
                "tasks a method was run on (1 = best)."
            ),
            rows=rows,
            columns=[_column(f"{t}__{b}", metric, f"{t} · {b}") for t, b in present],
            reference=next((r for t, b in present if (r := _reference(summary, t, b))), None),
        )
        for t, b in present:
            sub = View("", "", "", rows, [_column(f"{t}__{b}", metric)])
            _fill(sub, summary, cells, t, b, {f"{t}__{b}": ("split_kind", kind, metric)})
            view.entries.update(sub.entries)
        for row, (rank, count) in mean_ranks(view).items():
            view.entries[(row, "mean_rank")] = Entry(
                mean=rank, n=count, missing=None if count else "n/a"
            )
        view.columns.append(Column("mean_rank", "mean rank ↓", "rank", False, False))
        views.append(view)
    return views


def shift_views(summary: pd.DataFrame, cells: pd.DataFrame | None) -> list[View]:
    """The shift table (ID, each shift, average of shifts) for accuracy and ECE."""
    views = []
    for task, backbone in _pairs(summary):
        block = summary[(summary.task == task) & (summary.backbone == backbone)]
        shifts = _split_order(block, "shift")
        if not shifts:
            continue
        for metric, name in (("cls/acc", "accuracy"), ("cal/ece", "ECE")):
            selectors = {"id": ("split_kind", "id", metric)}
            columns = [_column("id", metric, "ID")]
            for split in shifts:
                selectors[split] = ("split", split, metric)
                columns.append(_column(split, metric, SHIFT_HEADERS.get(split, split)))
            selectors["avg"] = ("split", SHIFT_MEAN, metric)
            columns.append(_column("avg", metric, "avg shifts"))
            view = View(
                slug=f"{task}__{backbone}__{metric.split('/')[1]}",
                title=f"{task} · {backbone}: {name} under distribution shift (%)",
                caption=(
                    f"{name} on the ID test split and each shift split; avg shifts = mean over "
                    "the shift splits. Mean ± std over seeds."
                ),
                rows=_rows_for(summary, cells, task, backbone),
                columns=columns,
                reference=_reference(summary, task, backbone),
            )
            _fill(view, summary, cells, task, backbone, selectors)
            views.append(view)
    return views


#: Columns of the selective-prediction table, in order: full coverage, then the curve.
SELECTIVE = ("cls/acc", "sc/aurc", "sc/eaurc", "sc/acc_at_90", "sc/acc_at_80", "sc/acc_at_50")


def selective_views(summary: pd.DataFrame, cells: pd.DataFrame | None) -> list[View]:
    """Per (task, backbone): accuracy, AURC, E-AURC and accuracy at fixed coverage (ID)."""
    views = []
    for task, backbone in _pairs(summary):
        block = summary[(summary.task == task) & (summary.backbone == backbone)]
        present = [m for m in SELECTIVE if _has(block, "split_kind", "id", m)]
        if "sc/aurc" not in present:
            continue
        view = View(
            slug=f"{task}__{backbone}",
            title=f"{task} · {backbone}: selective prediction on the ID split (%)",
            caption=(
                "Examples are accepted in order of confidence (maximum predictive probability). "
                "AURC: area under the risk-coverage curve; E-AURC: AURC minus that of a perfect "
                "ranking of the same errors; acc @ c: accuracy on the most confident fraction "
                "c. Mean ± std over seeds."
            ),
            rows=_rows_for(summary, cells, task, backbone),
            columns=[_column(m.replace("/", "_"), m) for m in present],
            reference=_reference(summary, task, backbone),
        )
        selectors = {m.replace("/", "_"): ("split_kind", "id", m) for m in present}
        _fill(view, summary, cells, task, backbone, selectors)
        views.append(view)
    return views


def base_to_new_view(summary: pd.DataFrame, cells: pd.DataFrame | None) -> View | None:
    """Base, new and HM accuracy per few-shot task, and their average over tasks."""
    pairs = [
        (t, b)
        for t, b in _pairs(summary)
        if (
            summary[(summary.task == t) & (summary.backbone == b)].split_kind == "base_to_new"
        ).any()
    ]
    if not pairs:
        return None
    methods = [m for m in method_order(summary, cells) if m in set(summary.method)]
    view = View(
        slug="base_to_new",
        title="Base-to-new generalization (%)",
        caption=(
            "Base = accuracy on the test images of the training (base) classes, new = on the "
            "held-out classes, HM = their harmonic mean per run; mean ± std over seeds. "
            "Average: mean over tasks of the seed means (methods run on every task only)."
        ),
        rows=methods,
        columns=[],
    )
    parts = (("base", "split_kind", "id", "cls/acc"), ("new", "split_kind", "new", "cls/acc"))
    parts += (("hm", "split_kind", "base_to_new", HARMONIC_MEAN),)
    for t, b in pairs:
        group = f"{t} · {b}"
        selectors = {}
        for name, by, value, metric in parts:
            selectors[f"{t}__{b}__{name}"] = (by, value, metric)
            view.columns.append(
                _column(f"{t}__{b}__{name}", metric, name.upper() if name == "hm" else name, group)
            )
        _fill(view, summary, cells, t, b, selectors)
    if len(pairs) > 1:
        for name, _, _, metric in parts:
            key = f"average__{name}"
            view.columns.append(
                _column(key, metric, name.upper() if name == "hm" else name, "average")
            )
            for method in methods:
                values = [view.entry(method, f"{t}__{b}__{name}").mean for t, b in pairs]
                if all(np.isfinite(values)):
                    view.entries[(method, key)] = Entry(mean=float(np.mean(values)), n=len(values))
                else:
                    view.entries[(method, key)] = Entry(missing="not run on every task")
    return view
