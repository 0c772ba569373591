"""Tip-Adapter and Tip-Adapter-F: a key-value cache of the support set beside the zero-shot head.

On the feature cache (no encoder pass). Keys ``K [NK, D]``: each support image's
embedding averaged over its cached augmented views, L2-normalised; values ``L [NK, C]``:
its one-hot label. For an L2-normalised test embedding ``f``

    logits = tau * f W^T + alpha * exp(-beta * (1 - f K^T)) L

with ``W`` CLIP's prompt-ensembled zero-shot classifier and ``tau`` the backbone's
``exp(logit_scale)`` (Tip-Adapter hard-codes 100, CLIP's value). ``tip_adapter`` is
training-free; ``tip_adapter_f`` fine-tunes the keys (initialised at ``K``) with
cross-entropy at the initial ``alpha``, ``beta`` (AdamW lr 1e-3, eps 1e-4, batch 256,
20 epochs, cosine without warm-up, a random cached view of each support image per step).
Both then search ``alpha`` and ``beta`` on the validation split over Tip-Adapter's
grid (``search_step`` values of each between 0.1 and ``search_scale``), a pair replacing
the best only when strictly more accurate.

Choices, from the official code (``gaopengcuhk/Tip-Adapter``, ``main.py``, ``utils.py``,
``configs/*.yaml``): ``alpha = beta = 1`` initially and ``search_scale`` [7, 3]
(ImageNet's config; each dataset's config has its own, which a grid sets per task),
``search_step`` [200, 20], 10 views. Two departures, both to keep the test split
unseen: Tip-Adapter-F's code keeps the epoch with the best *test* accuracy (here: the
last epoch), and its ImageNet script searches ``alpha``/``beta`` on the test set (here:
on validation, as its script for the other datasets does). The validation split is the
task's (CoOp's ``min(shots, 4)`` per class on few-shot tasks; Tip-Adapter used the
whole validation split).

References:
    Zhang, Zhang, Fang, Gao, Li, Dai, Qiao, Li, "Tip-Adapter: Training-free Adaption
    of CLIP for Few-shot Classification", ECCV 2022.
    https://github.com/gaopengcuhk/Tip-Adapter
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench.io import SplitPrediction
from bench.methods.adapter_base import (
    AdapterData,
    FeatureTrainingHparams,
    load_adapter_data,
    predict_splits,
    train_on_features,
)
from bench.methods.base import FitContext, Method


@dataclass
class TipAdapterHparams:
    """Hyperparameters of the training-free cache.

    Attributes:
        alpha: Weight of the cache logits (before the search).
        beta: Sharpness of the affinity (before the search).
        search: Search ``alpha`` and ``beta`` on the validation split.
        search_scale: Largest ``[beta, alpha]`` of the search.
        search_step: Values of ``[beta, alpha]`` tried (a ``search_step[0] x
            search_step[1]`` grid).
        train_views: Cached augmented views averaged into each key (0: un-augmented).
    """

    alpha: float = 1.0
    beta: float = 1.0
    search: bool = True
    search_scale: list[float] = field(default_factory=lambda: [7.0, 3.0])
    search_step: list[int] = field(default_factory=lambda: [200, 20])
    train_views: int = 10


@dataclass
class TipAdapterFHparams(FeatureTrainingHparams, TipAdapterHparams):
    """Tip-Adapter-F: the cache's hyperparameters plus those of fine-tuning the keys."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 20
    batch_size: int = 256
    warmup_epochs: int = 0
    train_views: int = 10


def cache_keys(data: AdapterData) -> torch.Tensor:
    """``[NK, D]`` keys: each support image's mean view embedding, L2-normalised."""
    mean = data.features if data.views is None else data.views.mean(0)
    return torch.nn.functional.normalize(mean, dim=-1)


