"""Metric registry and the two aggregate entry points used by the pipeline.

* :func:`score_predictions` scores an ``id`` or ``shift`` split: every ``cls/``, ``cal/``
  and ``sc/`` metric.
* :func:`score_ood` scores an ``ood`` split against its ``id`` split: every ``ood/``
  metric whose uncertainty score is defined for the prediction kind.

Both validate their inputs once, convert to probabilities once, and then call the
private computations of the metric modules. Confidence for calibration and selective
metrics is the maximum predictive probability (MSP); "correct" means the argmax class
equals the label.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from bench.metrics._inputs import check_labels, check_pred, check_prob_rows
from bench.metrics.calibration import (
    _ece_adaptive,
    _ece_classwise,
    _ece_equal_width,
    _ece_per_batch,
    _mce,
)
from bench.metrics.classification import (
    NLL_EPS,
    _accuracy,
    _brier,
    _label_log_probs,
    _nll_from_log,
    _to_probs,
    _top1,
)
from bench.metrics.ood import _auroc, _average_precision, _fpr_at_tpr
from bench.metrics.selective import _accuracy_at_coverage, _aurc, _eaurc, _groups
from bench.metrics.uncertainty import SCORE_NAMES, _all_scores
from bench.registry import UnknownNameError

MetricKind = Literal["cls", "cal", "sc", "ood"]


@dataclass(frozen=True)
class MetricSpec:
    """Static description of one reported metric.

    Attributes:
        key: Stable identifier used in result files, e.g. ``cal/ece``.
        kind: Metric group, the key's prefix: ``cls`` (classification), ``cal``
            (calibration), ``sc`` (selective classification) or ``ood`` (OOD detection).
            ``cls``/``cal``/``sc`` come from :func:`score_predictions` on id/shift splits,
            ``ood`` from :func:`score_ood`.
        higher_is_better: Direction for ranking methods.
        description: One line for tables and docs.
        legacy: True for variants kept only to compare with numbers reported elsewhere
            (not part of the headline tables).

    """

    key: str
    kind: MetricKind
    higher_is_better: bool
    description: str
    legacy: bool = False


_SCORE_TEXT = {
    "msp": "max softmax probability",
    "entropy": "negative predictive entropy",
    "energy": "logsumexp of logits (logits only)",
    "mi": "negative mutual information (MC samples, S > 1)",
}

N_BINS = 15  # cal/ece, cal/ece_adaptive, cal/mce, cal/ece_classwise (Guo et al. 2017)
N_BINS_LEGACY = 10  # cal/ece_10bin, cal/ece_carot
CAROT_EVAL_BATCH = 512  # cal/ece_carot: CaRot's evaluation batch size

_COVERAGES = {"sc/acc_at_50": 0.5, "sc/acc_at_80": 0.8, "sc/acc_at_90": 0.9}


def _build_specs() -> dict[str, MetricSpec]:
    specs = [
        MetricSpec("cls/acc", "cls", True, "top-1 accuracy"),
        MetricSpec("cls/nll", "cls", False, "negative log-likelihood of the label (nats)"),
        MetricSpec("cls/brier", "cls", False, "multiclass Brier score, sum over classes"),
        MetricSpec("cal/ece", "cal", False, "top-label ECE, 15 equal-width bins"),
        MetricSpec("cal/ece_adaptive", "cal", False, "top-label ECE, 15 equal-mass bins"),
        MetricSpec("cal/mce", "cal", False, "maximum calibration error, 15 equal-width bins"),
        MetricSpec("cal/ece_classwise", "cal", False, "class-wise ECE, 15 equal-width bins"),
        MetricSpec("cal/ece_10bin", "cal", False, "top-label ECE, 10 equal-width bins", True),
        MetricSpec(
            "cal/ece_carot",
            "cal",
            False,
            "CaRot's ECE: 10-bin ECE per batch of 512 in split order, example-weighted",
            True,
        ),
        MetricSpec("sc/aurc", "sc", False, "area under the risk-coverage curve (MSP)"),
        MetricSpec("sc/eaurc", "sc", False, "AURC minus the oracle AURC (MSP)"),
    ]
    for key, cov in _COVERAGES.items():
        specs.append(MetricSpec(key, "sc", True, f"accuracy on the {cov:.0%} most confident"))
    for s in SCORE_NAMES:
        text = _SCORE_TEXT[s]
        specs += [
            MetricSpec(f"ood/auroc_{s}", "ood", True, f"AUROC, ID positive; score: {text}"),
            MetricSpec(f"ood/aupr_in_{s}", "ood", True, f"AUPR, ID positive; score: {text}"),
            MetricSpec(f"ood/aupr_out_{s}", "ood", True, f"AUPR, OOD positive; score: {text}"),
            MetricSpec(f"ood/fpr95_{s}", "ood", False, f"FPR at 95% ID TPR; score: {text}"),
        ]
    return {spec.key: spec for spec in specs}


METRICS: Mapping[str, MetricSpec] = MappingProxyType(_build_specs())
"""Every reported metric by key, in canonical table order (read-only)."""


def list_metrics(pattern: str = "*") -> list[str]:
    """Metric keys matching a shell-style pattern, in canonical order.

    Args:
        pattern: ``fnmatch`` pattern, case-sensitive, e.g. ``"cal/*"``, ``"ood/*_msp"``.

    Returns:
        Matching keys in the order of ``METRICS`` (grouped cls, cal, sc, ood).

    """
    return [k for k in METRICS if fnmatch.fnmatchcase(k, pattern)]


def metric_spec(key: str) -> MetricSpec:
    """The :class:`MetricSpec` of ``key``.

    Raises:
        UnknownNameError: (a ``KeyError``) if the key is unknown; the message lists all.

    """
    try:
        return METRICS[key]
    except KeyError:
        raise UnknownNameError(
            f"unknown metric {key!r}; valid choices: {', '.join(METRICS)}"
        ) from None


class _Timer:
    """Records wall time per stage into an optional dict (for the benchmark)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.sink is not None:
            now = time.perf_counter()
            self.sink[stage] = self.sink.get(stage, 0.0) + now - self.last
            self.last = now


