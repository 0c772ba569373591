"""LoRA fine-tuning: low-rank adapters on the encoder's layers plus a new head.

The encoder's pretrained weights stay frozen; ``peft`` adapters (rank ``lora_rank``,
scale ``lora_alpha / lora_rank``, dropout ``lora_dropout`` on their input) are injected
into its linear and ungrouped convolutional layers (:mod:`bench.engine.lora`), and only
they and the head train.
Everything else is :class:`~bench.methods.full_ft.FullFineTuning`'s: the schedule, the
head's start, the prediction. ``lora_ft@ivon`` trains the adapters and head with IVON,
IVON-LoRA's setting (Cong et al., 2024).

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
    Cong et al., "Variational Low-Rank Adaptation Using IVON", 2024 (rank 8, alpha 16,
    dropout 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.engine.loop import Classifier
from bench.engine.lora import add_lora
from bench.methods.base import FitContext
from bench.methods.full_ft import FullFineTuning, FullFineTuningHparams


@dataclass
class LoRAFineTuningHparams(FullFineTuningHparams):
    """Full fine-tuning's hyperparameters, with LoRA's learning rate and adapter shape.

    Attributes:
        lora_rank: Rank of each adapter.
        lora_alpha: Scale numerator; updates are multiplied by ``alpha / rank``.
        lora_dropout: Dropout on each adapter's input during training.
        lora_targets: Shell-style patterns over the encoder's module names to adapt
            (``*``: every linear layer the forward pass calls and every ungrouped
            convolution).
    """

    # LoRA trains a few new parameters from zero and needs a larger rate than the 5e-5
    # of full fine-tuning (Hu et al. use 2e-4 to 5e-4 on RoBERTa).
    lr: float = 5e-4
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["*"])


class LoRAFineTuning(FullFineTuning):
    """Fine-tunes LoRA adapters and a head; the pretrained encoder weights stay frozen."""

    Hparams = LoRAFineTuningHparams

    def build_model(self, ctx: FitContext) -> Classifier:
        model = super().build_model(ctx)
        hp = self.hparams
        adapted = add_lora(
            model.backbone, hp.lora_rank, hp.lora_alpha, hp.lora_targets, hp.lora_dropout
        )
        self._summary = {
            "lora_layers": len(adapted),
            "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        return model
