"""What the few-shot adapters share (CLAP, BayesAdapter, CLIP-Adapter, Tip-Adapter-F).

All of them train a small head on the shared feature cache: the support set's image
embeddings (or their cached augmented views), the zero-shot class prototypes the
features job stored, and nothing else, so no encoder runs in their fit jobs. This module
reads those into tensors (:func:`load_adapter_data`), runs the mini-batch loop of the
adapters' papers over them (:func:`train_on_features`: SGD, AdamW or IVON, a constant
warm-up then a cosine decay, one view of each support image drawn per step), and turns a
scoring function into predictions on every evaluation split (:func:`predict_splits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from bench.engine.optimizers import (
    IVONSettings,
    WeightPosterior,
    build_optimizer,
    optimizer_step,
)
from bench.io import SplitPrediction
from bench.methods.base import FitContext


@dataclass
class FeatureTrainingHparams:
    """The optimisation settings every trained adapter has (each sets its own defaults).

    Attributes:
        optimizer: ``sgd`` (momentum ``momentum``), ``adamw`` (``eps`` 1e-4, as
            Tip-Adapter-F) or ``ivon`` (``<adapter>@ivon``; predictions average its
            posterior draws).
        lr: Peak learning rate.
        momentum: SGD momentum.
        weight_decay: Decoupled for AdamW, L2 for SGD.
        epochs: Passes over the support set.
        batch_size: Support examples per step (an epoch has ceil(N / batch_size) steps).
        warmup_epochs: Epochs at the constant ``warmup_lr`` first (Dassl's constant
            warm-up, used by CoOp and CLAP); the cosine decay to 0 spans the rest.
        warmup_lr: Learning rate of the warm-up epochs.
        train_views: Augmented views per support image read from the feature cache; each
            step uses one random view of each image (0: the un-augmented features).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 300
    batch_size: int = 256
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    train_views: int = 20


@dataclass
class AdapterData:
    """The cache's support set and prototypes as tensors on the job's device.

    Attributes:
        features: ``[N, D]`` un-augmented support image embeddings (unnormalised).
        labels: ``[N]`` support labels.
        views: ``[V, N, D]`` augmented views of the support images, or None.
        prototypes: ``[C, D]`` CLIP's prompt-ensembled zero-shot class embeddings (unit).
        raw_prototypes: ``[C, D]`` mean unnormalised text embeddings (CLAP's anchor).
        logit_scale: The backbone's ``exp(logit_scale)``.
        splits: The cache's evaluation splits (:class:`FeatureSplit` by name).
    """

    features: torch.Tensor
    labels: torch.Tensor
    views: torch.Tensor | None
    prototypes: torch.Tensor
    raw_prototypes: torch.Tensor
    logit_scale: float
    splits: dict

    @property
    def num_classes(self) -> int:
        return int(self.prototypes.shape[0])

    def training_inputs(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The support rows ``index``, each as a random one of its views when there are views."""
        if self.views is None:
            return self.features[index]
        view = torch.randint(0, self.views.shape[0], (len(index),), generator=generator)
        return self.views[view.to(self.views.device), index]


def load_adapter_data(ctx: FitContext, method: str, train_views: int) -> AdapterData:
    """Reads the cell's feature cache (its seed's support set) for an adapter.

    Raises:
        ValueError: The cache has no prototypes or fewer views than asked (a cache from
            before the grid listed this method: the message names the fix).
    """
    feats = ctx.features()
    if feats.prototypes is None:
        raise ValueError(
            f"{method}: the feature cache of {ctx.task_name}/{ctx.backbone_name} has no "
            "zero-shot prototypes; rerun its features job from a grid that lists this "
            "method (snakemake does so by itself)"
        )
    train = feats.splits["train"]
    views = None
    if train_views > 0:
        cached = 0 if train.views is None else train.views.shape[0]
        if cached < train_views:
            raise ValueError(
                f"{method}: train_views {train_views} but the feature cache of "
                f"{ctx.task_name}/{ctx.backbone_name} holds {cached} augmented views; "
                "rerun its features job from this grid (snakemake does so by itself)"
            )
        views = torch.from_numpy(np.ascontiguousarray(train.views[:train_views]))
    device = ctx.engine.device

    def tensor(array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)

    return AdapterData(
        features=tensor(train.features),
        labels=torch.as_tensor(train.labels, device=device),
        views=None if views is None else views.to(device),
        prototypes=tensor(feats.prototypes.normalized),
        raw_prototypes=tensor(feats.prototypes.raw_mean),
        logit_scale=float(feats.prototypes.logit_scale),
        splits={n: s for n, s in feats.splits.items() if s.info.kind != "train"},
    )


def cosine_logits(images: torch.Tensor, weights: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos(image, weight_k)`` for every image and class.

    ``images [..., N, D]`` and ``weights [C, D]`` (or ``[S, C, D]``, one set per posterior
    draw) broadcast to ``[..., N, C]`` (or ``[S, N, C]``).
    """
    images = torch.nn.functional.normalize(images, dim=-1)
    weights = torch.nn.functional.normalize(weights, dim=-1)
    return scale * images @ weights.transpose(-1, -2)


