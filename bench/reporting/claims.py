"""The claims table: published claims (``config/claims.yaml``) against the values measured here.

Each claim names a task, backbone, split (or block), metric, method and reference method
and either a direction (``expect: higher | lower``: the method's value against the
reference's) or a reproduction (``expect: reproduce``: the method's value against the
published one, within ``tolerance``). :func:`evaluate_claims` matches every claim to the
summary table (task and backbone may be patterns such as ``"*"`` or ``"fewshot_*"``, one row
per matching pair) and :func:`render_claims` writes ``results/leaderboard/claims.md``:
published value, value here (mean ± std over seeds), whether the claim holds, and the
cells it came from. A claim whose method, task or backbone the grid did not run is listed
as ``not run`` with what is needed to run it.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.reporting.summary import is_percent

REQUIRED_KEYS = ("id", "paper", "where", "source", "evidence", "task", "backbone", "metric")
REQUIRED_KEYS += ("method", "expect", "config")
EXPECTATIONS = ("higher", "lower", "reproduce")
EVIDENCE = ("primary", "secondary", "abstract")
SPLIT_KINDS = ("id", "new")


#: The checkout holding ``config/claims.yaml`` (also the Snakefile's folder).
CHECKOUT = Path(__file__).resolve().parents[2]


def resolve_claims_path(path: str | Path) -> Path:
    """A relative claims path, read from the working directory, else from the checkout.

    ``snakemake --directory elsewhere`` and ``python -m bench report`` run outside the
    checkout, where the default ``config/claims.yaml`` only exists relative to it.
    """
    path = Path(path)
    if path.is_absolute() or path.exists() or not (CHECKOUT / path).exists():
        return path
    return CHECKOUT / path


class ClaimsError(ValueError):
    """A malformed claims file, reported with the claim id and the key to fix."""


def load_claims(path: Path) -> list[dict[str, Any]]:
    """Reads and checks ``config/claims.yaml``; raises :class:`ClaimsError` naming the fix."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    claims = data.get("claims")
    if not isinstance(claims, list) or not claims:
        raise ClaimsError(f"{path}: expected a non-empty list under the key 'claims'")
    seen = set()
    for index, claim in enumerate(claims):
        where = f"{path}: claim {claim.get('id', f'#{index + 1}')}"
        missing = [k for k in REQUIRED_KEYS if k not in claim]
        if missing:
            raise ClaimsError(f"{where}: missing key(s) {missing}")
        if claim["id"] in seen:
            raise ClaimsError(f"{where}: duplicate id; ids must be unique")
        seen.add(claim["id"])
        if claim["expect"] not in EXPECTATIONS:
            raise ClaimsError(f"{where}: expect must be one of {EXPECTATIONS}")
        if claim["evidence"] not in EVIDENCE:
            raise ClaimsError(f"{where}: evidence must be one of {EVIDENCE}")
        if claim["expect"] == "reproduce":
            if not isinstance(claim.get("values"), dict) or "tolerance" not in claim:
                raise ClaimsError(
                    f"{where}: expect: reproduce needs values: {{split: x}} and tolerance"
                )
        else:
            if not claim.get("reference") or "split" not in claim:
                raise ClaimsError(f"{where}: expect: {claim['expect']} needs split and reference")
        _check_metric(claim["metric"], where)
    return claims


def _check_metric(metric: str, where: str) -> None:
    from bench.reporting.summary import higher_is_better

    try:
        higher_is_better(metric)
    except Exception as error:
        raise ClaimsError(f"{where}: unknown metric {metric!r} ({error})") from None


def _method_known(method: str) -> bool:
    from bench.methods import OPTIMIZER_SUFFIXES, list_methods, list_modifiers

    head, *modifiers = method.split("+")
    base, _, optimizer = head.partition("@")
    known_modifiers = set(list_modifiers()) | {"ens"}
    return (
        base in list_methods()
        and optimizer in ("", *OPTIMIZER_SUFFIXES)
        and all(m in known_modifiers for m in modifiers)
    )


def _select(summary: pd.DataFrame, split: str) -> pd.Series:
    if split in SPLIT_KINDS:
        return summary.split_kind == split
    return summary.split == split


