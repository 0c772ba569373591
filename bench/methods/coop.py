"""CoOp: prompt tuning, learned context vectors in the text tower's token-embedding space.

Each class's prompt is ``[SOS] v_1 ... v_M <class name> . [EOS]``: the ``M`` context
vectors ``v`` (shared by all classes, "unified context") replace the embeddings of ``M``
placeholder tokens and are the only trained parameters; both towers stay frozen. The
image embeddings come from the shared feature cache (with its augmented views of the
support set, CoOp's random crops and flips), the class text embeddings from running the
text tower on the prompts at every step, and logits are ``exp(logit_scale) * cos``, with
cross-entropy. Because the context is applied to any class name, CoOp is
open-vocabulary: the base-to-new *new* classes are predicted with the same learned
context and their own names.

Works on every backbone with the prompt interface (``token_embeddings`` and
``encode_token_embeddings``): open_clip CLIP (the CLIP text transformer's token
embeddings) and the offline DeViSE-style model (MiniLM's word embeddings).

Choices, from the official code (``KaiyangZhou/CoOp``, ``trainers/coop.py``,
``configs/trainers/CoOp/``): 16 context tokens drawn from N(0, 0.02^2) (``ctx_init``
empty) or the embeddings of ``ctx_init``'s tokens (``a photo of a``: 4 tokens, as
CoCoOp's base-to-new CoOp baseline); the class token at the end (the only position
implemented); SGD lr 2e-3, momentum 0.9, weight decay 5e-4, batch 32, 200 epochs,
cosine after one warm-up epoch at a constant 1e-5. Regularisers: ``coop+dor``
(:mod:`bench.methods.dor`).

References:
    Zhou, Yang, Loy, Liu, "Learning to Prompt for Vision-Language Models", IJCV 2022.
    https://github.com/KaiyangZhou/CoOp
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.backbones.base import to_device
from bench.engine.optimizers import WeightPosterior
from bench.io import SplitPrediction
from bench.methods.adapter_base import (
    FeatureTrainingHparams,
    cosine_logits,
    load_adapter_data,
    train_on_features,
)
from bench.methods.base import FitContext, Method

#: CoOp's placeholder token ("X"): one token in CLIP's BPE and in BERT's vocabulary.
PLACEHOLDER = "X"


@dataclass
class CoOpHparams(FeatureTrainingHparams):
    """Hyperparameters (training ones in :class:`FeatureTrainingHparams`).

    Attributes:
        n_ctx: Context tokens when ``ctx_init`` is empty.
        ctx_init: Text whose token embeddings start the context ("" = random, std 0.02).
        dor_weight: ``lambda`` of DOR's term (``coop+dor``).
        dor_pool_size: ``K``, the outlier words kept (``coop+dor``).
        dor_batch_size: Outlier words per step (null: as many as the task's classes).
        dor_template: The frozen zero-shot prompt of DOR's outlier words.
    """

    lr: float = 2e-3
    weight_decay: float = 5e-4
    epochs: int = 200
    batch_size: int = 32
    train_views: int = 10
    n_ctx: int = 16
    ctx_init: str = ""
    dor_weight: float = 8.0
    dor_pool_size: int = 5000
    dor_batch_size: int | None = None
    dor_template: str = "a photo of a {}."


class PromptLearner(torch.nn.Module):
    """The learned context and the frozen text tower that reads it.

    Args:
        backbone: A backbone with the prompt interface, frozen here.
        n_ctx: Context length when ``ctx_init`` is empty.
        ctx_init: Initial context text, or "" for N(0, 0.02^2).
        generator: Seeds the random initialisation.
    """

    def __init__(self, backbone, n_ctx: int, ctx_init: str, generator: torch.Generator):
        super().__init__()
        for attribute in ("token_embeddings", "encode_token_embeddings"):
            if not hasattr(backbone, attribute):
                raise ValueError(
                    f"prompt learning needs a backbone with the prompt interface "
                    f"({attribute}); {type(backbone).__name__} has none"
                )
        self.backbone = backbone.eval().requires_grad_(False)
        device = backbone.logit_scale.device
        if ctx_init:
            words = ctx_init.strip()
            tokens = to_device(backbone.tokenize([words]), device)
            with torch.no_grad():
                embedded = backbone.token_embeddings(tokens)[0]
            n_ctx = self._count_tokens(words)
            context = embedded[1 : 1 + n_ctx].float().clone()
            self.prefix = words
        else:
            width = backbone.token_embeddings(to_device(backbone.tokenize(["x"]), device)).shape[-1]
            context = torch.randn(n_ctx, width, generator=generator) * 0.02
            self.prefix = " ".join([PLACEHOLDER] * n_ctx)
        self.n_ctx = n_ctx
        self.context = torch.nn.Parameter(context.to(device))
        self.scale = float(backbone.logit_scale.detach().float().exp())

    def _count_tokens(self, words: str) -> int:
        """Tokens of ``words`` between the start token and the end of the text."""
        device = self.backbone.logit_scale.device
        tokens = to_device(self.backbone.tokenize([words]), device)
        ids = tokens["input_ids"] if isinstance(tokens, dict) else tokens
        mask = tokens["attention_mask"] if isinstance(tokens, dict) else (ids != 0).long()
        return int(mask[0].sum()) - 2  # the start and end tokens

    def texts(self, names: list[str]) -> list[str]:
        """The prompts of ``names``: the context's placeholder text, the name, a full stop."""
        return [f"{self.prefix} {name}." for name in names]

    def encode(self, names: list[str]) -> torch.Tensor:
        """``[len(names), D]`` text embeddings with the learned context (differentiable)."""
        device = self.context.device
        tokens = to_device(self.backbone.tokenize(self.texts(names)), device)
        embeddings = self.backbone.token_embeddings(tokens)
        context = self.context.to(embeddings.dtype).expand(len(names), -1, -1)
        embeddings = torch.cat([embeddings[:, :1], context, embeddings[:, 1 + self.n_ctx :]], dim=1)
        return self.backbone.encode_token_embeddings(embeddings, tokens).float()


class CoOp(Method):
    """CoOp on cached image features (see module docstring)."""

    Hparams = CoOpHparams

    def extra_loss(self, learner: PromptLearner, class_features: torch.Tensor, data):
        """Terms a subclass adds to the cross-entropy (KgCoOp's); none for CoOp."""
        return class_features.new_zeros(())

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        from bench.methods.dor import DORRegularizer

        hp = self.hparams
        name = type(self).__name__.lower()
        data = load_adapter_data(ctx, name, hp.train_views)
        backbone = ctx.backbone().to(ctx.engine.device)
        generator = torch.Generator().manual_seed(ctx.seed)
        learner = PromptLearner(backbone, hp.n_ctx, hp.ctx_init, generator)
        classnames = ctx.classnames()
        dor = None
        if "dor" in self.regularizers:
            dor = DORRegularizer(ctx.features(), hp, len(classnames), ctx.seed, name)
        # Summed on the device and read once at the end: no host sync per step.
        dor_total = torch.zeros((), device=learner.context.device)

        def objective(inputs, labels, epoch):
            nonlocal dor_total
            class_features = learner.encode(classnames)
            logits = cosine_logits(inputs, class_features, learner.scale)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss = loss + self.extra_loss(learner, class_features, data)
            if dor is not None:
                term = dor.loss(learner)
                loss = loss + hp.dor_weight * term
                dor_total = dor_total + term.detach()
            return loss

        ivon, posterior = self.weight_posterior()
        fit = train_on_features([learner.context], objective, data, hp, ctx.seed, ivon, posterior)
        self._summary = {
            **fit,
            **posterior.describe(),
            "n_ctx": learner.n_ctx,
            "ctx_init": hp.ctx_init,
            "regularizers": list(self.regularizers),
            "mean_dor": float(dor_total) / max(1, fit["steps"]) if dor is not None else None,
        }
        ctx.engine.log(f"{name}{'+dor' if dor else ''}: {fit['steps']} steps")
        return self.predict(ctx, learner, classnames, posterior)

    @torch.no_grad()
    def predict(
        self,
        ctx: FitContext,
        learner: PromptLearner,
        classnames,
        posterior: WeightPosterior | None = None,
    ) -> dict:
        """Every split with the learned prompts of its class names (new classes included).

        With an IVON ``posterior``, each draw of the context encodes its own class heads.
        """
        feats = ctx.features()
        device = learner.context.device
        splits = {n: s for n, s in feats.splits.items() if s.info.kind != "train"}

        def logits():
            heads: dict[tuple[str, ...], torch.Tensor] = {}
            out = {}
            for split_name, split in splits.items():
                names = tuple(split.info.classnames if split.info.open_vocabulary else classnames)
                if names not in heads:
                    heads[names] = learner.encode(list(names))
                features = np.asarray(split.features, dtype=np.float32)
                images = torch.as_tensor(features, device=device)
                out[split_name] = cosine_logits(images, heads[names], learner.scale)
            return out

        values, kind = (posterior or WeightPosterior()).predict(logits)
        return {
            name: SplitPrediction(info=s.info, labels=s.labels, values=values[name], kind=kind)
            for name, s in splits.items()
        }
