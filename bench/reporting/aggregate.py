"""The tidy results table, the per-run costs and the numeric overview leaderboard.

``results/tables/runs.parquet`` has one row per cell x split x metric, numbers only;
``results/tables/costs.parquet`` one row per run with its fit time, peak memory, device
and device-hours from the Snakemake benchmark files; ``results/leaderboard/leaderboard.csv``
per (task, backbone) one row per method with mean, std and n over seeds of a fixed set of
headline columns. Every rendered leaderboard is built from these by
:mod:`bench.reporting.report`. Nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.io import atomic_write_bytes, atomic_write_parquet
from bench.reporting import fit_job_method
from bench.reporting.stats import harmonic_mean

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
    from bench.io import reading
    from bench.metrics import metric_spec

    with reading(metrics_file):
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
                base = fit_job_method(method)
                candidates = [benchmarks_root / "fit" / task / backbone / base / f"{seed}.tsv"]
                if base != method:
                    candidates.append(
                        benchmarks_root / "posthoc" / task / backbone / method / f"{seed}.tsv"
                    )
            found = [pd.read_csv(p, sep="\t") for p in candidates if p.exists()]
            if found:
                seconds = float(sum(f["s"].iloc[0] for f in found))
                rss = float(max(f["max_rss"].iloc[0] for f in found))
        rows.append(
            {
                "run_dir": run_dir,
                "fit_seconds": seconds,
                "fit_max_rss_mb": rss,
                "device": _run_device(Path(run_dir)),
                "device_hours": seconds / 3600.0,
            }
        )
    return pd.DataFrame(rows, columns=["run_dir", *COST_COLUMNS, "device", "device_hours"])


def _run_device(run_dir: Path) -> str:
    """The device a run trained on (run.json ``hardware.device``), "" if unknown.

    An ensemble reports its members' device: combining predictions is numpy on the host.
    """
    try:
        if run_dir.name == "ensemble":
            members = sorted(run_dir.parent.glob("seed*/run.json"))
            run_dir = members[0].parent if members else run_dir
        return str(json.loads((run_dir / "run.json").read_text())["hardware"]["device"])
    except (OSError, KeyError, ValueError, TypeError):
        return ""


def cell_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with the :data:`SUMMARY_COLUMNS` (kind-averaged metrics)."""
    keys = ["task", "backbone", "method", "seed", "run_dir"]
    out = table[keys].drop_duplicates().set_index("run_dir")
    for column, kind, metric in SUMMARY_COLUMNS:
        subset = table[(table.split_kind == kind) & (table.metric == metric)]
        out[column] = subset.groupby("run_dir")["value"].mean()
    out["base_new_hm"] = harmonic_mean(out["id_acc"], out["new_acc"])
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


def aggregate(
    metrics_files: list[str],
    benchmarks_root: Path,
    out_dir: Path,
) -> pd.DataFrame:
    """Builds ``tables/runs.parquet``, ``tables/costs.parquet`` and ``leaderboard/leaderboard.csv``.

    The rendered leaderboards come from :func:`bench.reporting.report.build_reports`.

    Args:
        metrics_files: Every cell's metrics.json.
        benchmarks_root: Folder of Snakemake benchmark TSVs (``fit/...``, ``posthoc/...``).
        out_dir: The results folder.

    Returns:
        The leaderboard (numbers only).
    """
    table = build_table([Path(p) for p in metrics_files])
    atomic_write_parquet(out_dir / "tables" / "runs.parquet", table)
    costs = read_costs(benchmarks_root, table.run_dir.unique().tolist())
    keys = table[["task", "backbone", "method", "seed", "run_dir"]].drop_duplicates()
    atomic_write_parquet(
        out_dir / "tables" / "costs.parquet", keys.merge(costs, on="run_dir", how="left")
    )
    board = leaderboard(cell_summary(table), costs[["run_dir", *COST_COLUMNS]])
    atomic_write_bytes(
        out_dir / "leaderboard" / "leaderboard.csv", board.to_csv(index=False).encode()
    )
    return board