def learning_rate(step: int, steps_per_epoch: int, hparams: FeatureTrainingHparams) -> float:
    """Constant ``warmup_lr`` for the warm-up epochs, then cosine from ``lr`` to 0."""
    warmup = hparams.warmup_epochs * steps_per_epoch
    if step < warmup:
        return hparams.warmup_lr
    total = max(1, int(hparams.epochs) * steps_per_epoch - warmup)
    return 0.5 * hparams.lr * (1 + math.cos(math.pi * (step - warmup) / total))


def train_on_features(
    parameters: Iterable[torch.nn.Parameter],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    data: AdapterData,
    hparams: FeatureTrainingHparams,
    seed: int,
    ivon: IVONSettings | None = None,
    posterior: WeightPosterior | None = None,
) -> dict:
    """Mini-batch training of adapter parameters on the cached support set.

    Args:
        parameters: What the optimiser updates.
        loss_fn: ``(inputs [B, D], labels [B], epoch) -> scalar loss``.
        data: The support set (one view per image drawn each step when it has views).
        hparams: Optimiser and schedule.
        seed: Seeds the batch order and the view draws.
        ivon: IVON's settings when ``hparams.optimizer`` is ``ivon``.
        posterior: Bound to the optimiser, for predictions with IVON's draws.

    Returns:
        ``{"steps", "final_loss"}`` for run.json (the loss read once, at the end).
    """
    parameters = list(parameters)
    if hparams.epochs != int(hparams.epochs):
        raise ValueError(f"feature-cache adapters train whole epochs, got epochs {hparams.epochs}")
    optimizer = build_optimizer(
        [{"params": parameters}],
        hparams.optimizer,
        lr=hparams.lr,
        weight_decay=hparams.weight_decay,
        n_train=len(data.labels),
        ivon_settings=ivon,
        momentum=hparams.momentum,
        adam_eps=1e-4,
    )
    if posterior is not None:
        posterior.bind(optimizer)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.labels)
    steps_per_epoch = max(1, math.ceil(n / hparams.batch_size))
    step, loss = 0, torch.zeros(())
    for epoch in range(int(hparams.epochs)):
        order = torch.randperm(n, generator=generator).to(data.labels.device)
        for start in range(0, n, hparams.batch_size):
            index = order[start : start + hparams.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps_per_epoch, hparams)
            inputs = data.training_inputs(index, generator)
            labels = data.labels[index]
            loss = optimizer_step(
                optimizer,
                lambda inputs=inputs, labels=labels, epoch=epoch: iter(
                    [loss_fn(inputs, labels, epoch)]
                ),
            )
            step += 1
    return {"steps": step, "final_loss": float(loss.detach())}


@torch.no_grad()
def predict_splits(
    data: AdapterData,
    score: Callable[[torch.Tensor], torch.Tensor],
    kind: str = "logits",
    posterior: WeightPosterior | None = None,
) -> dict[str, SplitPrediction]:
    """``score(features [N, D])`` on every evaluation split, as predictions.

    ``score`` returns logits ``[N, C]`` (``kind="logits"``) or log-probabilities of
    Monte Carlo samples ``[S, N, C]`` (``kind="logprobs"``). With an IVON ``posterior``
    it runs once per posterior draw and the predictions are those draws' log-softmax.
    """
    features = {
        name: torch.as_tensor(
            np.asarray(split.features, dtype=np.float32), device=data.features.device
        )
        for name, split in data.splits.items()
    }
    if posterior is not None and posterior.samples:
        values, kind = posterior.predict(lambda: {n: score(f) for n, f in features.items()})
    else:
        values = {n: score(f).float().cpu().numpy() for n, f in features.items()}
    return {
        name: SplitPrediction(info=split.info, labels=split.labels, values=values[name], kind=kind)
        for name, split in data.splits.items()
    }
