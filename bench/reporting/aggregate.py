"""The tidy results table and the first leaderboards (CSV and Markdown).

``results/tables/runs.parquet`` has one row per cell x split x metric, numbers only.
Leaderboards are views of it: per (task, backbone), one row per method with mean,
std and n over seeds of a fixed set of summary columns, plus the cost from the
Snakemake benchmark files. Nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.io import atomic_write_bytes

TABLE_COLUMNS = [
    "task",
    "backbone",
    "method",
    "seed",
    "split",
    "split_kind",
    "family",
    "severity",
    "metric",
    "value",
    "higher_is_better",
    "n_examples",
    "config_hash",
    "run_dir",
]

# Leaderboard columns: (column name, split kind, metric key). "shift" and "ood" columns
# average the metric over every split of that kind in the cell before seeds are pooled.
SUMMARY_COLUMNS = [
    ("id_acc", "id", "cls/acc"),
    ("id_ece", "id", "cal/ece"),
    ("id_nll", "id", "cls/nll"),
    ("id_aurc", "id", "sc/aurc"),
    ("shift_acc", "shift", "cls/acc"),
    ("shift_ece", "shift", "cal/ece"),
    ("ood_auroc", "ood", "ood/auroc_msp"),
    ("ood_fpr95", "ood", "ood/fpr95_msp"),
    ("new_acc", "new", "cls/acc"),
]
#: Base-to-new transfer's headline (CoCoOp): harmonic mean of base (id) and new accuracy,
#: per cell before seeds are pooled.
DERIVED_COLUMNS = ["base_new_hm"]
PRIMARY_COLUMN = "id_acc"
COST_COLUMNS = ["fit_seconds", "fit_max_rss_mb"]


def tidy_rows(metrics_file: Path) -> list[dict]:
    """Rows of the tidy table for one metrics.json."""
    from bench.metrics import metric_spec

    record = json.loads(Path(metrics_file).read_text())
    cell = record["cell"]
    rows = []
    for split, block in record["splits"].items():
        for metric, value in block["metrics"].items():
            rows.append(
                {
                    "task": cell["task"],
                    "backbone": cell["backbone"],
                    "method": cell["method"],
                    "seed": str(cell["seed"]),
                    "split": split,
                    "split_kind": block["kind"],
                    "family": block["family"],
                    "severity": np.nan if block["severity"] is None else float(block["severity"]),
                    "metric": metric,
                    "value": np.nan if value is None else float(value),
                    "higher_is_better": metric_spec(metric).higher_is_better,
                    "n_examples": int(block["n"]),
                    "config_hash": record["config_hash"],
                    "run_dir": str(Path(metrics_file).parent),
                }
            )
    return rows


def build_table(metrics_files: list[Path]) -> pd.DataFrame:
    """The tidy table from metrics.json files, in a stable row order."""
    rows = [row for path in sorted(map(Path, metrics_files)) for row in tidy_rows(path)]
    if not rows:
        raise ValueError("no metrics to aggregate: the metrics.json files are empty")
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values(["task", "backbone", "method", "seed", "split", "metric"]).reset_index(
        drop=True
    )


def read_costs(benchmarks_root: Path, run_dirs: list[str]) -> pd.DataFrame:
    """Fit cost per cell from Snakemake benchmark TSVs (``s`` and ``max_rss`` columns).

    A post-hoc cell (``m+ts``) costs its base fit plus its own step; an ensemble the
    sum of its members. Missing files give NaN (e.g. cells run by hand).
    """
    rows = []
    for run_dir in sorted(set(run_dirs)):
        rel = (
            Path(run_dir).relative_to("results/runs")
            if run_dir.startswith("results/runs")
            else Path(run_dir)
        )
        parts = rel.parts
        seconds = rss = np.nan
        if len(parts) >= 4:
            task, backbone, method, seed = parts[-4:]
            candidates = []
            if seed == "ensemble":
                seed_dirs = sorted(
                    (benchmarks_root / "fit" / task / backbone / method).glob("seed*.tsv")
                )
                candidates = seed_dirs
            else:
                base = method.split("+")[0]
                candidates = [benchmarks_root / "fit" / task / backbone / base / f"{seed}.tsv"]
                if base != method:
                    candidates.append(
                        benchmarks_root / "posthoc" / task / backbone / method / f"{seed}.tsv"
                    )
            found = [pd.read_csv(p, sep="\t") for p in candidates if p.exists()]
            if found:
                seconds = float(sum(f["s"].iloc[0] for f in found))
                rss = float(max(f["max_rss"].iloc[0] for f in found))
        rows.append({"run_dir": run_dir, "fit_seconds": seconds, "fit_max_rss_mb": rss})
    return pd.DataFrame(rows, columns=["run_dir", *COST_COLUMNS])


def cell_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with the :data:`SUMMARY_COLUMNS` (kind-averaged metrics)."""
    keys = ["task", "backbone", "method", "seed", "run_dir"]
    out = table[keys].drop_duplicates().set_index("run_dir")
    for column, kind, metric in SUMMARY_COLUMNS:
        subset = table[(table.split_kind == kind) & (table.metric == metric)]
        out[column] = subset.groupby("run_dir")["value"].mean()
    base, new = out["id_acc"], out["new_acc"]
    out["base_new_hm"] = 2 * base * new / (base + new)
    return out.reset_index()


