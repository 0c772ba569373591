"""GPU-hours of a grid, from throughputs a ``python -m bench.perf`` run measured.

``python -m bench.perf.cost --grid config/paper/imagenet_shifts.yaml --rates
results/perf/<device>.csv`` counts the grid's GPU jobs and the images each one pushes
through the encoder, and divides by the device's measured rates:

* a features job (one per task and backbone) encodes every split once, at the
  ``extract_jpeg`` rate (JPEG files to features);
* a fit job of a method that fine-tunes the image tower trains ``epochs x |train|``
  images at the ``train_flyp`` rate (``train_carot`` for CaRot; FLYP's step runs both
  towers, so it overestimates full fine-tuning and LP-FT, which run the image tower
  only), then predicts every evaluation split at the ``extract_jpeg`` rate; prompt
  learners (CoOp, KgCoOp) train the text tower over cached features and are listed
  without an estimate;
* a WiSE-FT job predicts every evaluation split at each mixing coefficient.

Frozen-feature methods, post-hoc calibration, ensembles and scoring run on cached
features or predictions on CPUs, and cost no GPU time. The figures are compute only:
queueing, start-up (~1 min a job) and checkpoint writes come on top.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

#: Images per split of the ``imagenet`` task at full size (docs/tasks_imagenet.md).
IMAGENET_SPLIT_IMAGES = {
    "train": 1_271_167,
    "val": 10_000,
    "test": 50_000,
    "shift_v2": 10_000,
    "shift_sketch": 50_889,
    "shift_r": 30_000,
    "shift_a": 7_500,
    "shift_objectnet": 18_574,
}

KNOWN_SPLIT_IMAGES = {"imagenet": IMAGENET_SPLIT_IMAGES}


@dataclass(frozen=True)
class Rates:
    """Throughputs in images/s: training steps by method, and JPEG-to-features inference."""

    train_flyp: float
    train_carot: float
    extract_jpeg: float
    source: str

    def train(self, method: str) -> float:
        return self.train_carot if method == "carot" else self.train_flyp


def rates_from_csv(path: str | Path) -> Rates:
    """The engine's best rate per measure in a ``bench.perf`` CSV.

    Raises:
        ValueError: If the CSV lacks one of the three measures (names the part to run).
    """
    from bench.perf.report import read_csv

    best: dict[str, float] = {}
    for _, row in read_csv(path):
        if row.implementation.startswith("engine"):
            best[row.measure] = max(best.get(row.measure, 0.0), row.value)
    missing = [m for m in ("train_flyp", "train_carot", "extract_jpeg") if m not in best]
    if missing:
        raise ValueError(
            f"{path} has no engine rows for {', '.join(missing)}; rerun python -m bench.perf "
            "with --only train_clip,inference"
        )
    return Rates(best["train_flyp"], best["train_carot"], best["extract_jpeg"], str(path))


@dataclass
class JobCost:
    """GPU time of the jobs of one kind in a grid."""

    kind: str
    jobs: int
    images_per_job: int
    gpu_hours: float
    note: str


def grid_cost(grid, rates: Rates, split_images: dict[str, dict[str, int]] | None = None):
    """Per-kind GPU-hours of ``grid`` (a :class:`bench.config.Grid`) at ``rates``.

    Args:
        grid: The loaded grid.
        rates: Measured throughputs.
        split_images: ``{task: {split: images}}`` for tasks whose sizes are not in
            :data:`KNOWN_SPLIT_IMAGES`.

    Raises:
        ValueError: A task of the grid has no known split sizes (names the fix).
    """
    from bench.methods import fit_stem, method_metadata, split_method_name

    sizes = {**KNOWN_SPLIT_IMAGES, **(split_images or {})}
    costs: list[JobCost] = []
    for task, backbone in grid.task_backbones():
        registered = grid.registered_task(task)
        if registered not in sizes:
            raise ValueError(
                f"no split sizes for task {task!r}; pass --split-images "
                f'\'{{"{registered}": {{"train": N, "test": N, ...}}}}\''
            )
        images = dict(sizes[registered])
        evaluation = sum(n for name, n in images.items() if name != "train")
        costs.append(
            JobCost(
                f"features {task}/{backbone}", 1, sum(images.values()),
                sum(images.values()) / rates.extract_jpeg / 3600, "every split, once",
            )
        )  # fmt: skip
        methods = grid.config["methods"]
        for stem in sorted({fit_stem(m) for m in methods}):
            base = split_method_name(stem)[0]
            meta = method_metadata(base)
            # LP-FT reads the cache for its probe, then fine-tunes the image tower.
            if meta["uses_features"] and base != "lp_ft":
                if meta["uses_backbone"] and base != "zero_shot":
                    costs.append(
                        JobCost(f"fit {stem}", len(grid.config["seeds"]), 0, 0.0,
                                "text tower over cached image features: not estimated")
                    )  # fmt: skip
                continue
            epochs = float(grid.method_hparams(task, base).get("epochs", 1))
            trained = int(epochs * images["train"])
            seconds = trained / rates.train(base) + evaluation / rates.extract_jpeg
            jobs = len(grid.config["seeds"])
            costs.append(
                JobCost(
                    f"fit {stem}", jobs, trained + evaluation, jobs * seconds / 3600,
                    f"{epochs:g} epochs at {rates.train(base):,.0f} img/s, then predict",
                )
            )  # fmt: skip
        alphas = len(grid.config.get("wise_ft", {}).get("alphas", []))
        wise = sorted({fit_stem(m) for m in methods if "wise" in split_method_name(m)[1]})
        if wise and alphas:
            jobs = len(wise) * len(grid.config["seeds"])
            per_job = alphas * evaluation
            costs.append(
                JobCost(
                    f"wise_ft {', '.join(wise)}", jobs, per_job,
                    jobs * per_job / rates.extract_jpeg / 3600, f"{alphas} alphas",
                )
            )  # fmt: skip
    return costs


def cost_table(costs: list[JobCost], rates: Rates) -> str:
    """The costs as Markdown, with the total."""
    lines = [
        f"Rates from {rates.source}: FLYP step {rates.train_flyp:,.1f} img/s, CaRot step "
        f"{rates.train_carot:,.1f} img/s, JPEG to features {rates.extract_jpeg:,.1f} img/s.",
        "",
        "| jobs | count | images per job | GPU-hours | how |",
        "|---|---|---|---|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c.kind} | {c.jobs} | {c.images_per_job:,} | {c.gpu_hours:,.1f} | {c.note} |"
        )
    total = sum(c.gpu_hours for c in costs)
    lines.append(f"| **total** | {sum(c.jobs for c in costs)} | | **{total:,.1f}** | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import json

    from bench.config import load_grid_file

    parser = argparse.ArgumentParser(prog="python -m bench.perf.cost", description=__doc__)
    parser.add_argument("--grid", required=True, help="grid config (YAML)")
    parser.add_argument("--rates", help="a bench.perf CSV of the device")
    parser.add_argument("--train-flyp", type=float, help="img/s (instead of --rates)")
    parser.add_argument("--train-carot", type=float, help="img/s (instead of --rates)")
    parser.add_argument("--extract-jpeg", type=float, help="img/s (instead of --rates)")
    parser.add_argument("--split-images", help="JSON {task: {split: images}} of other tasks")
    args = parser.parse_args(argv)
    if args.rates:
        rates = rates_from_csv(args.rates)
    elif None not in (args.train_flyp, args.train_carot, args.extract_jpeg):
        rates = Rates(args.train_flyp, args.train_carot, args.extract_jpeg, "the command line")
    else:
        raise SystemExit("give --rates CSV, or all of --train-flyp --train-carot --extract-jpeg")
    # The grid's data need not be on this machine: only its structure is read.
    grid = load_grid_file(args.grid, check_data=False)
    extra = json.loads(args.split_images) if args.split_images else None
    print(cost_table(grid_cost(grid, rates, extra), rates))


if __name__ == "__main__":
    main()
