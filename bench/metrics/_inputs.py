"""Argument validation for the metric functions, kept apart from the computations.

Every public metric validates its arguments with the helpers below and then calls a
private ``_compute``-style function that trusts its inputs. The aggregate entry points
(:func:`bench.metrics.score_predictions`, :func:`bench.metrics.score_ood`) validate once
and reuse the private functions, so a 50,000 x 1,000 logit matrix is checked once, not
once per metric.

Checks are O(1) passes over the data (min / max reductions), never per-row Python.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: the package must import without it.
    import torch

PredKind = Literal["logits", "logprobs"]
KINDS: tuple[str, ...] = ("logits", "logprobs")

# exp(logprobs) rows may be off by float16/float32 rounding; anything further is misuse
# (for example logits passed as kind="logprobs").
ROW_SUM_TOL = 1e-2
# Probabilities may exceed 1 by rounding (float32 softmax); larger excursions are misuse.
PROB_TOL = 1e-4


@functools.cache
def lazy_torch() -> Any:
    """Imports torch on first use (the package is importable without torch)."""
    import torch

    return torch


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """Wraps a numpy array as a CPU tensor without copying.

    Read-only arrays (``np.load(mmap_mode="r")``, broadcast views) make torch warn that
    writes would be undefined; we never write to inputs, so the warning is silenced.
    """
    torch = lazy_torch()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(array)


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    # float16 / longdouble have no fast kernels in numpy or torch; float32 keeps the
    # precision of float16 and the speed of the common case.
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def _range(arr: np.ndarray) -> tuple[float, float]:
    """Returns (min, max); NaN anywhere makes both NaN (numpy reductions propagate NaN)."""
    return float(arr.min()), float(arr.max())


def check_kind(kind: Any) -> str:
    """Checks that ``kind`` is ``"logits"`` or ``"logprobs"``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return str(kind)


def check_pred(pred: Any, kind: Any) -> np.ndarray:
    """Validates model outputs.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` Monte Carlo log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        A C-contiguous float32 or float64 array with the same values.

    Raises:
        ValueError: On a wrong kind, dtype, shape, fewer than 2 classes, no examples,
            NaN / +inf anywhere, or -inf in logits (``-inf`` log-probabilities are
            allowed: they are probability zero).

    """
    kind = check_kind(kind)
    arr = _as_float_array(pred, "pred")
    want = 2 if kind == "logits" else 3
    if arr.ndim != want:
        layout = "[N, C]" if kind == "logits" else "[S, N, C]"
        raise ValueError(f"kind={kind!r} expects a {layout} array, got shape {arr.shape}")
    if kind == "logprobs" and arr.shape[0] < 1:
        raise ValueError(f"logprobs need at least one Monte Carlo sample, got shape {arr.shape}")
    if arr.shape[-2] < 1:
        raise ValueError(f"pred has no examples (shape {arr.shape})")
    if arr.shape[-1] < 2:
        raise ValueError(f"pred needs at least 2 classes, got shape {arr.shape}")
    lo, hi = _range(arr)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError("pred contains NaN")
    if hi == math.inf:
        raise ValueError("pred contains +inf")
    if kind == "logits" and lo == -math.inf:
        raise ValueError("logits contain -inf; pass finite logits (or log-probabilities)")
    return arr


def check_prob_rows(probs: np.ndarray) -> None:
    """Checks that predictive probabilities derived from log-probabilities sum to 1.

    Raises:
        ValueError: If some row sums further than ``ROW_SUM_TOL`` from 1, which means the
            input was not a log-softmax (for example logits passed as ``"logprobs"``).

    """
    sums = probs.sum(axis=1, dtype=np.float64)
    worst = float(np.max(np.abs(sums - 1.0)))
    if not worst <= ROW_SUM_TOL:
        raise ValueError(
            "kind='logprobs' expects log-softmax rows (exp sums to 1), but a row of the "
            f"mean probabilities is off by {worst:.3g}; pass kind='logits' for "
            "unnormalised scores"
        )