def score_predictions(
    pred: Any, labels: Any, kind: str, *, timings: dict[str, float] | None = None
) -> dict[str, float]:
    """All ``cls/``, ``cal/`` and ``sc/`` metrics of one id or shift split.

    Confidence is ``c_i = max_k p_ik`` and ``correct_i = 1[argmax_k p_ik = y_i]`` with
    ``p = to_probs(pred, kind)``. ``cls/nll`` is computed in the log domain
    (``_label_log_probs``), so it equals ``nll(to_probs(pred, kind), labels)`` except when
    some ``p_y`` underflows, where it keeps the true loss instead of clipping.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        labels: ``[N]`` integer labels in ``[0, C)``.
        kind: ``"logits"`` or ``"logprobs"``.
        timings: If a dict is given, wall seconds per stage are added to it under
            ``validate``, ``to_probs``, ``cls``, ``cal``, ``cal_classwise``, ``sc``.

    Returns:
        ``{key: value}`` for every key in ``list_metrics("cls/*")``, ``"cal/*"`` and
        ``"sc/*"``, as python floats (fractions, not percent).

    Raises:
        ValueError: On invalid inputs (see ``bench.metrics._inputs``).

    """
    timer = _Timer(timings)
    arr = check_pred(pred, kind)
    y = check_labels(labels, arr.shape[-2], arr.shape[-1])
    timer.lap("validate")
    probs = _to_probs(arr, kind)
    if kind == "logprobs":
        check_prob_rows(probs)
    timer.lap("to_probs")

    conf, pred_cls = _top1(probs)
    correct = pred_cls == y
    out = {
        "cls/acc": _accuracy(pred_cls, y),
        "cls/nll": _nll_from_log(_label_log_probs(arr, kind, probs, y)),
        "cls/brier": _brier(probs, y),
    }
    timer.lap("cls")
    out["cal/ece"] = _ece_equal_width(conf, correct, N_BINS)
    out["cal/ece_adaptive"] = _ece_adaptive(conf, correct, N_BINS)
    out["cal/mce"] = _mce(conf, correct, N_BINS)
    out["cal/ece_10bin"] = _ece_equal_width(conf, correct, N_BINS_LEGACY)
    out["cal/ece_carot"] = _ece_per_batch(conf, correct, N_BINS_LEGACY, CAROT_EVAL_BATCH)
    timer.lap("cal")
    out["cal/ece_classwise"] = _ece_classwise(probs, y, N_BINS)
    timer.lap("cal_classwise")
    k, e = _groups(conf, correct)
    out["sc/aurc"] = _aurc(k, e)
    out["sc/eaurc"] = _eaurc(k, e)
    for key, cov in _COVERAGES.items():
        out[key] = _accuracy_at_coverage(k, e, cov)
    timer.lap("sc")
    return {key: out[key] for key in METRICS if key in out}


