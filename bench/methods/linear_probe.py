"""Linear probe: multinomial logistic regression on frozen features.

The L2 strength is chosen on the validation split, as in the CLIP paper's linear-probe
protocol (Radford et al., 2021, which sweeps sklearn's C). Two searches:

* ``search: grid`` (default): the penalties of ``l2_grid`` on the mean loss;
* ``search: coop``: the search of CoOp's ``lpclip/linear_probe.py``, the few-shot
  literature's CLIP linear probe. In sklearn's terms the objective is
  ``C * sum_i CE_i + ||W||^2 / 2`` (bias unpenalised), i.e. the mean loss plus
  ``||W||^2 / (2 C N)`` on the raw features' weights; C is tried at 1e6, 1e4, ..., 1e-6
  (the first of equals kept), then 8 halvings of the interval [C*/10, 10 C*] in log
  space, each keeping the more accurate end (the smaller C on ties). That is 23 fits.

Features are centred and divided by one global scale (the mean per-dimension std) for
conditioning, and that affine map is folded back into the weights, so the head applies
to raw backbone features (LP-FT starts fine-tuning from it). A single scale, not a
per-dimension one, keeps the folded weights of nearly constant feature dimensions
small: per-dimension standardisation would give them huge raw weights that blow up the
logits as soon as fine-tuning moves those features.

References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021. https://github.com/openai/CLIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method


@dataclass
class LinearProbeHparams:
    """Hyperparameters.

    Attributes:
        l2_grid: Candidate L2 penalties (on the mean loss); the best validation
            accuracy wins, ties going to the stronger penalty.
        max_iter: L-BFGS iterations per fit (full batch).
        search: ``grid`` (``l2_grid``) or ``coop`` (CoOp's search over sklearn's C; see
            the module docstring).
    """

    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])
    max_iter: int = 200
    search: str = "grid"


def fit_logistic_regression(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    l2: float,
    max_iter: int = 200,
    penalize_raw: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fits ``softmax(x W^T + b)`` by full-batch L-BFGS on rescaled features.

    Minimises ``mean_i CE(z_i, y_i) + l2 * ||W_z||^2`` with ``z = (x - mean) / s`` and
    ``s`` the mean per-dimension std (one scalar); the returned ``(W, b)`` act on the
    raw features. With ``penalize_raw`` the penalty is ``l2 * ||W||^2`` on those raw
    weights instead (sklearn's and CoOp's objective; the rescaling then only conditions
    the solve).

    Returns:
        ``W [C, D]`` and ``b [C]`` as float32 arrays.
    """
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    mean, std = x.mean(0), x.std(0).mean().clamp_min(1e-6)
    z = (x - mean) / std
    if penalize_raw:  # W = W_z / s, so ||W||^2 = ||W_z||^2 / s^2
        l2 = l2 / float(std) ** 2
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        raw_weight = weight / std
        raw_bias = bias - raw_weight @ mean
    return raw_weight.float().numpy(), raw_bias.float().numpy()


def coop_search(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    max_iter: int,
) -> tuple[float, np.ndarray, np.ndarray, dict]:
    """CoOp's search of sklearn's C by validation accuracy (see module docstring).

    Returns:
        ``(C, W, b, {C: val accuracy})`` of the model the search ends on.
    """
    n = len(train_y)
    fits: dict[float, tuple[float, np.ndarray, np.ndarray]] = {}

    def fit(c: float):
        if c not in fits:
            weight, bias = fit_logistic_regression(
                train_x, train_y, num_classes, 1 / (2 * c * n), max_iter, penalize_raw=True
            )
            accuracy = float(((val_x @ weight.T + bias).argmax(1) == val_y).mean())
            fits[c] = (accuracy, weight, bias)
        return fits[c]

    starts = [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6]
    best = max(starts, key=lambda c: (fit(c)[0], -starts.index(c)))
    left, right = best / 10, best * 10
    chosen = best
    for _ in range(8):
        middle = float(np.sqrt(left * right))
        if fit(right)[0] > fit(left)[0]:
            chosen, left = right, middle
        else:
            chosen, right = left, middle
    accuracy, weight, bias = fit(chosen)
    return chosen, weight, bias, {f"{c:.6g}": fits[c][0] for c in sorted(fits)}


def select_and_fit(
    ctx: FitContext, hparams: LinearProbeHparams
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Searches the penalty on the validation split and returns the best head."""
    feats = ctx.features()
    train, val = feats.splits["train"], feats.splits["val"]
    num_classes = len(feats.classnames)
    if hparams.search == "coop":
        c, weight, bias, scores = coop_search(
            train.features, train.labels, val.features, val.labels, num_classes, hparams.max_iter
        )
        ctx.engine.log(f"linear probe: CoOp search over C ({len(scores)} fits); chose C={c:.4g}")
        return weight, bias, {"C": c, "val_accuracy_by_C": scores}
    if hparams.search != "grid":
        raise ValueError(f"linear_probe: search must be grid or coop, got {hparams.search!r}")
    best = None
    scores = {}
    for l2 in sorted(hparams.l2_grid, reverse=True):
        weight, bias = fit_logistic_regression(
            train.features, train.labels, num_classes, l2, hparams.max_iter
        )
        accuracy = float(((val.features @ weight.T + bias).argmax(1) == val.labels).mean())
        scores[str(l2)] = accuracy
        if best is None or accuracy > best[0]:
            best = (accuracy, l2, weight, bias)
    ctx.engine.log(f"linear probe: val accuracy by l2 {scores}; chose {best[1]}")
    return best[2], best[3], {"l2": best[1], "val_accuracy_by_l2": scores}


class LinearProbe(Method):
    """Logistic regression on the shared frozen features (see module docstring)."""

    Hparams = LinearProbeHparams

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        weight, bias, self._summary = select_and_fit(ctx, self.hparams)
        feats = ctx.features()
        return {
            name: SplitPrediction(
                info=split.info,
                labels=split.labels,
                values=(split.features @ weight.T + bias).astype(np.float32),
                kind="logits",
            )
            for name, split in feats.splits.items()
            if split.info.kind != "train"
        }
