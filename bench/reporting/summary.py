"""The summary table every leaderboard is rendered from, and the status of every cell.

``results/tables/summary.parquet`` has one row per (task, backbone, method, split or block,
metric), numbers only:

* ``mean``, ``std`` (``ddof = 1``), ``n`` over the seeds that produced results, and
  ``n_expected`` (the seeds the grid asked for);
* ``ci_low``, ``ci_high``: the 95% paired bootstrap interval over test examples, and
  ``diff``, ``p_value``, ``p_holm``, ``significant`` against the reference method
  (:mod:`bench.reporting.stats`; metrics without a bootstrap have NaN there);
* ``higher_is_better`` from the metric registry (or :data:`DERIVED_METRICS`).

Blocks besides the evaluation splits: ``shift (mean)`` and ``ood (mean)`` (the mean over a
task's shift / OOD splits, per run before seeds are pooled), ``severity <k>`` (the mean over
shift families at one corruption severity), ``base-to-new`` (harmonic mean of base and new
accuracy, per run) and ``cost`` (fit wall time, device-hours and peak memory from the
Snakemake benchmark files).

``results/tables/cells.csv`` lists every cell the grid expects with its status (``ok``,
``failed``, ``not run``) and the reason, so a missing number is always explained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.reporting import fit_job_method
from bench.reporting.stats import BASE_TO_NEW, HARMONIC_MEAN, OOD_MEAN, SHIFT_MEAN, harmonic_mean

COST = "cost"


@dataclass(frozen=True)
class DerivedMetric:
    """A quantity of the leaderboards that is not in the metric registry."""

    higher_is_better: bool
    description: str


DERIVED_METRICS = {
    HARMONIC_MEAN: DerivedMetric(True, "harmonic mean of base (id) and new-class accuracy"),
    "cost/fit_seconds": DerivedMetric(False, "wall time of the fit job (s)"),
    "cost/device_hours": DerivedMetric(False, "device-hours of the fit job (GPU-hours on GPU)"),
    "cost/peak_rss_mb": DerivedMetric(False, "peak resident memory of the fit job (MB)"),
}

SUMMARY_COLUMNS = [
    "task",
    "backbone",
    "method",
    "split",
    "split_kind",
    "metric",
    "higher_is_better",
    "mean",
    "std",
    "n",
    "n_expected",
    "ci_low",
    "ci_high",
    "reference",
    "diff",
    "p_value",
    "p_holm",
    "significant",
]
CELL_COLUMNS = ["task", "backbone", "method", "seed", "run_dir", "status", "reason"]
RUN_KEYS = ["task", "backbone", "method", "seed", "run_dir"]


def is_percent(metric: str) -> bool:
    """Whether a metric is a fraction in [0, 1] that tables show x100.

    Every accuracy, calibration error, selective-risk and OOD metric is; the NLL and the
    Brier score (unbounded / up to 2), costs and ranks are not.
    """
    return not (metric in ("cls/nll", "cls/brier", "rank") or metric.startswith("cost/"))


def higher_is_better(metric: str) -> bool:
    """Direction of a registry metric or a derived one."""
    if metric in DERIVED_METRICS:
        return DERIVED_METRICS[metric].higher_is_better
    from bench.metrics import metric_spec

    return metric_spec(metric).higher_is_better


# --- cell status -----------------------------------------------------------------------------


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "empty log"


def _log_candidates(results: Path, task: str, backbone: str, method: str, seed: str) -> list[Path]:
    logs = results / "logs"
    if seed == "ensemble":
        return [logs / "ensemble" / task / backbone / f"{method.removesuffix('+ens')}.log"]
    base = fit_job_method(method)
    candidates = [logs / "fit" / task / backbone / base / f"seed{seed}.log"]
    if base != method:
        candidates.insert(0, logs / "posthoc" / task / backbone / method / f"seed{seed}.log")
    candidates.append(logs / "score" / task / backbone / method / f"seed{seed}.log")
    return candidates


def scored_run_hash(run_dir: Path) -> str | None:
    """The config hash of ``run_dir``'s run.json when its metrics.json scores that run.

    None when either file is missing or unreadable, or when they disagree: a failed
    rerun leaves the metrics.json of an earlier success behind (Snakemake deletes only
    the failed job's own outputs), and it must not stand in for the cell.
    """
    try:
        scored = json.loads((run_dir / "metrics.json").read_text())["config_hash"]
        produced = json.loads((run_dir / "run.json").read_text())["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return produced if scored == produced else None


def cell_status(
    expected: Iterable[dict], results: Path, skipped: dict[str, str] | None = None
) -> pd.DataFrame:
    """Status of every expected cell: ``ok``, ``failed`` (a job log but no metrics) or ``not run``.

    Args:
        expected: Dicts with task, backbone, method, seed (``"0"``, ``"ensemble"``) and
            run_dir (relative to the results folder's parent, as in the tidy table);
            an optional ``current`` flag says whether its results on disk belong to
            the grid (default: its metrics.json scores the run.json beside it).
        results: The results folder (``logs/`` is read for failures).
        skipped: ``{task: reason}`` for tasks the grid left out, with their cells
            (``backbones`` and ``methods`` keys) reported as ``not run``.

    Returns:
        A frame with :data:`CELL_COLUMNS`.
    """
    rows = []
    root = results.parent
    for cell in expected:
        run_dir = root / cell["run_dir"]
        status, reason = "ok", ""
        current = cell.get("current")
        if current is None:
            current = scored_run_hash(run_dir) is not None
        if not current:
            logs = [p for p in _log_candidates(results, *_key(cell)) if p.exists()]
            if logs and not (run_dir / "run.json").exists():
                status = "failed"
                reason = f"failed: {_last_line(logs[0])} (log: {logs[0].relative_to(root)})"
            elif (run_dir / "metrics.json").exists():
                status = "not run"
                reason = "not run: the results on disk were produced under other settings"
            else:
                status, reason = "not run", "not run: no job has produced it yet"
        rows.append({**{k: cell[k] for k in CELL_COLUMNS[:5]}, "status": status, "reason": reason})
    for task, block in (skipped or {}).items():
        for backbone in block["backbones"]:
            for method in block["methods"]:
                rows.append(
                    {
                        "task": task,
                        "backbone": backbone,
                        "method": method,
                        "seed": "",
                        "run_dir": "",
                        "status": "not run",
                        "reason": f"not run: {block['reason']}",
                    }
                )
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _key(cell: dict) -> tuple[str, str, str, str]:
    return cell["task"], cell["backbone"], cell["method"], str(cell["seed"])


def expected_cells_from_grid(grid) -> tuple[list[dict], dict[str, dict]]:
    """The cells and ensembles of a :class:`bench.config.Grid`, and its skipped tasks."""
    cells = [
        {
            "task": c.task,
            "backbone": c.backbone,
            "method": c.method,
            "seed": str(c.seed),
            "run_dir": c.run_dir,
        }
        for c in grid.cells
    ]
    cells += [
        {
            "task": t,
            "backbone": b,
            "method": f"{m}+ens",
            "seed": "ensemble",
            "run_dir": f"results/runs/{t}/{b}/{m}/ensemble",
        }
        for t, b, m in grid.ensembles()
    ]
    methods = list(grid.config["methods"]) + [f"{m}+ens" for m in grid.config["ensembles"]]
    skipped = {
        task: {
            "backbones": grid.config["tasks"][task]["backbones"],
            "methods": methods,
            "reason": f"task data missing ({reason})",
        }
        for task, reason in grid.skipped.items()
    }
    return cells, skipped


# --- run-level values of every block ------------------------------------------------------


def run_values(table: pd.DataFrame, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One value per run x (split or block) x metric; validation splits are left out."""
    table = table[table.split_kind != "val"]
    columns = [*RUN_KEYS, "split", "split_kind", "metric", "value"]
    parts = [table[columns]]

    def block(rows: pd.DataFrame, name: str, kind: str) -> pd.DataFrame:
        out = rows.groupby([*RUN_KEYS, "metric"], sort=False)["value"].mean().reset_index()
        return out.assign(split=name, split_kind=kind)[columns]

    shift = table[table.split_kind == "shift"]
    if not shift.empty:
        parts.append(block(shift, SHIFT_MEAN, "shift_mean"))
        graded = shift[shift.severity.notna()]
        for severity, rows in graded.groupby("severity"):
            parts.append(block(rows, f"severity {severity:g}", "severity"))
    ood = table[table.split_kind == "ood"]
    if not ood.empty:
        parts.append(block(ood, OOD_MEAN, "ood_mean"))
    acc = table[table.metric == "cls/acc"]
    base = acc[acc.split_kind == "id"].groupby(RUN_KEYS)["value"].mean()
    new = acc[acc.split_kind == "new"].groupby(RUN_KEYS)["value"].mean()
    if not new.empty:
        both = pd.concat({"base": base, "new": new}, axis=1).dropna()
        hm = pd.Series(harmonic_mean(both.base, both.new), index=both.index)
        parts.append(
            hm.rename("value")
            .reset_index()
            .assign(split=BASE_TO_NEW, split_kind="base_to_new", metric=HARMONIC_MEAN)[columns]
        )
    if costs is not None and not costs.empty:
        cost = costs.rename(
            columns={
                "fit_seconds": "cost/fit_seconds",
                "device_hours": "cost/device_hours",
                "fit_max_rss_mb": "cost/peak_rss_mb",
            }
        )
        keys = table[RUN_KEYS].drop_duplicates()
        cost = keys.merge(cost.drop(columns=[c for c in RUN_KEYS[:4] if c in cost]), on="run_dir")
        cost = cost.melt(
            id_vars=RUN_KEYS,
            value_vars=["cost/fit_seconds", "cost/device_hours", "cost/peak_rss_mb"],
            var_name="metric",
        )
        parts.append(cost.assign(split=COST, split_kind="cost")[columns])
    return pd.concat(parts, ignore_index=True)


def summarize(
    table: pd.DataFrame,
    costs: pd.DataFrame | None = None,
    bootstrap: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The summary table (module docstring) from the tidy table and its companions.

    Args:
        table: The tidy table (``runs.parquet``).
        costs: Per-run costs (``costs.parquet``), or None.
        bootstrap: :func:`bench.reporting.stats.bootstrap_task` frames, concatenated.
        cells: :func:`cell_status`; gives ``n_expected`` (else ``n_expected = n``).
    """
    values = run_values(table, costs)
    keys = ["task", "backbone", "method", "split", "split_kind", "metric"]
    grouped = values.groupby(keys, sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    summary["higher_is_better"] = summary.metric.map(higher_is_better)
    if cells is not None and not cells.empty:
        expected = (
            cells[cells.seed != ""]
            .groupby(["task", "backbone", "method"])
            .size()
            .rename("n_expected")
        )
        summary = summary.merge(
            expected.reset_index(), on=["task", "backbone", "method"], how="left"
        )
        summary["n_expected"] = summary.n_expected.fillna(summary.n).astype(int)
    else:
        summary["n_expected"] = summary["n"]
    stat_columns = ["ci_low", "ci_high", "reference", "diff", "p_value", "p_holm", "significant"]
    if bootstrap is not None and not bootstrap.empty:
        boot = bootstrap[["task", "backbone", "method", "split", "metric", *stat_columns]]
        summary = summary.merge(
            boot, on=["task", "backbone", "method", "split", "metric"], how="left"
        )
    else:
        for column in stat_columns:
            summary[column] = np.nan
    summary["significant"] = summary["significant"].astype("boolean").fillna(False).astype(bool)
    summary["reference"] = summary["reference"].astype(object)
    return summary[SUMMARY_COLUMNS].reset_index(drop=True)
