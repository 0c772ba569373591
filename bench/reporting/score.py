"""Turns a run directory's predictions into metrics.json.

Layout of metrics.json::

    {"cell": {...run.json's cell...}, "config_hash": "...",
     "splits": {"<split>": {"kind": "id|shift|val|ood", "family": ..., "severity": ...,
                            "n": N, "metrics": {"cls/acc": 0.91, ...}}}}

``id``, ``shift``, ``new`` and ``val`` splits get classification, calibration and
selective metrics; each ``ood`` split gets OOD-detection metrics against the ``id`` split.
Splits with a ``label_map`` (ImageNet-R/A, ObjectNet) are scored on their evaluation
classes: the predictions are restricted (:func:`bench.tasks.base.restrict_scores`)
before any metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.io import load_predictions


def score_predictions_file(path: Path) -> dict[str, dict[str, Any]]:
    """Scores every split of a predictions.npz (see module docstring)."""
    from bench.metrics import score_ood, score_predictions
    from bench.tasks.base import restrict_scores

    predictions, _ = load_predictions(path)
    id_names = [n for n, p in predictions.items() if p.info.kind == "id"]
    if len(id_names) != 1:
        raise ValueError(f"{path}: expected exactly one id split, found {id_names}")
    id_pred = predictions[id_names[0]]
    out = {}
    for name, pred in predictions.items():
        if pred.info.kind == "ood":
            metrics = score_ood(id_pred.values, pred.values, pred.kind)
        else:
            values = pred.values
            if pred.info.label_map is not None:
                values = restrict_scores(values, pred.info.label_map, pred.kind)
            metrics = score_predictions(values, pred.labels, pred.kind)
        out[name] = {
            "kind": pred.info.kind,
            "family": pred.info.family,
            "severity": pred.info.severity,
            "n": int(len(pred.labels)),
            "metrics": {k: float(v) for k, v in metrics.items()},
        }
    return out


def score_run(run_dir: Path) -> dict[str, Any]:
    """metrics.json content for a run directory holding predictions.npz and run.json."""
    run = json.loads((run_dir / "run.json").read_text())
    return {
        "cell": run["cell"],
        "config_hash": run["config_hash"],
        "splits": score_predictions_file(run_dir / "predictions.npz"),
    }
