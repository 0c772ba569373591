"""Errors of a run that end a job with one line instead of a traceback.

A config problem is :class:`bench.config.ConfigError` (exit status 2, raised before
any compute). The errors here happen while a job runs; ``python -m bench`` prints
``<label>: <message>`` as the last line of the job log (which the leaderboard quotes
for a failed cell) and exits with :attr:`RunError.exit_code`. Torch-free, so every
command can catch them.
"""

from __future__ import annotations

import signal
from pathlib import Path


class ConfigError(ValueError):
    """A config problem, reported as one line naming the key and the fix (exit status 2)."""


class RunError(RuntimeError):
    """Base class: a job that cannot finish, with a message naming the cause and the fix."""

    label = "error"
    exit_code = 1


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite; the job stops instead of predicting."""

    label = "diverged"


class CorruptFileError(RunError):
    """An input file of the job (predictions, features, checkpoint) cannot be read."""

    label = "corrupt file"

    def __init__(self, path: str | Path, reason: str, fix: str):
        super().__init__(f"{path} is unreadable ({reason}); {fix}")
        self.path = Path(path)


class MissingWeightsError(RunError):
    """Pretrained weights are neither on disk nor downloadable (offline machine)."""

    label = "missing weights"


class KernelError(RunError):
    """A function-space prior's kernel cannot be factorised (non-finite features, bad scales)."""

    label = "kernel"


class Preempted(RunError):  # noqa: N818 (a request to stop, not a fault)
    """The job stopped on a preemption signal after saving a checkpoint.

    Attributes:
        signum: The signal that asked the job to stop.
        step: The optimiser step the checkpoint holds.
        path: Where the checkpoint was written.
    """

    label = "preempted"

    def __init__(self, signum: int, step: int, path: Path):
        self.signum, self.step, self.path = signum, step, Path(path)
        super().__init__(
            f"{signal.Signals(signum).name} received: stopped after step {step} and saved "
            f"{path}; rerunning the same command resumes from there"
        )

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        """``128 + signal``, the shell's convention for a process ended by a signal."""
        return 128 + self.signum
