"""Config stamps: a results folder from an older config is rerun, never silently reused.

Every job output records the hash of the settings it was produced under (``run.json``
``config_hash``; ``features.npz`` ``__config_hash__``, and the seeds its few-shot draws
cover). Snakemake already reruns a job
whose ``params`` changed, but only from its own metadata in ``.snakemake/``, which a
results folder copied between machines, restored from a backup or produced by a
different checkout does not carry. So each feature and fit job also takes a *stamp*
as input: a small file under ``results/config/stamps/`` holding the hash the current
config gives that job. When the DAG is built, :func:`sync_stamps` compares each stamp
with what is on disk:

* the output exists and records the current hash: the stamp is dated just before the
  output, which stays up to date;
* the output records another hash, or cannot be read: the stamp is rewritten now,
  newer than the output, so Snakemake reruns the job. Snakemake deletes a job's old
  outputs when it starts, so the files of that output's folder are first kept under
  ``results/superseded/<old hash>/`` (hard links: no copy, no extra space while the
  originals exist), and a rerun that fails or was not wanted loses nothing;
* no output yet: the stamp is written and the job runs anyway.

Only the main Snakemake process does this (a cluster job re-parses the workflow, but
its inputs are already settled); it costs a small read per existing output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.io import atomic_write_bytes

STAMP_ROOT = Path("results/config/stamps")
SUPERSEDED_ROOT = Path("results/superseded")
UNREADABLE = "<unreadable>"


@dataclass(frozen=True)
class Stamped:
    """One job output and the hash the current config gives it.

    Attributes:
        stamp: The stamp file (an input of the job).
        output: The file that records the hash it was produced under.
        want: The current hash.
        recorded: Reads the hash recorded in ``output``: None when the output predates
            hashes, :data:`UNREADABLE` when it is damaged.
    """

    stamp: Path
    output: Path
    want: str
    recorded: Callable[[Path], str | None]


def stamp_path(kind: str, *parts: str) -> str:
    """``results/config/stamps/<kind>/<part>/.../<last>.hash``."""
    return str(STAMP_ROOT / kind / Path(*parts[:-1]) / f"{parts[-1]}.hash")


def run_json_hash(path: Path) -> str | None:
    """The ``config_hash`` of a run.json."""
    try:
        return json.loads(path.read_text())["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return UNREADABLE


def features_record(seeds: list[int]) -> Callable[[Path], str | None]:
    """A reader of a features.npz's ``__config_hash__`` for a grid with ``seeds``.

    A few-shot cache holds each seed's draw from the pools; one whose draws miss a seed
    of the grid is reported with the seeds it has, so it differs from the wanted hash
    and is recomputed. None for caches written before hashes were recorded.
    """

    def recorded(path: Path) -> str | None:
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                if "__config_hash__" not in data.files:
                    return None
                value = str(data["__config_hash__"])
                few_shot = json.loads(str(data["__few_shot__"])) if "__few_shot__" in data else None
                covered = data["__seeds__"].tolist() if "__seeds__" in data.files else []
        except Exception:  # noqa: BLE001 - a truncated or foreign file, whatever numpy raises
            return UNREADABLE
        if few_shot is not None and not set(seeds) <= set(covered):
            return f"{value} with few-shot draws for seeds {covered} only"
        return value

    return recorded


def _stamp_state(stamp: Path) -> tuple[str | None, float]:
    try:
        return stamp.read_text(), stamp.stat().st_mtime
    except OSError:
        return None, 0.0


def keep_superseded(output: Path, label: str, root: Path = SUPERSEDED_ROOT) -> Path:
    """Hard-links every file beside ``output`` into ``root/<label>/<its folder>``.

    Falls back to a copy where links are impossible (another file system). Files kept
    by an earlier call are left as they are.
    """
    import shutil

    folder = output.parent
    relative = folder.relative_to(folder.anchor) if folder.is_absolute() else folder
    target = root / label / relative
    target.mkdir(parents=True, exist_ok=True)
    for file in folder.iterdir():
        if not file.is_file() or (target / file.name).exists():
            continue
        try:
            os.link(file, target / file.name)
        except OSError:
            shutil.copy2(file, target / file.name)
    return target


def sync_stamps(entries: Iterable[Stamped], keep: bool = True) -> list[tuple[Path, str]]:
    """Brings every stamp up to date (see module docstring).

    Args:
        entries: The jobs of the grid.
        keep: Keep the files of outputs about to be rerun (:func:`keep_superseded`);
            False for a dry run, which must not touch results.

    Returns:
        ``(output, reason)`` for each existing output that will be rerun because it was
        produced under other settings or cannot be read.
    """
    stale = []
    for entry in entries:
        content, stamp_time = _stamp_state(entry.stamp)
        if content != entry.want:
            atomic_write_bytes(entry.stamp, entry.want.encode())
            content, stamp_time = _stamp_state(entry.stamp)
        if not entry.output.exists():
            continue
        output_time = entry.output.stat().st_mtime
        recorded = entry.recorded(entry.output)
        if recorded is None or recorded == entry.want:
            # Current (or from before hashes were recorded): the stamp must be older.
            if stamp_time >= output_time:
                os.utime(entry.stamp, (output_time - 1, output_time - 1))
        else:
            if stamp_time <= output_time:
                entry.stamp.touch()
            reason = "unreadable" if recorded == UNREADABLE else f"made under {recorded}"
            if keep:
                label = "unreadable" if recorded == UNREADABLE else recorded.split()[0]
                keep_superseded(entry.output, label)
            stale.append((entry.output, f"{reason}; the grid's config hash is {entry.want}"))
    return stale