def tip_logits(
    features: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    zero_shot: torch.Tensor,
    scale: float,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """``tau f W^T + alpha exp(-beta (1 - f K^T)) L`` for L2-normalised ``f``."""
    features = torch.nn.functional.normalize(features, dim=-1)
    affinity = features @ keys.T
    return scale * features @ zero_shot.T + alpha * torch.exp(-beta * (1 - affinity)) @ values


@torch.no_grad()
def search_alpha_beta(
    features: torch.Tensor,
    labels: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    zero_shot: torch.Tensor,
    scale: float,
    hparams: TipAdapterHparams,
    initial: tuple[float, float],
) -> tuple[float, float, float]:
    """Tip-Adapter's grid search of ``(alpha, beta)`` by validation accuracy.

    Returns:
        ``(alpha, beta, accuracy)``; the initial pair when no pair is strictly better.
    """
    features = torch.nn.functional.normalize(features, dim=-1)
    zero_shot_logits = scale * features @ zero_shot.T
    affinity = features @ keys.T
    beta_max, alpha_max = hparams.search_scale
    beta_steps, alpha_steps = hparams.search_step
    betas = [0.1 + i * (beta_max - 0.1) / beta_steps for i in range(beta_steps)]
    alphas = torch.tensor(
        [0.1 + j * (alpha_max - 0.1) / alpha_steps for j in range(alpha_steps)],
        device=features.device,
    )

    def accuracy(logits: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(-1) == labels).float().mean(-1)

    alpha, beta = initial
    best = float(accuracy(tip_logits(features, keys, values, zero_shot, scale, alpha, beta)))
    for candidate_beta in betas:
        cache = torch.exp(-candidate_beta * (1 - affinity)) @ values  # [N, C]
        scores = accuracy(zero_shot_logits + alphas[:, None, None] * cache)  # [A]
        top = int(scores.argmax())
        if float(scores[top]) > best:
            best, alpha, beta = float(scores[top]), float(alphas[top]), candidate_beta
    return alpha, beta, best


class TipAdapter(Method):
    """Training-free Tip-Adapter (see module docstring)."""

    Hparams = TipAdapterHparams

    def fit_keys(self, data: AdapterData, keys: torch.Tensor, values: torch.Tensor, seed: int):
        """The keys to use (Tip-Adapter-F trains them), a summary, and IVON's posterior.

        Returns:
            ``(keys, summary, posterior)``; ``posterior`` is None for the training-free
            form, else the :class:`~bench.engine.optimizers.WeightPosterior` bound to
            the keys' optimiser (a point estimate under AdamW).
        """
        return keys, {}, None

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        hp = self.hparams
        method = "tip_adapter_f" if isinstance(hp, TipAdapterFHparams) else "tip_adapter"
        data = load_adapter_data(ctx, method, hp.train_views)
        values = torch.nn.functional.one_hot(data.labels, data.num_classes).float()
        trained_keys, summary, posterior = self.fit_keys(data, cache_keys(data), values, ctx.seed)
        # The search sees the keys' point estimate (IVON's mean); predictions read the
        # keys at call time, as IVON's draws replace the parameter's data in place.
        keys = trained_keys.detach()
        alpha, beta = hp.alpha, hp.beta
        if hp.search:
            val = data.splits["val"]
            alpha, beta, accuracy = search_alpha_beta(
                torch.as_tensor(np.asarray(val.features, np.float32), device=keys.device),
                torch.as_tensor(val.labels, device=keys.device),
                keys,
                values,
                data.prototypes,
                data.logit_scale,
                hp,
                (hp.alpha, hp.beta),
            )
            summary["val_accuracy"] = accuracy
        self._summary = {**summary, "alpha": alpha, "beta": beta, "cache_size": len(keys)}
        ctx.engine.log(f"{method}: alpha {alpha:.3f}, beta {beta:.3f}, {len(keys)} keys")
        return predict_splits(
            data,
            lambda x: tip_logits(
                x, trained_keys.detach(), values, data.prototypes, data.logit_scale, alpha, beta
            ),
            posterior=posterior,
        )


class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: the cache keys fine-tuned (see module docstring)."""

    Hparams = TipAdapterFHparams

    def fit_keys(self, data: AdapterData, keys: torch.Tensor, values: torch.Tensor, seed: int):
        hp = self.hparams
        trained = torch.nn.Parameter(keys.clone())

        def objective(inputs, labels, epoch):
            logits = tip_logits(
                inputs, trained, values, data.prototypes, data.logit_scale, hp.alpha, hp.beta
            )
            return torch.nn.functional.cross_entropy(logits, labels)

        ivon, posterior = self.weight_posterior()
        summary = train_on_features([trained], objective, data, hp, seed, ivon, posterior)
        return trained, {**summary, **posterior.describe()}, posterior
