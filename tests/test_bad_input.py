"""Every row of docs/errors.md: each bad input gives one line naming the key or file and
the fix, at the earliest point it can be seen (Snakemake's DAG build where possible),
with no traceback and nothing written under results/runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from fixtures_data import tiny_fmnist_grid

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]
DOC = REPO_ROOT / "docs" / "errors.md"


def base_config(tmp_path: Path) -> dict:
    """A valid vision grid on the Fashion-MNIST fixture (no ../shared/data needed)."""
    return tiny_fmnist_grid(
        tmp_path, ["linear_probe", "full_ft"], {"*": {"epochs": 1, "batch_size": 16}}, (0, 1)
    )


def run_snakemake(tmp_path: Path, config: dict, *args: str, env: dict | None = None):
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(config_file), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        timeout=600,
    )


def assert_one_line(result, expected: str) -> str:
    """The command failed, its last line starts with ``expected``, and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(expected), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return last


# (id in docs/errors.md, change to the valid grid, start of the message)
DAG_CASES = [
    (
        "unknown-task",
        lambda c: c["tasks"].update(fmnsit=c["tasks"].pop("fmnist")),
        "config error: tasks.fmnsit: unknown task; valid choices: ",
    ),
    (
        "unknown-backbone",
        lambda c: c["tasks"]["fmnist"].update(backbones=["tiny_cnn.randon"]),
        "config error: tasks.fmnist.backbones[0]: unknown backbone 'tiny_cnn.randon'",
    ),
    (
        "unknown-method",
        lambda c: c.update(methods=["full_ft", "ful_ft+ts"]),
        "config error: methods[1]: unknown method 'ful_ft'",
    ),
    (
        "modality-mismatch",
        lambda c: c["tasks"]["fmnist"].update(backbones=["tiny_bert.random"]),
        "config error: tasks.fmnist.backbones[0]: tiny_bert.random is a text backbone but "
        "fmnist is a vision task",
    ),
    (
        "vision-language-method",
        lambda c: c.update(methods=["zero_shot"]),
        "config error: methods[0]: zero_shot needs a vision-language backbone but "
        "tasks.fmnist.backbones[0] is tiny_cnn.random",
    ),
    (
        "negative-lr",
        lambda c: c["tasks"]["fmnist"]["hparams"].update(full_ft={"lr": -1e-4}),
        "config error: tasks.fmnist.hparams.full_ft.lr: -0.0001 is less than or equal to the "
        "minimum of 0",
    ),
    (
        "wrong-type-hparam",
        # YAML 1.1 reads 1e-2 (no dot) as a string.
        lambda c: c.update(hparams={"full_ft": yaml.safe_load("weight_decay: 1e-2")}),
        "config error: hparams.full_ft.weight_decay: '1e-2' is not of type 'number'",
    ),
    (
        "unknown-hparam",
        lambda c: c.update(hparams={"full_ft": {"learning_rate": 1e-4}}),
        "config error: hparams.full_ft.learning_rate: unknown hyperparameter; valid: ",
    ),
    (
        "zero-seeds",
        lambda c: c.update(seeds=[]),
        "config error: seeds: [] should be non-empty (Training seeds",
    ),
    (
        "ensemble-one-seed",
        lambda c: c.update(seeds=[0], ensembles=["full_ft"]),
        "config error: ensembles: 'full_ft' needs at least 2 seeds",
    ),
    (
        "missing-data-root",
        lambda c: c["data"].update(root="/no/such/root"),
        "config error: data.root: /no/such/root is not a directory",
    ),
    (
        "incomplete-data-root",
        lambda c: (c.update(on_missing_data="error"), c["data"].update(fashion_mnist="/no/fm")),
        "config error: tasks.fmnist: data file /no/fm/",
    ),
    (
        "missing-weights-path",
        lambda c: (
            c["tasks"]["fmnist"].update(backbones=["effnet_lite0.imagenet"]),
            c.update(backbone_options={"effnet_lite0.imagenet": {"weights_path": "/no/w.pt"}}),
        ),
        "config error: backbone_options.effnet_lite0.imagenet.weights_path: /no/w.pt does not "
        "exist",
    ),
    (
        "too-many-shots",
        lambda c: c["tasks"].update(
            imagenet={"backbones": ["clip_tiny.random"], "options": {"shots": 1000}}
        ),
        "config error: tasks.imagenet.options: task 'imagenet': option 'shots' is 1000, but the "
        "smallest ImageNet-1k class has 732 training images; use shots <= 732",
    ),
    (
        "unsupported-shots",
        lambda c: c["tasks"].update(
            fewshot_eurosat={"backbones": ["clip_tiny.random"], "options": {"shots": 32}}
        ),  # fmt: skip
        "config error: tasks.fewshot_eurosat.options: task 'fewshot_eurosat': option 'shots' "
        "must be null (all of train) or one of 1, 2, 4, 8, 16, got 32",
    ),
    (
        "context-source-without-context",
        lambda c: (
            c.update(methods=["uap"]),
            c["tasks"]["fmnist"]["hparams"].update(uap={"context_source": "task"}),
        ),
        "config error: tasks.fmnist: uap's context_source 'task': fmnist has no context set; "
        "use augment (strong augmentations of the training inputs) or another task",
    ),
    (
        "context-source-missing-data",
        lambda c: (
            c.update(methods=["uap_map"]),
            c["tasks"]["fmnist"]["hparams"].update(uap_map={"context_source": "cifar100"}),
        ),
        "config error: tasks.fmnist: uap_map's context_source 'cifar100': its data file ",
    ),
    (
        "wise-without-zero-shot-head",
        lambda c: (
            c.update(methods=["full_ft", "full_ft+wise"]),
            c["tasks"]["fmnist"].update(backbones=["clip_tiny.random"]),
        ),
        "config error: tasks.fmnist: full_ft+wise interpolates with the zero-shot head, but "
        "full_ft's head_init is 'random'; set hparams.full_ft.head_init: zero_shot",
    ),
    (
        "wise-on-a-method-without-weights",
        lambda c: (
            c.update(methods=["linear_probe+wise"]),
            c["tasks"]["fmnist"].update(backbones=["clip_tiny.random"]),
        ),
        "config error: methods[0]: method 'linear_probe+wise': +wise interpolates fine-tuned "
        "CLIP weights, which linear_probe does not produce; valid methods: carot, flyp, full_ft",
    ),
    (
        "wise-after-a-prediction-modifier",
        lambda c: c.update(methods=["flyp+ts+wise"]),
        "config error: methods[0]: method 'flyp+ts+wise': +wise acts on the fine-tuned "
        "weights, so it must come right after the method (flyp+wise+...)",
    ),
    (
        "zero-shot-head-without-text-tower",
        lambda c: c["tasks"]["fmnist"]["hparams"].update(full_ft={"head_init": "zero_shot"}),
        "config error: tasks.fmnist: full_ft's head_init 'zero_shot' needs a vision-language "
        "backbone but tiny_cnn.random has no text tower; use head_init random for this task",
    ),
    (
        "unknown-task-of-a-variant",
        lambda c: c["tasks"].update(fmnist_4shot={**c["tasks"].pop("fmnist"), "task": "fmnsit"}),
        "config error: tasks.fmnist_4shot.task: unknown task 'fmnsit'; valid choices: ",
    ),
    (
        "bad-task-name",
        lambda c: c["tasks"].update({"fmnist-4shot": c["tasks"].pop("fmnist")}),
        "config error: tasks: 'fmnist-4shot' does not match '^[a-z0-9_]+$'",
    ),
    (
        "bad-shots",
        lambda c: c["tasks"]["fmnist"]["options"].update(shots=0),
        "config error: tasks.fmnist.options: task 'fmnist': option 'shots' must be null (all "
        "of train) or a positive number of training images per class",
    ),
    (
        "dor-on-a-method-without-prompts",
        lambda c: c.update(methods=["full_ft+dor"]),
        "config error: methods[0]: method 'full_ft+dor': +dor regularises the training of "
        "coop, kgcoop, not of full_ft",
    ),
    (
        "dor-without-wordnet",
        lambda c: (
            c.update(methods=["coop+dor"]),
            c["tasks"]["fmnist"].update(backbones=["clip_tiny.random"]),
            c["tasks"]["fmnist"]["hparams"]["*"].update(epochs=2),  # one more than the warm-up
            c["data"].update(wordnet="/nonexistent/wordnet"),
        ),
        "config error: methods: coop+dor draws outlier words from WordNet, but "
        "/nonexistent/wordnet/data.noun does not exist",
    ),
    (
        "search-value-of-another-method",
        lambda c: c["tasks"]["fmnist"]["hparams"].update(linear_probe={"search": True}),
        "config error: tasks.fmnist: linear_probe's search True is not valid for it; valid "
        "choices: grid, coop",
    ),
    (
        "optimizer-the-method-cannot-use",
        lambda c: c.update(methods=["swag@ivon"]),
        "config error: methods[0]: method 'swag@ivon': swag does not train with ivon; methods "
        "that do: ",
    ),
    (
        "ivon-set-as-a-plain-hyperparameter",
        lambda c: c["tasks"]["fmnist"]["hparams"].update(full_ft={"optimizer": "ivon"}),
        "config error: tasks.fmnist: full_ft's optimizer is set to 'ivon'; name the method "
        "full_ft@ivon instead",
    ),
    (
        "unknown-ivon-setting",
        lambda c: (
            c.update(methods=["full_ft@ivon"]),
            c.setdefault("hparams", {}).update({"full_ft@ivon": {"hess_init": 0.1}}),
        ),
        "config error: hparams.full_ft@ivon.hess_init: unknown hyperparameter; valid: ",
    ),
    (
        "star-hparam-no-method-has",
        lambda c: c["tasks"]["fmnist"]["hparams"]["*"].update(epoch=3),
        "config error: tasks.fmnist.hparams.*.epoch: no method of the grid (full_ft, "
        "linear_probe) has this hyperparameter; valid: ",
    ),
    (
        "unknown-reference-method",
        lambda c: c.update(reference_method="ful_ft"),
        "config error: reference_method: unknown method 'ful_ft'; valid choices: ",
    ),
    (
        "integer-written-as-float",
        lambda c: c["tasks"]["fmnist"]["hparams"]["*"].update(batch_size=16.0),
        "config error: tasks.fmnist.hparams.*.batch_size: 16.0 is not of type 'integer'",
    ),
    (
        "option-the-backbone-does-not-take",
        lambda c: c.update(backbone_options={"tiny_cnn.random": {"max_length": 64}}),
        "config error: backbone_options.tiny_cnn.random.max_length: tiny_cnn.random has no "
        "such option; valid: image_size, width",
    ),
    (
        "hyperparameters-that-contradict",
        lambda c: c["tasks"]["fmnist"]["hparams"].update(full_ft={"grad_accumulation": 32}),
        "config error: tasks.fmnist.hparams.full_ft.grad_accumulation: 32 micro-batches cannot "
        "split a batch of 16 examples; use at most batch_size",
    ),
    (
        "negative-checkpoint-interval",
        lambda c: c["runtime"].update(checkpoint_every=-1),
        "config error: runtime.checkpoint_every: -1 is less than the minimum of 0",
    ),
]


