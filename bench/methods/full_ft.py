"""Full fine-tuning: cross-entropy on the whole encoder plus a new linear head.

The standard baseline every paper in METHODS.md compares against. AdamW with
decoupled weight decay, linear warm-up then cosine decay, a 20x larger learning rate
for the randomly initialised head than for the pretrained encoder (a common choice
that keeps the head from lagging at small encoder learning rates), gradient clipping
at norm 1.

References:
    Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification",
    ACL 2018; Devlin et al., "BERT", NAACL 2019 (AdamW, warm-up, lr 2e-5 to 5e-5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.engine.loop import Classifier, OptimConfig, predict_logits, train_classifier
from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method


@dataclass
class FullFineTuningHparams(OptimConfig):
    """Hyperparameters: those of :class:`bench.engine.loop.OptimConfig`."""


def predict_all_splits(model: Classifier, ctx: FitContext) -> dict[str, SplitPrediction]:
    """Logits of ``model`` on every evaluation split of the task."""
    task = ctx.task()
    out = {}
    for name in task.eval_splits():
        split = task.splits[name]
        ctx.engine.log(f"predict: {name} ({len(split)} examples)")
        out[name] = SplitPrediction(
            info=split.info,
            labels=split.labels,
            values=predict_logits(model, split, ctx.engine),
            kind="logits",
        )
    return out


class FullFineTuning(Method):
    """Fine-tunes every parameter with (optionally label-smoothed) cross-entropy."""

    Hparams = FullFineTuningHparams

    def init_head(self, model: Classifier, ctx: FitContext) -> None:
        """Hook for subclasses that start from a fitted head (LP-FT)."""

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        task = ctx.task()
        model = Classifier(ctx.backbone(), task.num_classes)
        self.init_head(model, ctx)
        model.to(ctx.engine.device)
        self._summary = {
            **getattr(self, "_summary", {}),
            **train_classifier(
                model,
                task.splits["train"],
                self.hparams,
                ctx.engine,
                ctx.seed,
                checkpoint=ctx.checkpoint,
            ),
        }
        with torch.no_grad():
            return predict_all_splits(model, ctx)
