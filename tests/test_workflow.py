"""The Snakemake workflow: DAG of the default grid, config errors at DAG build, and a
tiny grid run end to end (tiny models, seconds of training) checked through its outputs."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, SHARED_DATA
from fixtures_data import write_fashion_mnist

pytestmark = pytest.mark.workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]


def snakemake(workdir: Path, config_file: Path, *args: str, check: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config_file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def default_config() -> dict:
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    return config


@pytest.mark.real_data
def test_dry_run_of_the_default_grid(tmp_path, shared_data):
    config_file = write_config(tmp_path / "config.yaml", default_config())
    result = snakemake(tmp_path, config_file, "-n", "--quiet", "rules")
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    config = default_config()
    cells_per_method = sum(len(b["backbones"]) for b in config["tasks"].values()) * len(
        config["seeds"]
    )
    plain = [m for m in config["methods"] if "+" not in m]
    posthoc = [m for m in config["methods"] if "+" in m]
    assert counts["features"] == 4
    assert counts["fit"] == cells_per_method * len(plain)
    assert counts["posthoc"] == cells_per_method * len(posthoc)
    assert counts["ensemble"] == 4
    assert counts["score"] == counts["fit"] + counts["posthoc"] + counts["ensemble"]
    assert counts["aggregate"] == 1 and counts["figures"] == 4
    assert counts["leaderboards"] == 1 and counts["claims"] == 1


@pytest.mark.real_data
def test_dry_run_of_the_ivon_grid(tmp_path, shared_data):
    """config/ivon_offline.yaml: every trained method (IVON runs too) is a fit job of its
    own, +ts a post-hoc job on its base run, full_ft's seeds an ensemble."""
    config = yaml.safe_load((REPO_ROOT / "config" / "ivon_offline.yaml").read_text())
    config["data"].update(root=str(SHARED_DATA), fashion_mnist=str(write_fashion_mnist(tmp_path)))
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    result = snakemake(tmp_path, write_config(tmp_path / "ivon.yaml", config), "-n")
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    trained = [m for m in config["methods"] if "+" not in m]
    assert counts["fit"] == 2 * 3 * len(trained)
    assert counts["posthoc"] == 2 * 3 * 2  # full_ft+ts, full_ft@ivon+ts
    assert counts["ensemble"] == 2
    assert "features" not in counts  # no method reads the frozen-feature cache
    assert "results/runs/clinc150/minilm_l6/full_ft@ivon/seed2/predictions.npz" in result.stdout
    assert "results/runs/fmnist/effnet_lite0.imagenet/lora_ft@ivon/seed0" in result.stdout


@pytest.mark.real_data
def test_a_configfile_replaces_the_default_grid(tmp_path, shared_data):
    """``--configfile grid.yaml`` from the repository root runs that grid alone; without
    one, the default config/config.yaml runs (Snakemake would merge the two by key)."""
    (tmp_path / "config").mkdir()
    write_config(tmp_path / "config" / "config.yaml", default_config())
    only_sst2 = default_config()
    only_sst2["tasks"] = {"sst2": only_sst2["tasks"]["sst2"]}
    grid = write_config(tmp_path / "sst2_only.yaml", only_sst2)

    def fitted_tasks(*args):
        result = subprocess.run(
            [*SNAKEMAKE, "--directory", str(tmp_path), "-n", *args],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return {line.split("task=")[1].split(",")[0]
                for line in result.stdout.splitlines() if "wildcards: task=" in line}  # fmt: skip

    assert fitted_tasks("--configfile", str(grid)) == {"sst2"}
    assert fitted_tasks() == set(default_config()["tasks"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["tasks"]["sst2"].update(backbones=["effnet_lite0.imagenet"]),
            "config error: tasks.sst2.backbones[0]: effnet_lite0.imagenet is a vision backbone",
        ),
        (
            lambda c: c.update(methods=["full_ft", "dor"]),
            "config error: methods[1]: unknown method 'dor'",
        ),
        (
            lambda c: c["data"].update(root="/no/such/root"),
            "config error: data.root: /no/such/root",
        ),
        (
            lambda c: c.update(report={"claims": "/no/such/claims.yaml"}),
            "config error: report.claims:",
        ),
    ],
)
def test_bad_config_stops_the_dag_with_one_line(tmp_path, mutate, expected):
    config = default_config()
    mutate(config)
    result = snakemake(tmp_path, write_config(tmp_path / "bad.yaml", config), "-n", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "results" / "runs").exists()