@pytest.mark.workflow
@pytest.mark.parametrize(("case", "mutate", "expected"), DAG_CASES, ids=[c[0] for c in DAG_CASES])
def test_bad_config_stops_snakemake_before_any_job(tmp_path, case, mutate, expected):
    config = base_config(tmp_path)
    mutate(config)
    # A real run (not -n): nothing may start, and no result folder appears.
    assert_one_line(run_snakemake(tmp_path, config, "--cores", "1"), expected)
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.workflow
@pytest.mark.real_data
def test_hub_weights_missing_offline(tmp_path, shared_data):
    """HF_HUB_OFFLINE=1 with an empty cache: the DAG build names the weights and the fix;
    a dry run lists the problem and still shows the DAG."""
    config = base_config(tmp_path)
    config["tasks"] = {"sst2": {"backbones": ["hf_bert_base_uncased"]}}
    config["data"]["root"] = str(shared_data)
    env = {"HF_HOME": str(tmp_path / "empty_hf_home")}
    last = assert_one_line(
        run_snakemake(tmp_path, config, "--cores", "1", env=env),
        "config error: hf_bert_base_uncased: weights bert-base-uncased are not in the Hugging "
        "Face cache",
    )
    assert "hf download bert-base-uncased" in last and "weights_path" in last
    dry = run_snakemake(tmp_path, config, "-n", env=env)
    assert dry.returncode == 0 and "a real run would stop here" in dry.stderr


