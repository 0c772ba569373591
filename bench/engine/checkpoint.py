"""Preemption-safe training: periodic and on-signal checkpoints, exact resume.

A shared GPU cluster preempts jobs: SLURM sends SIGTERM (or, with
``--signal=USR1@<seconds>``, SIGUSR1 ahead of the time limit) and kills the job a
grace period later. :class:`Checkpointer` turns either signal into a request that the
training loop honours at the end of the current step: it saves everything the rest of
the run depends on (model, optimiser, scheduler, the step and epoch position, the
running loss sums, every RNG state, and any extra state a method registers such as an
EMA teacher or a posterior) and the job exits with ``128 + signal``. Snakemake's retry
(or SLURM's requeue) reruns the same command line, which loads the checkpoint and
continues; on CPU the predictions are then bitwise those of an uninterrupted run
(``tests/test_checkpoint.py``).

A checkpoint is tied to the cell's config hash: one written under other settings is
discarded, never resumed from. It is written atomically (temporary file, fsync,
rename), so a kill during the write leaves the previous checkpoint intact, and it is
deleted once the cell's outputs are written.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bench.io import atomic_file

# The signals a cluster sends before it kills a job.
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
FORMAT_VERSION = 1


class Stateful(Protocol):
    """Anything with ``state_dict`` / ``load_state_dict`` (modules, optimisers, EMA...)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (all CUDA devices)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Where, how often and under which config hash a fit job checkpoints.

    Args:
        path: The checkpoint file (``results/checkpoints/<cell>/train.pt``).
        every: Optimiser steps between periodic checkpoints; 0 saves only when a
            preemption signal arrives (and at the end of training, see
            :meth:`save_final`).
        fingerprint: The cell's config hash; a checkpoint with another one is stale.
        log: Progress lines (the job log).
    """

    def __init__(
        self, path: str | os.PathLike, every: int, fingerprint: str, log: Callable[[str], None]
    ):
        if every < 0:
            raise ValueError(f"checkpoint interval must be >= 0 steps, got {every}")
        self.path = Path(path)
        self.every = int(every)
        self.fingerprint = fingerprint
        self.log = log
        self.requested: int | None = None  # the signal number once one arrived
        self._previous: dict[int, Any] = {}

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        # Only record it: the loop saves at the end of the step, where the state is whole.
        if self.requested is None:
            self.requested = signum

    def __enter__(self) -> Checkpointer:
        """Routes the preemption signals to :meth:`_on_signal` while training runs."""
        self.requested = None
        if threading.current_thread() is not threading.main_thread():
            return self  # Python delivers signals to the main thread only; periodic saves remain
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        # Prediction after training is short and restartable: default handling again.
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    # -- policy ----------------------------------------------------------------------

    def due(self, step: int, total_steps: int) -> bool:
        """Whether to save after ``step``: a signal arrived, or a periodic checkpoint."""
        if self.requested is not None:
            return True
        return self.every > 0 and step % self.every == 0 and step < total_steps

    def wants_final(self, total_steps: int) -> bool:
        """Whether to save when training ends (jobs long enough to checkpoint at all).

        Then a preemption while predicting does not repeat the training.
        """
        return self.every > 0 and total_steps >= self.every

    # -- files -----------------------------------------------------------------------

    def save(self, state: dict[str, Any]) -> None:
        """Writes ``state`` plus the fingerprint atomically."""
        record = {"format": FORMAT_VERSION, "fingerprint": self.fingerprint, **state}
        with atomic_file(self.path) as handle:
            torch.save(record, handle)
        self.log(f"checkpoint: step {state['step']} -> {self.path}")

    def load(self) -> dict[str, Any] | None:
        """The saved state of this cell, or None (no checkpoint, or a stale one, removed)."""
        if not self.path.exists():
            return None
        try:
            record = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as error:  # a truncated file from a crash outside save()
            self.log(f"checkpoint: {self.path} is unreadable ({error}); starting afresh")
            self.clear()
            return None
        if record.get("format") != FORMAT_VERSION or record.get("fingerprint") != self.fingerprint:
            self.log(
                f"checkpoint: {self.path} was written under config hash "
                f"{record.get('fingerprint')}, this cell's is {self.fingerprint}; "
                "discarding it and starting afresh"
            )
            self.clear()
            return None
        self.log(f"checkpoint: resuming from step {record['step']} ({self.path})")
        return record

    def clear(self) -> None:
        """Deletes the checkpoint (after the cell's outputs are safely written)."""
        self.path.unlink(missing_ok=True)


def capture(objects: dict[str, Stateful]) -> dict[str, Any]:
    """``{name: obj.state_dict()}`` for every named object."""
    return {name: obj.state_dict() for name, obj in objects.items()}


def restore(objects: dict[str, Stateful], states: dict[str, Any]) -> None:
    """Loads each saved state into its object; a missing entry is a format error."""
    missing = sorted(set(objects) - set(states))
    if missing:
        raise RuntimeError(f"checkpoint lacks the state of {missing}; delete it to start afresh")
    for name, obj in objects.items():
        obj.load_state_dict(states[name])