def leaderboard(summary: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds per (task, backbone, method); numbers only.

    Sorted by the primary column in its direction.
    """
    merged = summary.merge(costs, on="run_dir", how="left")
    value_columns = [c for c, _, _ in SUMMARY_COLUMNS] + DERIVED_COLUMNS + COST_COLUMNS
    grouped = merged.groupby(["task", "backbone", "method"])
    board = grouped[value_columns].agg(["mean", "std"])
    board.columns = [f"{c}_{stat}" for c, stat in board.columns]
    board["n"] = grouped.size()
    board = board.reset_index()
    from bench.metrics import metric_spec

    primary_metric = dict((c, m) for c, _, m in SUMMARY_COLUMNS)[PRIMARY_COLUMN]
    ascending = not metric_spec(primary_metric).higher_is_better
    return board.sort_values(
        ["task", "backbone", f"{PRIMARY_COLUMN}_mean"], ascending=[True, True, ascending]
    ).reset_index(drop=True)


def _format_cell(mean: float, std: float, percent: bool) -> str:
    if mean != mean:  # NaN: the metric does not exist for this cell
        return "–"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.1f}" if percent else f"{mean:.3g}"
    if std == std:
        text += f" ± {std * scale:.1f}" if percent else f" ± {std:.2g}"
    return text


_PERCENT = {
    "id_acc",
    "id_ece",
    "shift_acc",
    "shift_ece",
    "ood_auroc",
    "ood_fpr95",
    "new_acc",
    "base_new_hm",
}
_HEADERS = {
    "id_acc": "ID acc (%) ↑",
    "id_ece": "ID ECE (%) ↓",
    "id_nll": "ID NLL ↓",
    "id_aurc": "ID AURC ↓",
    "shift_acc": "shift acc (%) ↑",
    "shift_ece": "shift ECE (%) ↓",
    "ood_auroc": "OOD AUROC (%) ↑",
    "ood_fpr95": "OOD FPR95 (%) ↓",
    "new_acc": "new-class acc (%) ↑",
    "base_new_hm": "base/new HM (%) ↑",
    "fit_seconds": "fit time (s)",
    "fit_max_rss_mb": "peak mem (MB)",
}


def render_markdown(board: pd.DataFrame, task: str, backbone: str) -> str:
    """Markdown table of one (task, backbone) block: mean ± std over seeds."""
    block = board[(board.task == task) & (board.backbone == backbone)]
    columns = [c for c, _, _ in SUMMARY_COLUMNS] + DERIVED_COLUMNS + COST_COLUMNS
    # A column no method of this block has (new-class accuracy outside base-to-new) is left out.
    columns = [c for c in columns if c in COST_COLUMNS or block[f"{c}_mean"].notna().any()]
    lines = [
        f"### {task} · {backbone}",
        "",
        "| method | n | " + " | ".join(_HEADERS[c] for c in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for _, row in block.iterrows():
        cells = [_format_cell(row[f"{c}_mean"], row[f"{c}_std"], c in _PERCENT) for c in columns]
        lines.append(f"| {row.method} | {int(row.n)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def aggregate(
    metrics_files: list[str],
    benchmarks_root: Path,
    out_dir: Path,
    reference_method: str = "full_ft",
) -> pd.DataFrame:
    """Builds ``tables/runs.parquet``, ``tables/leaderboard.csv`` and Markdown leaderboards.

    Args:
        metrics_files: Every cell's metrics.json.
        benchmarks_root: Folder of Snakemake benchmark TSVs (``fit/...``, ``posthoc/...``).
        out_dir: The results folder.
        reference_method: Named in the Markdown header as the comparison baseline.

    Returns:
        The leaderboard (numbers only).
    """
    import io

    table = build_table([Path(p) for p in metrics_files])
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(out_dir / "tables" / "runs.parquet", buffer.getvalue())
    costs = read_costs(benchmarks_root, table.run_dir.unique().tolist())
    board = leaderboard(cell_summary(table), costs)
    atomic_write_bytes(
        out_dir / "leaderboard" / "leaderboard.csv", board.to_csv(index=False).encode()
    )
    sections = [
        "# Leaderboard\n",
        "Generated by `snakemake aggregate` from `results/tables/runs.parquet`; do not edit.",
        "Mean ± std over seeds (n = seeds; ensembles are one run). ID = in-distribution test "
        "split; shift and OOD columns average over the task's shift / OOD splits. ECE: 15 "
        "equal-width bins; OOD scores: maximum softmax probability. Base-to-new tasks add "
        "new-class accuracy and the harmonic mean of base (ID) and new accuracy. Definitions: "
        f"docs/metrics.md. Reference method: `{reference_method}`.\n",
    ]
    for task, backbone in board[["task", "backbone"]].drop_duplicates().itertuples(index=False):
        text = render_markdown(board, task, backbone)
        atomic_write_bytes(out_dir / "leaderboard" / f"{task}__{backbone}.md", text.encode())
        block = board[(board.task == task) & (board.backbone == backbone)]
        atomic_write_bytes(
            out_dir / "leaderboard" / f"{task}__{backbone}.csv", block.to_csv(index=False).encode()
        )
        sections.append(text)
    atomic_write_bytes(out_dir / "leaderboard" / "leaderboard.md", "\n".join(sections).encode())
    return board
