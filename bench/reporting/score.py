"""Turns a run directory's predictions into metrics.json and examples.npz.

Layout of metrics.json::

    {"cell": {...run.json's cell...}, "config_hash": "...",
     "splits": {"<split>": {"kind": "id|shift|val|ood|new", "family": ..., "severity": ...,
                            "n": N, "metrics": {"cls/acc": 0.91, ...}}}}

``id``, ``shift``, ``new`` and ``val`` splits get classification, calibration and
selective metrics; each ``ood`` split gets OOD-detection metrics against the ``id`` split.
Splits with a ``label_map`` (ImageNet-R/A, ObjectNet) are scored on their evaluation
classes: the predictions are restricted (:func:`bench.tasks.base.restrict_scores`)
before any metric.

examples.npz holds, per split, the per-example quantities the headline metrics are
computed from (:func:`bench.metrics.example_statistics`): ``<split>/confidence`` (the MSP),
and for labelled splits ``<split>/correct`` and ``<split>/nll``, plus ``__splits__`` (JSON
``{split: kind}``). They are a few numbers per example, so the bootstrap of
:mod:`bench.reporting.stats` never reloads the (large) predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.io import atomic_write_npz, load_predictions, reading


def score_predictions_file(
    path: Path, examples: dict[str, np.ndarray] | None = None
) -> dict[str, dict[str, Any]]:
    """Scores every split of a predictions.npz (see module docstring).

    Args:
        path: The predictions.npz.
        examples: If given, filled with the per-example arrays of examples.npz
            (``<split>/confidence``, ``<split>/correct``, ``<split>/nll``, ``__splits__``).

    Returns:
        ``{split: {"kind", "family", "severity", "n", "metrics"}}``.

    """
    from bench.metrics import example_statistics, score_ood, score_predictions
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
            per_example = example_statistics(pred.values, None, pred.kind)
        else:
            values = pred.values
            if pred.info.label_map is not None:
                values = restrict_scores(values, pred.info.label_map, pred.kind)
            metrics = score_predictions(values, pred.labels, pred.kind)
            per_example = example_statistics(values, pred.labels, pred.kind)
        if examples is not None:
            examples.update({f"{name}/{key}": array for key, array in per_example.items()})
        out[name] = {
            "kind": pred.info.kind,
            "family": pred.info.family,
            "severity": pred.info.severity,
            "n": int(len(pred.labels)),
            "metrics": {k: float(v) for k, v in metrics.items()},
        }
    if examples is not None:
        examples["__splits__"] = np.array(json.dumps({n: b["kind"] for n, b in out.items()}))
    return out


def score_run(run_dir: Path, examples: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """metrics.json content for a run directory holding predictions.npz and run.json.

    Args:
        run_dir: The run directory.
        examples: If given, filled with examples.npz's arrays (see
            :func:`score_predictions_file`).

    """
    with reading(run_dir / "run.json"):
        run = json.loads((run_dir / "run.json").read_text())
        run["cell"], run["config_hash"]  # noqa: B018 - a run.json without them is damaged
    return {
        "cell": run["cell"],
        "config_hash": run["config_hash"],
        "splits": score_predictions_file(run_dir / "predictions.npz", examples),
    }


def save_examples(path: Path, examples: dict[str, np.ndarray]) -> None:
    """Writes examples.npz atomically (compressed)."""
    atomic_write_npz(path, examples)


def load_examples(path: Path) -> tuple[dict[str, str], dict[str, dict[str, np.ndarray]]]:
    """Reads examples.npz into ``({split: kind}, {split: {quantity: array}})``."""
    with reading(path), np.load(path, allow_pickle=False) as data:
        kinds = json.loads(str(data["__splits__"]))
        arrays: dict[str, dict[str, np.ndarray]] = {split: {} for split in kinds}
        for key in data.files:
            if key != "__splits__":
                split, quantity = key.rsplit("/", 1)
                arrays[split][quantity] = data[key]
    return kinds, arrays
