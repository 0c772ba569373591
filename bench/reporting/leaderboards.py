"""Writes every leaderboard file from the summary table, and the index README.

Layout of ``results/leaderboard/`` (all generated; see its README.md once written):

* ``leaderboard.md`` / ``.tex``: the overview, headline columns per (task, backbone);
  ``leaderboard.csv`` (numbers, wide) is written by the aggregate step;
* ``index.html``: every view below on one static page with sortable columns;
* ``by_task/<task>__<backbone>.{md,tex,csv}``: one block per evaluation split;
* ``by_metric/<column>.{md,tex,csv}``: one headline column across tasks, with mean rank;
* ``shift/<task>__<backbone>__{acc,ece}.{md,tex,csv}``: the shift table;
* ``base_to_new.{md,tex,csv}``: base, new and HM accuracy of few-shot tasks;
* ``claims.md`` (rule ``claims``, :mod:`bench.reporting.claims`).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd

from bench.io import atomic_write_bytes
from bench.reporting import render, views
from bench.reporting.summary import DERIVED_METRICS, higher_is_better

GENERATED_FOLDERS = ("by_task", "by_metric", "shift")


def _write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode())
    return path


def _csv_of(view_list: list[views.View]) -> str:
    frames = []
    for view in view_list:
        frame = pd.read_csv(io.StringIO(render.to_csv(view)))
        frame.insert(0, "table", view.slug)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""


def _write_formats(base: Path, view_list: list[views.View], heading: str, intro: str) -> list[Path]:
    markdown = f"# {heading}\n\n{intro}\n\n" + "\n".join(render.to_markdown(v) for v in view_list)
    latex = render.LATEX_PREAMBLE + "\n".join(render.to_latex(v) for v in view_list)
    # Names hold dots (effnet_lite0.imagenet): append the extension, never replace a suffix.
    return [
        _write(base.parent / f"{base.name}.md", markdown),
        _write(base.parent / f"{base.name}.tex", latex),
        _write(base.parent / f"{base.name}.csv", _csv_of(view_list)),
    ]


_INTRO = (
    "Generated from `results/tables/summary.parquet` by the `leaderboards` rule; do not edit. "
    "Definitions: [`README.md`](README.md) in this folder."
)


def write_leaderboards(
    summary: pd.DataFrame,
    cells: pd.DataFrame | None,
    out_dir: Path,
    n_boot: int,
    alpha: float = 0.05,
) -> list[Path]:
    """Renders every view in every format into ``out_dir`` (module docstring).

    Args:
        summary: :func:`bench.reporting.summary.summarize`.
        cells: :func:`bench.reporting.summary.cell_status` (for missing-cell reasons).
        out_dir: ``results/leaderboard``.
        n_boot: Bootstrap replicates behind the intervals (stated in the README).
        alpha: Level of the significance marks (stated in the README).

    Returns:
        Every file written, README.md last.
    """
    out_dir = Path(out_dir)
    for folder in GENERATED_FOLDERS:  # views that no longer exist must not linger
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    pairs = sorted(
        summary[["task", "backbone"]].drop_duplicates().itertuples(index=False, name=None)
    )
    written: list[Path] = []
    index: list[tuple[str, str]] = []

    overview = [views.overview_view(summary, cells, t, b) for t, b in pairs]
    markdown = (
        "# Leaderboard\n\n" + _INTRO + "\n\n" + "\n".join(render.to_markdown(v) for v in overview)
    )
    markdown += _absent_pairs(cells, pairs)
    written += [
        _write(out_dir / "leaderboard.md", markdown),
        _write(
            out_dir / "leaderboard.tex",
            render.LATEX_PREAMBLE + "\n".join(render.to_latex(v) for v in overview),
        ),
    ]
    index += [
        ("leaderboard.md", "overview: headline columns per task and backbone"),
        ("leaderboard.tex", "the overview as LaTeX (booktabs) tables"),
        ("leaderboard.csv", "the overview as numbers (aggregate step; mean and std per column)"),
    ]

    task_sections = []
    for task, backbone in pairs:
        block_views = views.task_views(summary, cells, task, backbone)
        task_sections += block_views
        base = out_dir / "by_task" / f"{task}__{backbone}"
        written += _write_formats(base, block_views, f"{task} · {backbone}", _INTRO)
        index.append(
            (
                f"by_task/{task}__{backbone}.{{md,tex,csv}}",
                "one block per evaluation split, with 95% intervals",
            )
        )

    metric_list = views.metric_views(summary, cells)
    for view in metric_list:
        written += _write_formats(out_dir / "by_metric" / view.slug, [view], view.title, _INTRO)
        index.append((f"by_metric/{view.slug}.{{md,tex,csv}}", f"{view.title}, with the mean rank"))

    shift_list = views.shift_views(summary, cells)
    for view in shift_list:
        written += _write_formats(out_dir / "shift" / view.slug, [view], view.title, _INTRO)
        index.append((f"shift/{view.slug}.{{md,tex,csv}}", view.title))

    selective_list = views.selective_views(summary, cells)
    for view in selective_list:
        written += _write_formats(out_dir / "selective" / view.slug, [view], view.title, _INTRO)
        index.append((f"selective/{view.slug}.{{md,tex,csv}}", view.title))

    b2n = views.base_to_new_view(summary, cells)
    if b2n is not None:
        written += _write_formats(out_dir / "base_to_new", [b2n], b2n.title, _INTRO)
        index.append(("base_to_new.{md,tex,csv}", b2n.title))

    sections = [("Overview", overview), ("Per task", task_sections), ("Across tasks", metric_list)]
    sections += [("Shift tables", shift_list), ("Selective prediction", selective_list)]
    if b2n is not None:
        sections.append(("Base-to-new", [b2n]))
    page = render.html_page(
        "Uncertainty-aware fine-tuning benchmark: leaderboards",
        sections,
        intro="Click a column header to sort. Hover a cell for its 95% interval and p-value.",
    )
    written.append(_write(out_dir / "index.html", page))
    index.append(("index.html", "every table above on one page, sortable"))
    index.append(("claims.md", "published claims against the values measured here (rule `claims`)"))
    written.append(_write(out_dir / "README.md", readme(index, summary, n_boot, alpha)))
    return written


def _absent_pairs(cells: pd.DataFrame | None, pairs: list[tuple[str, str]]) -> str:
    """A section naming the (task, backbone) pairs the grid expected but no table shows."""
    if cells is None or cells.empty:
        return ""
    shown = set(pairs)
    absent = cells[[(t, b) not in shown for t, b in zip(cells.task, cells.backbone, strict=True)]]
    if absent.empty:
        return ""
    lines = ["", "### Not in these tables", ""]
    for (task, backbone), rows in absent.groupby(["task", "backbone"], sort=True):
        lines.append(f"- {task} · {backbone}: " + "; ".join(dict.fromkeys(rows.reason)))
    return "\n".join(lines) + "\n"


def _metric_doc(metric: str) -> str:
    for prefix, link in views.METRIC_DOCS.items():
        if metric.startswith(prefix):
            return link
    return "docs/metrics.md"


def _description(metric: str) -> str:
    if metric in DERIVED_METRICS:
        return DERIVED_METRICS[metric].description
    from bench.metrics import metric_spec

    return metric_spec(metric).description


def readme(
    index: list[tuple[str, str]], summary: pd.DataFrame, n_boot: int, alpha: float = 0.05
) -> str:
    """The index of the leaderboard folder and the definition behind every column."""
    references = sorted(summary["reference"].dropna().unique())
    lines = [
        "# Leaderboards (generated)",
        "",
        "Every file here is rendered from one tidy table, `results/tables/summary.parquet`",
        "(itself built from `results/tables/runs.parquet` and the per-example arrays of each",
        "run); nothing is typed by hand. Regenerate with `snakemake --cores 2 reports` (never",
        "refits). Format conventions: [docs/leaderboards.md](../../docs/leaderboards.md).",
        "",
        "## Files",
        "",
        "| file | contents |",
        "|---|---|",
        *[f"| `{path}` | {text} |" for path, text in index],
        "",
        "## Statistics",
        "",
        "- mean ± std over seeds (sample std, ddof = 1); `n` = runs with results, `k/m` when",
        "  only k of the m runs the grid asked for produced results (the reason is listed).",
        f"- [a, b]: 95% percentile interval of {n_boot} paired bootstrap replicates over test",
        "  examples (the same resampled examples for every method), of the seed mean, centred",
        "  on the reported value (resampling inflates binned metrics such as ECE).",
        "- ▲ / ▼: significantly better / worse than the reference method"
        + (f" ({', '.join(f'`{r}`' for r in references)})" if references else "")
        + ": two-sided paired bootstrap test, Holm-adjusted over the methods of a column,"
        + f" p < {alpha:g}.",
        "- bold: best value per column, underlined: second best (ties share the mark).",
        "- a missing cell names its reason: `failed (k/m runs)`, `not run`, or `n/a` (the",
        "  metric does not exist for that method, e.g. new-class accuracy without a base-to-new",
        "  split). `results/tables/cells.csv` lists every expected run with its status.",
        "",
        "## Columns and their definitions",
        "",
        "| column | metric key | direction | definition |",
        "|---|---|---|---|",
    ]
    for metric, label in views.METRIC_LABELS.items():
        direction = "higher is better" if higher_is_better(metric) else "lower is better"
        link = f"[{_description(metric)}](../../{_metric_doc(metric)})"
        lines.append(f"| {label} | `{metric}` | {direction} | {link} |")
    link = f"[mean over tasks of the rank within a task](../../{views.METRIC_DOCS['rank']})"
    lines.append(f"| mean rank | — | lower is better | {link} |")
    lines += [
        "",
        "Blocks: `ID` = the task's in-distribution test split; `shift: X` = one shift split;",
        "`shift (mean)` / `avg shifts` = mean over the task's shift splits per run;",
        "`severity k` = mean over corruption families at severity k; `OOD: X` = detection of",
        "split X against the ID test split with the maximum softmax probability;",
        "`base-to-new` = harmonic mean of base and new accuracy per run.",
    ]
    return "\n".join(lines) + "\n"
