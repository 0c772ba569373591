"""The command line: listing, validation and its one-line config errors."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from conftest import REPO_ROOT, SHARED_DATA

from bench.backbones import list_backbones
from bench.methods import list_methods
from bench.tasks import list_tasks


def bench(*args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)  # fmt: skip


def test_list_shows_every_registered_name():
    for what, names in (("tasks", list_tasks()), ("backbones", list_backbones()),
                        ("methods", list_methods())):  # fmt: skip
        out = bench("list", what)
        assert out.returncode == 0, out.stderr
        listed = [line.split()[0] for line in out.stdout.splitlines() if not line.startswith("+")]
        assert listed == names
    metrics = bench("list", "metrics", "cal/*").stdout
    assert "cal/ece " in metrics and "lower" in metrics
    assert "+ts" in bench("list", "methods").stdout


def test_validate_counts_cells_and_reports_bad_configs_on_one_line(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(config))
    out = bench("validate", "--config", str(good))
    assert out.returncode == 0 and "OK, 72 cells" in out.stdout, out.stderr
    config["seeds"] = [0, -1]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = bench("validate", "--config", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip() == "config error: seeds.1: -1 is less than the minimum of 0"


def test_fit_refuses_a_cell_outside_the_grid(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    out = bench("fit", "--config", str(path), "--task", "sst2", "--backbone", "minilm_l6",
                "--method", "full_ft", "--seed", "7", "--out", str(tmp_path / "cell"))  # fmt: skip
    assert out.returncode == 2
    assert "cell sst2/minilm_l6/full_ft/seed7 is not in the grid" in out.stderr
    assert not (tmp_path / "cell").exists()
