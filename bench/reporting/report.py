"""The ``leaderboards`` step: cell status, bootstrap statistics, summary table, every format.

Reads only what the aggregate and score steps stored (``tables/runs.parquet``,
``tables/costs.parquet``, each run's ``examples.npz``) and the list of cells the grid
expects, so it never refits anything. Writes ``tables/cells.csv``,
``tables/bootstrap.parquet``, ``tables/summary.{parquet,csv}`` and ``leaderboard/*``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.io import atomic_write_bytes, atomic_write_parquet
from bench.reporting import stats
from bench.reporting.leaderboards import write_leaderboards
from bench.reporting.score import load_examples
from bench.reporting.summary import cell_status, summarize


def _log(message: str) -> None:
    print(f"bench report: {message}", file=sys.stderr)


def bootstrap_table(
    table: pd.DataFrame,
    root: Path,
    reference: str | None,
    n_boot: int,
    seed: int,
    level: float,
    alpha: float,
) -> pd.DataFrame:
    """Paired bootstrap statistics of every (task, backbone) in the tidy table.

    A run without examples.npz (scored before this file existed) is left out of the
    intervals with a warning naming the fix; its mean and std still come from the table.
    """
    frames = []
    runs_of = table[["task", "backbone", "method", "seed", "run_dir"]].drop_duplicates()
    for (task, backbone), group in runs_of.groupby(["task", "backbone"], sort=True):
        runs = []
        for row in group.itertuples(index=False):
            path = root / row.run_dir / "examples.npz"
            if not path.exists():
                _log(
                    f"{path} missing: {row.method} seed {row.seed} has no intervals; rescore with "
                    "`snakemake --forcerun score` (never refits)"
                )
                continue
            kinds, arrays = load_examples(path)
            runs.append(stats.RunExamples(row.method, str(row.seed), kinds, arrays))
        if runs:
            frames.append(
                stats.bootstrap_task(
                    runs, task, backbone, reference, n_boot, seed, level, alpha, progress=_log
                )
            )
    if not frames:
        return pd.DataFrame(columns=[*stats.STAT_COLUMNS, "point"])
    return pd.concat(frames, ignore_index=True)


def build_reports(
    results: Path,
    expected: list[dict] | None,
    reference: str | None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    skipped: dict[str, dict] | None = None,
) -> list[Path]:
    """Runs the whole step (module docstring) on a results folder.

    Args:
        results: The results folder (``results``); run dirs in the table are relative to
            its parent.
        expected: The cells the grid expects
            (:func:`bench.reporting.summary.expected_cells_from_grid`); ``None`` treats the
            table's runs as the whole grid.
        reference: Reference method of the significance tests.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling streams.
        level: Interval coverage.
        alpha: Family-wise level of the Holm-adjusted tests.
        skipped: Tasks the grid left out, ``{task: {"backbones", "methods", "reason"}}``.

    Returns:
        Every file written.
    """
    results = Path(results)
    root = results.parent
    table = pd.read_parquet(results / "tables" / "runs.parquet")
    table["seed"] = table["seed"].astype(str)
    costs_path = results / "tables" / "costs.parquet"
    costs = pd.read_parquet(costs_path) if costs_path.exists() else None
    if expected is None:
        expected = table[["task", "backbone", "method", "seed", "run_dir"]].drop_duplicates()
        expected = expected.to_dict("records")
    cells = cell_status(expected, results, skipped)
    boot = bootstrap_table(table, root, reference, n_boot, seed, level, alpha)
    summary = summarize(table, costs, boot, cells)
    tables = results / "tables"
    atomic_write_bytes(tables / "cells.csv", cells.to_csv(index=False).encode())
    atomic_write_parquet(tables / "bootstrap.parquet", boot)
    atomic_write_parquet(tables / "summary.parquet", summary)
    atomic_write_bytes(tables / "summary.csv", summary.to_csv(index=False).encode())
    written = [tables / name for name in ("cells.csv", "bootstrap.parquet", "summary.parquet")]
    written.append(tables / "summary.csv")
    written += write_leaderboards(summary, cells, results / "leaderboard", n_boot, alpha)
    return written