def bench_cli(*args: str, cwd: Path):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)},
        timeout=600,
    )


def test_corrupted_predictions_file(tmp_path):
    run_dir = tmp_path / "results" / "runs" / "fmnist" / "tiny_cnn.random" / "full_ft" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text('{"cell": {}, "config_hash": "abc"}')
    (run_dir / "predictions.npz").write_bytes(b"PK\x03\x04 truncated by a failed copy")
    result = bench_cli("score", "--run-dir", str(run_dir), "--out", str(run_dir / "m.json"),
                       cwd=tmp_path)  # fmt: skip
    last = assert_one_line(result, f"corrupt file: {run_dir / 'predictions.npz'} is unreadable")
    assert "delete it and rerun snakemake" in last
    assert not (run_dir / "m.json").exists()


def test_incomplete_data_file_fails_the_job_with_one_line(tmp_path):
    """verify_counts (on by default) compares every file with the published size."""
    config = base_config(tmp_path)
    config["tasks"]["fmnist"]["options"] = {}  # the fixture is far smaller than the real set
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    result = bench_cli(
        "features", "--config", str(tmp_path / "grid.yaml"), "--task", "fmnist",
        "--backbone", "tiny_cnn.random", "--out", str(tmp_path / "f.npz"), cwd=tmp_path,
    )  # fmt: skip
    last = assert_one_line(result, "incomplete data: ")
    assert re.search(r"expected 60000 .* but found \d+; the copy looks incomplete", last), last


def test_every_case_is_documented():
    text = DOC.read_text()
    ids = [c[0] for c in DAG_CASES] + [
        "hub-weights-offline", "corrupt-predictions", "incomplete-data-file", "older-config",
        "diverged", "preempted",
    ]  # fmt: skip
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, f"docs/errors.md lacks rows for {missing}"
