r"""Cost of the few-shot adapters against the feature extraction they share.

For one task of a grid config and one backbone, times (in one process, on the current
device) the features job's work (every split, the augmented views of the support
set, the zero-shot prototypes) and then each feature-cache method on one seed's
support set, and prints one JSON line per measurement plus a summary line with each
method's time as a fraction of the extraction time. The same code the fit jobs run, so
the figure is what a grid pays; process start-up (~5 s per Snakemake job) is left out.

    python benchmarks/bench_adapters.py --config config/fewshot_offline.yaml --task fmnist_16shot
    python benchmarks/bench_adapters.py --config config/paper/fewshot.yaml --task \
        imagenet_16shot --backbone clip_vit_b16.openai     # on a GPU node with the data
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="grid config holding the task")
    parser.add_argument("--task", required=True, help="task name in the grid")
    parser.add_argument("--backbone", help="default: the task's first backbone")
    parser.add_argument("--seed", type=int, help="default: the grid's first seed")
    parser.add_argument("--methods", nargs="*", help="default: the grid's feature-cache methods")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args()

    import torch

    from bench.cli import _build_backbone, _build_task, _engine, grid_features
    from bench.config import load_grid_file
    from bench.engine import seed_everything
    from bench.methods import create_method, method_metadata, split_method_name
    from bench.methods.base import FitContext, closed_vocabulary_view

    grid = load_grid_file(args.config)
    backbone_name = args.backbone or grid.config["tasks"][args.task]["backbones"][0]
    seed = args.seed if args.seed is not None else grid.config["seeds"][0]
    methods = args.methods or sorted(
        {
            split_method_name(m)[0]
            for m in grid.config["methods"]
            if method_metadata(split_method_name(m)[0])["uses_features"]
        }
    )
    engine = _engine(grid, args.threads)
    lines = []

    def emit(record: dict) -> None:
        line = json.dumps({**engine.describe(), **record})
        print(line, flush=True)
        lines.append(line)

    def sync() -> None:
        if engine.device.type == "cuda":
            torch.cuda.synchronize()

    task = _build_task(grid, args.task)
    backbone = _build_backbone(grid, backbone_name)
    extras = grid.feature_extras(args.task)
    sync()
    start = time.perf_counter()
    features = grid_features(grid, args.task, task, backbone, engine)
    sync()
    extraction = time.perf_counter() - start
    images = sum(len(s.labels) for s in features.splits.values()) + sum(
        s.views.shape[0] * s.views.shape[1] for s in features.splits.values() if s.views is not None
    )
    emit(
        {
            "what": "feature_extraction",
            "task": args.task,
            "backbone": backbone_name,
            "seconds": round(extraction, 3),
            "images": images,
            **{k: v for k, v in extras.items() if k != "outliers"},
            "outliers": (extras.get("outliers") or {}).get("size", 0),
        }
    )
    del backbone
    seeded = features.for_seed(seed)
    times = {}
    for name in methods:
        open_vocabulary = method_metadata(name)["open_vocabulary"]
        view = seeded if open_vocabulary else closed_vocabulary_view(seeded)
        ctx = FitContext(
            task_name=args.task,
            backbone_name=backbone_name,
            seed=seed,
            engine=engine,
            load_task=lambda: task.for_seed(seed),
            load_backbone=lambda: _build_backbone(grid, backbone_name),
            load_features=lambda view=view: view,
        )
        method = create_method(name, **grid.method_hparams(args.task, name))
        seed_everything(seed)
        sync()
        start = time.perf_counter()
        method.run(ctx)
        sync()
        times[name] = time.perf_counter() - start
        emit(
            {
                "what": "method",
                "method": name,
                "seconds": round(times[name], 3),
                "fraction_of_extraction": round(times[name] / extraction, 4),
            }
        )
    emit(
        {
            "what": "summary",
            "task": args.task,
            "extraction_seconds": round(extraction, 2),
            "methods_seconds": round(sum(times.values()), 2),
            "methods_fraction_of_extraction": round(sum(times.values()) / extraction, 4),
        }
    )
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
