"""Predictive probabilities and proper-scoring / accuracy metrics.

Conventions:

* ``kind="logits"``: ``[N, C]`` unnormalised scores; ``p = softmax(z)``.
* ``kind="logprobs"``: ``[S, N, C]`` Monte Carlo log-probabilities (each ``[N, C]`` slice
  a log-softmax); ``p = (1/S) sum_s exp(logprobs_s)`` (the Bayesian model average).
* The predicted class is ``argmax_k p_k`` with ties going to the lowest class index
  (numpy/torch ``argmax`` convention, also used by torchmetrics).

Heavy elementwise work uses numpy and torch in place on one buffer; all reductions that
produce a reported number are accumulated in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics._inputs import (
    as_tensor,
    check_labels,
    check_pred,
    check_prob_rows,
    check_probs,
    lazy_torch,
)

# Floor for p_y inside log(): a probability that underflowed to 0 costs -log(tiny) ~ 708
# nats instead of +inf, so one example cannot turn the mean into inf.
NLL_EPS = float(np.finfo(np.float64).tiny)
# Below this p_y, float32 softmax has lost relative precision (subnormals) or underflowed,
# so score_predictions recomputes log p_y from the logits.
_LOG_DOMAIN_BELOW = 1e-30


def to_probs(pred: Any, kind: str) -> np.ndarray:
    """Converts model outputs to predictive probabilities.

    ``p_ik = exp(z_ik) / sum_j exp(z_ij)`` for logits and
    ``p_ik = (1/S) sum_s exp(l_sik)`` for Monte Carlo log-probabilities.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``[N, C]`` probabilities, float32 for float16/float32 input, else float64.

    Raises:
        ValueError: On invalid ``pred``/``kind`` (see ``check_pred``) or log-probability
            rows that do not sum to 1.

    """
    arr = check_pred(pred, kind)
    probs = _to_probs(arr, kind)
    if kind == "logprobs":
        check_prob_rows(probs)
    return probs


def _to_probs(pred: np.ndarray, kind: str) -> np.ndarray:
    """``to_probs`` on validated input."""
    return _softmax(pred) if kind == "logits" else _mean_exp(pred)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax ``exp(z - max z) / sum exp(z - max z)`` computed in one buffer.

    Measured single-threaded on 50,000 x 1,000 float32 this numpy/torch mix takes about
    two thirds of the time of ``torch.softmax``: numpy row reductions are fast and
    torch's ``exp`` is faster than numpy's.
    """
    out = np.subtract(z, z.max(axis=1, keepdims=True))
    as_tensor(out).exp_()
    out *= 1.0 / out.sum(axis=1, keepdims=True)
    return out


def _mean_exp(logprobs: np.ndarray) -> np.ndarray:
    """``(1/S) sum_s exp(l_s)``, one sample at a time to keep memory at two ``[N, C]``."""
    torch = lazy_torch()
    n_samples = logprobs.shape[0]
    out = np.empty_like(logprobs[0])
    torch.exp(as_tensor(logprobs[0]), out=as_tensor(out))
    if n_samples > 1:
        buf = np.empty_like(out)
        for s in range(1, n_samples):
            torch.exp(as_tensor(logprobs[s]), out=as_tensor(buf))
            out += buf
        out *= 1.0 / n_samples
    return out


def _top1(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (max probability, argmax class) per row."""
    pred = probs.argmax(axis=1)
    conf = np.take_along_axis(probs, pred[:, None], axis=1)[:, 0]
    return conf, pred


def _label_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p_{i, y_i}`` as float64."""
    return np.take_along_axis(probs, labels[:, None], axis=1)[:, 0].astype(np.float64)


def accuracy(probs: Any, labels: Any) -> float:
    """Top-1 accuracy ``(1/N) sum_i 1[argmax_k p_ik = y_i]``.

    Args:
        probs: ``[N, C]`` probabilities (any scores whose argmax is the prediction).
        labels: ``[N]`` integer labels in ``[0, C)``.

    Returns:
        Accuracy as a fraction in ``[0, 1]``; higher is better.

    """
    p = check_probs(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    return _accuracy(_top1(p)[1], y)


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(pred == labels))


def nll(probs: Any, labels: Any) -> float:
    """Negative log-likelihood ``-(1/N) sum_i log max(p_{i,y_i}, eps)``.

    ``eps = NLL_EPS`` (the smallest normal float64, ~2.2e-308), so a zero probability
    costs about 708 nats. Natural log (nats).

    Args:
        probs: ``[N, C]`` probabilities.
        labels: ``[N]`` integer labels in ``[0, C)``.

    Returns:
        Mean NLL in nats; lower is better.

    """
    p = check_probs(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    return _nll_from_log(np.log(np.maximum(_label_probs(p, y), NLL_EPS)))


def _nll_from_log(log_py: np.ndarray) -> float:
    # Only an exact zero (-inf, possible with -inf log-probabilities) is floored.
    return float(-np.mean(np.where(np.isneginf(log_py), np.log(NLL_EPS), log_py)))


def _label_log_probs(pred: np.ndarray, kind: str, probs: np.ndarray, labels: np.ndarray):
    """``log p_{i,y_i}`` without the underflow of ``log(probs)``.

    For logprobs: ``logsumexp_s l_{s,i,y_i} - log S`` (exact, only touches ``[S, N]``).
    For logits: ``log p_y`` from the probabilities, recomputed as
    ``z_y - logsumexp(z)`` on the (rare) rows where ``p_y < 1e-30`` so that strongly
    wrong, overconfident predictions keep their true loss instead of a clipped one.
    """
    if kind == "logprobs":
        lp = np.take_along_axis(pred, labels[None, :, None], axis=2)[:, :, 0]
        lp = lp.astype(np.float64)
        m = lp.max(axis=0)
        finite_m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(lp - finite_m).mean(axis=0)) + finite_m
    p_y = _label_probs(probs, labels)
    with np.errstate(divide="ignore"):
        log_py = np.log(p_y)
    rows = np.flatnonzero(p_y < _LOG_DOMAIN_BELOW)
    if rows.size:
        z = pred[rows].astype(np.float64)
        m = z.max(axis=1)
        lse = np.log(np.exp(z - m[:, None]).sum(axis=1)) + m
        log_py[rows] = z[np.arange(rows.size), labels[rows]] - lse
    return log_py


def brier(probs: Any, labels: Any) -> float:
    """Multiclass Brier score ``(1/N) sum_i sum_k (p_ik - 1[y_i = k])^2``.

    Computed as ``sum_k p_ik^2 - 2 p_{i,y_i} + 1`` per row (one pass over ``probs``).
    Ranges over ``[0, 2]``; for ``C = 2`` it is twice sklearn's binary
    ``brier_score_loss``.

    Args:
        probs: ``[N, C]`` probabilities.
        labels: ``[N]`` integer labels in ``[0, C)``.

    Returns:
        Mean Brier score; lower is better.

    """
    p = check_probs(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    return _brier(p, y)


def _brier(probs: np.ndarray, labels: np.ndarray) -> float:
    sq = np.einsum("ij,ij->i", probs, probs).astype(np.float64)
    per_example = sq - 2.0 * _label_probs(probs, labels) + 1.0
    # float32 rounding can push a perfect prediction a hair below 0.
    return float(max(np.mean(per_example), 0.0))
