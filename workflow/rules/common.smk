# Config validation, the grid, wildcard constraints and input functions.
# Everything that can be wrong with a config fails here, while the DAG is built,
# with one line naming the key and the valid choices.

import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# `bench` importable here and in every job (`python -m bench ...`) from any working
# directory, without `pip install -e .`.
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
)

from bench.config import (  # noqa: E402
    Cell,
    ConfigError,
    check_claims_file,
    config_hash,
    load_grid,
    weight_problems,
)

PYTHON = sys.executable  # jobs use the interpreter Snakemake runs under (venv or conda env)


def _note(message):
    print(f"bench: {message}", file=sys.stderr)


try:
    GRID = load_grid(config, log=_note)
except ConfigError as error:
    # One line naming the key and the fix, and no traceback: the problem is the config.
    print(f"config error: {error}", file=sys.stderr)
    sys.exit(1)

# Weights that cannot load here (a missing weights_path, or HF_HUB_OFFLINE=1 with an empty
# cache) stop the workflow before any job; a dry run only lists them.
# (workflow.dryrun is not yet known while the Snakefile is parsed, so read the flags.)
_DRY_RUN = any(a in ("--dry-run", "--dryrun") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a) for a in sys.argv)
for _problem in weight_problems(GRID):
    if not _DRY_RUN:
        print(f"config error: {_problem}", file=sys.stderr)
        sys.exit(1)
    _note(f"a real run would stop here: {_problem}")

# The resolved config (defaults filled, CLI strings such as --config 'seeds=[0,1]' read
# as integers) replaces Snakemake's, and is what the schema check sees.
config.update(GRID.config)
validate(config, schema="../schemas/config.schema.yaml")

# A malformed claims file fails here, not after the grid has run.
try:
    check_claims_file(GRID)
except ConfigError as error:
    print(f"config error: {error}", file=sys.stderr)
    sys.exit(1)

