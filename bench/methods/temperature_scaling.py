"""Temperature scaling, a post-hoc modifier for any method (``<method>+ts``).

One scalar ``T > 0`` divides the logits; it is fitted by minimising the NLL of the
validation split, and changes confidence without changing any prediction's argmax.
For Monte Carlo predictions (``logprobs [S, N, C]``) it scales the log of the
predictive mean, so the result is a single calibrated distribution ``[1, N, C]``.

References:
    Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks",
    ICML 2017. https://github.com/gpleiss/temperature_scaling
"""

from __future__ import annotations

import numpy as np
import torch

from bench.io import SplitPrediction

VALIDATION_SPLIT = "val"


def _log_predictive(pred: SplitPrediction) -> np.ndarray:
    """Logits ``[N, C]`` whose softmax is the prediction (log of the MC mean)."""
    if pred.kind == "logits":
        return pred.values
    values = torch.from_numpy(pred.values).double()
    return (torch.logsumexp(values, dim=0) - np.log(values.shape[0])).float().numpy()


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the NLL of ``softmax(logits / T)`` on the given labels.

    Optimises ``log T`` (so ``T`` stays positive) with L-BFGS from ``T = 1``.
    """
    x = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def apply_temperature_scaling(
    predictions: dict[str, SplitPrediction],
) -> tuple[dict[str, SplitPrediction], dict[str, float]]:
    """Fits ``T`` on the ``val`` split and rescales every split.

    Returns:
        The rescaled predictions (``logits``) and ``{"temperature": T}``.

    Raises:
        ValueError: If the predictions have no validation split.
    """
    if VALIDATION_SPLIT not in predictions:
        raise ValueError(
            f"temperature scaling needs predictions on the {VALIDATION_SPLIT!r} split; "
            f"the base method predicted only {sorted(predictions)}"
        )
    val = predictions[VALIDATION_SPLIT]
    temperature = fit_temperature(_log_predictive(val), val.labels)
    scaled = {
        name: SplitPrediction(
            info=pred.info,
            labels=pred.labels,
            values=(_log_predictive(pred) / temperature).astype(np.float32),
            kind="logits",
        )
        for name, pred in predictions.items()
    }
    return scaled, {"temperature": temperature}
