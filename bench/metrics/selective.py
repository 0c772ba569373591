"""Selective classification: risk-coverage curve, AURC, E-AURC, accuracy at coverage.

A selective classifier answers only when its confidence ``c_i`` clears a threshold
``t``; coverage is the fraction answered and risk the error rate among them
(El-Yaniv & Wiener 2010; Geifman & El-Yaniv 2017).

Tie convention: **tied confidences enter together.** The curve has one point per
distinct confidence value ``t`` (in decreasing order), covering every example with
``c_i >= t``; no ordering of tied examples is ever invented. ``accuracy_at_coverage``
needs an exact number of examples, so when its cut falls inside a tie group it counts
the group's mean accuracy for the part it takes (the expectation over random tie
breaking). Without ties all definitions reduce to the usual sorted-order ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.metrics._inputs import check_confidences, check_coverage


def _groups(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (covered count, error count) at each distinct confidence, descending.

    Returns:
        ``(k, e)``: ``k[g]`` = #examples with ``c >= t_g`` and ``e[g]`` = #errors among
        them, for the distinct confidences ``t_0 > t_1 > ...``.

    """
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    cum_err = np.cumsum(~correct[order])
    ends = np.flatnonzero(np.diff(sorted_conf))
    ends = np.append(ends, sorted_conf.shape[0] - 1)
    return ends + 1, cum_err[ends]


def risk_coverage_curve(confidences: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve at every distinct confidence threshold.

    For each distinct confidence ``t`` in decreasing order:
    ``coverage(t) = #{i : c_i >= t} / N`` and
    ``risk(t) = #{i : c_i >= t, wrong} / #{i : c_i >= t}``.

    Args:
        confidences: ``[N]`` confidences in ``[0, 1]``.
        correct: ``[N]`` booleans (or 0/1).

    Returns:
        ``(coverage, risk)`` float64 arrays, coverage strictly increasing to 1.

    """
    conf, corr = check_confidences(confidences, correct)
    k, e = _groups(conf, corr)
    return k / conf.shape[0], e / k


def aurc(confidences: Any, correct: Any) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019).

    ``AURC = (1/N) sum_i risk(c_i) = sum_g (n_g / N) * risk(t_g)``: every example
    contributes the risk at its own confidence threshold, where its whole tie group is
    covered (a right-continuous step integral of the curve). Without ties this is the
    usual ``(1/N) sum_{k=1}^{N} (errors among the k most confident) / k``.

    Returns:
        AURC in ``[0, 1]``; lower is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _aurc(*_groups(conf, corr))


def _aurc(k: np.ndarray, e: np.ndarray) -> float:
    n_g = np.diff(k, prepend=0)
    return float(np.sum(n_g * (e / k)) / k[-1])


def _oracle_aurc(n: int, n_err: int) -> float:
    """AURC of the ranking that puts all correct examples first.

    ``(1/N) sum_{j=1}^{E} j / (N - E + j)`` for ``E`` errors out of ``N``; its limit for
    large ``N`` is Geifman et al.'s ``r + (1 - r) ln(1 - r)`` with ``r = E/N``.
    """
    j = np.arange(1, n_err + 1, dtype=np.float64)
    return float(np.sum(j / (n - n_err + j)) / n)


def eaurc(confidences: Any, correct: Any) -> float:
    """Excess AURC: ``E-AURC = AURC - AURC_oracle`` (Geifman et al. 2019).

    ``AURC_oracle`` is the exact finite-sample AURC of a ranking with the same errors
    that ranks every correct prediction above every error (see ``_oracle_aurc``). It is
    always ``>= 0``, also with ties (a tie group's risk is never below the oracle's).

    Returns:
        E-AURC in ``[0, 1]``; lower is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _eaurc(*_groups(conf, corr))


def _eaurc(k: np.ndarray, e: np.ndarray) -> float:
    return _aurc(k, e) - _oracle_aurc(int(k[-1]), int(e[-1]))


def accuracy_at_coverage(confidences: Any, correct: Any, coverage: float) -> float:
    """Accuracy on the ``m = ceil(coverage * N)`` most confident examples.

    If the cut falls inside a tie group ``g`` (covered counts ``k_{g-1} < m < k_g``), the
    ``m - k_{g-1}`` examples taken from it count with the group's mean accuracy:
    ``acc = (correct_{<g} + (m - k_{g-1}) * correct_g / n_g) / m``, the expected accuracy
    under uniformly random tie breaking (order independent).

    Args:
        confidences: ``[N]`` confidences in ``[0, 1]``.
        correct: ``[N]`` booleans (or 0/1).
        coverage: Fraction of examples to keep, in ``(0, 1]``.

    Returns:
        Selective accuracy in ``[0, 1]``; higher is better.

    """
    conf, corr = check_confidences(confidences, correct)
    return _accuracy_at_coverage(*_groups(conf, corr), check_coverage(coverage))


def _accuracy_at_coverage(k: np.ndarray, e: np.ndarray, coverage: float) -> float:
    n = int(k[-1])
    # Subtract a hair so that e.g. 0.8 * 1000 = 800.0000000000001 keeps 800 examples.
    m = min(n, max(1, math.ceil(coverage * n - 1e-9 * n)))
    g = int(np.searchsorted(k, m, side="left"))  # first group with k_g >= m
    k_prev = int(k[g - 1]) if g else 0
    e_prev = int(e[g - 1]) if g else 0
    n_g = int(k[g]) - k_prev
    correct_g = n_g - (int(e[g]) - e_prev)
    n_correct = (k_prev - e_prev) + (m - k_prev) * correct_g / n_g
    return float(n_correct / m)
