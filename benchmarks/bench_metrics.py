"""Single-thread timing of ``to_probs`` and ``score_predictions`` on a large split.

Run as ``python benchmarks/bench_metrics.py [--n 50000] [--c 1000] [--repeats 5]``.
Prints the best-of-``repeats`` wall time of ``score_predictions`` (which validates the
logits, converts them with ``to_probs`` and computes every cls/, cal/ and sc/ metric),
the share of each stage, and ``to_probs`` alone. Target: < 1 s for 50,000 x 1,000
float32 logits on one thread.
"""

from __future__ import annotations

import os

# Pin every BLAS / OpenMP pool to one thread before numpy or torch are imported.
for _var in (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bench.metrics import score_predictions, to_probs  # noqa: E402

STAGES = ("validate", "to_probs", "cls", "cal", "cal_classwise", "sc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="examples")
    parser.add_argument("--c", type=int, default=1_000, help="classes")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions")
    parser.add_argument("--scale", type=float, default=3.0, help="logit standard deviation")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((args.n, args.c), dtype=np.float32) * np.float32(args.scale)
    # Labels agree with the argmax 60% of the time so accuracy-dependent code paths matter.
    labels = rng.integers(0, args.c, size=args.n)
    hit = rng.random(args.n) < 0.6
    labels[hit] = logits[hit].argmax(axis=1)

    score_predictions(logits, labels, "logits")  # warm-up: lazy imports, page faults
    best_total, best_stages = float("inf"), {}
    for _ in range(args.repeats):
        stages: dict[str, float] = {}
        start = time.perf_counter()
        result = score_predictions(logits, labels, "logits", timings=stages)
        total = time.perf_counter() - start
        if total < best_total:
            best_total, best_stages = total, stages

    best_probs = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        to_probs(logits, "logits")
        best_probs = min(best_probs, time.perf_counter() - start)

    print(
        f"inputs: {args.n:,} x {args.c:,} float32 logits, torch threads={torch.get_num_threads()}"
    )
    print(f"score_predictions (validation + to_probs + all metrics): {best_total:.3f} s")
    print(f"  (best of {args.repeats} runs after one warm-up)")
    for stage in STAGES:
        share = best_stages.get(stage, 0.0)
        print(f"  {stage:<14} {share:7.3f} s  {100 * share / best_total:5.1f}%")
    print(f"to_probs alone: {best_probs:.3f} s")
    print(f"target < 1 s: {'met' if best_total < 1.0 else 'NOT met'}")
    print("values:", {k: round(v, 4) for k, v in result.items()})


if __name__ == "__main__":
    main()
