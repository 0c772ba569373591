"""LP-FT: fit a linear probe on frozen features, then fine-tune everything from it.

Starting from a good head keeps early gradients from distorting pretrained features,
which Kumar et al. show improves out-of-distribution accuracy over plain fine-tuning.
The probe is the suite's :mod:`bench.methods.linear_probe` on the shared feature
cache (L2 chosen on validation); fine-tuning then uses a smaller head learning rate
than plain fine-tuning by default since the head starts trained.

References:
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", ICLR 2022. https://github.com/AnanyaKumar/transfer_learning
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench.engine.loop import Classifier, OptimConfig
from bench.methods.base import FitContext
from bench.methods.full_ft import FullFineTuning
from bench.methods.linear_probe import LinearProbeHparams, select_and_fit


@dataclass
class LPFTHparams(OptimConfig):
    """Fine-tuning hyperparameters plus the probe's (the head starts from the probe).

    Attributes:
        head_lr: Defaults to the encoder rate's scale (the head is already fitted).
        l2_grid: The probe's L2 candidates.
        probe_max_iter: The probe's L-BFGS iterations.
    """

    head_lr: float = 1e-4
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])
    probe_max_iter: int = 200


class LinearProbeThenFineTune(FullFineTuning):
    """Linear probe, then full fine-tuning initialised from the probe's head."""

    Hparams = LPFTHparams

    def build_model(self, ctx: FitContext) -> Classifier:
        probe = LinearProbeHparams(
            l2_grid=self.hparams.l2_grid, max_iter=self.hparams.probe_max_iter
        )
        weight, bias, summary = select_and_fit(ctx, probe)
        model = Classifier(ctx.backbone(), ctx.task().num_classes)
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(weight))
            model.head.bias.copy_(torch.from_numpy(bias))
        self._summary = {"probe": summary}
        return model
