"""Readers of the raw datasets and the deterministic transforms built on them.

Every reader returns plain numpy arrays or lists of strings (never torch tensors) so
that ``bench.data`` and ``bench.tasks`` import in milliseconds and run without torch.

Manifests: each reader takes an ``expected`` count (or dict of counts) and checks it
against what it read. Tasks pass the real counts of the published datasets (module
constants such as :data:`bench.data.nlp.SST2_COUNTS`) unless the task option
``verify_counts=False`` is given, which the unit tests use for their small fixture
files. A user's truncated or partial copy therefore fails loudly with the file name,
the expected and the found count, instead of silently producing a smaller benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class DataCountError(ValueError):
    """Raised when a data file holds a different number of records than the manifest says."""


def check_count(path: str | Path, found: int, expected: int | None, what: str = "records") -> None:
    """Raises :class:`DataCountError` when ``found`` differs from ``expected``.

    Args:
        path: File that was read (named in the message).
        found: Number of records read.
        expected: Number of records of the complete published file; None skips the check.
        what: Noun used in the message ("images", "sentences", "in-scope test queries").

    Raises:
        DataCountError: If the counts differ.

    """
    if expected is not None and found != expected:
        raise DataCountError(
            f"{path}: expected {expected} {what} but found {found}; the copy looks incomplete "
            "or corrupted, re-download it (or pass verify_counts=False for a deliberately "
            "trimmed copy)"
        )


def resolve_options(
    task: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Merges a task's options with its defaults, rejecting unknown names.

    Args:
        task: Task name (named in the message).
        options: Options given in the config.
        defaults: Every valid option with its default value.

    Returns:
        The defaults updated with ``options``.

    Raises:
        TypeError: If an option is not one of ``defaults``; lists the valid names.

    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(
            f"task {task!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(sorted(defaults)) or '(none)'}"
        )
    return {**defaults, **options}


def check_bool(task: str, name: str, value: Any) -> bool:
    """Returns ``value`` if it is a bool, else raises a TypeError naming the option."""
    if not isinstance(value, bool):
        raise TypeError(f"task {task!r}: option {name!r} must be true or false, got {value!r}")
    return value


def check_nonempty(task: str, split: str, size: int, cause: str) -> None:
    """Raises a ValueError naming the task, the split and the cause when a split is empty."""
    if size == 0:
        raise ValueError(f"task {task!r}: split {split!r} is empty: {cause}")


__all__ = ["DataCountError", "check_bool", "check_count", "check_nonempty", "resolve_options"]
