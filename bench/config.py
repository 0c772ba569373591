"""The experiment grid: validation and expansion into cells, without importing torch.

Snakemake (``workflow/rules/common.smk``) and the CLI both call :func:`load_grid`, so a
bad config fails identically when the DAG is built and when a cell is run by hand:
one line naming the key, the problem and the valid choices.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.backbones import backbone_metadata, list_backbones
from bench.errors import ConfigError
from bench.methods import (
    METHODS,
    fit_stem,
    list_methods,
    method_head,
    method_metadata,
    objective_modifiers,
    split_method_name,
    weights_stem,
)
from bench.registry import UnknownNameError
from bench.tasks import (
    DataPaths,
    list_tasks,
    missing_task_files,
    task_has_context,
    task_metadata,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
ENSEMBLE_SUFFIX = "+ens"
# Runtime keys that never change a result (the resume test shows checkpointing does not),
# left out of the cell hash so changing them reruns nothing.
# Runtime keys that leave a result unchanged (data_workers: crops are seeded per batch),
# or change it as device and precision "auto" do, by rounding (decode, compile): like
# those they are recorded in run.json, not hashed, so a grid moved to a GPU reruns nothing.
RESULT_NEUTRAL_RUNTIME = ("checkpoint_every", "data_workers", "decode", "compile")
# Hyperparameters added after results existed, left out of a cell's settings (and hash)
# while they have the value that reproduces those results, so adding them reran nothing.
# The dataclass defaults equal these, so the fit job builds the same method without them.
_NEW_TRAINING_KEYS = {"optimizer": "adamw", "grad_accumulation": 1}
HASH_NEUTRAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear_probe": {"search": "grid"},
    **{
        m: _NEW_TRAINING_KEYS
        for m in ("full_ft", "label_smoothing", "lp_ft", "l2_sp", "uap", "uap_map", "flyp", "carot")
    },
}
#: Where ``<method>@<optimizer>`` finds the optimiser's defaults (``ivon.yaml``).
OPTIMIZER_CONFIG_DIR = REPO_ROOT / "config" / "optimizers"


@dataclass(frozen=True)
class Cell:
    """One (task, backbone, method, seed) job of the grid."""

    task: str
    backbone: str
    method: str
    seed: int

    @property
    def base_method(self) -> str:
        """The method and its optimiser choice (``full_ft@ivon`` of ``full_ft@ivon+ts``)."""
        return self.method.split("+")[0]

    @property
    def run_dir(self) -> str:
        return f"results/runs/{self.task}/{self.backbone}/{self.method}/seed{self.seed}"


@dataclass
class Grid:
    """A validated config and what it expands to.

    Attributes:
        config: The config with schema defaults filled in.
        cells: Every cell, in a stable order.
        skipped: ``{task: reason}`` for tasks left out because their data is absent.
    """

    config: dict[str, Any]
    cells: list[Cell]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.cells})

    def task_backbones(self) -> list[tuple[str, str]]:
        return sorted({(c.task, c.backbone) for c in self.cells})

    def ensembles(self) -> list[tuple[str, str, str]]:
        """``(task, backbone, method)`` triples that get a deep ensemble over seeds."""
        wanted = set(self.config["ensembles"])
        return sorted({(c.task, c.backbone, c.method) for c in self.cells if c.method in wanted})

    def runs(self, cell: Cell) -> bool:
        """Whether the grid runs ``cell``.

        True for its cells and for what a derived one is made from: the base method
        (``full_ft`` is fitted for ``full_ft+ts`` even when not listed), the regularised
        fit a ``+dor+ts`` cell rescales (``coop+dor``) and the WiSE-FT run a ``+wise+ts``
        cell rescales (``flyp+wise`` for ``flyp+wise+ts``).
        """
        return cell in self.cells or any(
            cell.method in (c.base_method, fit_stem(c.method), weights_stem(c.method))
            and (c.task, c.backbone, c.seed) == (cell.task, cell.backbone, cell.seed)
            for c in self.cells
        )

    def data_paths(self) -> DataPaths:
        return DataPaths.from_config(self.config["data"])

    def registered_task(self, task: str) -> str:
        """The registered task a grid task runs (see :func:`registered_task`)."""
        return registered_task(self.config, task)

    def _input_settings(self, task: str, backbone: str) -> dict[str, Any]:
        """The data, backbone and runtime settings of a (task, backbone) pair."""
        task_cfg = self.config["tasks"][task]
        # Only a renamed task records its registered name, so existing grids keep their hashes.
        registered = task_cfg.get("task", task)
        renamed = {} if registered == task else {"registered_task": registered}
        return {
            "task": task,
            **renamed,
            "task_options": task_cfg["options"],
            "limits": task_cfg["limits"],
            "backbone": backbone,
            "backbone_options": self.config["backbone_options"].get(backbone, {}),
            "data": self.config["data"],
            "runtime": {
                k: v for k, v in self.config["runtime"].items() if k not in RESULT_NEUTRAL_RUNTIME
            },
        }

    def cell_settings(self, cell: Cell) -> dict[str, Any]:
        """Everything that determines a cell's result (recorded in run.json and hashed)."""
        settings = {
            **self._input_settings(cell.task, cell.backbone),
            "method": cell.method,
            "hparams": result_hparams(
                cell.method, self.method_hparams(cell.task, cell.base_method)
            ),
            "seed": cell.seed,
        }
        if "wise" in split_method_name(cell.method)[1]:
            settings["wise_ft"] = self.config["wise_ft"]
        return settings

    def keeps_weights(self, method: str) -> bool:
        """Whether the fit job of base ``method`` saves its weights (the grid lists ``+wise``)."""
        return any(weights_stem(m) == f"{method}+wise" for m in self.config["methods"])

    def features_settings(self, task: str, backbone: str) -> dict[str, Any]:
        """What determines a feature cache's values.

        The seeds are left out: they matter only for few-shot pools, which
        :func:`bench.stamps.features_record` checks against the cache's own list, so
        adding a seed to a full-data grid recomputes nothing. The optional parts
        (:meth:`feature_extras`) appear only when asked for, so a grid without adapters
        keeps its hashes.
        """
        return {**self._input_settings(task, backbone), **self.feature_extras(task)}

    def feature_extras(self, task: str) -> dict[str, Any]:
        """What the task's cache must hold beyond features for the grid's methods.

        ``train_views``: the most augmented training views any frozen-feature method
        asks for (its ``train_views`` hyperparameter); ``prototypes``: whether one uses
        the zero-shot class embeddings (registry flag ``uses_prototypes``);
        ``outliers``: DOR's pool (``{size, template}``) when a method runs ``+dor``.
        """
        views, prototypes, outliers = 0, False, None
        for name in sorted({fit_stem(m) for m in self.config["methods"]}):
            method = split_method_name(name)[0]
            meta = method_metadata(method)
            if not meta["uses_features"]:
                continue
            hparams = self.method_hparams(task, method)
            prototypes = prototypes or meta["uses_prototypes"]
            views = max(views, int(hparams.get("train_views") or 0))
            if "dor" in objective_modifiers(name):
                size = max(hparams["dor_pool_size"], (outliers or {}).get("size", 0))
                outliers = {"size": size, "template": hparams["dor_template"]}
        extras: dict[str, Any] = {}
        if views:
            extras["train_views"] = views
        if prototypes:
            extras["prototypes"] = True
        if outliers:
            extras["outliers"] = outliers
        return extras

    def features_hash(self, task: str, backbone: str) -> str:
        """Short hash of :meth:`features_settings`, recorded in the cache."""
        return config_hash(self.features_settings(task, backbone))

    def cell_hash(self, cell: Cell) -> str:
        """Short hash of :meth:`cell_settings`; changes exactly when the result may."""
        return config_hash(self.cell_settings(cell))

    def method_hparams(self, task: str, method: str) -> dict[str, Any]:
        """Merged hyperparameters; later sources win.

        Order: defaults file, grid ``hparams``, task ``hparams["*"]``, task
        ``hparams[method]``. For ``<method>@<optimizer>`` (``full_ft@ivon``) three more
        follow: the optimiser's file (``config/optimizers/ivon.yaml``), whose ``method``
        block replaces the method's learning rates and decay (AdamW's values have other
        units and never carry over, not even from ``"*"``), then grid and task
        ``hparams["full_ft@ivon"]``. Keys of the optimiser's own (``settings``) are
        collected under ``ivon``.
        """
        base, _, optimizer = method.partition("@")
        defaults = method_defaults(base, self.config["method_config_dir"])
        merged = dict(defaults)
        task_hparams = self.config["tasks"][task]["hparams"]
        merged.update(self.config["hparams"].get(base, {}))
        merged.update({k: v for k, v in task_hparams.get("*", {}).items() if k in defaults})
        merged.update(task_hparams.get(base, {}))
        if not optimizer:
            return merged
        spec = optimizer_defaults(optimizer)
        merged.update({k: v for k, v in spec["method"].items() if k in defaults})
        settings = dict(spec["settings"])
        for layer in (self.config["hparams"].get(method, {}), task_hparams.get(method, {})):
            for key, value in layer.items():
                (merged if key in defaults or key not in settings else settings)[key] = value
        merged[optimizer] = settings
        return merged