def score_ood(pred_id: Any, pred_ood: Any, kind: str) -> dict[str, float]:
    """All ``ood/`` metrics of an OOD split against its ID split.

    For each score ``s`` defined for ``kind`` (``msp`` and ``entropy`` always, ``energy``
    for logits, ``mi`` for log-probabilities with ``S > 1`` in both splits), reports
    ``ood/auroc_s``, ``ood/aupr_in_s``, ``ood/aupr_out_s`` and ``ood/fpr95_s`` with ID as
    the positive class (OOD for AUPR-Out). Undefined scores are omitted, not NaN.

    Args:
        pred_id: In-distribution predictions, ``[N_id, C]`` or ``[S, N_id, C]``.
        pred_ood: OOD predictions of the same kind and number of classes.
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``{key: value}`` in canonical key order, python floats.

    Raises:
        ValueError: On invalid inputs or a class-count mismatch between the splits.

    """
    arr_id = check_pred(pred_id, kind)
    arr_ood = check_pred(pred_ood, kind)
    if arr_id.shape[-1] != arr_ood.shape[-1]:
        raise ValueError(
            f"pred_id has {arr_id.shape[-1]} classes but pred_ood has {arr_ood.shape[-1]}"
        )
    probs = []
    for arr in (arr_id, arr_ood):
        p = _to_probs(arr, kind)
        if kind == "logprobs":
            check_prob_rows(p)
        probs.append(p)
    scores_id = _all_scores(arr_id, kind, probs[0])
    scores_ood = _all_scores(arr_ood, kind, probs[1])
    out: dict[str, float] = {}
    for s in SCORE_NAMES:
        if s not in scores_id or s not in scores_ood:
            continue
        s_id, s_ood = scores_id[s], scores_ood[s]
        out[f"ood/auroc_{s}"] = _auroc(s_id, s_ood)
        out[f"ood/aupr_in_{s}"] = _average_precision(s_id, s_ood)
        out[f"ood/aupr_out_{s}"] = _average_precision(-s_ood, -s_id)
        out[f"ood/fpr95_{s}"] = _fpr_at_tpr(s_id, s_ood)
    return {key: out[key] for key in METRICS if key in out}


def example_statistics(pred: Any, labels: Any | None, kind: str) -> dict[str, np.ndarray]:
    """Per-example quantities from which the headline metrics are means or rank statistics.

    Used by the paired bootstrap (:mod:`bench.reporting.stats`), which resamples examples
    and must reproduce :func:`score_predictions` / :func:`score_ood` exactly on the full
    sample. Confidence and correctness follow :func:`score_predictions` (MSP, arg-max with
    ties to the lowest class); ``nll`` is ``-log p_{i,y_i}`` computed in the log domain, so
    its mean is ``cls/nll``. The confidence of an OOD split is its MSP score.

    Args:
        pred: ``[N, C]`` logits or ``[S, N, C]`` log-probabilities.
        labels: ``[N]`` labels, or ``None`` for an OOD split (confidence only).
        kind: ``"logits"`` or ``"logprobs"``.

    Returns:
        ``{"confidence": [N]}`` (the probabilities' dtype) plus, with labels,
        ``"correct": bool [N]`` and ``"nll": float64 [N]``.

    """
    arr = check_pred(pred, kind)
    probs = _to_probs(arr, kind)
    conf, pred_cls = _top1(probs)
    # Confidences keep their dtype: ECE's bin edges depend on it (bench.metrics.calibration).
    out = {"confidence": conf}
    if labels is not None:
        y = check_labels(labels, arr.shape[-2], arr.shape[-1])
        log_py = _label_log_probs(arr, kind, probs, y)
        out["correct"] = pred_cls == y
        out["nll"] = -np.where(np.isneginf(log_py), np.log(NLL_EPS), log_py)
    return out