# The resolved config is written once, content-addressed, and every job reads it, so a
# cell rerun by hand from its log uses exactly the settings Snakemake resolved.
RESOLVED_CONFIG = f"results/config/{config_hash(GRID.config)}.yaml"
if not Path(RESOLVED_CONFIG).exists():
    Path(RESOLVED_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    _tmp = Path(f"{RESOLVED_CONFIG}.{os.getpid()}.tmp")  # cluster jobs parse concurrently
    _tmp.write_text(yaml.safe_dump(GRID.config, sort_keys=True))
    _tmp.replace(RESOLVED_CONFIG)

_TASKS = sorted(GRID.config["tasks"])
_BACKBONES = sorted({b for block in GRID.config["tasks"].values() for b in block["backbones"]})


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    task=_alternatives(_TASKS),
    backbone=_alternatives(_BACKBONES),
    seed=r"\d+",


# --- input functions -------------------------------------------------------------------

from bench.methods import fit_stem, list_modifiers, method_metadata, split_method_name, weights_stem  # noqa: E402
from bench.methods import MODIFIERS  # noqa: E402

# Base methods whose fit jobs keep their weights (the grid lists <method>+wise), and the
# method wildcard of the plain fit rule, which leaves them to rule fit_keeping_weights.
# (The lookahead stops at the "/" that follows the method in the path.)
WISE_BASES = sorted(
    {fit_stem(m) for m in GRID.config["methods"] if weights_stem(m) != fit_stem(m)}
)
# A fit job's method: a base method and the regularisers it trains with (coop+dor).
_OBJECTIVE_MODIFIER = _alternatives(
    m for m in list_modifiers() if MODIFIERS.metadata(m)["acts_on"] == "objective"
)
# A fit job's method may name its optimiser (full_ft@ivon, coop@ivon+dor).
_TRAINED = r"[a-z0-9_]+(?:@[a-z0-9_]+)?"
FIT_STEM = f"{_TRAINED}(?:\\+(?:{_OBJECTIVE_MODIFIER}))*" if _OBJECTIVE_MODIFIER else _TRAINED
FIT_WITHOUT_WEIGHTS = (
    f"(?!(?:{_alternatives(WISE_BASES)})/){FIT_STEM}" if WISE_BASES else FIT_STEM
)
_PREDICTION_MODIFIER = _alternatives(
    m for m in list_modifiers() if MODIFIERS.metadata(m)["acts_on"] == "predictions"
)
PREDICTION_MODIFIERS = f"(?:{_PREDICTION_MODIFIER})(?:\\+(?:{_PREDICTION_MODIFIER}))*"


def run_dir(task, backbone, method, seed):
    return f"results/runs/{task}/{backbone}/{method}/seed{seed}"


def features_file(task, backbone):
    return f"results/features/{task}/{backbone}/features.npz"


def fit_inputs(wildcards):
    """The cell's config stamp, and the feature cache for methods that read it."""
    inputs = {"stamp": fit_stamp(wildcards.task, wildcards.backbone, wildcards.method, wildcards.seed)}
    base, _ = split_method_name(wildcards.method)
    if method_metadata(base)["uses_features"]:
        inputs["features"] = features_file(wildcards.task, wildcards.backbone)
    return inputs


# --- config stamps: results from another config are rerun (bench/stamps.py) ------------

from bench.stamps import Stamped, features_record, run_json_hash, stamp_path, sync_stamps  # noqa: E402


def fit_stamp(task, backbone, method, seed):
    return stamp_path("fit", task, backbone, method, f"seed{seed}")


def features_stamp(wildcards):
    return stamp_path("features", wildcards.task, wildcards.backbone)


def _stamped_jobs():
    """Every feature and fit job of the grid with the hash the current config gives it."""
    # What a rerun of a fit job replaces besides its folder, kept with it when superseded:
    # the cells computed from its outputs (+ts, +wise), the ensembles over its seeds, its log.
    derived = {}
    for c in GRID.cells:
        stem = fit_stem(c.method)
        key = (c.task, c.backbone, stem, c.seed)
        log = Path(f"results/logs/fit/{c.task}/{c.backbone}/{stem}/seed{c.seed}.log")
        paths = derived.setdefault(key, [log])
        if c.method != stem:
            paths.append(Path(run_dir(c.task, c.backbone, c.method, c.seed)))
    for task, backbone, method in GRID.ensembles():
        for (t, b, stem, _), paths in derived.items():
            if (t, b, stem) == (task, backbone, fit_stem(method)):
                paths.append(Path(f"results/runs/{task}/{backbone}/{method}/ensemble"))
    fits = sorted(derived)
    for task, backbone, method, seed in fits:
        yield Stamped(
            Path(fit_stamp(task, backbone, method, seed)),
            Path(run_dir(task, backbone, method, seed)) / "run.json",
            GRID.cell_hash(Cell(task, backbone, method, seed)),
            run_json_hash,
            tuple(derived[(task, backbone, method, seed)]),
        )
    for task, backbone in sorted(
        {(t, b) for t, b, m, _ in fits if method_metadata(split_method_name(m)[0])["uses_features"]}
    ):
        yield Stamped(
            Path(stamp_path("features", task, backbone)),
            Path(features_file(task, backbone)),
            GRID.features_hash(task, backbone),
            features_record(GRID.config["seeds"]),
            (Path(f"results/logs/features/{task}/{backbone}.log"),),
        )


if workflow.is_main_process:
    _STALE = sync_stamps(_stamped_jobs(), keep=not _DRY_RUN)
    if _STALE:
        _shown = "; ".join(f"{path} ({reason})" for path, reason in _STALE[:3])
        _more = f" and {len(_STALE) - 3} more" if len(_STALE) > 3 else ""
        _kept = "" if _DRY_RUN else "; their files are kept under results/superseded/"
        _note(
            f"{len(_STALE)} existing results were produced under other settings and will be "
            f"rerun: {_shown}{_more}{_kept}"
        )


def fit_features_arg(wildcards, input):
    return f"--features {input.features}" if "features" in input.keys() else ""


def fit_save_weights_arg(wildcards, output):
    return f"--save-weights {output.weights}" if "weights" in output.keys() else ""


def cell_hash(wildcards):
    """Changes exactly when the cell's result may change (Snakemake reruns on params)."""
    return GRID.cell_hash(Cell(wildcards.task, wildcards.backbone, wildcards.method, int(wildcards.seed)))


def wise_cell_hash(wildcards):
    """The WiSE-FT cell's hash (its base's settings and the grid's wise_ft block)."""
    cell = Cell(wildcards.task, wildcards.backbone, f"{wildcards.base}+wise", int(wildcards.seed))
    return GRID.cell_hash(cell)


def ensemble_members(wildcards):
    return [
        f"{run_dir(wildcards.task, wildcards.backbone, wildcards.method, seed)}/{name}"
        for seed in GRID.config["seeds"]
        for name in ("predictions.npz", "run.json")
    ]


def ensemble_member_dirs(wildcards):
    return " ".join(
        run_dir(wildcards.task, wildcards.backbone, wildcards.method, seed) for seed in GRID.config["seeds"]
    )


def all_run_dirs():
    dirs = [run_dir(c.task, c.backbone, c.method, c.seed) for c in GRID.cells]
    dirs += [f"results/runs/{t}/{b}/{m}/ensemble" for t, b, m in GRID.ensembles()]
    return dirs


def wise_run_dirs():
    """Run directories of the grid's WiSE-FT jobs (each writes wise_curve.csv)."""
    stems = {(c.task, c.backbone, weights_stem(c.method), c.seed) for c in GRID.cells}
    return [run_dir(*stem) for stem in sorted(stems) if "+wise" in stem[2]]


def all_metrics():
    return [f"{d}/metrics.json" for d in all_run_dirs()]


def all_examples():
    return [f"{d}/examples.npz" for d in all_run_dirs()]


from bench.reporting.summary import expected_cells_from_grid  # noqa: E402

# The runs the leaderboards report on (missing ones with their reason), and skipped tasks.
EXPECTED_CELLS, SKIPPED_TASKS = expected_cells_from_grid(GRID)


def task_backbone_run_dirs(wildcards):
    prefix = f"results/runs/{wildcards.task}/{wildcards.backbone}/"
    return [d for d in all_run_dirs() if d.startswith(prefix)]


def task_backbone_metrics(wildcards):
    return [f"{d}/metrics.json" for d in task_backbone_run_dirs(wildcards)]


def job_resource(job, name):
    """A resource of the grid's ``resources.<job>`` block (a constant per job kind)."""
    return GRID.config["resources"][job][name]


def job_runtime(job):
    """Minutes for attempt k: k times the grid's runtime, so a retry is not cut short."""
    return lambda wildcards, attempt: GRID.config["resources"][job]["runtime"] * attempt


def run_output_dir(wildcards, output):
    """The run directory a job writes (the folder of its run.json)."""
    return Path(output.run).parent


def run_input_dir(wildcards, input):
    """The run directory a job reads (the folder of its run.json)."""
    return Path(input.run).parent


def all_reports():
    """Every table and figure: what `snakemake reports` rebuilds from stored predictions."""
    figures = [f"paper_figures/{t}/{b}" for t, b in GRID.task_backbones()]
    wise = ["results/leaderboard/wise_ft.md"] if wise_run_dirs() else []
    return [
        "results/leaderboard/leaderboard.md",
        "results/leaderboard/index.html",
        "results/leaderboard/claims.md",
        *wise,
        *figures,
    ]


def all_targets():
    return all_reports()
