"""Metric scoring time on one CPU core: ``score_predictions`` against a plain NumPy pass.

Runs in a child process (``python -m bench.perf.scoring``) whose BLAS and OpenMP pools
are pinned to one thread before NumPy or torch load, as a scoring job on a cluster
gets one core; the parent (:func:`metric_scoring`) reads its JSON line.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.perf.report import Measurement  # noqa: E402


def synthetic_logits(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits ``[n, c]`` and labels agreeing with the argmax 60% of the time."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c), dtype=np.float32) * np.float32(3.0)
    labels = rng.integers(0, c, size=n)
    hit = rng.random(n) < 0.6
    labels[hit] = logits[hit].argmax(axis=1)
    return logits, labels


def plain_scores(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, float]:
    """The common core written plainly: softmax, accuracy, NLL, Brier, 15-bin ECE."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    probs = exp / total
    rows = np.arange(len(labels))
    pred = probs.argmax(axis=1)
    conf = probs[rows, pred]
    correct = pred == labels
    nll = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    brier = float(np.mean((probs**2).sum(axis=1) - 2 * probs[rows, labels] + 1))
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, weights=correct, minlength=bins)
        - np.bincount(which, weights=conf, minlength=bins)
    )
    return {
        "acc": float(correct.mean()),
        "nll": nll,
        "brier": brier,
        "ece": float(gap.sum() / max(1, count.sum())),
    }


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: lazy imports, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _child(n: int, c: int, repeats: int) -> None:
    import torch

    torch.set_num_threads(1)
    from bench.metrics import score_predictions

    logits, labels = synthetic_logits(n, c)
    metrics = len(score_predictions(logits, labels, "logits"))
    suite = _best_seconds(lambda: score_predictions(logits, labels, "logits"), repeats)
    plain = _best_seconds(lambda: plain_scores(logits, labels), repeats)
    print(json.dumps({"suite_s": suite, "plain_s": plain, "metrics": metrics}))


def metric_scoring(n: int = 50_000, c: int = 1_000, repeats: int = 3) -> list[Measurement]:
    """Best-of-``repeats`` seconds to score ``n x c`` logits on one core, suite vs plain."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.perf.scoring", str(n), str(c), str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"metric scoring child failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    detail = f"{n:,} x {c:,} float32 logits, 1 thread"
    return [
        Measurement(
            "score_metrics",
            f"engine (score_predictions: {figures['metrics']} cls/cal/sc metrics)",
            figures["suite_s"], "s", n, detail=detail,
        ),
        Measurement(
            "score_metrics", "plain NumPy (acc, NLL, Brier, ECE)", figures["plain_s"], "s", n,
            detail=detail,
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
