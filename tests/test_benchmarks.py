"""The adapter-cost and IVON-step benchmarks run and print their JSON figures (smoke
tests, not timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from conftest import REPO_ROOT


def test_bench_adapters_prints_extraction_and_method_times(tmp_path, shared_data):
    config = {
        "data": {"root": str(shared_data)},
        "method_config_dir": str(REPO_ROOT / "config" / "methods"),
        "seeds": [0],
        "methods": ["clap", "tip_adapter"],
        "hparams": {"clap": {"epochs": 5, "train_views": 2}, "tip_adapter": {"train_views": 2}},
        "runtime": {"device": "cpu"},
        "tasks": {
            "fmnist_1shot": {
                "task": "fmnist",
                "backbones": ["clip_tiny.random"],
                "limits": {"max_eval": 16},
                "options": {"shots": 1},
            }
        },
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_adapters.py"), "--config",
         str(path), "--task", "fmnist_1shot", "--threads", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    extraction = records[0]
    assert extraction["what"] == "feature_extraction" and extraction["train_views"] == 2
    assert extraction["images"] == 8 * (1 + 1 + 2) + 16 * 15  # train, val, 2 views; 15 eval splits
    methods = {r["method"]: r for r in records if r["what"] == "method"}
    assert set(methods) == {"clap", "tip_adapter"}
    summary = records[-1]
    assert summary["what"] == "summary" and summary["methods_fraction_of_extraction"] > 0


def test_bench_ivon_prints_both_optimizers_step_times():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_ivon.py"), "--backbone",
         "tiny_bert.random", "--batch-size", "8", "--steps", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r.get("optimizer") for r in records[:2]] == ["adamw", "ivon"]
    assert all(r["seconds_per_step"] > 0 and r["trained_parameters"] > 0 for r in records[:2])
    assert records[-1]["summary"] == "ivon_vs_adamw" and records[-1]["ivon_step_overhead"] > 0
