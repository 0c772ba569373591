"""Facts that make a number traceable: code version, package versions, host."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path

_PACKAGES = ("torch", "numpy", "transformers", "open_clip_torch", "scikit-learn", "pandas")


def git_revision(repo: Path | None = None) -> dict[str, str | bool]:
    """``{"sha": ..., "dirty": ...}`` of the repository holding this package."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"sha": "unknown", "dirty": True}
    return {"sha": sha or "unknown", "dirty": bool(status)}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that affect results."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def host() -> dict[str, str]:
    """Host name, platform and the command line of this process."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
    }
