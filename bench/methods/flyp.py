"""FLYP: fine-tune CLIP like it was pretrained, with its own contrastive loss.

Each training image is paired with a caption made from its class name and one prompt
template drawn at random for that image and step (FLYP's training CSV holds one row
per image × template and is read shuffled, so each appearance of an image comes with a
random template). The loss is CLIP's symmetric cross-entropy over the ``B x B``
image-caption similarities scaled by ``exp(logit_scale)``; captions of the same class
in a batch are not merged (FLYP passes no labels to the loss). Both towers and the
logit scale are trained. Evaluation uses the zero-shot head of the *fine-tuned* text
tower, prompt-ensembled over the task's templates and multiplied by the fine-tuned
``exp(logit_scale)`` (part of FLYP's head, so it shapes calibration), which also names
classes never trained on (base-to-new *new* classes).

Defaults are FLYP's ImageNet ViT-B/16 recipe (README): AdamW lr 1e-5, weight decay 0.1,
batch 512, 10 epochs, cosine schedule with 500 warm-up steps (``warmup_fraction`` 0.02
of its 25,030 steps), no gradient clipping. Differences: FLYP decays every parameter
including the logit scale, LayerNorms and biases; the suite's AdamW groups exempt
1-d parameters (as every other fine-tuning method here does); FLYP trains in fp32,
the suite in the engine's precision (bf16 autocast on GPUs).

References:
    Goyal, Kumar, Garg, Kolter, Raghunathan, "Finetune like you pretrain: Improved
    finetuning of zero-shot vision models", CVPR 2023. https://github.com/locuslab/FLYP
    (``src/models/flyp_loss.py``, ``clip/loss.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.backbones.base import to_device
from bench.engine.loop import OptimConfig, encode_split, train_classifier
from bench.engine.optimizers import WeightPosterior
from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method
from bench.methods.wise_ft import save_finetuned_weights
from bench.methods.zero_shot import ZeroShotHead, resolve_templates


@dataclass
class FLYPHparams:
    """Hyperparameters (FLYP's ImageNet recipe).

    Attributes:
        epochs: Passes over the training split.
        batch_size: Image-caption pairs per step (the contrastive batch).
        lr: AdamW learning rate of every CLIP parameter.
        weight_decay: AdamW decoupled weight decay (not on 1-d parameters).
        warmup_fraction: Share of steps with linear warm-up before cosine decay to 0.
        grad_clip: Max global gradient norm (0: none, as FLYP).
        optimizer: ``adamw``, or ``ivon`` (``flyp@ivon``: a posterior over every CLIP
            weight; predictions average the draws, each with its own text head).
        templates: Caption and evaluation templates with one ``{}``; empty uses the
            task's (the 80 OpenAI templates on ImageNet).
    """

    epochs: float = 10
    batch_size: int = 512
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_fraction: float = 0.02
    grad_clip: float = 0.0
    optimizer: str = "adamw"
    templates: list[str] = field(default_factory=list)

    def optim(self) -> OptimConfig:
        """The training loop's settings (no separate head: one learning rate)."""
        return OptimConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            head_lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_fraction=self.warmup_fraction,
            grad_clip=self.grad_clip,
            optimizer=self.optimizer,
        )