def tiny_grid_config(tmp_path: Path) -> dict:
    fmnist_dir = write_fashion_mnist(tmp_path / "fmnist")
    fast = {"epochs": 1, "batch_size": 16, "lr": 3e-3, "head_lr": 1e-2}
    return {
        "data": {"root": str(SHARED_DATA), "fashion_mnist": str(fmnist_dir)},
        "method_config_dir": str(REPO_ROOT / "config" / "methods"),
        "seeds": [0, 1],
        "methods": [
            "linear_probe",
            "full_ft",
            "full_ft+ts",
            "lp_ft",
            "label_smoothing",
            "full_ft@ivon",
            "full_ft@ivon+ts",
        ],
        "ensembles": ["full_ft"],
        # IVON moves a weight by lr * clip_radius (1e-6): the AdamW rates / 1e-6.
        "hparams": {"full_ft@ivon": {"lr": 3000.0, "head_lr": 10000.0, "eval_samples": 3}},
        "runtime": {"device": "cpu"},
        "tasks": {
            "fmnist": {
                "backbones": ["tiny_cnn.random"],
                "options": {"verify_counts": False},
                "hparams": {"*": fast},
            },
            "sst2": {
                "backbones": ["tiny_bert.random"],
                "limits": {"max_train": 96, "max_val": 48, "max_eval": 48},
                "hparams": {"*": fast},
            },
        },
    }


