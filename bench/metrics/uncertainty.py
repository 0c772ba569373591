"""Per-example uncertainty scores, oriented so that HIGHER = MORE IN-DISTRIBUTION.

Every score is a ``[N]`` float64 array (or ``None`` when the score is undefined for the
input kind) and is used both for OOD detection and as a selective-prediction signal.
With ``p`` the predictive distribution of ``to_probs``:

* ``msp``: ``max_k p_k`` (Hendrycks & Gimpel 2017);
* ``entropy``: ``-H[p] = sum_k p_k log p_k``;
* ``energy``: ``logsumexp_k z_k`` = minus the free energy at temperature 1 (Liu et al.
  2020), logits only;
* ``mi``: ``-I[y; theta] = -(H[p] - (1/S) sum_s H[p_s])``, minus the mutual information
  between label and model parameters (BALD; Houlsby et al. 2011; Gal et al. 2017),
  Monte Carlo log-probabilities with ``S > 1`` only.

Entropies use natural logarithms and ``0 log 0 = 0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics._inputs import as_tensor, check_pred, check_prob_rows, lazy_torch
from bench.metrics.classification import _to_probs

SCORE_NAMES: tuple[str, ...] = ("msp", "entropy", "energy", "mi")


def _probs(pred: Any, kind: str) -> tuple[np.ndarray, np.ndarray]:
    arr = check_pred(pred, kind)
    probs = _to_probs(arr, kind)
    if kind == "logprobs":
        check_prob_rows(probs)
    return arr, probs


def score_msp(pred: Any, kind: str) -> np.ndarray:
    """Maximum softmax probability ``s_i = max_k p_ik`` (higher = more in-distribution).

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``[N]`` float64 scores in ``[1/C, 1]``.

    """
    return _msp(_probs(pred, kind)[1])


def _msp(probs: np.ndarray) -> np.ndarray:
    return probs.max(axis=1).astype(np.float64)


def score_neg_entropy(pred: Any, kind: str) -> np.ndarray:
    """Negative predictive entropy ``s_i = sum_k p_ik log p_ik = -H[p_i]``.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``[N]`` float64 scores in ``[-log C, 0]``.

    """
    return _neg_entropy(_probs(pred, kind)[1])


def _neg_entropy(probs: np.ndarray) -> np.ndarray:
    torch = lazy_torch()
    t = as_tensor(probs)
    return torch.special.xlogy(t, t).sum(dim=1).double().numpy()


def score_energy(pred: Any, kind: str) -> np.ndarray | None:
    """Negative free energy ``s_i = log sum_k exp(z_ik)`` (temperature 1).

    Only defined for logits: log-probabilities have had the normaliser removed, so
    ``logsumexp`` of a log-softmax is identically 0.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``[N]`` float64 scores, or ``None`` for ``kind="logprobs"``.

    """
    arr = check_pred(pred, kind)
    return _energy(arr) if kind == "logits" else None


def _energy(logits: np.ndarray) -> np.ndarray:
    torch = lazy_torch()
    return torch.logsumexp(as_tensor(logits), dim=1).double().numpy()


def score_neg_mutual_information(pred: Any, kind: str) -> np.ndarray | None:
    """Minus the mutual information (BALD) of Monte Carlo predictions.

    ``s_i = -(H[p_i] - (1/S) sum_s H[p_si]) = sum_k p_ik log p_ik
    - (1/S) sum_s sum_k p_sik log p_sik``, with ``p_i = (1/S) sum_s p_si``.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``[N]`` float64 scores (``<= 0`` up to rounding), or ``None`` for logits or for
        a single Monte Carlo sample (``S = 1``), where the mutual information is 0.

    """
    arr = check_pred(pred, kind)
    if kind != "logprobs" or arr.shape[0] < 2:
        return None
    probs = _to_probs(arr, kind)
    check_prob_rows(probs)
    return _neg_mutual_information(arr, probs)


def _neg_mutual_information(logprobs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    expected_neg_h = np.zeros(logprobs.shape[1])
    for s in range(logprobs.shape[0]):  # one [N, C] slice at a time bounds memory
        lp = as_tensor(logprobs[s])
        # p log p with log p given; -inf log-probabilities give 0 * -inf = nan -> 0.
        plogp = (lp.exp() * lp).nan_to_num_(nan=0.0)
        expected_neg_h += plogp.sum(dim=1).double().numpy()
    expected_neg_h /= logprobs.shape[0]
    return _neg_entropy(probs) - expected_neg_h


def _all_scores(pred: np.ndarray, kind: str, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Every score defined for validated ``pred`` of this kind, keyed by ``SCORE_NAMES``."""
    scores = {"msp": _msp(probs), "entropy": _neg_entropy(probs)}
    if kind == "logits":
        scores["energy"] = _energy(pred)
    elif pred.shape[0] > 1:
        scores["mi"] = _neg_mutual_information(pred, probs)
    return scores
