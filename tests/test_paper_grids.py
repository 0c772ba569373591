"""The cluster grids in config/paper/: they validate, and their DAGs have the expected jobs.

The real datasets are not here, so the dry runs point ``data.root`` at a placeholder
tree holding every path the tasks' ``required_files`` name (what Snakemake checks while
building the DAG); the loaders themselves are tested on fixture trees elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from test_workflow import snakemake, write_config

from bench.tasks import DataPaths, task_metadata

pytestmark = pytest.mark.workflow


def placeholder_tree(root: Path, config: dict) -> None:
    """Creates every file and folder the grid's tasks require (empty)."""
    paths = DataPaths(root=root)
    for task, block in config["tasks"].items():
        required = task_metadata(block.get("task", task))["required_files"]
        for path in required(paths, **block.get("options", {})):
            path = Path(path)
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)


def paper_config(name: str, root: Path) -> dict:
    config = yaml.safe_load((REPO_ROOT / "config" / name).read_text())
    config["data"]["root"] = str(root)
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    return config


def rule_counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # CaRot's grid: ImageNet x ViT-B/16 x 3 seeds; zero_shot, linear_probe and lp_ft
        # fit plainly, full_ft, flyp and carot keep their weights for +wise; six +ts; a
        # full_ft ensemble; the per-alpha table.
        (
            "paper/imagenet_shifts.yaml",
            {
                "features": 1,
                "fit": 9,
                "fit_keeping_weights": 9,
                "wise_ft": 9,
                "posthoc": 18,
                "ensemble": 1,
                "score": 46,
                "wise_ft_table": 1,
            },
        ),
        # Zero-shot (+ts) on the five backbones whose published numbers claims.yaml checks.
        (
            "paper/imagenet_zero_shot.yaml",
            {"features": 5, "fit": 5, "posthoc": 5, "score": 10},
        ),
        # 11 datasets x ViT-B/16; zero_shot and linear_probe and their +ts x 3 seeds.
        (
            "paper/fewshot_base2new.yaml",
            {"features": 11, "fit": 66, "posthoc": 66, "score": 132},
        ),
        # 11 datasets x 5 shot counts (tasks named <dataset>_<k>shot) x RN50 and ViT-B/16;
        # zero-shot, linear probe and five adapters x 3 seeds, all on the feature cache.
        (
            "paper/fewshot.yaml",
            {"features": 110, "fit": 110 * 7 * 3, "posthoc": 0, "score": 110 * 7 * 3},
        ),
        # DOR's grid: 11 base-to-new datasets and ImageNet domain generalisation x
        # ViT-B/16; zero-shot, CoOp, KgCoOp, each with and without +dor, x 3 seeds.
        (
            "paper/base2new.yaml",
            {"features": 12, "fit": 12 * 5 * 3, "posthoc": 0, "score": 12 * 5 * 3},
        ),
        # 6 tasks x 1 backbone; 5 fine-tuning methods and 2 +ts x 3 seeds; a full_ft
        # ensemble per task. No feature cache: every method fine-tunes.
        (
            "paper/uap_cluster.yaml",
            {"features": 0, "fit": 90, "posthoc": 36, "ensemble": 6, "score": 132},
        ),
    ],
)
def test_paper_grid_dry_runs_with_the_expected_jobs(tmp_path, name, expected):
    root = tmp_path / "data"
    config = paper_config(name, root)
    placeholder_tree(root, config)
    result = snakemake(
        tmp_path, write_config(tmp_path / Path(name).name, config), "-n", "--quiet", "rules"
    )
    counts = rule_counts(result.stdout)
    for rule, count in expected.items():
        assert counts.get(rule, 0) == count, (rule, counts)
    assert counts.get("ensemble", 0) == expected.get("ensemble", 0)
    assert counts["aggregate"] == 1


def test_paper_grid_with_a_missing_folder_stops_at_dag_build(tmp_path):
    root = tmp_path / "data"
    config = paper_config("paper/imagenet_shifts.yaml", root)
    placeholder_tree(root, config)
    (root / "imagenet-a").rmdir()
    result = snakemake(
        tmp_path, write_config(tmp_path / "c.yaml", config), "-n", "--quiet", check=False
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("config error:") and "imagenet-a" in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_documented_command_line_overrides(tmp_path):
    """The README's `--config 'data={root: PATH}' 'seeds=[...]'` form works as documented."""
    root = tmp_path / "data"
    config = paper_config("paper/imagenet_shifts.yaml", tmp_path / "elsewhere")
    placeholder_tree(root, config)
    config_file = write_config(tmp_path / "grid.yaml", config)
    result = snakemake(
        tmp_path, config_file, "-n", "--quiet", "rules",
        "--config", f"data={{root: {root}}}", "seeds=[0,1]",
    )  # fmt: skip
    counts = rule_counts(result.stdout)
    # 2 seeds x 3 plain fits (zero_shot, linear_probe, lp_ft), and 3 that keep weights.
    assert counts["fit"] == 2 * 3 and counts["fit_keeping_weights"] == 2 * 3