class ContrastiveModel(nn.Module):
    """The CLIP backbone in the shape the training loop expects (no classifier head)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Identity()


def clip_logits(backbone, images, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-to-caption logits ``exp(s) cos(img_i, txt_j)`` ``[B, B]`` and ``exp(s)``."""
    image = nn.functional.normalize(backbone.encode_image(images).float(), dim=-1)
    text = nn.functional.normalize(backbone.encode_text(tokens).float(), dim=-1)
    scale = backbone.logit_scale.float().exp()
    return scale * image @ text.T, scale


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy: pair ``i`` is the positive of row and column ``i``."""
    targets = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return 0.5 * (
        nn.functional.cross_entropy(logits_per_image, targets)
        + nn.functional.cross_entropy(logits_per_image.T, targets)
    )


class CaptionSampler:
    """Captions ``template.format(classname)`` with one random template per example.

    Owns a NumPy generator seeded from the training seed; its state goes into
    checkpoints, so a resumed run draws the same captions.
    """

    def __init__(self, classnames: list[str], templates: list[str], seed: int):
        self.classnames = list(classnames)
        self.templates = list(templates)
        self.rng = np.random.default_rng([seed, 0xF1])
        self._table: torch.Tensor | None = None
        self._fixed_length: bool | None = None

    def __call__(self, labels: torch.Tensor) -> list[str]:
        picks = self.rng.integers(0, len(self.templates), len(labels))
        return [
            self.templates[t].format(self.classnames[y])
            for t, y in zip(picks, labels.tolist(), strict=True)
        ]

    def tokens(self, labels: torch.Tensor, backbone, device: torch.device) -> torch.Tensor:
        """The tokens of the captions :meth:`__call__` would draw, without leaving the device.

        A tokenizer that pads to a fixed length (CLIP's 77) lets every caption be
        tokenised once, into a ``[C, T, L]`` table on the device, which the step indexes
        with the labels (already there) and the template draws (made on the host): no
        per-step tokenisation and no device-to-host copy of the labels, which would
        wait for the GPU every step. The draws and tokens are those of the per-step
        path, so results are unchanged. Other tokenizers (padding to the batch's
        longest caption) take the per-step path.
        """
        if self._fixed_length is None:
            short, long = backbone.tokenize(["a"]), backbone.tokenize([" ".join(["word"] * 20)])
            self._fixed_length = isinstance(short, torch.Tensor) and short.shape == long.shape
        if not self._fixed_length:
            return to_device(backbone.tokenize(self(labels)), device)
        if self._table is None or self._table.device != torch.device(device):
            captions = [t.format(c) for c in self.classnames for t in self.templates]
            table = backbone.tokenize(captions)
            self._table = table.view(len(self.classnames), len(self.templates), -1).to(device)
        picks = torch.from_numpy(self.rng.integers(0, len(self.templates), len(labels)))
        return self._table[labels, picks.to(device, non_blocking=True)]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class FLYPObjective:
    """FLYP's per-step loss: the contrastive loss of a batch and its sampled captions."""

    def __init__(self, captions: CaptionSampler, engine):
        self.captions = captions
        self.engine = engine

    def student_logits(
        self, model: ContrastiveModel, batch, labels
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's ``[B, B]`` logits (float32) and the captions' tokens."""
        tokens = self.captions.tokens(labels, model.backbone, self.engine.device)
        with self.engine.autocast():
            logits, _ = clip_logits(model.backbone, batch, tokens)
        return logits.float(), tokens

    def __call__(self, model: ContrastiveModel, batch, labels: torch.Tensor) -> torch.Tensor:
        logits, _ = self.student_logits(model, batch, labels)
        return contrastive_loss(logits)

    def state_dict(self) -> dict[str, Any]:
        return {"captions": self.captions.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.captions.load_state_dict(state["captions"])


@torch.no_grad()
def predict_zero_shot_head(
    backbone, ctx: FitContext, templates: list[str], posterior: WeightPosterior | None = None
):
    """Logits of every evaluation split from the image tower and a zero-shot head.

    ``exp(s) cos(image, prompt-ensembled class embedding)`` with the backbone's own
    (fine-tuned) text tower and logit scale; open-vocabulary splits get a head of their
    own class names. With an IVON ``posterior``, log-probabilities of its draws, the
    head rebuilt from each draw's text tower.
    """
    task = ctx.task()
    engine = ctx.engine
    backbone.eval()
    names = task.eval_splits()
    posterior = posterior or WeightPosterior()
    for name in names:
        engine.log(f"predict: {name} ({len(task.splits[name])} examples)")
    if posterior.samples:
        engine.log(f"predict: {posterior.eval_samples} posterior draws, a text head each")

    def logits():
        head = ZeroShotHead(backbone, templates, engine)
        out = {}
        for name in names:
            split = task.splits[name]
            classes = split.info.classnames if split.info.open_vocabulary else task.classnames
            image = torch.from_numpy(encode_split(backbone.encode_image, backbone, split, engine))
            out[name] = head.logits(image.to(engine.device), classes)
        return out

    values, kind = posterior.predict(logits)
    splits = {name: task.splits[name] for name in names}
    return {
        name: SplitPrediction(info=s.info, labels=s.labels, values=values[name], kind=kind)
        for name, s in splits.items()
    }


class FLYP(Method):
    """Contrastive fine-tuning of the whole CLIP model (see module docstring)."""

    Hparams = FLYPHparams

    def objective(self, ctx: FitContext, backbone, captions: CaptionSampler):
        """The per-step loss and the extra state a resume needs (CaRot adds to both)."""
        objective = FLYPObjective(captions, ctx.engine)
        return objective, {"objective": objective}

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        task = ctx.task()
        templates = resolve_templates(
            self.hparams.templates, task.templates, type(self).__name__, task.name
        )
        backbone = ctx.backbone().to(ctx.engine.device)
        model = ContrastiveModel(backbone)
        captions = CaptionSampler(task.classnames, templates, ctx.seed)
        objective, extra_state = self.objective(ctx, backbone, captions)
        ivon, posterior = self.weight_posterior()
        fit = train_classifier(
            model,
            task.splits["train"],
            self.hparams.optim(),
            ctx.engine,
            ctx.seed,
            checkpoint=ctx.checkpoint,
            extra_state=extra_state,
            objective=objective,
            ivon=ivon,
            posterior=posterior,
            # CaRot's EMA teacher follows optimiser steps (outside IVON's weight draws).
            on_step=getattr(objective, "after_step", None),
        )
        self._summary = {
            **fit,
            **posterior.describe(),
            **getattr(objective, "summary", dict)(),
            "templates": len(templates),
            "logit_scale": float(backbone.logit_scale.detach().exp()),
        }
        save_finetuned_weights(ctx, backbone, templates=templates)
        return predict_zero_shot_head(backbone, ctx, templates, posterior)
