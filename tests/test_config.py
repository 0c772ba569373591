"""Grid validation: every bad config fails before any job, on one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, SHARED_DATA

from bench.config import Cell, ConfigError, load_grid, load_grid_file, validate_schema
from bench.methods import list_methods

DEFAULT = REPO_ROOT / "config" / "config.yaml"


def base_config(tmp_path: Path | None = None) -> dict:
    config = yaml.safe_load(DEFAULT.read_text())
    config["data"]["root"] = str(SHARED_DATA)
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    return config


def error_of(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_grid(config)
    message = str(info.value)
    assert "\n" not in message, "config errors are one line"
    return message


@pytest.mark.real_data
def test_default_grid_expands_to_every_cell(shared_data):
    notes = []
    grid = load_grid(base_config(), log=notes.append)
    config = grid.config
    assert not grid.skipped and not notes
    expected = sum(len(b["backbones"]) for b in config["tasks"].values())
    expected *= len(config["methods"]) * len(config["seeds"])
    assert len(grid.cells) == expected
    assert len(config["seeds"]) >= 3
    assert grid.ensembles() == [(t, b, "full_ft") for t, b in grid.task_backbones()]


def test_schema_fills_defaults_everywhere():
    config = validate_schema(
        {"methods": ["full_ft"], "tasks": {"sst2": {"backbones": ["minilm_l6"]}}}
    )
    assert config["seeds"] == [0, 1, 2]
    assert config["runtime"] == {
        "device": "auto",
        "precision": "auto",
        "eval_batch_size": 256,
        "data_workers": "auto",
        "decode": "auto",
        "compile": False,
        "checkpoint_every": 1000,
    }
    assert config["tasks"]["sst2"]["limits"]["max_train"] is None
    assert config["tasks"]["sst2"]["hparams"] == {}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["tasks"].update(imagenet_x={"backbones": ["minilm_l6"]}),
            "tasks.imagenet_x: unknown task; valid choices: banking77, cifar10, cifar100,",
        ),
        (
            lambda c: c["tasks"]["sst2"].update(backbones=["bert_xxl"]),
            "tasks.sst2.backbones[0]: unknown backbone 'bert_xxl'; valid choices:",
        ),
        (
            lambda c: c["tasks"]["sst2"].update(backbones=["effnet_lite0.imagenet"]),
            "is a vision backbone but sst2 is a text task; valid choices: hf_bert_base_uncased",
        ),
        (
            lambda c: c["methods"].append("bayes_magic"),
            "methods[6]: unknown method 'bayes_magic'; valid choices: ",
        ),
        (
            lambda c: c["methods"].append("full_ft+platt"),
            "unknown modifier 'platt' in method 'full_ft+platt'; valid modifiers: dor, ts, wise",
        ),
        (lambda c: c["methods"].append("Full-FT"), "methods.6: 'Full-FT' does not match"),
        (lambda c: c.update(seeds=[0, "one"]), "seeds.1: 'one' is not of type 'integer'"),
        (
            lambda c: c["runtime"].update(precision="fp8"),
            "runtime.precision: 'fp8' is not allowed; valid choices: ['auto', 'bf16', 'fp32']",
        ),
        (
            lambda c: c["tasks"]["sst2"]["limits"].update(max_train=0),
            "tasks.sst2.limits.max_train: 0 is less than the minimum of 1",
        ),
        (lambda c: c.update(sedes=[1]), "<top level>: Additional properties are not allowed"),
        (
            lambda c: c["hparams"].update(full_ft={"learning_rate": 1}),
            "hparams.full_ft.learning_rate: unknown hyperparameter; valid: batch_size, epochs",
        ),
        (
            lambda c: c["tasks"]["sst2"]["hparams"].update(full_ftt={"lr": 1}),
            "tasks.sst2.hparams.full_ftt: unknown method; valid: '*'",
        ),
        (
            lambda c: c.update(ensembles=["lp_ft+ts+ts"]),
            "ensembles: 'lp_ft+ts+ts' is not in methods",
        ),
        (lambda c: c.update(seeds=[0]), "ensembles: 'full_ft' needs at least 2 seeds"),
        (
            lambda c: c["backbone_options"].update(resnet={"image_size": 64}),
            "backbone_options.resnet: unknown backbone",
        ),
        (
            lambda c: c["tasks"]["fmnist"]["options"].update(ood_classes=["hat"]),
            "tasks.fmnist.options:",
        ),
        (
            lambda c: c["data"].update(root="/nonexistent/data"),
            "data.root: /nonexistent/data is not a directory",
        ),
        # A "*" key no method of the grid has: before, it was dropped without a word.
        (
            lambda c: c["tasks"]["sst2"]["hparams"]["*"].update(epoch=3),
            "tasks.sst2.hparams.*.epoch: no method of the grid (full_ft, label_smoothing, "
            "linear_probe, lp_ft) has this hyperparameter; valid: ",
        ),
        (
            lambda c: (
                c["methods"].append("full_ft@ivon"),
                c["tasks"]["sst2"]["hparams"]["*"].update(train_samples=2),
            ),
            "tasks.sst2.hparams.*.train_samples: no method of the grid (full_ft, label_smoothing, "
            "linear_probe, lp_ft) has this hyperparameter; IVON's settings go under "
            "hparams.<method>@ivon",
        ),
        # Before, leaderboards quietly had no significance marks.
        (
            lambda c: c.update(reference_method="ful_ft"),
            "reference_method: unknown method 'ful_ft'; valid choices: ",
        ),
        # Integers written as floats: range() in the job, run folders named seed0.0.
        (
            lambda c: c["hparams"]["full_ft"].update(batch_size=32.0),
            "hparams.full_ft.batch_size: 32.0 is not of type 'integer'",
        ),
        (lambda c: c.update(seeds=[0.0, 1.0]), "seeds.0: 0.0 is not of type 'integer'"),
        (
            lambda c: c["tasks"]["sst2"]["limits"].update(max_train=400.0),
            "tasks.sst2.limits.max_train: 400.0 is not of type 'integer'",
        ),
        # Backbone options: the builder would raise TypeError in the first job.
        (
            lambda c: c["backbone_options"]["minilm_l6"].update(img_size=64),
            "backbone_options.minilm_l6: Additional properties are not allowed ('img_size' "
            "was unexpected); valid keys: ",
        ),
        (
            lambda c: c["backbone_options"]["effnet_lite0.imagenet"].update(max_length=64),
            "backbone_options.effnet_lite0.imagenet.max_length: effnet_lite0.imagenet has no "
            "such option; valid: freeze_bn_stats, hflip, image_size, weights_path",
        ),
        (
            lambda c: c["backbone_options"]["effnet_lite0.imagenet"].update(image_size=-5),
            "backbone_options.effnet_lite0.imagenet.image_size: -5 is less than the minimum of 8",
        ),
        # Rules between hyperparameters, which only the fit job knew before.
        (
            lambda c: c["hparams"]["full_ft"].update(grad_accumulation=64),
            "hparams.full_ft.grad_accumulation: 64 micro-batches cannot split a batch of 32 "
            "examples; use at most batch_size",
        ),
        (
            lambda c: c["hparams"].update(label_smoothing={"label_smoothing": 0.0}),
            "hparams.label_smoothing.label_smoothing: must be in (0, 1) for the "
            "label_smoothing method, got 0.0 (0 is full_ft)",
        ),
        (
            # The grid set swag_snapshots (the rank is the defaults file's 20): named.
            lambda c: (
                c["methods"].append("swag"),
                c["hparams"].update(swag={"swag_snapshots": 5}),
            ),
            "hparams.swag.swag_snapshots: SWAG needs 2 <= swag_rank <= swag_snapshots, got rank 20 "
            "and 5 snapshots",
        ),
        (
            lambda c: (
                c["methods"].append("swag"),
                c["hparams"].update(swag={"swag_rank": 10, "swag_snapshots": 5}),
            ),
            "hparams.swag.swag_rank: SWAG needs 2 <= swag_rank <= swag_snapshots, got rank 10 "
            "and 5 snapshots",
        ),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(mutate, expected):
    config = base_config()
    mutate(config)
    assert expected in error_of(config)


def test_a_reference_method_outside_the_grid_is_noted_not_an_error():
    """--config 'methods=[...]' on a grid that compares with full_ft still runs."""
    config = base_config()
    config.update(methods=["linear_probe", "lp_ft"], ensembles=[])
    notes = []
    load_grid(config, log=notes.append)
    assert notes == [
        "reference_method full_ft is not in this grid (linear_probe, lp_ft): the leaderboards "
        "mark no method as significantly better or worse"
    ]


@pytest.mark.parametrize(
    ("method", "overrides", "expected"),
    [
        (
            "clip_adapter",
            {"epochs": 1},
            [
                (
                    ("epochs", "warmup_epochs"),
                    "1 epoch(s) with warmup_epochs 1 train only at warmup_lr (1e-05), never at "
                    "lr; use more epochs than warmup_epochs, or warmup_epochs: 0",
                )
            ],
        ),
        ("clip_adapter", {"epochs": 1, "warmup_epochs": 0}, []),
        ("tip_adapter_f", {"epochs": 1}, []),  # no warm-up by default
        (
            "coop",
            {"epochs": 2.5},
            [(("epochs",), "feature-cache adapters train whole epochs, got 2.5")],
        ),
        (
            "zero_shot",
            {"templates": ["a photo of a {}.", "a {} photo of a {}."]},
            [
                (
                    ("templates",),
                    "each template needs exactly one '{}' for the class name, got "
                    "['a {} photo of a {}.']",
                )
            ],
        ),
        ("full_ft", {"grad_accumulation": 32, "batch_size": 32}, []),
    ],
)
def test_rules_between_hyperparameters(method, overrides, expected):
    from bench.config import method_defaults
    from bench.methods.hparam_rules import hparam_problems

    hparams = {**method_defaults(method, REPO_ROOT / "config" / "methods"), **overrides}
    assert hparam_problems(method, hparams) == expected


def test_every_methods_defaults_keep_the_rules():
    from bench.config import method_defaults
    from bench.methods.hparam_rules import hparam_problems

    for method in list_methods():
        assert (
            hparam_problems(method, method_defaults(method, REPO_ROOT / "config" / "methods")) == []
        )


def test_an_adapter_schedule_that_is_all_warm_up_stops_the_grid():
    config = yaml.safe_load((REPO_ROOT / "config" / "fewshot_offline.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    config["tasks"]["fmnist_4shot"]["hparams"] = {"clip_adapter": {"epochs": 1}}
    assert error_of(config).startswith(
        "tasks.fmnist_4shot.hparams.clip_adapter.epochs: 1 epoch(s) with warmup_epochs 1 train "
        "only at warmup_lr"
    )


def test_vision_language_method_on_plain_backbone_is_impossible(monkeypatch):
    from bench.methods import METHODS

    monkeypatch.setitem(METHODS._metadata["lp_ft"], "vision_language", True)
    message = error_of(base_config())
    assert "lp_ft needs a vision-language backbone" in message
    assert "use a clip_* backbone" in message


def test_missing_task_data_is_left_out_on_one_line(tmp_path):
    config = base_config()
    config["data"]["root"] = str(tmp_path)  # exists but holds no nlp/
    notes = []
    grid = load_grid(config, log=notes.append)
    assert set(grid.skipped) == {"clinc150", "sst2"}
    assert len(notes) == 1 and notes[0].startswith("left out for missing data: clinc150 (")
    assert grid.tasks == ["fmnist", "wordnet_supersense"]
    config["on_missing_data"] = "error"
    assert "tasks.clinc150: data file" in error_of(config)


def test_hparams_precedence_and_cell_hash():
    config = base_config()
    config["hparams"] = {"full_ft": {"epochs": 7, "batch_size": 8}}
    config["tasks"]["sst2"]["hparams"] = {
        "*": {"epochs": 5, "l2_grid": [1.0]},
        "full_ft": {"lr": 0.5},
    }
    grid = load_grid(config)
    full = grid.method_hparams("sst2", "full_ft")
    assert (full["epochs"], full["batch_size"], full["lr"]) == (5, 8, 0.5)  # task "*" beats grid
    assert grid.method_hparams("sst2", "linear_probe")["l2_grid"] == [1.0]
    assert "epochs" not in grid.method_hparams("sst2", "linear_probe")
    cell = Cell("sst2", "minilm_l6", "full_ft", 0)
    same = load_grid(copy.deepcopy(config))
    assert grid.cell_hash(cell) == same.cell_hash(cell)
    config["tasks"]["sst2"]["hparams"]["full_ft"]["lr"] = 0.25
    changed = load_grid(config)
    assert changed.cell_hash(cell) != grid.cell_hash(cell)
    # Other cells are untouched by a change that does not concern them.
    other = Cell("sst2", "minilm_l6", "linear_probe", 0)
    assert changed.cell_hash(other) == grid.cell_hash(other)


def test_every_shipped_config_validates(shared_data, tmp_path):
    from test_paper_grids import placeholder_tree

    shipped = [
        *(REPO_ROOT / "config").glob("*.yaml"),
        *(REPO_ROOT / "config" / "paper").glob("*.yaml"),
    ]
    grids = [p for p in sorted(shipped) if p.name != "claims.yaml"]
    assert len(grids) >= 8  # claims.yaml is not a grid: test_leaderboards checks it
    for path in grids:
        config = yaml.safe_load(path.read_text())
        root = SHARED_DATA
        if config.get("on_missing_data") == "error":  # cluster grids: data not here
            root = tmp_path / path.stem
            placeholder_tree(root, config)
        config.setdefault("data", {})["root"] = str(root)
        assert load_grid(config).cells, path
    assert load_grid_file(DEFAULT).cells


def test_base_of_a_posthoc_method_is_run_even_when_not_listed():
    config = base_config()
    config["methods"] = ["lp_ft+ts"]
    config["ensembles"] = []
    grid = load_grid(config)
    assert grid.runs(Cell("sst2", "minilm_l6", "lp_ft", 0))
    assert grid.runs(Cell("sst2", "minilm_l6", "lp_ft+ts", 2))
    assert not grid.runs(Cell("sst2", "minilm_l6", "full_ft", 0))
    assert not grid.runs(Cell("sst2", "minilm_l6", "lp_ft", 9))


def test_every_hyperparameter_has_a_valid_range():
    """hparams.schema.yaml covers every key of every defaults file, and every published
    default is inside its own range."""
    from jsonschema import Draft202012Validator

    from bench.config import HPARAMS_SCHEMA_PATH, method_defaults

    schema = yaml.safe_load(HPARAMS_SCHEMA_PATH.read_text())
    validator = Draft202012Validator(schema)
    for method in list_methods():
        defaults = method_defaults(method, REPO_ROOT / "config" / "methods")
        missing = sorted(set(defaults) - set(schema["properties"]))
        assert not missing, f"{method}: add {missing} to workflow/schemas/hparams.schema.yaml"
        assert not list(validator.iter_errors(defaults)), method
