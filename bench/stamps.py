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
  newer than the output and with a line of its own after the hash, so Snakemake reruns
  the job (a newer input whose content Snakemake has recorded before, as when a stale
  folder is restored over a current one, would not rerun it). Snakemake deletes a
  job's old outputs when it starts, so the files of that output's folder, of the
  results derived from it (``+ts``, the ensemble) and its log are first kept under
  ``results/superseded/<old hash>/`` (hard links: no copy, no extra space while the
  originals exist; ``<old hash>.2``, ... when an earlier set under that hash differs),
  and a rerun that fails or was not wanted loses nothing;
* no output yet: the stamp is written and the job runs anyway.

Only the main Snakemake process does this (a cluster job re-parses the workflow, but
its inputs are already settled); it costs a small read per existing output.
"""

from __future__ import annotations

import json
import os
import time
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
        derived: Folders and files that a rerun of this job replaces too (the results
            derived from it, its log), kept with it when it is superseded.
    """

    stamp: Path
    output: Path
    want: str
    recorded: Callable[[Path], str | None]
    derived: tuple[Path, ...] = ()


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


def _files(path: Path) -> list[Path]:
    """The files of a folder, or the file itself; nothing for a missing path."""
    if path.is_dir():
        return sorted(f for f in path.iterdir() if f.is_file())
    return [path] if path.is_file() else []


def _relative(path: Path) -> Path:
    return path.relative_to(path.anchor) if path.is_absolute() else path


def _conflicts(root: Path, files: list[Path]) -> bool:
    """Whether ``root`` holds another file at the path of one of ``files``.

    The same file (inode) is no conflict: a set kept by an earlier DAG build, or the
    ensemble that two superseded seeds share.
    """
    for file in files:
        kept = root / _relative(file)
        if kept.exists() and not os.path.samefile(kept, file):
            return True
    return False


def keep_superseded(
    output: Path, label: str, root: Path = SUPERSEDED_ROOT, derived: Iterable[Path] = ()
) -> Path:
    """Hard-links the files beside ``output`` and of ``derived`` into ``root/<label>/``.

    Each file keeps its path below the label (``root/<label>/results/runs/...``). Falls
    back to a copy where links are impossible (another file system). A set already kept
    by an earlier DAG build is left as it is; when the label holds files of another set
    (the same old settings run again, then superseded again), the next free label
    ``<label>.2``, ``<label>.3``, ... is used, so no set is mixed with another.

    Returns:
        Where ``output``'s folder was kept.
    """
    import shutil

    files = _files(output.parent) + [f for path in derived for f in _files(path)]
    number, target = 1, root / label
    while _conflicts(target, files):
        number += 1
        target = root / f"{label}.{number}"
    for file in files:
        kept = target / _relative(file)
        if kept.exists():
            continue
        kept.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, kept)
        except OSError:
            shutil.copy2(file, kept)
    return target / _relative(output.parent)


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
            # New content, not only a newer date: Snakemake ignores a newer input whose
            # checksum it recorded at the last run (a stamp that already held this hash).
            note = f"rerun: {entry.output} was made under {recorded} ({time.time_ns()})"
            atomic_write_bytes(entry.stamp, f"{entry.want}\n{note}\n".encode())
            if entry.stamp.stat().st_mtime <= output_time:
                os.utime(entry.stamp, (output_time + 1, output_time + 1))
            reason = "unreadable" if recorded == UNREADABLE else f"made under {recorded}"
            if keep:
                label = "unreadable" if recorded == UNREADABLE else recorded.split()[0]
                keep_superseded(entry.output, label, derived=entry.derived)
            stale.append((entry.output, f"{reason}; the grid's config hash is {entry.want}"))
    return stale
