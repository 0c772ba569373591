"""Monte Carlo dropout: fine-tune with dropout, predict with it still on.

Training is :class:`~bench.methods.full_ft.FullFineTuning`'s, with dropout of rate
``dropout`` on the pooled features before the head (so encoders without dropout layers,
EfficientNet's pooled features, are stochastic too) beside the encoder's own dropout
layers (BERT-style encoders: 0.1). Prediction runs ``eval_samples`` forward passes with
every dropout layer sampling and batch-norm statistics frozen, and keeps each pass's
log-softmax, ``[S, N, C]``: the predictive is their mean, and mutual information between
passes scores OOD inputs.

References:
    Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from bench.engine.loop import Classifier, encode_split, train_classifier
from bench.engine.optimizers import monte_carlo_logprobs
from bench.io import SplitPrediction
from bench.methods.base import FitContext
from bench.methods.full_ft import FullFineTuning, FullFineTuningHparams


@dataclass
class MCDropoutHparams(FullFineTuningHparams):
    """Full fine-tuning's hyperparameters plus the dropout and the number of passes.

    Attributes:
        dropout: Dropout rate on the features before the head.
        eval_samples: Stochastic forward passes per prediction (TorchUncertainty's
            configs use 10).
    """

    dropout: float = 0.1
    eval_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class DropoutClassifier(Classifier):
    """A :class:`Classifier`'s backbone and head with dropout between them.

    Args:
        base: The classifier whose backbone, head and feature normalisation are reused.
        rate: Dropout rate on the pooled features.
    """

    def __init__(self, base: Classifier, rate: float):
        nn.Module.__init__(self)
        self.backbone, self.head = base.backbone, base.head
        self.normalize_features = base.normalize_features
        self.dropout = nn.Dropout(rate)

    def forward(self, batch) -> torch.Tensor:
        features = self.backbone(batch)
        if self.normalize_features:
            features = nn.functional.normalize(features, dim=-1)
        return self.head(self.dropout(features))


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """Every dropout layer of ``model``."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


@contextlib.contextmanager
def dropout_sampling(model: nn.Module):
    """Evaluation mode except for dropout layers, which keep sampling masks."""
    layers = dropout_layers(model)
    model.eval()
    try:
        for layer in layers:
            layer.train()
        yield len(layers)
    finally:
        for layer in layers:
            layer.eval()


def mc_dropout_predictions(
    model: Classifier, ctx: FitContext, samples: int
) -> dict[str, SplitPrediction]:
    """``samples`` stochastic passes over every evaluation split, as log-probabilities."""
    task = ctx.task()
    out = {}
    for name in task.eval_splits():
        split = task.splits[name]
        ctx.engine.log(f"predict: {name} ({len(split)} examples, {samples} dropout passes)")
        # encode_split restores only the backbone's top-level mode, which leaves the
        # dropout layers' own training flags alone: they sample.
        values = monte_carlo_logprobs(
            lambda _: dropout_sampling(model),
            samples,
            lambda split=split, name=name: {
                name: encode_split(model, model.backbone, split, ctx.engine)
            },
        )
        out[name] = SplitPrediction(
            info=split.info, labels=split.labels, values=values[name], kind="logprobs"
        )
    return out


class MCDropout(FullFineTuning):
    """Full fine-tuning with head dropout; Monte Carlo predictions with dropout on."""

    Hparams = MCDropoutHparams

    def build_model(self, ctx: FitContext) -> Classifier:
        return DropoutClassifier(super().build_model(ctx), self.hparams.dropout)

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        task = ctx.task()
        model = self.build_model(ctx).to(ctx.engine.device)
        train = task.splits["train"]
        self._summary = train_classifier(
            model, train, self.hparams, ctx.engine, ctx.seed, checkpoint=ctx.checkpoint
        )
        self._summary["dropout_layers"] = len(dropout_layers(model))
        with torch.no_grad():
            return mc_dropout_predictions(model, ctx, self.hparams.eval_samples)
