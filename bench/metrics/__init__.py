"""Metrics of the benchmark: classification, calibration, selective prediction, OOD.

Inputs are numpy arrays, outputs python floats (fractions in [0, 1], not percent) or
numpy arrays. Predictions come as ``kind="logits"`` (``[N, C]``) or ``kind="logprobs"``
(``[S, N, C]`` Monte Carlo log-softmax samples); labels are int ``[N]``. Every metric is
registered in :data:`METRICS` with its direction; see ``docs/metrics.md`` for formulas,
references and the conventions on ties and bins.

torch is imported lazily, on the first call that needs it.
"""

from bench.metrics.calibration import (
    ece_adaptive,
    ece_classwise,
    ece_equal_width,
    ece_per_batch,
    mce,
    reliability_bins,
)
from bench.metrics.classification import NLL_EPS, accuracy, brier, nll, to_probs
from bench.metrics.ood import (
    ood_aupr_in,
    ood_aupr_out,
    ood_auroc,
    ood_fpr_at_95tpr,
    ood_roc_curve,
)
from bench.metrics.scoring import (
    METRICS,
    MetricSpec,
    example_statistics,
    list_metrics,
    metric_spec,
    score_ood,
    score_predictions,
)
from bench.metrics.selective import accuracy_at_coverage, aurc, eaurc, risk_coverage_curve
from bench.metrics.uncertainty import (
    SCORE_NAMES,
    score_energy,
    score_msp,
    score_neg_entropy,
    score_neg_mutual_information,
)

__all__ = [
    "METRICS",
    "NLL_EPS",
    "SCORE_NAMES",
    "MetricSpec",
    "accuracy",
    "example_statistics",
    "accuracy_at_coverage",
    "aurc",
    "brier",
    "eaurc",
    "ece_adaptive",
    "ece_classwise",
    "ece_equal_width",
    "ece_per_batch",
    "list_metrics",
    "mce",
    "metric_spec",
    "nll",
    "ood_aupr_in",
    "ood_aupr_out",
    "ood_auroc",
    "ood_fpr_at_95tpr",
    "ood_roc_curve",
    "reliability_bins",
    "risk_coverage_curve",
    "score_energy",
    "score_msp",
    "score_neg_entropy",
    "score_neg_mutual_information",
    "score_ood",
    "score_predictions",
    "to_probs",
]
