"""SWAG: a Gaussian over weights from the moments of the fine-tuning trajectory.

After :class:`~bench.methods.full_ft.FullFineTuning`'s schedule, training goes on for
``swag_epochs`` at a constant learning rate (``swag_lr_factor`` times the peak rates),
and ``swag_snapshots`` evenly spaced iterates of every trained parameter are collected:
their running mean ``theta_SWA`` and mean square give a diagonal variance, and the last
``swag_rank`` deviations ``theta_i - theta_SWA`` the columns ``D`` of a low-rank
covariance. A draw is

    theta = theta_SWA + sqrt(scale) * (sigma * z1 + D z2 / sqrt(K - 1)),

with ``scale`` 0.5 giving the paper's ``1/2 (Sigma_diag + D D^T / (K - 1))`` covariance
(``swa_gaussian``'s formula, ``K`` the rank). Batch-norm statistics are recomputed for
each draw on training batches (``bn_update``), as a weight draw changes them (only those
the backbone lets fine-tuning update: frozen statistics stay frozen). Prediction
keeps ``eval_samples`` draws as log-probabilities ``[S, N, C]``; ``scale`` 0 reduces it
to the SWA solution.

The moments live on the CPU in float32: ``(rank + 2)`` copies of the trained weights
(about 2 GB for MiniLM-L6 at rank 20, 7.6 GB for ViT-B/16). A preempted job resumes
the base schedule from its checkpoint but repeats the SWAG phase.

References:
    Maddox et al., "A Simple Baseline for Bayesian Uncertainty in Deep Learning",
    NeurIPS 2019 (rank 20, scale 0.5, one snapshot per epoch at a constant rate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from bench.engine.loop import (
    Classifier,
    index_batches,
    predict_logits,
    prepared_batches,
    total_training_steps,
    train_classifier,
)
from bench.engine.optimizers import monte_carlo_logprobs
from bench.io import SplitPrediction
from bench.methods.base import FitContext
from bench.methods.full_ft import FullFineTuning, FullFineTuningHparams
from bench.methods.hparam_rules import check_hparams

#: Seed offset of the SWAG phase's batch order (apart from the base schedule's).
SWAG_STREAM = 1_000_003


@dataclass
class SWAGHparams(FullFineTuningHparams):
    """Full fine-tuning's hyperparameters plus SWAG's.

    Attributes:
        swag_epochs: Epochs of the collection phase after the base schedule.
        swag_lr_factor: Its constant learning rates, as a multiple of ``lr`` / ``head_lr``.
        swag_snapshots: Iterates collected, evenly spaced over the phase.
        swag_rank: Deviation columns kept (``K``; the last ones collected).
        swag_scale: Multiplies the covariance when sampling (0.5: the paper's).
        bn_update_batches: Training batches that re-estimate batch-norm statistics per
            draw (0: keep the fine-tuned ones).
        eval_samples: Weight draws kept per prediction.
    """

    swag_epochs: float = 1.0
    swag_lr_factor: float = 0.5
    swag_snapshots: int = 20
    swag_rank: int = 20
    swag_scale: float = 0.5
    bn_update_batches: int = 20
    eval_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_hparams("swag", dataclasses.asdict(self))


class SWAGMoments:
    """Running first and second moments and the last ``rank`` deviations of a vector."""

    def __init__(self, params: list[nn.Parameter], rank: int):
        self.params = params
        self.rank = rank
        self.count = 0
        size = sum(p.numel() for p in params)
        self.mean = torch.zeros(size)
        self.sq_mean = torch.zeros(size)
        self.deviations: list[torch.Tensor] = []

    def collect(self) -> None:
        theta = parameters_to_vector([p.detach() for p in self.params]).float().cpu()
        self.count += 1
        self.mean += (theta - self.mean) / self.count
        self.sq_mean += (theta.square() - self.sq_mean) / self.count
        # As swa_gaussian: the deviation from the mean after this update.
        self.deviations = [*self.deviations, theta - self.mean][-self.rank :]

    def variance(self) -> torch.Tensor:
        return (self.sq_mean - self.mean.square()).clamp_min(1e-30)

    def sample(self, scale: float, generator: torch.Generator) -> torch.Tensor:
        """One draw (see module docstring); ``scale`` 0 returns the mean."""
        if scale == 0:
            return self.mean.clone()
        z1 = torch.randn(self.mean.shape, generator=generator)
        draw = self.variance().sqrt() * z1
        if len(self.deviations) > 1:
            columns = torch.stack(self.deviations, dim=1)
            z2 = torch.randn(columns.shape[1], generator=generator)
            draw = draw + columns @ z2 / math.sqrt(self.rank - 1)
        return self.mean + math.sqrt(scale) * draw

    def load(self, vector: torch.Tensor) -> None:
        """Writes ``vector`` into the parameters (on their device and dtype)."""
        first = self.params[0]
        vector_to_parameters(vector.to(first.device, first.dtype), self.params)


@torch.no_grad()
def update_batch_norm(model: Classifier, train, engine, batches: int, seed: int) -> bool:
    """Re-estimates batch-norm running statistics on ``batches`` training batches.

    Only the layers that track statistics while fine-tuning are re-estimated: a backbone
    that freezes them (EfficientNet-Lite's default, ``freeze_bn_stats``) keeps its
    pretrained statistics through training, so a weight draw keeps them too.

    Returns:
        Whether any statistics were re-estimated.
    """
    model.train()
    layers = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]
    if not layers or batches <= 0:
        model.eval()
        return False
    saved = {layer: layer.momentum for layer in layers}
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
    rng = np.random.default_rng([seed, 0xB2])
    order = list(index_batches(len(train), engine.eval_batch_size, True, rng))[:batches]
    for _, batch in prepared_batches(model.backbone, train.inputs, order, False, engine):
        with engine.autocast():
            model(batch)
    for layer, momentum in saved.items():
        layer.momentum = momentum
    model.eval()
    return True


class SWAG(FullFineTuning):
    """Fine-tunes like ``full_ft``, then collects SWAG moments and predicts with draws."""

    Hparams = SWAGHparams

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        task = ctx.task()
        hp = self.hparams
        train = task.splits["train"]
        model = self.build_model(ctx).to(ctx.engine.device)
        summary = train_classifier(
            model, train, hp, ctx.engine, ctx.seed, checkpoint=ctx.checkpoint
        )
        params = [p for p in model.parameters() if p.requires_grad]
        moments = SWAGMoments(params, hp.swag_rank)
        phase = dataclasses.replace(
            hp,
            epochs=hp.swag_epochs,
            lr=hp.lr * hp.swag_lr_factor,
            head_lr=hp.head_lr * hp.swag_lr_factor,
        )
        steps = total_training_steps(len(train), phase)
        collect_at = set(np.linspace(1, steps, min(hp.swag_snapshots, steps)).round().astype(int))

        def collect(step: int) -> None:
            if step in collect_at:
                moments.collect()

        ctx.engine.log(f"swag: {steps} steps at a constant rate, {len(collect_at)} snapshots")
        phase_summary = train_classifier(
            model,
            train,
            phase,
            ctx.engine,
            ctx.seed + SWAG_STREAM,
            schedule=lambda _: 1.0,
            on_step=collect,
        )
        self._summary = {
            **summary,
            "swag_steps": phase_summary["steps"],
            "swag_snapshots": moments.count,
            "swag_parameters": moments.mean.numel(),
            "swag_mean_std": float(moments.variance().sqrt().mean()),
        }
        generator = torch.Generator().manual_seed(ctx.seed)

        @contextlib.contextmanager
        def weight_draw(index: int):
            moments.load(moments.sample(hp.swag_scale, generator))
            update_batch_norm(model, train, ctx.engine, hp.bn_update_batches, ctx.seed + index)
            yield

        names = task.eval_splits()
        with torch.no_grad():
            values = monte_carlo_logprobs(
                weight_draw,
                hp.eval_samples,
                lambda: {n: predict_logits(model, task.splits[n], ctx.engine) for n in names},
            )
            moments.load(moments.mean)
        return {
            name: SplitPrediction(
                info=task.splits[name].info,
                labels=task.splits[name].labels,
                values=values[name],
                kind="logprobs",
            )
            for name in names
        }