def result_hparams(method: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that can change ``method``'s result (what its cell hashes).

    Drops those at a :data:`HASH_NEUTRAL_DEFAULTS` value, and the ``dor_*`` keys of a
    method trained without ``+dor`` (they are read only by the regulariser).
    """
    base, _ = split_method_name(method)
    neutral = HASH_NEUTRAL_DEFAULTS.get(base, {})
    with_dor = "dor" in objective_modifiers(method)
    return {
        key: value
        for key, value in hparams.items()
        if not (key in neutral and neutral[key] == value)
        and (with_dor or not key.startswith("dor_"))
    }


def registered_task(config: dict[str, Any], task: str) -> str:
    """The registered task that grid task ``task`` runs: its ``task`` key, else its name.

    A grid may name a task entry itself (``fmnist_4shot: {task: fmnist, options: {shots:
    4}}``) to run one registered task with several option sets; paths, tables and
    figures use the grid's name, the builders the registered one.
    """
    block = config["tasks"].get(task) or {}
    return block.get("task") or task


def config_hash(obj: Any) -> str:
    """First 12 hex digits of the SHA-256 of canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def optimizer_defaults(optimizer: str) -> dict[str, dict[str, Any]]:
    """``config/optimizers/<optimizer>.yaml``: ``{"method": {...}, "settings": {...}}``."""
    return yaml.safe_load((OPTIMIZER_CONFIG_DIR / f"{optimizer}.yaml").read_text())


def method_defaults(method: str, config_dir: str | Path) -> dict[str, Any]:
    """Default hyperparameters of a base method from ``<config_dir>/<method>.yaml``.

    A relative ``config_dir`` is read from the working directory, else from the
    repository root (Snakemake run with ``--directory`` elsewhere).
    """
    path = Path(config_dir) / f"{method}.yaml"
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    if not path.exists():
        raise ConfigError(
            f"method_config_dir: {path} does not exist; every method needs a defaults file "
            "(see config/methods/)"
        )
    return yaml.safe_load(path.read_text()) or {}


def _strict_validator():
    """Draft 2020-12, except that ``integer`` means an int: ``32.0`` is not one.

    JSON Schema counts a float with no fraction as an integer, but a ``batch_size:
    32.0`` fails deep in a job (``range()`` takes no floats) and a ``seeds: [0.0]``
    names run folders ``seed0.0``; YAML writes integers without the ``.0``.
    """
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return validators.extend(Draft202012Validator, type_checker=checker)


def _fill_defaults_validator():
    """:func:`_strict_validator`, also writing schema defaults into the instance.

    This is what Snakemake's ``validate(..., set_default=True)`` does.
    """
    from jsonschema import validators

    strict = _strict_validator()

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from strict.VALIDATORS["properties"](validator, properties, instance, schema)

    return validators.extend(strict, {"properties": set_defaults})


def _schema_error_line(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; valid choices: {error.validator_value}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{path}: {error.message}; valid keys: {allowed}"
    description = " ".join(str(error.schema.get("description", "")).split())
    hint = f" ({description.split('. ')[0].rstrip('.')})" if description else ""
    return f"{path}: {error.message}{hint}"


def validate_schema(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Checks ``config`` against the JSON schema and returns a copy with defaults set.

    Raises:
        ConfigError: The first violation, naming the key.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    instance = copy.deepcopy(config)
    validator = _fill_defaults_validator()(schema)
    # Fill defaults first (the walk mutates), then report the most specific error.
    errors = sorted(validator.iter_errors(instance), key=lambda e: -len(e.absolute_path))
    if errors:
        raise ConfigError(_schema_error_line(errors[0]))
    # Task blocks live under additionalProperties, whose sub-defaults the walk fills too.
    return instance


def _check_names(config: dict[str, Any]) -> None:
    for j, method in enumerate(config["methods"]):
        try:
            split_method_name(method)
        except (UnknownNameError, ValueError) as error:
            raise ConfigError(f"methods[{j}]: {error}") from None
    for task, block in config["tasks"].items():
        registered = registered_task(config, task)
        if "task" in block and registered not in list_tasks():
            raise ConfigError(
                f"tasks.{task}.task: unknown task {registered!r}; valid choices: "
                f"{', '.join(list_tasks())}"
            )
        if registered not in list_tasks():
            raise ConfigError(
                f"tasks.{task}: unknown task; valid choices: {', '.join(list_tasks())} (a name "
                f"of the grid's own needs the registered task it runs: tasks.{task}.task)"
            )
        modality = task_metadata(registered)["modality"]
        for i, backbone in enumerate(block["backbones"]):
            try:
                meta = backbone_metadata(backbone)
            except UnknownNameError as error:
                raise ConfigError(f"tasks.{task}.backbones[{i}]: {error}") from None
            if meta["modality"] != modality:
                valid = [
                    b for b in list_backbones() if backbone_metadata(b)["modality"] == modality
                ]
                raise ConfigError(
                    f"tasks.{task}.backbones[{i}]: {backbone} is a {meta['modality']} backbone "
                    f"but {task} is a {modality} task; valid choices: {', '.join(valid)}"
                )
            for j, method in enumerate(config["methods"]):
                base, modifiers = split_method_name(method)
                needs_text_tower = method_metadata(base)["vision_language"] or "wise" in modifiers
                if needs_text_tower and not meta["vision_language"]:
                    raise ConfigError(
                        f"methods[{j}]: {method} needs a vision-language backbone but "
                        f"tasks.{task}.backbones[{i}] is {backbone}; use a clip_* backbone or "
                        "drop the method for this task"
                    )
    for method in config["ensembles"]:
        if method not in config["methods"]:
            raise ConfigError(f"ensembles: {method!r} is not in methods {config['methods']}")
        if len(config["seeds"]) < 2:
            raise ConfigError(
                f"ensembles: {method!r} needs at least 2 seeds, seeds has {config['seeds']}"
            )
    for name, options in config["backbone_options"].items():
        if name not in list_backbones():
            valid = ", ".join(list_backbones())
            raise ConfigError(f"backbone_options.{name}: unknown backbone; valid choices: {valid}")
        takes = backbone_metadata(name)["options"]
        for option in options:
            if option not in takes:
                raise ConfigError(
                    f"backbone_options.{name}.{option}: {name} has no such option; valid: "
                    f"{', '.join(sorted(takes))}"
                )


def _check_reference_method(config: dict[str, Any], log=None) -> None:
    """The reference method is a method name, and the grid is told when it lacks it.

    A name that is no method at all (``ful_ft``) is a typo: an error, since the
    leaderboards would otherwise quietly carry no significance marks. A real method the
    grid does not run (``--config 'methods=[linear_probe]'`` on a grid comparing with
    ``full_ft``) leaves the leaderboards without tests, which ``log`` says.
    """
    reference = config["reference_method"]
    names = list(config["methods"]) + [m + ENSEMBLE_SUFFIX for m in config["ensembles"]]
    try:
        split_method_name(reference.removesuffix(ENSEMBLE_SUFFIX))
    except (UnknownNameError, ValueError) as error:
        raise ConfigError(
            f"reference_method: {error}; the grid's methods: {', '.join(names)}"
        ) from None
    if reference not in names and log is not None:
        log(
            f"reference_method {reference} is not in this grid ({', '.join(names)}): the "
            "leaderboards mark no method as significantly better or worse"
        )


HPARAMS_SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "hparams.schema.yaml"


def _merged_hparams(config: dict[str, Any]) -> list[tuple[str, dict, str, dict[str, Any]]]:
    """``(task, task block, method, merged hyperparameters)`` of every pair in the grid.

    The method keeps its optimiser (``full_ft@ivon``), whose hyperparameters differ.

    Computed once per grid load and shared by the checks below (each merge reads the
    method's defaults file).
    """
    grid = Grid(config=config, cells=[])
    methods = sorted({method_head(m) for m in config["methods"]})
    return [
        (task, block, method, grid.method_hparams(task, method))
        for task, block in config["tasks"].items()
        for method in methods
    ]


def _grid_key(config: dict[str, Any], task: str, block: dict, method: str, name: str) -> str | None:
    """The most specific grid key that set ``name`` of ``method`` on ``task``.

    None when the value comes from a defaults file.
    """
    if name in block["hparams"].get(method, {}):
        return f"tasks.{task}.hparams.{method}.{name}"
    if name in block["hparams"].get("*", {}):
        return f"tasks.{task}.hparams.*.{name}"
    if name in config["hparams"].get(method, {}):
        return f"hparams.{method}.{name}"
    return None


def _where_set(
    config: dict[str, Any], task: str, block: dict, method: str, name: str, ivon: bool = False
) -> str:
    """Where hyperparameter ``name`` of ``method`` on ``task`` got its value (most specific)."""
    grid_key = _grid_key(config, task, block, method, name)
    if grid_key:
        return grid_key
    if ivon:
        return f"config/optimizers/ivon.yaml: settings.{name}"
    return f"{config['method_config_dir']}/{method.partition('@')[0]}.yaml: {name}"


def _check_hparam_values(config: dict[str, Any], merged_hparams: list) -> None:
    """Every method's merged hyperparameters of every task, value by value and together.

    Values against hparams.schema.yaml first, then the rules between them
    (:mod:`bench.methods.hparam_rules`). The error names where the offending value was
    set (the task's override, the grid's override or the defaults file), so the fix is
    one edit.
    """
    from bench.methods.hparam_rules import hparam_problems

    validator = _strict_validator()(yaml.safe_load(HPARAMS_SCHEMA_PATH.read_text()))
    for task, block, method, merged in merged_hparams:
        errors = sorted(
            validator.iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path]
        )
        if not errors:
            # Each value is valid alone: now the rules between them.
            for names, problem in hparam_problems(method.partition("@")[0], merged):
                # Name the key the grid set, else the first one's defaults file.
                set_by_grid = (_grid_key(config, task, block, method, n) for n in names)
                where = next(filter(None, set_by_grid), None)
                where = where or _where_set(config, task, block, method, names[0])
                raise ConfigError(f"{where}: {problem}")
            continue
        error = errors[0]
        path = [str(p) for p in error.absolute_path]
        name = path[0] if path else "<hparams>"
        if name == "ivon" and len(path) > 1:  # IVON's own settings, set under <method>@ivon
            name = path[1]
        where = _where_set(config, task, block, method, name, ivon=path[:1] == ["ivon"])
        rules = validator.schema["properties"]
        rules = rules["ivon"]["properties"] if path[:1] == ["ivon"] else rules
        rule = rules.get(name, {})
        raise ConfigError(
            f"{where}: {error.message} ({rule.get('description', 'see the schema')}); "
            "fix the value (valid ranges: workflow/schemas/hparams.schema.yaml)"
        )


#: ``context_source`` values that are not task names (see bench/methods/uap.py).
CONTEXT_KEYWORDS = ("auto", "task", "augment")


def _check_uap_options(config: dict[str, Any], paths: DataPaths, merged_hparams: list) -> None:
    """UAP's context points can be drawn and its LoRA option applies, before any job runs.

    ``context_source: task`` needs a task with a context set; a task name must be a
    registered task of the same modality other than the task itself, with its data
    present.
    """
    for task, block, method, hparams in merged_hparams:
        source = hparams.get("context_source")
        if source in (None, "auto", "augment"):  # drawn from the task itself: always possible
            continue
        where = f"tasks.{task}: {method}'s context_source {source!r}"
        fix = "use augment (strong augmentations of the training inputs) or another task"
        own = registered_task(config, task)
        if source == "task":
            if not task_has_context(own, **block["options"]):
                raise ConfigError(f"{where}: {task} has no context set; {fix}")
            continue
        if source not in list_tasks():
            raise ConfigError(
                f"{where} is neither {', '.join(CONTEXT_KEYWORDS)} nor a registered task; "
                f"valid tasks: {', '.join(list_tasks())}"
            )
        if source in (task, own):
            raise ConfigError(f"{where}: the training data cannot be its own context; {fix}")
        other, modality = task_metadata(source)["modality"], task_metadata(own)["modality"]
        if other != modality:
            raise ConfigError(f"{where} is a {other} task but {task} is {modality}; {fix}")
        options = config["tasks"].get(source, {}).get("options", {})
        missing = missing_task_files(source, paths, **options)
        if missing:
            raise ConfigError(
                f"{where}: its data file {missing[0]} is missing; install that task's data "
                "(python -m bench data check --task " + source + ") or " + fix
            )


def _check_head_init(config: dict[str, Any], merged_hparams: list) -> None:
    """``head_init: zero_shot`` has a text tower to start from, and ``+wise`` its head.

    WiSE-FT interpolates the fine-tuned head with the zero-shot one; a head trained from
    a random start on raw features is not a point on that line.
    """
    interpolated = {method_head(m) for m in config["methods"] if "wise" in split_method_name(m)[1]}
    for task, block, method, hparams in merged_hparams:
        head_init = hparams.get("head_init")
        if head_init == "zero_shot":
            for backbone in block["backbones"]:
                if not backbone_metadata(backbone)["vision_language"]:
                    raise ConfigError(
                        f"tasks.{task}: {method}'s head_init 'zero_shot' needs a "
                        f"vision-language backbone but {backbone} has no text tower; use "
                        "head_init random for this task"
                    )
        elif head_init is not None and method in interpolated:
            raise ConfigError(
                f"tasks.{task}: {method}+wise interpolates with the zero-shot head, but "
                f"{method}'s head_init is {head_init!r}; set hparams.{method}.head_init: "
                "zero_shot (WiSE-FT's end-to-end recipe)"
            )


#: Values of the shared ``search`` key per method (the schema admits the union).
SEARCH_CHOICES = {
    "linear_probe": ("grid", "coop"),
    "tip_adapter": (True, False),
    "tip_adapter_f": (True, False),
}


def _check_search(config: dict[str, Any], merged_hparams: list) -> None:
    """``search`` means a penalty search for the linear probe, on/off for Tip-Adapter."""
    for task, _, method, hparams in merged_hparams:
        valid = SEARCH_CHOICES.get(split_method_name(method)[0])
        if valid is not None and "search" in hparams and hparams["search"] not in valid:
            raise ConfigError(
                f"tasks.{task}: {method}'s search {hparams['search']!r} is not valid for it; "
                f"valid choices: {', '.join(map(str, valid))}"
            )


def _check_optimizer(config: dict[str, Any], merged_hparams: list) -> None:
    """IVON is chosen by the method's name.

    ``optimizer: ivon`` set as a plain hyperparameter would train with IVON under the
    AdamW method's name and learning rates.
    """
    for task, _, method, hparams in merged_hparams:
        if hparams.get("optimizer") == "ivon" and "@" not in method:
            raise ConfigError(
                f"tasks.{task}: {method}'s optimizer is set to 'ivon'; name the method "
                f"{method}@ivon instead (it takes IVON's learning rates from "
                "config/optimizers/ivon.yaml and shows in tables as such)"
            )


def _check_dor(config: dict[str, Any], paths: DataPaths, merged_hparams: list) -> None:
    """``+dor`` has WordNet's nouns to draw outliers from, and one frozen template per task."""
    methods = config["methods"]
    with_dor = sorted({method_head(m) for m in methods if "dor" in objective_modifiers(m)})
    if not with_dor:
        return
    nouns = paths.wordnet / "data.noun"
    if not nouns.is_file():
        raise ConfigError(
            f"methods: {with_dor[0]}+dor draws outlier words from WordNet, but {nouns} does not "
            "exist; install Debian's wordnet-base or set data.wordnet to a WordNet 3.0 dict folder"
        )
    for task in config["tasks"]:
        templates = {
            h["dor_template"] for t, _, m, h in merged_hparams if t == task and m in with_dor
        }
        if len(templates) > 1:
            raise ConfigError(
                f"tasks.{task}: the +dor methods use different dor_template values "
                f"{sorted(templates)}; they share one outlier pool per task: set one template"
            )


def _check_hparams(config: dict[str, Any]) -> None:
    config_dir = config["method_config_dir"]
    methods = ", ".join(list_methods())
    # (key, method, overrides, valid method names for the error message)
    sources = [
        (f"hparams.{m}", m, o, f"valid choices: {methods}") for m, o in config["hparams"].items()
    ]
    for task, block in config["tasks"].items():
        sources += [
            (f"tasks.{task}.hparams.{m}", m, o, f"valid: '*', {methods}")
            for m, o in block["hparams"].items()
            if m != "*"
        ]
    for key, method, overrides, valid_methods in sources:
        base, _, optimizer = method.partition("@")
        if base not in METHODS:
            raise ConfigError(f"{key}: unknown method; {valid_methods}")
        valid = dict(method_defaults(base, config_dir))
        if optimizer:
            try:
                split_method_name(method)
            except (UnknownNameError, ValueError) as error:
                raise ConfigError(f"{key}: {error}") from None
            valid.update(optimizer_defaults(optimizer)["settings"])
        for name in overrides:
            if name not in valid:
                raise ConfigError(
                    f"{key}.{name}: unknown hyperparameter; valid: {', '.join(sorted(valid))}"
                )
    grid_methods = sorted({split_method_name(m)[0] for m in config["methods"]})
    # Every method of the grid needs its defaults file (read once here).
    defaults = {method: method_defaults(method, config_dir) for method in grid_methods}
    # "*" sets a key for every method of the grid that has it; one that none has is a typo.
    taken = {name for names in defaults.values() for name in names}
    optimizers = sorted({m.partition("@")[2] for m in map(method_head, config["methods"])} - {""})
    for task, block in config["tasks"].items():
        for name in block["hparams"].get("*", {}):
            if name in taken:
                continue
            owner = next((o for o in optimizers if name in optimizer_defaults(o)["settings"]), None)
            hint = (
                f"; {owner.upper()}'s settings go under hparams.<method>@{owner}"
                if owner
                else f"; valid: {', '.join(sorted(taken))}"
            )
            raise ConfigError(
                f"tasks.{task}.hparams.*.{name}: no method of the grid "
                f"({', '.join(grid_methods)}) has this hyperparameter{hint}"
            )


def load_grid(config: dict[str, Any], log=None, check_data: bool = True) -> Grid:
    """Validates a config and expands it into cells.

    Args:
        config: The parsed YAML (Snakemake's ``config`` or the CLI's file).
        log: Called with the one-line note listing tasks left out for missing data.
        check_data: Check the data root and the tasks' files (False: only the grid's
            structure, on a machine without the data, e.g. for a cost estimate; every
            task is kept).

    Raises:
        ConfigError: Unknown names, impossible pairs, bad values, a missing data root.
    """
    seeds = config.get("seeds")
    if isinstance(seeds, list) and all(isinstance(x, str) and x.isdigit() for x in seeds):
        # Snakemake's --config 'seeds=[0,1,2]' yields strings; they are meant as integers.
        config = {**config, "seeds": [int(x) for x in seeds]}
    config = validate_schema(config)
    _check_names(config)
    _check_reference_method(config, log)
    _check_hparams(config)
    merged_hparams = _merged_hparams(config)
    _check_hparam_values(config, merged_hparams)
    paths = DataPaths.from_config(config["data"])
    if not check_data:
        _check_head_init(config, merged_hparams)
        _check_search(config, merged_hparams)
        _check_optimizer(config, merged_hparams)
        return Grid(config=config, cells=_expand(config, skipped={}))
    if not paths.root.is_dir():
        raise ConfigError(
            f"data.root: {paths.root} is not a directory; point it at the folder holding the "
            "datasets (nlp/, imagenet/, coop/, cifar/; ../shared/data for the default grid) "
            "with --config 'data={root: PATH}'"
        )
    _check_uap_options(config, paths, merged_hparams)
    _check_head_init(config, merged_hparams)
    _check_dor(config, paths, merged_hparams)
    _check_search(config, merged_hparams)
    _check_optimizer(config, merged_hparams)
    skipped = {}
    for task, block in config["tasks"].items():
        try:
            missing = missing_task_files(registered_task(config, task), paths, **block["options"])
        except (TypeError, ValueError) as error:
            raise ConfigError(f"tasks.{task}.options: {error}") from None
        if missing:
            if config["on_missing_data"] == "error":
                raise ConfigError(
                    f"tasks.{task}: data file {missing[0]} is missing (on_missing_data: error)"
                )
            skipped[task] = f"{missing[0]} missing"
    if skipped and log is not None:
        log("left out for missing data: " + "; ".join(f"{t} ({r})" for t, r in skipped.items()))
    return Grid(config=config, cells=_expand(config, skipped), skipped=skipped)


def _expand(config: dict[str, Any], skipped: dict[str, str]) -> list[Cell]:
    return [
        Cell(task, backbone, method, seed)
        for task, block in config["tasks"].items()
        if task not in skipped
        for backbone in block["backbones"]
        for method in config["methods"]
        for seed in config["seeds"]
    ]


def weight_problems(grid: Grid) -> list[str]:
    """One line per backbone of the grid whose weights cannot load here.

    See :func:`bench.backbones.missing_weights`; empty when all can.
    """
    from bench.backbones import missing_weights

    backbones = sorted({c.backbone for c in grid.cells})
    options = grid.config["backbone_options"]
    reasons = (missing_weights(b, options.get(b, {})) for b in backbones)
    return [reason for reason in reasons if reason]


def check_claims_file(grid: Grid) -> None:
    """The grid's claims file (``report.claims``) exists and is well formed.

    Resolves a relative path in place (see :func:`bench.reporting.claims.resolve_claims_path`),
    so jobs read the file that was checked. Called when the DAG is built and by
    ``python -m bench validate``, not by :func:`load_grid`: fit and score jobs never
    read it.

    Raises:
        ConfigError: The file is missing or malformed, naming the claim and key to fix.
    """
    from bench.reporting.claims import ClaimsError, load_claims, resolve_claims_path

    path = resolve_claims_path(grid.config["report"]["claims"])
    grid.config["report"]["claims"] = str(path)
    try:
        load_claims(path)
    except (ClaimsError, OSError) as error:
        raise ConfigError(f"report.claims: {error}") from None


def load_grid_file(path: str | Path, log=None, check_data: bool = True) -> Grid:
    """Reads a YAML config file and validates it with :func:`load_grid`."""
    return load_grid(yaml.safe_load(Path(path).read_text()) or {}, log=log, check_data=check_data)