@pytest.mark.real_data
@pytest.mark.slow
def test_tiny_grid_end_to_end(tmp_path, shared_data):
    config = tiny_grid_config(tmp_path)
    config_file = write_config(tmp_path / "tiny.yaml", config)
    snakemake(tmp_path, config_file, "--cores", "2")

    # Every cell wrote predictions, run.json and schema-valid metrics.json.
    runs = sorted((tmp_path / "results" / "runs").glob("*/*/*/*/metrics.json"))
    assert len(runs) == 2 * (7 * 2 + 1)
    run = json.loads((runs[0].parent / "run.json").read_text())
    for key in ("settings", "config_hash", "git", "versions", "hardware", "wall_seconds", "memory"):
        assert key in run
    # Fit jobs keep freed host memory for reuse (docs/performance.md), and say so.
    fitted = json.loads(
        next(r for r in runs if r.parts[-3:-1] == ("full_ft", "seed0"))
        .with_name("run.json")
        .read_text()
    )
    assert fitted["hardware"]["host_allocator"] in (
        "glibc, freed memory kept",
        "set by the environment",
        "system default",
    )
    if platform.libc_ver()[0] == "glibc" and not any(
        k.startswith(("MALLOC_", "GLIBC_TUNABLES")) for k in os.environ
    ):
        assert fitted["hardware"]["host_allocator"] == "glibc, freed memory kept"

    table = pd.read_parquet(tmp_path / "results" / "tables" / "runs.parquet")
    assert set(table.method) == {
        "linear_probe",
        "full_ft",
        "full_ft+ts",
        "lp_ft",
        "label_smoothing",
        "full_ft+ens",
        "full_ft@ivon",
        "full_ft@ivon+ts",
    }
    assert set(table.task) == {"fmnist", "sst2"}
    assert {"id", "shift", "ood", "val"} <= set(table.split_kind)

    board = pd.read_csv(tmp_path / "results" / "leaderboard" / "leaderboard.csv")
    for task in ("fmnist", "sst2"):
        block = board[board.task == task]
        assert len(block) == 8
        assert block.id_acc_mean.notna().all() and block.id_ece_mean.notna().all()
        assert block.id_aurc_mean.notna().all() and block.ood_auroc_mean.notna().all()
        assert (block[block.method != "full_ft+ens"].n == 2).all()
        # Sorted by in-distribution accuracy, best first.
        assert list(block.id_acc_mean) == sorted(block.id_acc_mean, reverse=True)
        assert block.fit_seconds_mean.notna().all()
    # Temperature scaling never changes a prediction, only its confidence.
    ft = board[(board.task == "sst2") & (board.method == "full_ft")].iloc[0]
    ts = board[(board.task == "sst2") & (board.method == "full_ft+ts")].iloc[0]
    assert ft.id_acc_mean == pytest.approx(ts.id_acc_mean)
    markdown = (tmp_path / "results" / "leaderboard" / "leaderboard.md").read_text()
    assert (
        "### fmnist · tiny_cnn.random" in markdown
        and "full_ft+ens" in markdown
        and " ± " in markdown
    )

    for task, backbone in (("fmnist", "tiny_cnn.random"), ("sst2", "tiny_bert.random")):
        figures = tmp_path / "paper_figures" / task / backbone
        for name in ("reliability", "risk_coverage", "ood_roc"):
            assert (figures / f"{name}.png").stat().st_size > 0
            assert (figures / f"{name}.pdf").stat().st_size > 0
        assert (figures / "index.md").exists()
    assert (
        tmp_path / "paper_figures" / "fmnist" / "tiny_cnn.random" / "shift_severity.png"
    ).exists()

    # Leaderboards in every format, with intervals, and the claims table.
    leaderboard = tmp_path / "results" / "leaderboard"
    for name in ("README.md", "index.html", "leaderboard.tex", "claims.md"):
        assert (leaderboard / name).stat().st_size > 500, name
    for ext in ("md", "tex", "csv"):
        assert (leaderboard / "by_task" / f"sst2__tiny_bert.random.{ext}").exists()
        assert (leaderboard / "by_metric" / f"id_ece.{ext}").exists()
        assert (leaderboard / "selective" / f"sst2__tiny_bert.random.{ext}").exists()
    selective = (leaderboard / "selective" / "sst2__tiny_bert.random.md").read_text()
    assert "acc @ 90% cov. (%)" in selective and "full_ft@ivon" in selective
    ivon_run = json.loads(
        (tmp_path / "results/runs/sst2/tiny_bert.random/full_ft@ivon/seed0/run.json").read_text()
    )
    assert ivon_run["settings"]["hparams"]["optimizer"] == "ivon"
    assert ivon_run["settings"]["hparams"]["ivon"]["eval_samples"] == 3
    summary = pd.read_parquet(tmp_path / "results" / "tables" / "summary.parquet")
    id_acc = summary[(summary.split_kind == "id") & (summary.metric == "cls/acc")]
    assert id_acc.ci_low.notna().all() and (id_acc.ci_low <= id_acc["mean"] + 1e-12).all()
    assert set(id_acc.reference) == {"full_ft"}
    claims = (leaderboard / "claims.md").read_text()
    assert "| ts_reduces_ece |" in claims and "## Not run" in claims
    # Every figure has a caption file.
    sst2_figures = tmp_path / "paper_figures" / "sst2" / "tiny_bert.random"
    for png in sst2_figures.glob("*.png"):
        assert png.with_suffix(".caption.md").exists(), png

    # Everything is up to date: a second run has nothing to do.
    again = snakemake(tmp_path, config_file, "-n", "--quiet", "rules")
    assert "Nothing to be done" in again.stdout + again.stderr

    # Changing one method's hyperparameters reruns exactly that method's cells.
    config["tasks"]["sst2"]["hparams"]["lp_ft"] = {"probe_max_iter": 50}
    changed = snakemake(tmp_path, write_config(config_file, config), "-n", "--quiet", "rules")
    counts = {
        p[0]: int(p[1])
        for p in (line.split() for line in changed.stdout.splitlines())
        if len(p) == 2 and p[1].isdigit()
    }
    assert counts["fit"] == 2 and counts.get("posthoc", 0) == 0

    config["tasks"]["sst2"]["hparams"].pop("lp_ft")
    write_config(config_file, config)

    # Report settings re-render tables only.
    config["report"] = {"bootstrap_samples": 200}
    changed = snakemake(tmp_path, write_config(config_file, config), "-n", "--quiet", "rules")
    planned = {p[0] for p in (line.split() for line in changed.stdout.splitlines()) if len(p) == 2}
    assert {"leaderboards", "claims"} <= planned
    assert not planned & {"fit", "posthoc", "ensemble", "score", "features"}, planned

    # Tables and figures are rebuilt from stored predictions alone, without any fit.
    for generated in ("results/tables", "results/leaderboard", "paper_figures"):
        shutil.rmtree(tmp_path / generated)
    rebuilt = snakemake(tmp_path, config_file, "--cores", "2", "reports")
    log = rebuilt.stdout + rebuilt.stderr
    assert "rule fit:" not in log and "rule score:" not in log and "rule features:" not in log
    assert (tmp_path / "results" / "leaderboard" / "claims.md").exists()
    assert (tmp_path / "paper_figures" / "fmnist" / "tiny_cnn.random" / "reliability.png").exists()

    # The HTML report builds from the finished run, with every figure and the leaderboards.
    snakemake(tmp_path, config_file, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 10_000

    # After a partial run, `bench report` renders what exists and names what is missing.
    lost = tmp_path / "results" / "runs" / "sst2" / "tiny_bert.random" / "lp_ft" / "seed1"
    shutil.rmtree(lost)
    log = (
        tmp_path / "results" / "logs" / "fit" / "sst2" / "tiny_bert.random" / "lp_ft" / "seed1.log"
    )
    log.write_text("RuntimeError: simulated failure\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    partial = subprocess.run(
        [sys.executable, "-m", "bench", "report", "--config", str(config_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert partial.returncode == 0, partial.stderr[-3000:]
    cells = pd.read_csv(tmp_path / "results" / "tables" / "cells.csv", dtype=str)
    failed = cells[cells.status == "failed"]
    assert failed[["task", "method", "seed"]].values.tolist() == [["sst2", "lp_ft", "1"]]
    assert "simulated failure" in failed.reason.iloc[0]
    by_task = tmp_path / "results" / "leaderboard" / "by_task" / "sst2__tiny_bert.random.md"
    assert "lp_ft: 1/2 runs (1: failed)" in by_task.read_text()
    assert (tmp_path / "results" / "leaderboard" / "claims.md").exists()
