"""KgCoOp: CoOp with a knowledge-guided pull toward the zero-shot text embeddings.

CoOp's objective plus ``lambda * (1 - mean_k cos(w_k, w_k^clip))``: the class text
embeddings of the learned prompts ``w_k`` are held near the frozen zero-shot ones
``w_k^clip`` of the base classes, so the context keeps CLIP's general knowledge and
transfers better to new classes. ``w^clip`` is the feature cache's prompt-ensembled
zero-shot prototype (the task's templates: CoOp's hand-crafted prompt on the CoOp
datasets, as KgCoOp's per-dataset template).

Choices, from the official code (``htyao89/KgCoOp``, ``trainers/kgcoop.py`` and its
base-to-new scripts): the term is ``1 - cos`` of normalised embeddings (the paper's
squared distance of unit vectors is twice that; the factor folds into ``lambda``),
``lambda`` 8.0 (the scripts' value; the code default is 1.0), the context initialised
from ``a photo of a`` (4 tokens), batch 128, 100 epochs, SGD lr 2e-3 with CoOp's
schedule. Regularisers: ``kgcoop+dor`` (:mod:`bench.methods.dor`, lambda 2 with
KgCoOp per DOR's paper as summarised in METHODS.md).

References:
    Yao, Zhang, Xu, "Visual-Language Prompt Tuning with Knowledge-guided Context
    Optimization", CVPR 2023. https://github.com/htyao89/KgCoOp
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.coop import CoOp, CoOpHparams, PromptLearner


@dataclass
class KgCoOpHparams(CoOpHparams):
    """CoOp's hyperparameters with KgCoOp's defaults, plus ``kg_weight``.

    Attributes:
        kg_weight: ``lambda`` of the knowledge-guided term.
    """

    epochs: int = 100
    batch_size: int = 128
    ctx_init: str = "a photo of a"
    n_ctx: int = 4
    dor_weight: float = 2.0
    kg_weight: float = 8.0


def knowledge_guided_term(class_features: torch.Tensor, zero_shot: torch.Tensor) -> torch.Tensor:
    """``1 - mean_k cos(w_k, w_k^clip)``."""
    return 1 - torch.nn.functional.cosine_similarity(class_features, zero_shot, dim=-1).mean()


class KgCoOp(CoOp):
    """KgCoOp on cached image features (see module docstring)."""

    Hparams = KgCoOpHparams

    def extra_loss(self, learner: PromptLearner, class_features: torch.Tensor, data):
        return self.hparams.kg_weight * knowledge_guided_term(class_features, data.prototypes)
