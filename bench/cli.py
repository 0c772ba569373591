"""Command line: ``python -m bench <command>``, one per workflow step plus ``list`` and ``data``.

Each Snakemake rule calls one of these, so any cell can be rerun by hand with the
command line found at the top of its log file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.config import ConfigError, Grid, load_grid_file


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cell_grid(args) -> tuple[Grid, object]:
    from bench.config import Cell

    grid = load_grid_file(args.config, log=_log)
    cell = Cell(
        args.task, args.backbone, getattr(args, "method", "features"), getattr(args, "seed", 0)
    )
    if (
        args.task not in grid.config["tasks"]
        or args.backbone not in grid.config["tasks"][args.task]["backbones"]
    ):
        raise ConfigError(
            f"--task {args.task} --backbone {args.backbone} is not in the grid of {args.config}; "
            "add it under tasks.<task>.backbones"
        )
    return grid, cell


def _engine(grid: Grid, threads: int | None):
    from bench.engine import Engine
    from bench.engine.runtime import keep_freed_host_memory

    keep_freed_host_memory()
    runtime = grid.config["runtime"]
    return Engine.create(
        runtime["device"],
        runtime["precision"],
        threads,
        runtime["eval_batch_size"],
        data_workers=runtime.get("data_workers", "auto"),
        decode=runtime.get("decode", "auto"),
        compile=runtime.get("compile", False),
    )


def _build_task(grid: Grid, task: str):
    """A task of the grid, or any registered task (its default options, no caps)."""
    from bench.tasks import SizeLimits, create_task

    block = grid.config["tasks"].get(task, {"limits": {}, "options": {}})
    return create_task(
        grid.registered_task(task),
        grid.data_paths(),
        SizeLimits(**block["limits"]),
        **block["options"],
    )


def _build_backbone(grid: Grid, name: str):
    from bench.backbones import create_backbone

    return create_backbone(name, **grid.config["backbone_options"].get(name, {}))


def cmd_list(args) -> int:
    from bench.backbones import backbone_metadata, list_backbones
    from bench.methods import list_methods, list_modifiers, method_metadata
    from bench.tasks import list_tasks, task_metadata

    if args.what == "tasks":
        for name in list_tasks(args.pattern):
            meta = task_metadata(name)
            print(f"{name:24s} {meta['modality']:7s} {meta['description']}")
    elif args.what == "backbones":
        for name in list_backbones(args.pattern):
            meta = backbone_metadata(name)
            flags = ("vl " if meta["vision_language"] else "   ") + (
                "offline" if meta["offline"] else "online "
            )
            print(f"{name:36s} {meta['modality']:7s} {flags} {meta['description']}")
    elif args.what == "methods":
        for name in list_methods(args.pattern):
            meta = method_metadata(name)
            also = "".join(f" (also {name}@{o})" for o in meta["optimizers"])
            print(f"{name:24s} {meta['description']}{also}")
        for name in list_modifiers(args.pattern):
            print(f"+{name:23s} (modifier)")
    elif args.what == "metrics":
        from bench.metrics import list_metrics, metric_spec

        for key in list_metrics(args.pattern):
            spec = metric_spec(key)
            arrow = "higher" if spec.higher_is_better else "lower"
            print(f"{key:24s} {arrow:6s} {spec.description}")
    return 0


def cmd_validate(args) -> int:
    """What Snakemake checks while building the DAG, without Snakemake."""
    from bench.config import check_claims_file, weight_problems

    grid = load_grid_file(args.config, log=_log)
    check_claims_file(grid)
    problems = weight_problems(grid)
    if problems:
        raise ConfigError(problems[0])
    print(
        f"{args.config}: OK, {len(grid.cells)} cells over tasks {grid.tasks}, "
        f"{len(grid.config['methods'])} methods, seeds {grid.config['seeds']}"
    )
    return 0


def grid_features(grid: Grid, task_name: str, task, backbone, engine):
    """The feature cache of a grid task: what every features job (and benchmark) computes.

    Includes the parts the grid's methods ask for (:meth:`Grid.feature_extras`).
    """
    from bench.engine.features import OutlierRequest, compute_features

    extras = grid.feature_extras(task_name)
    outliers = extras.get("outliers")
    return compute_features(
        task,
        backbone,
        engine,
        seeds=grid.config["seeds"],
        train_views=extras.get("train_views", 0),
        prototypes=extras.get("prototypes", False),
        outliers=None
        if outliers is None
        else OutlierRequest(str(grid.data_paths().wordnet), outliers["size"], outliers["template"]),
    )


def cmd_features(args) -> int:
    from bench.engine.features import save_features

    grid, _ = _cell_grid(args)
    engine = _engine(grid, args.threads)
    task = _build_task(grid, args.task)
    backbone = _build_backbone(grid, args.backbone)
    features = grid_features(grid, args.task, task, backbone, engine)
    save_features(
        args.out,
        features,
        config_hash=grid.features_hash(args.task, args.backbone),
        seeds=grid.config["seeds"],
    )
    engine.log(f"wrote {args.out}")
    return 0


def _fit_context(grid: Grid, cell, args, engine, checkpoint=None):
    """The :class:`FitContext` of a cell (open-vocabulary splits for methods that name them)."""
    from bench.engine.features import load_features
    from bench.methods import method_metadata, split_method_name
    from bench.methods.base import FitContext, closed_vocabulary_view

    base = split_method_name(cell.method)[0]
    # Splits of classes named only at test time go to open-vocabulary methods only.
    view = (lambda x: x) if method_metadata(base)["open_vocabulary"] else closed_vocabulary_view
    return FitContext(
        task_name=cell.task,
        backbone_name=cell.backbone,
        seed=cell.seed,
        engine=engine,
        load_task=lambda: view(_build_task(grid, cell.task).for_seed(cell.seed)),
        load_backbone=lambda: _build_backbone(grid, cell.backbone),
        load_features=lambda: view(
            _require_features(args.features, load_features).for_seed(cell.seed)
        ),
        checkpoint=checkpoint,
        load_other_task=lambda name: _build_task(grid, name),
        weights_path=getattr(args, "save_weights", None),
    )


def cmd_fit(args) -> int:
    """Fits a cell, or derives it from its base run (``+wise`` weights, ``+ts`` predictions)."""
    from bench.io import atomic_write_json, load_predictions, save_predictions
    from bench.methods import (
        create_method,
        fit_stem,
        modifier_function,
        objective_modifiers,
        prediction_modifiers,
        split_method_name,
        weights_stem,
    )
    from bench.provenance import git_revision, host, package_versions, peak_rss_mb

    started = time.time()
    grid, cell = _cell_grid(args)
    if not grid.runs(cell):
        raise ConfigError(
            f"cell {cell.task}/{cell.backbone}/{cell.method}/seed{cell.seed} is not in the grid of "
            f"{args.config} (check methods and seeds)"
        )
    settings = grid.cell_settings(cell)
    base, modifiers = split_method_name(cell.method)
    stem = weights_stem(cell.method)
    _log(f"cell {cell.run_dir} hash {grid.cell_hash(cell)}")
    out_dir = Path(args.out)
    summary: dict = {}
    checkpoint = None
    if prediction_modifiers(cell.method):
        if not args.base_predictions:
            raise ConfigError(
                f"method {cell.method} is post-hoc: pass --base-predictions of {stem}"
            )
        predictions, classnames = load_predictions(args.base_predictions)
        for modifier in prediction_modifiers(cell.method):
            predictions, info = modifier_function(modifier)(predictions)
            summary[modifier] = info
            _log(f"{modifier}: {info}")
        hardware = {"device": "cpu", "note": "post-hoc step on saved predictions (numpy)"}
        memory = {"peak_rss_mb": peak_rss_mb()}
    elif fit_stem(cell.method) != stem:  # a weights modifier: WiSE-FT
        from bench.methods.wise_ft import WiseSettings, run_wise_ft, write_curve

        if not args.base_weights:
            raise ConfigError(f"method {cell.method} interpolates: pass --base-weights of {base}")
        engine = _engine(grid, args.threads)
        ctx = _fit_context(grid, cell, args, engine)
        predictions, curve, summary = run_wise_ft(
            ctx, args.base_weights, WiseSettings(**settings["wise_ft"])
        )
        write_curve(out_dir / "wise_curve.csv", curve)
        classnames = ctx.classnames()
        hardware, memory = engine.describe(), engine.peak_memory_mb()
    else:
        # torch is imported only here: post-hoc jobs above run without it.
        from bench.engine import seed_everything

        engine = _engine(grid, args.threads)
        if args.checkpoint:
            from bench.engine.checkpoint import Checkpointer

            checkpoint = Checkpointer(
                args.checkpoint,
                grid.config["runtime"]["checkpoint_every"],
                grid.cell_hash(cell),
                engine.log,
            )
        seed_everything(cell.seed)
        method = create_method(base, **settings["hparams"])
        for regularizer in objective_modifiers(cell.method):
            method.enable_regularizer(regularizer)
        ctx = _fit_context(grid, cell, args, engine, checkpoint)
        predictions = method.run(ctx)
        summary = method.summary()
        classnames = ctx.classnames()
        hardware, memory = engine.describe(), engine.peak_memory_mb()
    save_predictions(out_dir / "predictions.npz", predictions, classnames)
    run = {
        "cell": {
            "task": cell.task,
            "backbone": cell.backbone,
            "method": cell.method,
            "seed": str(cell.seed),
        },
        "settings": settings,
        "config_hash": grid.cell_hash(cell),
        "git": git_revision(),
        "versions": package_versions(),
        "host": host(),
        "hardware": hardware,
        "wall_seconds": time.time() - started,
        "memory": memory,
        "fit_summary": summary,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(out_dir / "run.json", run, schema="run.schema.json")
    if checkpoint is not None:
        checkpoint.clear()  # the outputs are safely written; a rerun starts afresh
    _log(f"wrote {out_dir} in {run['wall_seconds']:.1f}s")
    return 0


def _require_features(path, loader):
    if not path:
        raise ConfigError("this method reads the frozen-feature cache: pass --features PATH")
    return loader(path)


def cmd_ensemble(args) -> int:
    from bench.io import atomic_write_json, load_predictions, save_predictions
    from bench.methods.deep_ensemble import ensemble_predictions
    from bench.provenance import git_revision, package_versions, peak_rss_mb

    started = time.time()
    members, classnames, runs = [], None, []
    for member in args.members:
        preds, classnames = load_predictions(Path(member) / "predictions.npz")
        members.append(preds)
        runs.append(json.loads((Path(member) / "run.json").read_text()))
    predictions = ensemble_predictions(members)
    out_dir = Path(args.out)
    save_predictions(out_dir / "predictions.npz", predictions, classnames)
    cell = dict(runs[0]["cell"], method=runs[0]["cell"]["method"] + "+ens", seed="ensemble")
    atomic_write_json(
        out_dir / "run.json",
        {
            "cell": cell,
            "settings": {"members": [str(m) for m in args.members]},
            "config_hash": "+".join(r["config_hash"] for r in runs),
            "git": git_revision(),
            "versions": package_versions(),
            "wall_seconds": time.time() - started,
            # An ensemble costs what its members cost together.
            "member_wall_seconds": sum(r["wall_seconds"] for r in runs),
            "hardware": {"device": "cpu", "note": "combines saved member predictions (numpy)"},
            "memory": {"peak_rss_mb": peak_rss_mb()},
        },
        schema="run.schema.json",
    )
    return 0


def cmd_score(args) -> int:
    from bench.io import atomic_write_json
    from bench.reporting.score import save_examples, score_run

    examples = {} if args.examples else None
    metrics = score_run(Path(args.run_dir), examples)
    if args.examples:
        save_examples(Path(args.examples), examples)
    atomic_write_json(args.out, metrics, schema="metrics.schema.json")
    return 0


def cmd_aggregate(args) -> int:
    from bench.reporting.aggregate import aggregate

    aggregate(
        args.metrics,
        benchmarks_root=Path(args.benchmarks),
        out_dir=Path(args.out),
    )
    return 0


def cmd_report(args) -> int:
    """Tables and claims from whatever results exist (e.g. after ``snakemake --keep-going``)."""
    from bench.config import load_grid_file
    from bench.reporting.aggregate import aggregate
    from bench.reporting.claims import resolve_claims_path, write_claims
    from bench.reporting.report import build_reports
    from bench.reporting.summary import expected_cells_from_grid

    grid = load_grid_file(args.config, log=_log)
    results = Path(args.results)
    cells, skipped = expected_cells_from_grid(grid)
    for cell in cells:
        cell["current"] = _is_current(grid, cell, results.parent)
    present = [str(results.parent / c["run_dir"] / "metrics.json") for c in cells if c["current"]]
    if not present:
        raise SystemExit(
            f"bench report: no metrics.json of this grid under {results}/runs; run the grid "
            "first (snakemake --cores 2 --keep-going)"
        )
    _log(f"{len(present)} of {len(cells)} runs have results; the rest are marked in the tables")
    aggregate(present, benchmarks_root=results / "benchmarks", out_dir=results)
    settings = grid.config["report"]
    build_reports(
        results,
        cells,
        grid.config["reference_method"],
        n_boot=settings["bootstrap_samples"],
        seed=settings["bootstrap_seed"],
        level=settings["confidence_level"],
        alpha=settings["alpha"],
        skipped=skipped,
    )
    write_claims(
        resolve_claims_path(settings["claims"]),
        results / "tables" / "summary.parquet",
        results / "leaderboard" / "claims.md",
    )
    _log(f"tables in {results / 'leaderboard'} (index: README.md)")
    return 0


def _is_current(grid: Grid, cell: dict, root: Path) -> bool:
    """Whether a cell's metrics.json scores its current run.json, made under this grid.

    After a failed rerun Snakemake deletes the fit's outputs, but the metrics.json of an
    earlier success stays; it must not stand in for the failed cell. Likewise results
    from another config are reported as not run, never as this grid's.
    """
    from bench.config import Cell
    from bench.reporting.summary import scored_run_hash

    produced = scored_run_hash(root / cell["run_dir"])
    if produced is None:
        return False
    if cell["seed"] == "ensemble":
        base = cell["method"].removesuffix("+ens")
        members = [Cell(cell["task"], cell["backbone"], base, s) for s in grid.config["seeds"]]
        expected = "+".join(grid.cell_hash(m) for m in members)
    else:
        expected = grid.cell_hash(
            Cell(cell["task"], cell["backbone"], cell["method"], int(cell["seed"]))
        )
    return produced == expected


def cmd_figures(args) -> int:
    from bench.reporting.figures import make_figures

    costs = Path(args.costs) if args.costs else None
    make_figures(Path(args.table), [Path(p) for p in args.runs], Path(args.out), costs_path=costs)
    return 0


def _data_context(args) -> tuple:
    """Data paths and every configured task's options, from ``--root`` or ``--config``.

    Returns:
        ``(DataPaths, {grid task: (registered task, options)})``; with ``--root`` there
        are no configured tasks.
    """
    from bench.tasks import DataPaths

    if args.root:
        return DataPaths(root=Path(args.root).expanduser()), {}
    grid = load_grid_file(args.config, log=_log)
    configured = {
        task: (grid.registered_task(task), dict(block["options"]))
        for task, block in grid.config["tasks"].items()
    }
    return grid.data_paths(), configured


def cmd_data(args) -> int:
    import yaml

    from bench.data import check_manifest
    from bench.tasks import list_tasks, task_manifest, task_metadata

    if args.action == "list":
        paths, configured = _data_context(args)
        for name in list_tasks(args.pattern):
            meta = task_metadata(name)
            print(f"{name} ({meta['modality']}): {meta['description']}")
            for entry in task_manifest(name, paths, **configured.get(name, (name, {}))[1]):
                count = "" if entry.expected is None else f"  [{entry.expected} {entry.what}]"
                print(f"    {entry.path}{count}")
        return 0
    paths, configured = _data_context(args)
    task, options = configured.get(args.task, (args.task, {}))
    if task not in list_tasks():
        raise ConfigError(f"unknown task {args.task!r}; valid tasks: {', '.join(list_tasks())}")
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE (YAML value)")
        options[key] = yaml.safe_load(value)
    try:
        entries = task_manifest(task, paths, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"task {args.task!r}: {error}") from error
    checks = check_manifest(entries)
    for check in checks:
        print(check.describe())
    bad = [c for c in checks if c.status != "ok"]
    sources = sorted({c.entry.source for c in checks if c.entry.source})
    if sources:
        print("expected counts from: " + "; ".join(sources))
    if bad:
        print(
            f"{args.task}: {len(bad)} of {len(checks)} entries missing or incomplete; see "
            "docs/tasks.md for where to get the data",
        )
        return 1
    print(f"{args.task}: complete ({len(checks)} entries)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered tasks, backbones, methods or metrics")
    p.add_argument("what", choices=["tasks", "backbones", "methods", "metrics"])
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("data", help="what each task needs on disk, and check a copy")
    data_sub = p.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("list", "show the files and folders every task reads, with their expected sizes"),
        ("check", "verify a copy of a task's data against its manifest"),
    ):
        q = data_sub.add_parser(action, help=help_text)
        where = q.add_mutually_exclusive_group()
        where.add_argument("--root", help="data root (default: data.root of --config)")
        where.add_argument("--config", default="config/config.yaml", help="grid config YAML")
        if action == "list":
            q.add_argument("pattern", nargs="?", default="*")
        else:
            q.add_argument("--task", required=True)
            q.add_argument(
                "--option", action="append", metavar="KEY=VALUE", help="task option (YAML value)"
            )
        q.set_defaults(func=cmd_data)

    p = sub.add_parser("validate", help="validate a grid config and count its cells")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_validate)

    def cell_args(p, with_method: bool) -> None:
        p.add_argument("--config", required=True, help="grid config YAML")
        p.add_argument("--task", required=True)
        p.add_argument("--backbone", required=True)
        if with_method:
            p.add_argument("--method", required=True)
            p.add_argument("--seed", type=int, required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    p = sub.add_parser("features", help="compute the frozen-feature cache of a task x backbone")
    cell_args(p, with_method=False)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("fit", help="fit one cell and predict on every evaluation split")
    cell_args(p, with_method=True)
    p.add_argument("--features", help="feature cache (methods that use frozen features)")
    p.add_argument(
        "--base-predictions", help="predictions.npz of the base method (post-hoc modifiers)"
    )
    p.add_argument(
        "--base-weights", help="weights.pt the base method's fit job kept (<method>+wise)"
    )
    p.add_argument(
        "--save-weights", help="keep the fine-tuned weights here (the grid lists <method>+wise)"
    )
    p.add_argument(
        "--checkpoint",
        help="checkpoint file: saved every runtime.checkpoint_every steps and on "
        "SIGTERM/SIGUSR1, resumed from when present",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("ensemble", help="combine a method's seeds into a deep ensemble")
    p.add_argument("--members", nargs="+", required=True, help="run directories of the seeds")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("score", help="compute metrics.json from a run directory's predictions")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--examples", help="also write the per-example arrays of the bootstrap (examples.npz)"
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("aggregate", help="build the tidy table, the costs and leaderboard.csv")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--benchmarks", default="benchmarks")
    p.add_argument("--out", default="results")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser(
        "report",
        help="every leaderboard and the claims table from the results that exist, missing "
        "runs marked with their reason (after snakemake --keep-going)",
    )
    p.add_argument("--config", required=True, help="the grid's config file")
    p.add_argument("--results", default="results")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("figures", help="draw paper figures")
    p.add_argument("--table", required=True)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--out", default="paper_figures")
    p.add_argument("--costs", help="results/tables/costs.parquet (cost-quality figure)")
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; config problems print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    if args.command in ("features", "fit", "ensemble", "score"):
        # The first line of every job log is the command that reruns it by hand.
        import shlex

        words = sys.argv[1:] if argv is None else argv
        _log("$ python -m bench " + " ".join(shlex.quote(w) for w in words))
    from bench.errors import RunError

    try:
        return args.func(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except RunError as error:
        # A problem of this run (diverged, preempted, unreadable input): one line, and
        # the last line of the job log, which the leaderboard quotes for a failed cell.
        print(f"{error.label}: {error}", file=sys.stderr)
        return error.exit_code