def _value(rows: pd.DataFrame, method: str) -> pd.Series | None:
    found = rows[rows.method == method]
    if found.empty or not math.isfinite(found["mean"].iloc[0]):
        return None
    return found.iloc[0]


def _cells(task: str, backbone: str, method: str, n: int) -> str:
    seeds = "ensemble" if method.endswith("+ens") else f"seed* ({n} runs)"
    folder = method.removesuffix("+ens")
    return f"results/runs/{task}/{backbone}/{folder}/{seeds}"


def _not_run(claim: dict, reason: str) -> dict:
    return {
        "claim": claim,
        "task": claim["task"],
        "backbone": claim["backbone"],
        "split": claim.get("split", ""),
        "status": "not run",
        "published": _published_text(claim, None),
        "here": "",
        "holds": None,
        "cells": "",
        "reason": reason,
    }


def _published_text(claim: dict, split: str | None) -> str:
    if claim["expect"] == "reproduce":
        values = claim["values"]
        if split is not None:
            return _pct(values[split], claim["metric"])
        return ", ".join(f"{s} {_pct(v, claim['metric'])}" for s, v in values.items())
    published = claim.get("published") or {}
    if "method" in published:
        text = f"{_pct(published['method'], claim['metric'])}"
        if published.get("reference") is not None:
            text += f" vs {_pct(published['reference'], claim['metric'])}"
        return text
    return f"{claim['method']} {claim['expect']} than {claim['reference']} (direction only)"


def _pct(value: float, metric: str) -> str:
    return f"{value * 100:.2f}" if is_percent(metric) else f"{value:.3f}"


def _mean_std(row: pd.Series, metric: str) -> str:
    scale = 100 if is_percent(metric) else 1
    digits = 2 if is_percent(metric) else 3
    text = f"{row['mean'] * scale:.{digits}f}"
    if math.isfinite(row["std"]):
        text += f" ± {row['std'] * scale:.{digits}f}"
    return text


def evaluate_claims(claims: list[dict], summary: pd.DataFrame) -> list[dict]:
    """One result per (claim, matching task/backbone[, split]); see module docstring."""
    results = []
    pairs = sorted(
        summary[["task", "backbone"]].drop_duplicates().itertuples(index=False, name=None)
    )
    for claim in claims:
        methods = [claim["method"]] + ([claim["reference"]] if claim.get("reference") else [])
        unknown = [m for m in methods if not _method_known(m)]
        if unknown:
            results.append(
                _not_run(
                    claim,
                    f"method {', '.join(f'`{m}`' for m in unknown)} is not implemented in this "
                    "suite yet (`python -m bench list methods`)",
                )
            )
            continue
        matched = [
            (t, b)
            for t, b in pairs
            if fnmatch.fnmatchcase(t, claim["task"]) and fnmatch.fnmatchcase(b, claim["backbone"])
        ]
        if not matched:
            results.append(
                _not_run(
                    claim,
                    f"task {claim['task']} / backbone {claim['backbone']} not in this grid: run "
                    f"`snakemake --profile slurm --configfile {claim['config']}`",
                )
            )
            continue
        for task, backbone in matched:
            block = summary[(summary.task == task) & (summary.backbone == backbone)]
            results += _evaluate_pair(claim, block, task, backbone)
    return results


