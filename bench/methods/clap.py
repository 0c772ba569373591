"""CLAP: zero-shot-initialised class prototypes with a class-adaptive L2 penalty.

Few-shot adaptation on the feature cache (no encoder pass). The class prototypes
``w_k`` start at the zero-shot text embeddings ``t_k`` and are trained with

    L = mean_i CE(tau * cos(f_i, w), y_i) + (1/C) sum_k alpha_k ||w_k - t_k||^2

where ``tau`` is the backbone's frozen ``exp(logit_scale)`` (100 for CLIP) and the
multiplier ``alpha_k`` is the mean zero-shot probability of class ``k`` over the
support images of class ``k`` (all of their cached views): a class the zero-shot head
already gets right is held close to it. ``penalty: none`` drops the term, which is the
zero-shot-initialised linear probe (ZS-LP) CLAP starts from. With the released
``l2`` constraint the multipliers stay fixed; the augmented-Lagrangian update of the
paper's "adaptative" variant is not implemented (the released scripts do not use it).

Choices, from the official code (``jusiro/CLAP``, ``trainers/adapters.py``):

* ``t_k`` is the plain mean of the unnormalised text embeddings over the templates
  (the cache's ``raw_prototypes``), and both the initialisation and the penalty use it;
  its norm sets the penalty's scale against the cosine loss;
* the penalty is the mean over classes and is added on every batch;
* SGD, lr 0.1, momentum 0.9, no weight decay, batch 256, 300 epochs, cosine decay after
  one warm-up epoch at a constant 1e-5 (Dassl's); each epoch draws one random view of
  each support image from 20 cached augmented views (CLAP caches 20 views and runs
  ``N / 256`` batches of them per epoch);
* the model of the last epoch is kept (CLAP is validation-free).

References:
    Silva-Rodriguez, Hajimiri, Ben Ayed, Dolz, "A Closer Look at the Few-Shot
    Adaptation of Large Vision-Language Models", CVPR 2024.
    https://github.com/jusiro/CLAP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.io import SplitPrediction
from bench.methods.adapter_base import (
    AdapterData,
    FeatureTrainingHparams,
    cosine_logits,
    load_adapter_data,
    predict_splits,
    train_on_features,
)
from bench.methods.base import FitContext, Method


@dataclass
class CLAPHparams(FeatureTrainingHparams):
    """Hyperparameters (training ones in :class:`FeatureTrainingHparams`).

    Attributes:
        penalty: ``adaptive``: CLAP's class-adaptive L2 penalty toward the zero-shot
            prototypes; ``none``: no penalty (ZS-LP).
    """

    penalty: str = "adaptive"


def class_multipliers(
    inputs: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, scale: float
) -> torch.Tensor:
    """CLAP's ``alpha_k``: mean zero-shot probability of class k on its support images.

    Args:
        inputs: ``[..., N, D]`` support features (views stacked in front, if any).
        labels: ``[N]`` labels.
        anchors: ``[C, D]`` zero-shot prototypes.
        scale: Logit scale.

    Returns:
        ``[C]`` multipliers in [0, 1]; 0 for a class without support images.
    """
    probs = cosine_logits(inputs, anchors, scale).softmax(-1)  # [..., N, C]
    true_class = probs.gather(-1, labels.expand(probs.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    per_image = true_class.reshape(-1, len(labels)).mean(0)
    num_classes = anchors.shape[0]
    totals = torch.zeros(num_classes, device=inputs.device).index_add_(0, labels, per_image)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1)
    return totals / counts


class CLAPHead(torch.nn.Module):
    """Trainable prototypes with CLAP's objective."""

    def __init__(self, data: AdapterData, multipliers: torch.Tensor | None) -> None:
        super().__init__()
        self.anchors = data.raw_prototypes
        self.prototypes = torch.nn.Parameter(data.raw_prototypes.clone())
        self.scale = data.logit_scale
        self.multipliers = multipliers

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.prototypes, self.scale)

    def penalty(self) -> torch.Tensor:
        if self.multipliers is None:
            return torch.zeros((), device=self.prototypes.device)
        distances = (self.prototypes - self.anchors).pow(2).sum(-1)
        return (self.multipliers * distances).mean()

    def objective(self, inputs: torch.Tensor, labels: torch.Tensor, epoch: int = 0):
        ce = torch.nn.functional.cross_entropy(self.logits(inputs), labels)
        return ce + self.penalty()


class CLAP(Method):
    """CLAP on cached features (see module docstring)."""

    Hparams = CLAPHparams

    def build_head(self, data: AdapterData) -> CLAPHead:
        if self.hparams.penalty not in ("adaptive", "none"):
            raise ValueError(
                f"clap: penalty must be adaptive or none, got {self.hparams.penalty!r}"
            )
        multipliers = None
        if self.hparams.penalty == "adaptive":
            support = data.features if data.views is None else data.views
            multipliers = class_multipliers(
                support, data.labels, data.raw_prototypes, data.logit_scale
            )
        return CLAPHead(data, multipliers)

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        data = load_adapter_data(ctx, "clap", self.hparams.train_views)
        head = self.build_head(data)
        ivon, posterior = self.weight_posterior()
        fit = train_on_features(
            [head.prototypes], head.objective, data, self.hparams, ctx.seed, ivon, posterior
        )
        multipliers = head.multipliers
        self._summary = {
            **fit,
            **posterior.describe(),
            "multipliers_mean": None if multipliers is None else float(multipliers.mean()),
            "multipliers_min": None if multipliers is None else float(multipliers.min()),
        }
        ctx.engine.log(f"clap: {fit['steps']} steps, final loss {fit['final_loss']:.4f}")
        return predict_splits(data, head.logits, posterior=posterior)
