"""`snakemake --profile slurm` on a real single-node SLURM: every heavy job goes through
sbatch, and the grid finishes with the same outputs as a local run."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import slurm_cluster
import yaml
from conftest import REPO_ROOT
from fixtures_data import write_fashion_mnist

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
    # The shipped profile, with the test cluster's partition and no GPU request.
    profile = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"] = {"slurm_partition": "main", "runtime": 5, "mem_mb": 100}
    for rule in ("features", "fit"):
        profile["set-resources"][rule].update(gpu=0, mem_mb=500, runtime=5)
        profile["set-resources"][rule].pop("cpus_per_gpu")
        profile["set-threads"][rule] = 1
    profile.update({
        "slurm-status-command": "squeue",  # no accounting daemon here (notes, 1)
        "slurm-init-seconds-before-status-checks": 2,
        "latency-wait": 5,
        "jobs": 4,
        "retries": 0,
    })  # fmt: skip
    profile_dir = tmp_path / "profile"
    profile_dir.mkdir()
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile))
    config = {
        "data": {"root": str(tmp_path), "fashion_mnist": str(write_fashion_mnist(tmp_path / "fm"))},
        "seeds": [0],
        "methods": ["linear_probe", "full_ft", "full_ft+ts"],
        "runtime": {"device": "cpu"},
        "tasks": {
            "fmnist": {
                "backbones": ["tiny_cnn.random"],
                "options": {"verify_counts": False},
                "hparams": {"*": {"epochs": 1, "batch_size": 16}},
            }
        },
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["timeout", "-s", "KILL", "600", sys.executable, "-m", "snakemake",
         "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "grid.yaml"), "--profile", str(profile_dir)],
        capture_output=True, text=True, env={**slurm, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    submitted = output.count("has been submitted with SLURM jobid")
    assert submitted == 3, output[-4000:]  # features + 2 fits; the rest are localrules
    board = pd.read_csv(tmp_path / "results" / "leaderboard" / "leaderboard.csv")
    assert set(board.method) == {"linear_probe", "full_ft", "full_ft+ts"}
    # Job logs go to the profile's slurm-logdir (the plugin deletes those of successful jobs).
    assert f"(log: {tmp_path}/results/logs/slurm/rule_fit/" in output
