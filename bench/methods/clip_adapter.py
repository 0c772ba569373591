"""CLIP-Adapter: a residual bottleneck MLP on the image embeddings.

On the feature cache (no encoder pass): ``f' = ratio * A(f) + (1 - ratio) * f`` with
``A = ReLU(W2 ReLU(W1 f))`` (``W1``: D -> D / reduction, ``W2``: back to D, no biases),
and logits ``tau * cos(f', t_k)`` against the frozen zero-shot classifier (CLIP's
prompt-ensembled text embeddings, ``tau`` the backbone's ``exp(logit_scale)``). Only the
adapter trains, with cross-entropy.

Choices: the architecture, the ReLU after the output layer, the un-normalised input
and ``ratio`` 0.2 are the official ``clip_adapter.py``. Its repository ships no
training settings and points to CoOp's, so the optimiser is CoOp's (SGD lr 2e-3,
momentum 0.9, weight decay 5e-4, batch 32, 200 epochs, cosine after one warm-up epoch at
1e-5); CoOp's on-the-fly crops and flips become 10 cached augmented views.

References:
    Gao, Geng, Zhang, Ma, Fang, Zhang, Li, Qiao, "CLIP-Adapter: Better Vision-Language
    Models with Feature Adapters", IJCV 2023. https://github.com/gaopengcuhk/CLIP-Adapter
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.io import SplitPrediction
from bench.methods.adapter_base import (
    FeatureTrainingHparams,
    cosine_logits,
    load_adapter_data,
    predict_splits,
    train_on_features,
)
from bench.methods.base import FitContext, Method


@dataclass
class CLIPAdapterHparams(FeatureTrainingHparams):
    """Hyperparameters (training ones in :class:`FeatureTrainingHparams`).

    Attributes:
        ratio: Weight of the adapted feature in the residual mix.
        reduction: Bottleneck factor (hidden width D / reduction).
    """

    lr: float = 2e-3
    weight_decay: float = 5e-4
    epochs: int = 200
    batch_size: int = 32
    train_views: int = 10
    ratio: float = 0.2
    reduction: int = 4


class ResidualAdapter(torch.nn.Module):
    """``ratio * ReLU(W2 ReLU(W1 f)) + (1 - ratio) * f``."""

    def __init__(self, dim: int, reduction: int, ratio: float) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden, bias=False),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, dim, bias=False),
            torch.nn.ReLU(),
        )
        self.ratio = ratio

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.ratio * self.mlp(features) + (1 - self.ratio) * features


class CLIPAdapter(Method):
    """CLIP-Adapter on cached features (see module docstring)."""

    Hparams = CLIPAdapterHparams

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        hp = self.hparams
        data = load_adapter_data(ctx, "clip_adapter", hp.train_views)
        torch.manual_seed(ctx.seed)  # the adapter's initial weights
        adapter = ResidualAdapter(data.features.shape[1], hp.reduction, hp.ratio).to(
            data.features.device
        )

        def logits(features: torch.Tensor) -> torch.Tensor:
            return cosine_logits(adapter(features), data.prototypes, data.logit_scale)

        def objective(inputs, labels, epoch):
            return torch.nn.functional.cross_entropy(logits(inputs), labels)

        ivon, posterior = self.weight_posterior()
        self._summary = train_on_features(
            adapter.parameters(), objective, data, hp, ctx.seed, ivon, posterior
        )
        self._summary.update(posterior.describe())
        ctx.engine.log(f"clip_adapter: {self._summary['steps']} steps")
        adapter.eval()
        return predict_splits(data, logits, posterior=posterior)
