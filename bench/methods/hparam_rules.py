"""Rules between a method's hyperparameters, checked when the DAG is built.

``workflow/schemas/hparams.schema.yaml`` checks each value on its own; the rules here
relate two values, or hold for one method only (``label_smoothing: 0`` is fine for
``full_ft``, not for the ``label_smoothing`` method). :func:`bench.config.load_grid`
applies them to every method's merged hyperparameters of every task, so a grid breaking
one stops before any job; the methods apply the same function when they are built, for
code that constructs them directly.

This module imports nothing heavy: the DAG is built without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def hparam_problems(method: str, hparams: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """``(keys, problem and fix)`` for each rule ``hparams`` of base method ``method`` breaks.

    Args:
        method: A base method name (``swag``, not ``swag@ivon+ts``).
        hparams: Its hyperparameters, merged from every source.

    Returns:
        One entry per broken rule with the hyperparameters it relates (an error names
        the one a grid set, else the first); empty when all hold.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    get = hparams.get
    if "grad_accumulation" in hparams and "batch_size" in hparams:
        if get("grad_accumulation") > get("batch_size"):
            problems.append((
                ("grad_accumulation", "batch_size"),
                f"{get('grad_accumulation')} micro-batches cannot split a batch of "
                f"{get('batch_size')} examples; use at most batch_size",
            ))  # fmt: skip
    if method == "swag" and not 2 <= get("swag_rank", 2) <= get("swag_snapshots", 2):
        problems.append((
            ("swag_rank", "swag_snapshots"),
            f"SWAG needs 2 <= swag_rank <= swag_snapshots, got rank {get('swag_rank')} and "
            f"{get('swag_snapshots')} snapshots",
        ))  # fmt: skip
    if method == "label_smoothing" and not 0.0 < get("label_smoothing", 0.1) < 1.0:
        problems.append((
            ("label_smoothing",),
            f"must be in (0, 1) for the label_smoothing method, got "
            f"{get('label_smoothing')} (0 is full_ft)",
        ))  # fmt: skip
    if "warmup_epochs" in hparams and "epochs" in hparams:  # the feature-cache trainers
        epochs, warmup = get("epochs"), get("warmup_epochs")
        if epochs != int(epochs):
            problems.append(
                (("epochs",), f"feature-cache adapters train whole epochs, got {epochs}")
            )
        elif epochs <= warmup:
            problems.append((
                ("epochs", "warmup_epochs"),
                f"{epochs} epoch(s) with warmup_epochs {warmup} train only at warmup_lr "
                f"({get('warmup_lr')}), never at lr; use more epochs than warmup_epochs, or "
                "warmup_epochs: 0",
            ))  # fmt: skip
    bad_templates = [t for t in get("templates") or [] if t.count("{}") != 1]
    if bad_templates:
        problems.append((
            ("templates",),
            f"each template needs exactly one '{{}}' for the class name, got {bad_templates}",
        ))  # fmt: skip
    return problems


def check_hparams(method: str, hparams: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` with the first of :func:`hparam_problems`, if any."""
    problems = hparam_problems(method, hparams)
    if problems:
        keys, problem = problems[0]
        raise ValueError(f"{method}: {keys[0]}: {problem}")
