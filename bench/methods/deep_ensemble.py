"""Deep ensembles as an aggregate over a method's seeds.

The members are the same method trained with different seeds (different head
initialisations and batch orders); the ensemble's prediction keeps every member's
log-softmax as one Monte Carlo sample, ``logprobs [S, N, C]``, so the predictive is
their mean probability and mutual information is defined for OOD detection.

References:
    Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty
    Estimation using Deep Ensembles", NeurIPS 2017.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from bench.io import SplitPrediction


def ensemble_predictions(members: list[dict[str, SplitPrediction]]) -> dict[str, SplitPrediction]:
    """Stacks members' log-probabilities along the sample axis.

    Raises:
        ValueError: If fewer than two members, or members disagree on splits or labels.
    """
    if len(members) < 2:
        raise ValueError(f"a deep ensemble needs at least 2 members, got {len(members)}")
    splits = list(members[0])
    out = {}
    for name in splits:
        samples = []
        for index, member in enumerate(members):
            if name not in member:
                raise ValueError(f"ensemble member {index} has no predictions for split {name!r}")
            pred = member[name]
            if not np.array_equal(pred.labels, members[0][name].labels):
                raise ValueError(f"ensemble member {index} has different labels on split {name!r}")
            samples.append(
                log_softmax(pred.values[None], axis=-1) if pred.kind == "logits" else pred.values
            )
        first = members[0][name]
        out[name] = SplitPrediction(
            info=first.info,
            labels=first.labels,
            values=np.concatenate(samples).astype(np.float32),
            kind="logprobs",
        )
    return out
