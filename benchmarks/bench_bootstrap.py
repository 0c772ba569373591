"""Wall time of the leaderboards' paired bootstrap at ImageNet scale.

Run as ``python benchmarks/bench_bootstrap.py [--methods 10] [--seeds 3] [--n 50000]
[--boot 1000]``. Builds synthetic per-example arrays for one (task, backbone) shaped like
the ImageNet shift grid (an id split of ``n`` examples, five shift splits of ``n / 5``,
one OOD split of ``n / 5``), then times :func:`bench.reporting.stats.bootstrap_task`,
which computes every interval and test of the task. Prints JSON with the seconds and the
per-run cost. Target: under 5 minutes on one core for 10 methods x 3 seeds, so the
``leaderboards`` rule never dominates a grid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bench.reporting.stats import RunExamples, bootstrap_task  # noqa: E402


def synthetic_run(method: str, seed: int, n: int, rng: np.random.Generator) -> RunExamples:
    kinds = {"test": "id", **{f"shift_{i}": "shift" for i in range(5)}, "ood_x": "ood"}
    arrays = {}
    for split, kind in kinds.items():
        size = n if kind == "id" else n // 5
        confidence = rng.beta(5, 2, size).astype(np.float32)
        entry = {"confidence": confidence}
        if kind != "ood":
            entry["correct"] = rng.random(size) < confidence
            entry["nll"] = -np.log(np.clip(confidence, 1e-6, 1.0)).astype(np.float64)
        arrays[split] = entry
    return RunExamples(method, str(seed), kinds, arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    runs = [
        synthetic_run(f"m{m}", s, args.n, rng)
        for m in range(args.methods)
        for s in range(args.seeds)
    ]
    start = time.perf_counter()
    frame = bootstrap_task(runs, "imagenet", "bench", reference="m0", n_boot=args.boot)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "runs": len(runs),
                "n_id": args.n,
                "replicates": args.boot,
                "rows": len(frame),
                "seconds": round(seconds, 1),
                "seconds_per_run": round(seconds / len(runs), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
