"""Label smoothing: full fine-tuning with a smoothed cross-entropy target.

Smoothing 0.1 as in Szegedy et al. (2016) and the calibration study of Müller,
Kornblith & Hinton (2019), which found it improves calibration but hurts
feature transfer — the reason it is a baseline for calibration-aware fine-tuning.

References:
    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016.
    Müller, Kornblith & Hinton, "When Does Label Smoothing Help?", NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.methods.full_ft import FullFineTuning, FullFineTuningHparams
from bench.methods.hparam_rules import check_hparams


@dataclass
class LabelSmoothingHparams(FullFineTuningHparams):
    """Full fine-tuning hyperparameters with ``label_smoothing`` defaulting to 0.1."""

    label_smoothing: float = 0.1


class LabelSmoothing(FullFineTuning):
    """Full fine-tuning with label-smoothed cross-entropy."""

    Hparams = LabelSmoothingHparams

    def __init__(self, **hparams):
        super().__init__(**hparams)
        check_hparams("label_smoothing", dataclasses.asdict(self.hparams))
