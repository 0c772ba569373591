"""Binned calibration errors and reliability-diagram statistics.

Binning conventions (see ``docs/metrics.md``):

* **Equal-width bins** (``ece_equal_width``, ``mce``, ``reliability_bins``,
  ``ece_classwise``): edges ``e_0 = 0 < e_1 < ... < e_B = 1`` are
  ``torch.linspace(0, 1, B + 1)`` in the confidence dtype (float32 or float64), exactly
  the edges torchmetrics uses; bin ``b`` is the half-open interval ``[e_b, e_{b+1})``,
  except the last bin, which is closed, ``[e_{B-1}, 1]``: a confidence of exactly 1.0
  falls in the last bin. For every confidence below 1.0 the bin assignment is identical to
  ``torchmetrics.functional.classification.multiclass_calibration_error`` (which
  computes ``bucketize(c, edges, right=True) - 1``). torchmetrics differs at exactly 1.0:
  it gives such confidences a bin of their own (an (B+1)-th bin ``[1, 1]``).
* **Equal-mass bins** (``ece_adaptive``): the examples sorted by confidence are cut into
  ``B`` contiguous chunks whose sizes differ by at most one (``np.array_split`` sizes);
  tied confidences never straddle a cut: a tie group that crosses one or more cuts goes
  whole to the last chunk it reaches. Results therefore do not depend on input order.

All per-bin sums are accumulated in float64.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bench.metrics._inputs import (
    check_confidences,
    check_labels,
    check_n_bins,
    check_probs,
    lazy_torch,
)


@functools.cache
def _edges(n_bins: int, dtype: np.dtype) -> np.ndarray:
    """Bin edges identical to torchmetrics' ``torch.linspace(0, 1, n_bins + 1)``.

    ``np.linspace`` rounds some float32 edges differently (e.g. the 3rd of 4 edges for
    ``n_bins=3``), which would move confidences sitting on an edge to another bin.
    """
    torch = lazy_torch()
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=tdtype).numpy().copy()
    edges.flags.writeable = False
    return edges


def _equal_width_index(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each value: ``b`` with ``e_b <= v < e_{b+1}``, values ``>= 1`` in the last bin."""
    edges = _edges(n_bins, values.dtype)
    idx = np.searchsorted(edges, values, side="right") - 1
    return np.minimum(idx, n_bins - 1)


