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

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import RunError


class DataCountError(RunError, ValueError):
    """Raised when a data file holds a different number of records than the manifest says."""

    label = "incomplete data"


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


def check_data_dir(task: str, option: str, value: Any, replaces: str) -> Path | None:
    """Validates a folder option (``data_dir`` and the like): None or an absolute path.

    Relative paths are refused: jobs run from the Snakemake working directory on
    whichever node, so a relative folder would silently mean different places.

    Args:
        task: Task name (named in the message).
        option: Option name.
        value: The option's value.
        replaces: The default folder it replaces, for the message (``<data root>/cifar``).

    Returns:
        The expanded path, or None when the option is not set.
    """
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"task {task!r}: option {option!r} must be a path, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f"task {task!r}: option {option!r} must be an absolute path (it replaces "
            f"{replaces}), got {str(value)!r}"
        )
    return path


def check_nonempty(task: str, split: str, size: int, cause: str) -> None:
    """Raises a ValueError naming the task, the split and the cause when a split is empty."""
    if size == 0:
        raise ValueError(f"task {task!r}: split {split!r} is empty: {cause}")


@dataclass(frozen=True)
class ManifestEntry:
    """One file or folder a task reads, with the size of the complete published copy.

    Attributes:
        path: File or folder.
        what: Noun for its records ("images", "queries", "classes", "file").
        expected: Records in the complete copy; None checks existence only.
        count: Counts the records at ``path`` (cheap: list folders, count lines; never
            decode images); None checks existence only.
        source: Where ``expected`` comes from (paper table, dataset README).
    """

    path: Path
    what: str
    expected: int | None = None
    count: Callable[[Path], int] | None = None
    source: str = ""


@dataclass(frozen=True)
class ManifestCheck:
    """Outcome of checking one :class:`ManifestEntry` against a user's copy.

    Attributes:
        entry: The entry checked.
        status: ``ok``, ``missing``, ``wrong_count`` or ``unreadable``.
        found: Records counted (None when missing or not counted).
        error: Why counting failed (``unreadable`` only).
    """

    entry: ManifestEntry
    status: str
    found: int | None = None
    error: str = ""

    def describe(self) -> str:
        """One line for ``python -m bench data check``."""
        entry = self.entry
        expected = "" if entry.expected is None else f"{entry.expected} {entry.what}"
        if self.status == "missing":
            return f"MISSING      {entry.path}" + (f"  (needs {expected})" if expected else "")
        if self.status == "unreadable":
            return f"UNREADABLE   {entry.path}: {self.error}"
        if self.status == "wrong_count":
            return (
                f"WRONG COUNT  {entry.path}: found {self.found} {entry.what}, expected "
                f"{entry.expected} ({entry.source})"
            )
        found = "" if self.found is None else f"  {self.found} {entry.what}"
        return f"ok           {entry.path}{found}"


def check_manifest(entries: list[ManifestEntry]) -> list[ManifestCheck]:
    """Checks each entry's existence and, where it has one, its record count."""
    checks = []
    for entry in entries:
        if not Path(entry.path).exists():
            checks.append(ManifestCheck(entry, "missing"))
            continue
        try:
            found = entry.count(Path(entry.path)) if entry.count is not None else None
        except Exception as error:  # noqa: BLE001 - any reader failure means a damaged copy
            checks.append(ManifestCheck(entry, "unreadable", error=str(error)))
            continue
        wrong = entry.expected is not None and found is not None and found != entry.expected
        checks.append(ManifestCheck(entry, "wrong_count" if wrong else "ok", found))
    return checks


def count_lines(path: Path) -> int:
    """Non-empty lines of a text file."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


__all__ = [
    "DataCountError",
    "ManifestCheck",
    "ManifestEntry",
    "check_manifest",
    "count_lines",
    "check_bool",
    "check_count",
    "check_data_dir",
    "check_nonempty",
    "resolve_options",
]
