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


def test_validate_checks_what_the_dag_build_checks_beyond_the_config(tmp_path):
    """The claims file and local weights: before, only Snakemake looked at them."""
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    cases = [
        (
            {"report": {"claims": str(tmp_path / "none.yaml")}},
            "config error: report.claims: [Errno 2] No such file or directory",
        ),
        (
            {"backbone_options": {"effnet_lite0.imagenet": {"weights_path": "/no/w.pt"}}},
            "config error: backbone_options.effnet_lite0.imagenet.weights_path: /no/w.pt does "
            "not exist",
        ),
    ]
    for change, message in cases:
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump({**config, **change}))
        out = bench("validate", "--config", str(path))
        assert out.returncode == 2 and out.stderr.startswith(message), out.stderr


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


def test_data_list_shows_what_every_task_reads():
    out = bench("data", "list", "--root", str(SHARED_DATA))
    assert out.returncode == 0, out.stderr
    headers = [line.split()[0] for line in out.stdout.splitlines() if not line.startswith(" ")]
    assert headers == list_tasks()
    assert f"{SHARED_DATA}/imagenet-r  [30000 images]" in out.stdout  # published sizes
    assert f"{SHARED_DATA}/nlp/sentence/stsa.binary.train  [6920" in out.stdout


def test_data_check_reports_complete_missing_and_damaged_copies(tmp_path):
    complete = bench("data", "check", "--task", "sst2", "--root", str(SHARED_DATA))
    assert complete.returncode == 0, complete.stdout + complete.stderr
    assert "sst2: complete" in complete.stdout and "MISSING" not in complete.stdout

    missing = bench("data", "check", "--task", "fewshot_eurosat", "--root", str(tmp_path))
    assert missing.returncode == 1
    assert f"MISSING      {tmp_path}/coop/eurosat/split_zhou_EuroSAT.json" in missing.stdout
    assert "expected counts from:" in missing.stdout

    # A truncated copy of a real file is reported with the count it has.
    sentence = tmp_path / "nlp" / "sentence"
    sentence.mkdir(parents=True)
    for source in (SHARED_DATA / "nlp" / "sentence").iterdir():
        lines = source.read_bytes().splitlines(keepends=True)
        (sentence / source.name).write_bytes(b"".join(lines[:10]))
    wrong = bench("data", "check", "--task", "sst2", "--root", str(tmp_path), "--option",
                  "context=null")  # fmt: skip
    assert wrong.returncode == 1
    assert "WRONG COUNT" in wrong.stdout and "found 10 sentences, expected 6920" in wrong.stdout
    assert "all_wiki_sents" not in wrong.stdout  # the option dropped the context file


def test_data_check_rejects_unknown_tasks_and_bad_options():
    unknown = bench("data", "check", "--task", "imagenet_x", "--root", str(SHARED_DATA))
    assert unknown.returncode != 0 and "unknown task 'imagenet_x'" in unknown.stderr
    bad = bench("data", "check", "--task", "imagenet", "--root", str(SHARED_DATA), "--option",
                "shifts=[v3]")  # fmt: skip
    assert bad.returncode != 0 and "shifts" in bad.stderr and "Traceback" not in bad.stderr