def _bin_sums(
    idx: np.ndarray, conf: np.ndarray, correct: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (count, sum of confidences, number correct) with float64 sums."""
    count = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_correct = np.bincount(idx, weights=correct, minlength=n_bins)
    return count, sum_conf, sum_correct


def reliability_bins(
    confidences: Any, correct: Any, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin statistics of a reliability diagram with equal-width bins.

    For bin ``b`` with index set ``I_b``: ``conf_b = mean_{i in I_b} c_i``,
    ``acc_b = mean_{i in I_b} correct_i``, ``count_b = |I_b|``.

    Args:
        confidences: ``[N]`` confidences in ``[0, 1]`` (usually the max probability).
        correct: ``[N]`` booleans (or 0/1), whether the prediction was right.
        n_bins: Number of equal-width bins ``B``.

    Returns:
        ``(bin_confidence, bin_accuracy, bin_count)``, each of length ``n_bins``;
        confidence and accuracy are NaN for empty bins, counts are int64.

    """
    conf, corr = check_confidences(confidences, correct)
    n_bins = check_n_bins(n_bins)
    count, sum_conf, sum_correct = _bin_sums(_equal_width_index(conf, n_bins), conf, corr, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sum_conf / count, sum_correct / count, count


def ece_equal_width(confidences: Any, correct: Any, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width bins (Naeini et al. 2015; Guo et al. 2017).

    ``ECE = sum_b (|I_b| / N) * |acc_b - conf_b|
          = (1/N) sum_b |sum_{i in I_b} (correct_i - c_i)|``.

    Matches torchmetrics ``multiclass_calibration_error(norm="l1")`` except that
    confidences of exactly 1.0 share the last bin (see module docstring).

    Args:
        confidences: ``[N]`` confidences in ``[0, 1]``.
        correct: ``[N]`` booleans (or 0/1).
        n_bins: Number of equal-width bins.

    Returns:
        ECE in ``[0, 1]``; lower is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _ece_equal_width(conf, corr, check_n_bins(n_bins))


def _ece_equal_width(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    _, sum_conf, sum_correct = _bin_sums(_equal_width_index(conf, n_bins), conf, correct, n_bins)
    return float(np.abs(sum_correct - sum_conf).sum() / conf.shape[0])


def ece_per_batch(confidences: Any, correct: Any, n_bins: int = 10, batch_size: int = 512) -> float:
    """CaRot's ECE: torchmetrics' 10-bin ECE per evaluation batch, example-weighted mean.

    The examples, in split order, are cut into consecutive batches of ``batch_size``
    (the last may be smaller); each batch's ECE uses torchmetrics' own binning, in
    which a confidence of exactly 1.0 has a bin of its own; the result is
    ``sum_b n_b ECE_b / N``. Kept only as a named legacy metric: it depends on the
    order of the examples (CaRot's unshuffled ImageFolder loaders are class-sorted) and
    is not the dataset-level ECE.

    References:
        CaRot's ``src/models/eval.py`` (torchmetrics ``MulticlassCalibrationError``,
        ``n_bins=10``, ``norm='l1'``, one per batch of 512).
    """
    conf, corr = check_confidences(confidences, correct)
    return _ece_per_batch(conf, corr, check_n_bins(n_bins), int(batch_size))


def _ece_per_batch(conf: np.ndarray, correct: np.ndarray, n_bins: int, batch_size: int) -> float:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    edges = _edges(n_bins, conf.dtype)
    total = 0.0
    for start in range(0, conf.shape[0], batch_size):
        c, k = conf[start : start + batch_size], correct[start : start + batch_size]
        # torchmetrics: bucketize(c, edges, right=True) - 1, so c == 1.0 lands in bin n_bins.
        idx = np.searchsorted(edges, c, side="right") - 1
        _, sum_conf, sum_correct = _bin_sums(idx, c, k, n_bins + 1)
        total += float(np.abs(sum_correct - sum_conf).sum())  # = n_b * ECE_b
    return total / conf.shape[0]


def mce(confidences: Any, correct: Any, n_bins: int = 15) -> float:
    """Maximum calibration error over non-empty equal-width bins (Naeini et al. 2015).

    ``MCE = max_{b : |I_b| > 0} |acc_b - conf_b|``.

    Matches torchmetrics ``multiclass_calibration_error(norm="max")`` (which scores empty
    bins as 0) except for the 1.0 convention in the module docstring.

    Returns:
        MCE in ``[0, 1]``; lower is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _mce(conf, corr, check_n_bins(n_bins))


def _mce(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    count, sum_conf, sum_correct = _bin_sums(
        _equal_width_index(conf, n_bins), conf, correct, n_bins
    )
    full = count > 0
    return float(np.max(np.abs(sum_correct[full] - sum_conf[full]) / count[full]))


def ece_adaptive(confidences: Any, correct: Any, n_bins: int = 15) -> float:
    """ECE with equal-mass (adaptive) bins (Nixon et al. 2019; Mukhoti et al. 2020).

    Sort by confidence, cut into ``B`` chunks of sizes ``ceil(N/B)`` (the first
    ``N mod B`` chunks) and ``floor(N/B)``; a tie group crossing cuts goes whole to the
    last chunk it reaches. Then ``ECE = (1/N) sum_b |sum_{i in I_b} (correct_i - c_i)|``.

    Args:
        confidences: ``[N]`` confidences in ``[0, 1]``.
        correct: ``[N]`` booleans (or 0/1).
        n_bins: Number of bins ``B``; with ``N < B`` some bins are empty.

    Returns:
        Adaptive ECE in ``[0, 1]``; lower is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _ece_adaptive(conf, corr, check_n_bins(n_bins))


def _ece_adaptive(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    n = conf.shape[0]
    sorted_conf = np.sort(conf)
    # Chunk b starts at b*floor(N/B) + min(b, N mod B) (np.array_split sizes).
    b = np.arange(1, n_bins)
    starts = b * (n // n_bins) + np.minimum(b, n % n_bins)
    # Edge e_b = first value of chunk b; bin(v) = #{b : e_b <= v}, so ties at a cut go
    # to the later chunk. Empty chunks (start == N) get an edge of +inf.
    edges = np.full(n_bins - 1, np.inf)
    inside = starts < n
    edges[inside] = sorted_conf[starts[inside]]
    idx = np.searchsorted(edges, conf.astype(np.float64), side="right")
    _, sum_conf, sum_correct = _bin_sums(idx, conf, correct, n_bins)
    return float(np.abs(sum_correct - sum_conf).sum() / n)


def ece_classwise(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Class-wise ECE (Kull et al. 2019; Nixon et al. 2019 "static calibration error").

    ``cwECE = (1/C) sum_k (1/N) sum_b |sum_{i in I_kb} (1[y_i = k] - p_ik)|`` where
    ``I_kb`` are the examples whose ``p_ik`` falls in equal-width bin ``b`` (same bins as
    ``ece_equal_width``). Every class counts, including classes absent from ``labels``.

    Computed without touching all ``N*C`` entries twice: per class, the bin-0 sum of
    ``p_ik`` is the column sum minus the higher bins, and at most ``B - 1`` entries per row
    can reach bin 1 or higher (they sum to at most 1), so only those are binned.

    Args:
        probs: ``[N, C]`` probabilities.
        labels: ``[N]`` integer labels in ``[0, C)``.
        n_bins: Number of equal-width bins.

    Returns:
        Class-wise ECE in ``[0, 1]``; lower is better.

    """
    p = check_probs(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    return _ece_classwise(p, y, check_n_bins(n_bins))


def _ece_classwise(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    n, c = probs.shape
    flat = probs.reshape(-1)
    # Positives: each example contributes 1 to (class y_i, bin of p_{i,y_i}).
    p_y = flat[np.arange(n) * c + labels]
    sum_pos = np.bincount(labels * n_bins + _equal_width_index(p_y, n_bins), minlength=c * n_bins)
    sum_p = np.zeros(c * n_bins)
    if n_bins > 1:
        # Entries in bins >= 1: p >= e_1 (same dtype as probs, so same comparison as binning).
        hot = np.flatnonzero(probs >= _edges(n_bins, probs.dtype)[1])
        values = flat[hot]
        keys = (hot % c) * n_bins + _equal_width_index(values, n_bins)
        sum_p = np.bincount(keys, weights=values, minlength=c * n_bins)
    sum_p = sum_p.reshape(c, n_bins)
    col = np.add.reduce(probs, axis=0, dtype=np.float64)
    sum_p[:, 0] = col - sum_p[:, 1:].sum(axis=1)
    diff = np.abs(sum_pos.reshape(c, n_bins) - sum_p).sum(axis=1) / n
    return float(diff.mean())