def _evaluate_pair(claim: dict, block: pd.DataFrame, task: str, backbone: str) -> list[dict]:
    metric = claim["metric"]
    splits = list(claim["values"]) if claim["expect"] == "reproduce" else [claim["split"]]
    out = []
    for split in splits:
        rows = block[_select(block, split) & (block.metric == metric)]
        base = {"claim": claim, "task": task, "backbone": backbone, "split": split}
        method_row = _value(rows, claim["method"])
        reference_row = _value(rows, claim["reference"]) if claim.get("reference") else None
        missing = [
            m
            for m, row in ((claim["method"], method_row), (claim.get("reference"), reference_row))
            if m and row is None
        ]
        if missing:
            out.append(
                {
                    **base,
                    "status": "not run",
                    "published": _published_text(
                        claim, split if claim["expect"] == "reproduce" else None
                    ),
                    "here": "",
                    "holds": None,
                    "cells": "",
                    "reason": f"no {metric} on {split} for {', '.join(f'`{m}`' for m in missing)} "
                    f"in this grid (add the method to `methods` in {claim['config']})",
                }
            )
            continue
        if claim["expect"] == "reproduce":
            published = claim["values"][split]
            holds = abs(method_row["mean"] - published) <= claim["tolerance"]
            here = _mean_std(method_row, metric)
            published_text = _pct(published, metric)
        else:
            diff = method_row["mean"] - reference_row["mean"]
            holds = bool(diff > 0) if claim["expect"] == "higher" else bool(diff < 0)
            here = f"{_mean_std(method_row, metric)} vs {_mean_std(reference_row, metric)}"
            if method_row["reference"] == claim["reference"] and math.isfinite(
                method_row["p_holm"]
            ):
                here += f" (Holm p = {method_row['p_holm']:.3g})"
            published_text = _published_text(claim, None)
        cells = [_cells(task, backbone, claim["method"], int(method_row["n"]))]
        if reference_row is not None:
            cells.append(_cells(task, backbone, claim["reference"], int(reference_row["n"])))
        out.append(
            {
                **base,
                "status": "ok",
                "published": published_text,
                "here": here,
                "holds": bool(holds),
                "cells": "; ".join(cells),
                "reason": "",
            }
        )
    return out


def _versus(claim: dict) -> str:
    return claim["method"] + (f" vs {claim['reference']}" if claim.get("reference") else "")


def render_claims(results: list[dict], claims_path: str) -> str:
    """``claims.md``: one row per evaluated claim, then the claims not run and why."""
    ran = [r for r in results if r["status"] == "ok"]
    not_run = [r for r in results if r["status"] != "ok"]
    held = sum(1 for r in ran if r["holds"])
    lines = [
        "# Published claims against this suite",
        "",
        f"Generated by the `claims` rule from `{claims_path}` and",
        "`results/tables/summary.parquet`; do not edit. Values in percent except NLL;",
        "here = mean ± std over seeds (method vs",
        "reference). A direction claim holds when the method's seed mean is on the claimed side",
        "of the reference's; the Holm-adjusted paired bootstrap p-value says whether the",
        "difference is significant here. A reproduction holds within the claim's tolerance.",
        "Evidence: primary = paper or official repository, secondary = a later paper or notes",
        "quoting it, abstract = direction stated in the abstract.",
        "",
        f"**{held} of {len(ran)} evaluated claims hold; {len(not_run)} not run.**",
        "",
        "| claim | paper (where) | evidence | task · backbone | metric (split) "
        "| method vs reference | published | here | holds | cells |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ran:
        c = r["claim"]
        lines.append(
            f"| {c['id']} | {c['paper']} ({c['where']}) | {c['evidence']} | {r['task']} · "
            f"{r['backbone']} | `{c['metric']}` ({r['split']}) | {_versus(c)} | {r['published']} | "
            f"{r['here']} | {'yes' if r['holds'] else '**no**'} | `{r['cells']}` |"
        )
    if not_run:
        lines += [
            "",
            "## Not run",
            "",
            "| claim | paper (where) | task · backbone | metric | method vs reference "
            "| published | what is needed |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in not_run:
            c = r["claim"]
            lines.append(
                f"| {c['id']} | {c['paper']} ({c['where']}) | {r['task']} · {r['backbone']} | "
                f"`{c['metric']}` | {_versus(c)} | {r['published']} | {r['reason']} |"
            )
    return "\n".join(lines) + "\n"


def write_claims(claims_path: Path, summary_path: Path, out_path: Path) -> list[dict]:
    """Evaluates and renders the claims (the ``claims`` rule)."""
    from bench.io import atomic_write_bytes

    claims = load_claims(claims_path)
    results = evaluate_claims(claims, pd.read_parquet(summary_path))
    atomic_write_bytes(out_path, render_claims(results, str(claims_path)).encode())
    return results
