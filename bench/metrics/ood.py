"""Out-of-distribution detection metrics on score arrays.

Scores are oriented so that HIGHER = MORE IN-DISTRIBUTION, and in-distribution (ID) is
the positive class unless stated otherwise. All metrics are computed from one sort of the
pooled scores, with thresholds at the distinct score values, so tied scores always cross
a threshold together; this reproduces sklearn's ``roc_curve``, ``roc_auc_score`` and
``average_precision_score`` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics._inputs import check_scores

TPR_LEVEL = 0.95


def _binary_curve(score_pos: np.ndarray, score_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True/false positive counts at each distinct threshold ``t`` (decreasing).

    Returns:
        ``(tps, fps)`` with ``tps[j] = #{positives with s >= t_j}`` and likewise ``fps``.

    """
    scores = np.concatenate([score_pos, score_neg])
    is_pos = np.zeros(scores.shape[0], dtype=np.int64)
    is_pos[: score_pos.shape[0]] = 1
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    ends = np.append(np.flatnonzero(np.diff(sorted_scores)), scores.shape[0] - 1)
    tps = np.cumsum(is_pos[order])[ends]
    return tps, (ends + 1) - tps


def _roc(score_pos: np.ndarray, score_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tps, fps = _binary_curve(score_pos, score_neg)
    fpr = np.concatenate([[0.0], fps / score_neg.shape[0]])
    tpr = np.concatenate([[0.0], tps / score_pos.shape[0]])
    return fpr, tpr


def ood_roc_curve(score_id: Any, score_ood: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve with ID as positive, one point per distinct score, starting at (0, 0).

    ``TPR(t) = #{ID: s >= t} / N_id``, ``FPR(t) = #{OOD: s >= t} / N_ood``. Same points as
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.

    Args:
        score_id: ``[N_id]`` scores of in-distribution examples.
        score_ood: ``[N_ood]`` scores of OOD examples.

    Returns:
        ``(fpr, tpr)`` float64 arrays, both non-decreasing from 0 to 1.

    """
    return _roc(*check_scores(score_id, score_ood))


def ood_auroc(score_id: Any, score_ood: Any) -> float:
    """Area under the ROC curve, ID positive (trapezoidal rule over ``ood_roc_curve``).

    Equals ``P(s_id > s_ood) + 0.5 P(s_id = s_ood)`` (Mann-Whitney U / (N_id N_ood)).

    Returns:
        AUROC in ``[0, 1]``; higher is better, 0.5 is chance.

    """
    return _auroc(*check_scores(score_id, score_ood))


def _auroc(score_id: np.ndarray, score_ood: np.ndarray) -> float:
    fpr, tpr = _roc(score_id, score_ood)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def _average_precision(score_pos: np.ndarray, score_neg: np.ndarray) -> float:
    """Step-wise AP ``sum_j (R_j - R_{j-1}) P_j`` (no interpolation), like sklearn."""
    tps, fps = _binary_curve(score_pos, score_neg)
    precision = tps / (tps + fps)
    recall_gain = np.diff(tps, prepend=0) / score_pos.shape[0]
    return float(np.sum(recall_gain * precision))


def ood_aupr_in(score_id: Any, score_ood: Any) -> float:
    """Area under the precision-recall curve with ID as positive (average precision).

    ``AP = sum_j (R_j - R_{j-1}) P_j`` over decreasing distinct thresholds ``t_j``, with
    ``P_j = #{ID: s >= t_j} / #{s >= t_j}``, ``R_j = #{ID: s >= t_j} / N_id``. Equals
    ``sklearn.metrics.average_precision_score``. Its chance level is ``N_id / N``.

    Returns:
        AUPR-In in ``[0, 1]``; higher is better.

    """
    return _average_precision(*check_scores(score_id, score_ood))


def ood_aupr_out(score_id: Any, score_ood: Any) -> float:
    """Average precision with OOD as positive, using negated scores ``-s``.

    Returns:
        AUPR-Out in ``[0, 1]``; higher is better. Chance level ``N_ood / N``.

    """
    score_id, score_ood = check_scores(score_id, score_ood)
    return _average_precision(-score_ood, -score_id)


def ood_fpr_at_95tpr(score_id: Any, score_ood: Any) -> float:
    """FPR on OOD at the first threshold (from the top) where TPR on ID reaches 95%.

    ``t* = max{t : #{ID: s >= t} / N_id >= 0.95}``,
    ``FPR95 = #{OOD: s >= t*} / N_ood``. Ties cross the threshold together, so the TPR
    actually reached can exceed 0.95.

    Returns:
        FPR at 95% TPR in ``[0, 1]``; lower is better.

    """
    return _fpr_at_tpr(*check_scores(score_id, score_ood))


def _fpr_at_tpr(score_id: np.ndarray, score_ood: np.ndarray, level: float = TPR_LEVEL) -> float:
    tps, fps = _binary_curve(score_id, score_ood)
    j = int(np.searchsorted(tps / score_id.shape[0], level, side="left"))
    return float(fps[j] / score_ood.shape[0])
