"""A real fit job (``python -m bench fit``, the command a Snakemake job runs) is stopped
mid-training by a signal, rerun with the same command line, and ends with predictions
identical to an uninterrupted run's, on CPU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT
from fixtures_data import tiny_fmnist_grid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("preemption")
    # ~600 steps of batch 4: a few seconds, long enough to be interrupted.
    config = tiny_fmnist_grid(
        folder,
        ["full_ft"],
        {"full_ft": {"epochs": 20, "batch_size": 4, "head_lr": 1e-2}},
        runtime={"device": "cpu", "checkpoint_every": 25},
    )
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit_command(grid: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "bench", "fit", "--config", str(grid), "--task", "fmnist",
        "--backbone", "tiny_cnn.random", "--method", "full_ft", "--seed", "0", "--threads", "1",
        "--out", str(out), "--checkpoint", str(out.parent / "ckpt" / "train.pt"),
    ]  # fmt: skip


def run_to_completion(grid: Path, out: Path) -> str:
    log = out.parent / f"{out.name}.log"
    with open(log, "a") as handle:
        done = subprocess.run(fit_command(grid, out), stderr=handle, cwd=REPO_ROOT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    return text


def predictions(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "predictions.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def reference_run(grid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    log = run_to_completion(grid, out)
    assert "checkpoint: step 25 ->" in log  # periodic checkpoints were written ...
    assert not (out.parent / "ckpt" / "train.pt").exists()  # ... and removed at the end
    return out


@pytest.fixture(scope="module")
def uninterrupted(reference_run) -> dict[str, np.ndarray]:
    return predictions(reference_run)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])  # SIGUSR1: test_checkpoint
def test_interrupted_fit_resumes_to_identical_predictions(tmp_path, grid, uninterrupted, signum):
    out = tmp_path / "run"
    checkpoint = tmp_path / "ckpt" / "train.pt"
    log = tmp_path / "run.log"
    with open(log, "w") as handle:
        job = subprocess.Popen(fit_command(grid, out), stderr=handle, cwd=REPO_ROOT)
        deadline = time.time() + 300
        while not checkpoint.exists() and job.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert job.poll() is None, "the job finished before it could be interrupted"
        job.send_signal(signum)
        code = job.wait(timeout=120)
    text = log.read_text()
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL  # no warning: the last periodic checkpoint remains
    else:
        # Saved at the end of the current step, then one line and exit status 128 + n.
        assert code == 128 + signum, text[-3000:]
        last = text.strip().splitlines()[-1]
        assert last.startswith(f"preempted: {signal.Signals(signum).name} received: stopped")
    assert checkpoint.exists() and not (out / "run.json").exists()

    resumed_log = run_to_completion(grid, out)
    resumed = [
        line for line in resumed_log.splitlines() if "checkpoint: resuming from step" in line
    ]
    assert len(resumed) == 1, resumed_log[-3000:]
    step = int(resumed[0].split("resuming from step ")[1].split()[0])
    assert 0 < step < 600
    got = predictions(out)
    assert got.keys() == uninterrupted.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], uninterrupted[key], err_msg=key)
    assert not checkpoint.exists()


def score(run_dir: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "score", "--run-dir", str(run_dir),
         "--out", str(run_dir / "metrics.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((run_dir / "metrics.json").read_text())


def test_same_config_and_seed_give_identical_metrics(grid, reference_run, uninterrupted, tmp_path):
    """Determinism on CPU: a second process with the same config and seed reproduces the
    predictions bitwise, and so every metric exactly."""
    out = tmp_path / "again"
    run_to_completion(grid, out)
    again = predictions(out)
    for key in again:
        np.testing.assert_array_equal(again[key], uninterrupted[key], err_msg=key)
    first, second = score(reference_run)["splits"], score(out)["splits"]
    assert first == second and first["test"]["metrics"]["cls/acc"] > 0.2