def check_probs(probs: Any) -> np.ndarray:
    """Validates an ``[N, C]`` probability matrix (values in [0, 1]).

    Raises:
        ValueError: On wrong dtype / shape, no examples, fewer than 2 classes, NaN, or
            values outside ``[0, 1]`` (beyond rounding tolerance).

    """
    arr = _as_float_array(probs, "probs")
    if arr.ndim != 2:
        raise ValueError(f"probs must be an [N, C] array, got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("probs has no examples")
    if arr.shape[1] < 2:
        raise ValueError(f"probs needs at least 2 classes, got shape {arr.shape}")
    lo, hi = _range(arr)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError("probs contains NaN")
    if lo < 0.0 or hi > 1.0 + PROB_TOL:
        raise ValueError(
            f"probs must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "use to_probs() to convert logits or log-probabilities"
        )
    return arr


def check_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    """Validates integer class labels.

    Args:
        labels: ``[N]`` integer class indices.
        n: Expected number of examples.
        num_classes: Number of classes ``C``; labels must lie in ``[0, C)``.

    Returns:
        The labels as int64.

    Raises:
        ValueError: On a non-integer dtype, wrong shape or length, or labels out of range
            (``-1`` marks OOD examples, which are scored with ``score_ood`` instead).

    """
    arr = np.asarray(labels)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"labels has {arr.shape[0]} entries but predictions have {n} examples")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"labels must be >= 0, got {lo} (OOD examples, label -1, go to score_ood)")
    if hi >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}, got {hi}")
    return arr.astype(np.int64, copy=False)


def check_confidences(confidences: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validates per-example confidences and correctness indicators.

    Args:
        confidences: ``[N]`` floats in ``[0, 1]``.
        correct: ``[N]`` booleans, or numbers that are all 0 or 1.

    Returns:
        ``(confidences, correct)`` as a float32/float64 array and a bool array.

    Raises:
        ValueError: On wrong shapes, mismatched lengths, no examples, non-finite or
            out-of-range confidences, or non-binary ``correct``.

    """
    conf = _as_float_array(confidences, "confidences")
    if conf.ndim != 1:
        raise ValueError(f"confidences must be 1-D [N], got shape {conf.shape}")
    if conf.shape[0] < 1:
        raise ValueError("confidences is empty")
    lo, hi = _range(conf)
    if not (0.0 <= lo and hi <= 1.0):
        raise ValueError(f"confidences must be finite and in [0, 1], got range [{lo}, {hi}]")
    corr = np.asarray(correct)
    if corr.ndim != 1 or corr.shape[0] != conf.shape[0]:
        raise ValueError(
            f"correct must be 1-D with the same length as confidences ({conf.shape[0]}), "
            f"got shape {corr.shape}"
        )
    if corr.dtype != np.bool_:
        if not (np.issubdtype(corr.dtype, np.integer) or np.issubdtype(corr.dtype, np.floating)):
            raise ValueError(f"correct must be boolean or 0/1 numbers, got dtype {corr.dtype}")
        if not np.all((corr == 0) | (corr == 1)):
            raise ValueError("correct must contain only 0/1 (or booleans)")
        corr = corr.astype(np.bool_)
    return conf, corr


def check_scores(score_id: Any, score_ood: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validates OOD-detection scores (higher = more in-distribution).

    Returns:
        Both score arrays as float64.

    Raises:
        ValueError: On non-1-D or empty arrays, or non-finite scores.

    """
    out = []
    for name, s in (("score_id", score_id), ("score_ood", score_ood)):
        arr = _as_float_array(s, name)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if arr.shape[0] < 1:
            raise ValueError(f"{name} is empty")
        lo, hi = _range(arr)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} must be finite, got range [{lo}, {hi}]")
        out.append(arr.astype(np.float64, copy=False))
    return out[0], out[1]


def check_n_bins(n_bins: Any) -> int:
    """Checks that ``n_bins`` is a positive integer."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def check_coverage(coverage: Any) -> float:
    """Checks that ``coverage`` is a number in ``(0, 1]``."""
    try:
        value = float(coverage)
    except (TypeError, ValueError):
        raise ValueError(f"coverage must be a number in (0, 1], got {coverage!r}") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    return value
