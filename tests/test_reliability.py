"""Faults across the workflow: results from another config are rerun (even without
Snakemake's own metadata), damaged outputs are remade, and a diverging cell is marked
failed in the tables with the reason, while every other cell's results survive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT
from fixtures_data import tiny_fmnist_grid

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}


def planned_jobs(result) -> dict[str, int]:
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_stale_damaged_and_diverged_results(tmp_path):
    config = tiny_fmnist_grid(
        tmp_path, ["linear_probe", "full_ft", "full_ft+ts"], {"*": {"epochs": 1, "batch_size": 16}}
    )
    config_file = tmp_path / "grid.yaml"

    def snakemake(*args, check=True):
        config_file.write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(config_file), *args],
            capture_output=True, text=True, env=ENV, timeout=900,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, result.stderr[-4000:]
        return result

    snakemake("--cores", "2")
    runs = tmp_path / "results" / "runs" / "fmnist" / "tiny_cnn.random"
    probe_json = (runs / "linear_probe" / "seed0" / "run.json").read_text()

    # A results folder moved without Snakemake's metadata (.snakemake/) is up to date ...
    shutil.rmtree(tmp_path / ".snakemake")
    assert "Nothing to be done" in snakemake("-n").stdout

    # ... until the config changes: then exactly the affected cell reruns, and says why.
    config["tasks"]["fmnist"]["hparams"]["full_ft"] = {"lr": 1e-4}
    shutil.rmtree(tmp_path / ".snakemake")
    dry = snakemake("-n", "--quiet", "rules")
    assert planned_jobs(dry)["fit"] == 1 and "features" not in planned_jobs(dry)
    assert "1 existing results were produced under other settings and will be rerun" in dry.stderr
    assert "full_ft/seed0/run.json (made under " in dry.stderr
    old_hash = json.loads((runs / "full_ft" / "seed0" / "run.json").read_text())["config_hash"]
    snakemake("--cores", "2")
    new_hash = json.loads((runs / "full_ft" / "seed0" / "run.json").read_text())["config_hash"]
    assert new_hash != old_hash
    # The superseded results are kept, not lost, in case the change was a mistake.
    kept = tmp_path / "results" / "superseded" / old_hash / runs.relative_to(tmp_path)
    kept_run = json.loads((kept / "full_ft" / "seed0" / "run.json").read_text())
    assert kept_run["config_hash"] == old_hash
    assert (kept / "full_ft" / "seed0" / "predictions.npz").exists()
    # ... with what was derived from them and replaced with them: +ts, and the fit's log.
    kept_ts = json.loads((kept / "full_ft+ts" / "seed0" / "run.json").read_text())
    assert (
        kept_ts["config_hash"]
        != json.loads((runs / "full_ft+ts" / "seed0" / "run.json").read_text())["config_hash"]
    )
    kept_log = tmp_path / "results" / "superseded" / old_hash / "results" / "logs" / "fit"
    assert (kept_log / "fmnist" / "tiny_cnn.random" / "full_ft" / "seed0.log").exists()
    assert (runs / "linear_probe" / "seed0" / "run.json").read_text() == probe_json

    # The old run restored over the new one (a backup), with Snakemake's metadata present:
    # the stamp's content changes, not only its date, so Snakemake does rerun it.
    for file in (kept / "full_ft" / "seed0").iterdir():
        target = runs / "full_ft" / "seed0" / file.name
        target.unlink()
        shutil.copy2(file, target)
    dry = snakemake("-n", "--quiet", "rules")
    assert planned_jobs(dry).get("fit") == 1, dry.stdout + dry.stderr[-2000:]
    snakemake("--cores", "2")
    restored = json.loads((runs / "full_ft" / "seed0" / "run.json").read_text())
    assert restored["config_hash"] == new_hash

    # A damaged run.json (an interrupted copy) is remade, not trusted.
    (runs / "linear_probe" / "seed0" / "run.json").write_text('{"cell": ')
    dry = snakemake("-n", "--quiet", "rules")
    assert planned_jobs(dry)["fit"] == 1 and "linear_probe/seed0/run.json (unreadable" in dry.stderr
    snakemake("--cores", "2")
    assert json.loads((runs / "linear_probe" / "seed0" / "run.json").read_text())["config_hash"]

    # A diverging fit stops with one line; the table marks that cell failed with the
    # reason, and every other cell's results are kept.
    config["tasks"]["fmnist"]["hparams"]["full_ft"] = {"lr": 1e30, "head_lr": 1e30, "grad_clip": 0}
    failed = snakemake("--cores", "2", "--keep-going", check=False)
    assert failed.returncode != 0
    log = (
        tmp_path
        / "results"
        / "logs"
        / "fit"
        / "fmnist"
        / "tiny_cnn.random"
        / "full_ft"
        / "seed0.log"
    )
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("diverged: training loss is nan between steps"), last
    assert not (runs / "full_ft" / "seed0" / "run.json").exists()  # never a half result
    assert (runs / "linear_probe" / "seed0" / "metrics.json").exists()
    report = subprocess.run(
        [sys.executable, "-m", "bench", "report", "--config", str(config_file)],
        cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    cells = pd.read_csv(tmp_path / "results" / "tables" / "cells.csv", dtype=str)
    row = cells[cells.method == "full_ft"].iloc[0]
    assert row.status == "failed" and "diverged: training loss is nan" in row.reason
    assert cells[cells.method == "linear_probe"].status.tolist() == ["ok"]
