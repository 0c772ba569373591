"""`snakemake --profile slurm` on a real single-node SLURM: every heavy job goes through
sbatch, and the grid finishes with the same outputs as a local run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import slurm_cluster
import yaml
from conftest import REPO_ROOT
from fixtures_data import tiny_fmnist_grid

# The test node has no GPU: the grids say so, as a CPU-cluster grid would.
NO_GPU = {job: {"gpu": 0, "mem_mb": 500, "runtime": 5} for job in ("fit", "features")}

pytestmark = [pytest.mark.workflow, pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def slurm(tmp_path_factory):
    reason = slurm_cluster.available()
    if reason:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"CI runs as root and must test SLURM: {reason}")
        pytest.skip(reason)
    cluster = slurm_cluster.LocalSlurm(tmp_path_factory.mktemp("slurm"))
    env = cluster.start()
    yield env
    cluster.stop()


def test_profile_submits_heavy_jobs_through_sbatch(tmp_path, slurm):
    """`snakemake --profile slurm`, typed from the repository root, with only what this
    one-node test cluster needs overridden on the command line: its partition, its two
    CPUs, and squeue for status checks (it has no accounting daemon)."""
    config = tiny_fmnist_grid(
        tmp_path,
        ["linear_probe", "full_ft", "full_ft+ts"],
        {"*": {"epochs": 1, "batch_size": 16}},
        resources=NO_GPU,
    )
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["timeout", "-s", "KILL", "600", sys.executable, "-m", "snakemake",
         "--profile", "slurm", "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "grid.yaml"),
         "--default-resources", "slurm_partition=main", "mem_mb=100", "runtime=5",
         "--set-threads", "fit=1", "features=1",
         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
         "--latency-wait", "5", "--jobs", "4", "--retries", "0", "--verbose"],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**slurm, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 3, output[-4000:]  # features + 2 fits; the rest are localrules
    calls = [line for line in output.splitlines() if "sbatch call:" in line]
    assert len(calls) == 3, output[-4000:]
    fit_calls = [c for c in calls if "rule_fit" in c]
    assert len(fit_calls) == 2
    for call in fit_calls:  # the grid's resources reach sbatch: minutes of attempt 1, memory
        assert "-p main" in call and " -t 5" in call and "--mem 500" in call, call
    board = pd.read_csv(tmp_path / "results" / "leaderboard" / "leaderboard.csv")
    assert set(board.method) == {"linear_probe", "full_ft", "full_ft+ts"}
    # Job logs go to the profile's slurm-logdir (the plugin deletes those of successful jobs).
    assert f"(log: {tmp_path}/results/logs/slurm/rule_fit/" in output
    print(f"submitted SLURM jobs {submitted}; leaderboard rows {len(board)}")


def test_no_auto_loaded_profile_overrides_the_cluster_profile():
    """Snakemake loads profiles/default (the workflow profile) after --profile, and its
    keys win; none may exist that would change what the slurm profile sets."""
    default = REPO_ROOT / "profiles" / "default" / "config.yaml"
    if default.exists():
        cluster = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
        clash = set(yaml.safe_load(default.read_text()) or {}) & set(cluster)
        assert not clash, f"profiles/default overrides {sorted(clash)} of the slurm profile"
    assert (REPO_ROOT / "slurm").resolve() == (REPO_ROOT / "profiles" / "slurm").resolve()


def test_cancelled_fit_job_is_retried_and_resumes(tmp_path, slurm):
    """A fit job cancelled by SLURM mid-training (what preemption does: SIGTERM to every
    process of the job, SIGKILL after KillWait) checkpoints, is resubmitted by the
    profile's retry, resumes, and ends with the predictions of an uninterrupted run."""
    config = tiny_fmnist_grid(
        tmp_path,
        ["full_ft"],
        {"full_ft": {"epochs": 20, "batch_size": 4, "head_lr": 1e-2}},
        runtime={"device": "cpu", "checkpoint_every": 25},
        resources=NO_GPU,
    )
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(config))
    env = {**slurm, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    command = [
        "timeout", "-s", "KILL", "600", sys.executable, "-m", "snakemake",
        "--profile", "slurm", "--directory", str(tmp_path), "--configfile", str(grid),
        "--default-resources", "slurm_partition=main", "mem_mb=100", "runtime=5",
        "--set-threads", "fit=1", "features=1",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--latency-wait", "5", "--jobs", "2",  # the profile's own retries: 1
        "--until", "fit",
    ]  # fmt: skip
    checkpoint = tmp_path / "results/checkpoints/fmnist/tiny_cnn.random/full_ft/seed0/train.pt"
    with open(tmp_path / "snakemake.out", "w") as out:
        main = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
        deadline = time.time() + 300
        while not checkpoint.exists() and main.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert main.poll() is None and checkpoint.exists(), (tmp_path / "snakemake.out").read_text()
        jobs = subprocess.run(["timeout", "10", "squeue", "-h", "-o", "%i"], env=env,
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        assert len(jobs) == 1, jobs
        subprocess.run(["timeout", "10", "scancel", jobs[0]], env=env, check=True)
        assert main.wait(timeout=600) == 0, (tmp_path / "snakemake.out").read_text()[-5000:]
    output = (tmp_path / "snakemake.out").read_text()
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 2 and jobs[0] == submitted[0], output[-4000:]  # the retry
    log = (tmp_path / "results/logs/fit/fmnist/tiny_cnn.random/full_ft/seed0.log").read_text()
    resumed = re.findall(r"checkpoint: resuming from step (\d+)", log)
    assert len(resumed) == 1 and 0 < int(resumed[0]) < 600, log[-3000:]
    assert not checkpoint.exists()

    # The same cell run straight through, outside SLURM, predicts bitwise the same.
    reference = tmp_path / "reference"
    subprocess.run(
        [sys.executable, "-m", "bench", "fit", "--config", str(grid), "--task", "fmnist",
         "--backbone", "tiny_cnn.random", "--method", "full_ft", "--seed", "0",
         "--threads", "1", "--out", str(reference)],
        cwd=tmp_path, env=env, check=True, capture_output=True,
    )  # fmt: skip
    run_dir = tmp_path / "results/runs/fmnist/tiny_cnn.random/full_ft/seed0"
    with np.load(run_dir / "predictions.npz") as got, np.load(reference / "predictions.npz") as ref:
        assert got.files == ref.files
        for key in got.files:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    print(f"cancelled SLURM job {jobs[0]} at a checkpoint, retry {submitted[1]} resumed from "
          f"step {resumed[0]}; predictions identical to an uninterrupted run")  # fmt: skip
