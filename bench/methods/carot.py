"""CaRot: FLYP plus an orthogonality constraint and self-distillation from an EMA teacher.

Per step, with the student's image-to-caption logits ``l_I`` (``B x B``, FLYP's) and
``l_T = l_I^T``::

    L = L_FLYP
      + lambda_orth  * || W_v^T W_v - I ||_F        (Frobenius norm, not squared)
      + lambda_cross * || W_v W_t^T ||_F             (the released script's cross term)
      + lambda_sd    * L_SD
    L_SD = - mean_i sum_j [ softmax(t_I)_ij log softmax(l_I)_ij
                            + softmax(t_T)_ij log softmax(l_T)_ij ]

``W_v`` is the visual projection as a ``[width, embed]`` matrix (ViT ``visual.proj``;
a ResNet's attention-pool output layer, transposed), ``W_t`` the text projection (a
backbone without a visual projection, the offline DeViSE-style model, skips the two
terms and says so in run.json: CaRot is then FLYP + self-distillation);
``t_I``, ``t_T`` are the teacher's logits on the same pairs with the *teacher's* logit
scale, computed without gradient; the two directions are summed, not averaged, and
``L_SD`` is skipped at step 0. The teacher starts as the pretrained model and after
optimiser step ``t`` (0-based; step 0 included) with ``t % ema_every == 0`` becomes
``m theta_teacher + (1 - m) theta_student`` with ``m`` rising linearly from
``ema_momentum_start`` to ``ema_momentum_end`` over the first ``ema_warmup_fraction``
of training (``m`` weighs the old teacher). Evaluation is FLYP's zero-shot head of the
fine-tuned text tower.

Defaults: ``example_scripts/carot.sh`` of the official code (lambda_orth 0.2,
lambda_sd 1.5, lambda_cross 0.05; EMA every 500 steps, m 0.05 -> 0.9 over 20%) and
FLYP's optimiser (lr 1e-5, wd 0.1, batch 512, 10 epochs, 500 warm-up steps). The
released code takes ``log(softmax)``; here ``log_softmax`` (same value, no 0 * -inf).
With every lambda 0 the loss is FLYP's (tested).

References:
    Oh, Lee, Kim, Cho, Kim, Lee, "Towards Calibrated Robust Fine-Tuning of
    Vision-Language Models", NeurIPS 2024. https://github.com/MLAI-Yonsei/CaRot
    (``src/models/carot_loss.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.engine.loop import total_training_steps
from bench.methods.base import FitContext
from bench.methods.flyp import (
    FLYP,
    CaptionSampler,
    FLYPHparams,
    FLYPObjective,
    clip_logits,
    contrastive_loss,
)


@dataclass
class CaRotHparams(FLYPHparams):
    """FLYP's hyperparameters plus CaRot's.

    Attributes:
        orth_weight: ``lambda_orth``.
        cross_weight: ``lambda_cross`` (0 drops the cross term).
        distill_weight: ``lambda_sd``.
        ema_every: Optimiser steps between teacher updates.
        ema_momentum_start: ``m`` at step 0.
        ema_momentum_end: ``m`` after the warm-up.
        ema_warmup_fraction: Share of training over which ``m`` rises.
    """

    orth_weight: float = 0.2
    cross_weight: float = 0.05
    distill_weight: float = 1.5
    ema_every: int = 500
    ema_momentum_start: float = 0.05
    ema_momentum_end: float = 0.9
    ema_warmup_fraction: float = 0.2


def projection_matrices(backbone) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(W_v [width_v, embed], W_t [width_t, embed])`` of a vision-language backbone.

    open_clip models have both (ViT ``visual.proj``; a ResNet's attention-pool output
    layer, transposed). The offline DeViSE-style model has no image-side projection
    (its image features are the embeddings), so ``W_v`` is None there and the terms
    that need it are skipped (recorded in run.json).
    """
    model = getattr(backbone, "model", None)
    visual = getattr(model, "visual", None)
    if visual is not None and getattr(model, "text_projection", None) is not None:
        text = model.text_projection
        w_t = text.weight.T if isinstance(text, nn.Linear) else text
        if getattr(visual, "proj", None) is not None:
            return visual.proj, w_t
        if hasattr(visual, "attnpool"):  # Linear(width, embed).weight is [embed, width]
            return visual.attnpool.c_proj.weight.T, w_t
        return None, w_t
    return None, getattr(backbone, "text_projection", None)


def orthogonality_penalty(w_v: torch.Tensor) -> torch.Tensor:
    """``|| W_v^T W_v - I ||_F`` (0 iff the columns of ``W_v`` are orthonormal)."""
    w = w_v.float()
    gram = w.T @ w
    return torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], device=w.device))


def cross_penalty(w_v: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    """``|| W_v W_t^T ||_F``."""
    return torch.linalg.matrix_norm(w_v.float() @ w_t.float().T)


def self_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """CaRot's ``L_SD`` for image-to-caption logits ``[B, B]`` (both directions summed)."""
    total = torch.zeros((), device=student.device)
    for s, t in ((student, teacher), (student.T, teacher.T)):
        total = total - (t.softmax(-1) * s.log_softmax(-1)).sum(-1).mean()
    return total


def ema_momentum(step: int, total_steps: int, hp: CaRotHparams) -> float:
    """``m`` after optimiser step ``step`` (0-based): linear warm-up, then constant."""
    warmup = hp.ema_warmup_fraction * total_steps
    if warmup > 0 and step < warmup:
        return hp.ema_momentum_start + (hp.ema_momentum_end - hp.ema_momentum_start) * (
            step / warmup
        )
    return hp.ema_momentum_end


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``theta_t <- m theta_t + (1 - m) theta_s`` over parameters (not buffers).

    Two multi-tensor kernels over all parameters instead of two kernels per parameter
    (a ViT-B/16 CLIP has ~300), with the same arithmetic.
    """
    teacher_params = list(teacher.parameters())
    student_params = [p.detach() for p in student.parameters()]
    if len(teacher_params) != len(student_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_mul_(teacher_params, momentum)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)


class CaRotObjective(FLYPObjective):
    """FLYP's loss plus CaRot's three terms; owns the EMA teacher's schedule.

    The teacher follows the optimiser's steps, not the objective's calls: the loop calls
    :meth:`after_step` once per optimiser step, outside any IVON weight draw, so the
    teacher averages the weights the optimiser holds (IVON's means) and its schedule
    does not depend on how many times a step evaluates the loss. The update due after
    step ``t`` is applied before step ``t + 1`` starts; the last step's is dropped, as no
    later step would see it.
    """

    def __init__(
        self,
        captions,
        engine,
        hp: CaRotHparams,
        teacher: nn.Module,
        total_steps: int,
        student: nn.Module,
    ):
        super().__init__(captions, engine)
        self.hp = hp
        self.teacher = teacher
        self.total_steps = total_steps
        self.student = student
        self.step = 0  # optimiser steps done
        self.calls = 0  # loss evaluations (train_samples per step under IVON)
        self.sums = {"contrastive": 0.0, "orth": 0.0, "cross": 0.0, "distill": 0.0}
        self.updates = 0

    def after_step(self, steps_done: int) -> None:
        """Moves the teacher towards the student after optimiser step ``steps_done - 1``."""
        self.step = steps_done
        done = steps_done - 1
        if done % self.hp.ema_every == 0 and steps_done < self.total_steps:
            ema_update(self.teacher, self.student, ema_momentum(done, self.total_steps, self.hp))
            self.updates += 1

    def __call__(self, model, batch, labels: torch.Tensor) -> torch.Tensor:
        hp = self.hp
        logits, tokens = self.student_logits(model, batch, labels)
        contrastive = contrastive_loss(logits)
        loss = contrastive
        self.sums["contrastive"] += contrastive.detach()
        w_v, w_t = projection_matrices(model.backbone)
        if w_v is not None:
            if hp.orth_weight:
                orth = orthogonality_penalty(w_v)
                loss = loss + hp.orth_weight * orth
                self.sums["orth"] += orth.detach()
            if hp.cross_weight and w_t is not None:
                cross = cross_penalty(w_v, w_t)
                loss = loss + hp.cross_weight * cross
                self.sums["cross"] += cross.detach()
        if hp.distill_weight and self.step > 0:
            with torch.no_grad(), self.engine.autocast():
                teacher_logits, _ = clip_logits(self.teacher, batch, tokens)
            distill = self_distillation(logits, teacher_logits.float())
            loss = loss + hp.distill_weight * distill
            self.sums["distill"] += distill.detach()
        self.calls += 1
        return loss

    def summary(self) -> dict[str, float]:
        """Mean of each term over the run's loss evaluations and the teacher updates."""
        calls = max(1, self.calls)
        out = {f"mean_{k}": float(v) / calls for k, v in self.sums.items()}
        out["teacher_updates"] = self.updates
        if self.hp.orth_weight or self.hp.cross_weight:
            w_v, _ = projection_matrices(self.teacher)
            out["projection_terms"] = (
                "applied" if w_v is not None else "skipped: no visual projection"
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "step": self.step,
            "calls": self.calls,
            "updates": self.updates,
            "sums": {k: float(v) for k, v in self.sums.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.step, self.updates = int(state["step"]), int(state["updates"])
        # Checkpoints written before steps and calls were counted apart hold one count.
        self.calls = int(state.get("calls", state["step"]))
        self.sums = dict(state["sums"])


class CaRot(FLYP):
    """FLYP + orthogonality + self-distillation (see module docstring)."""

    Hparams = CaRotHparams

    def objective(self, ctx: FitContext, backbone, captions: CaptionSampler):
        teacher = copy.deepcopy(backbone).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        total = total_training_steps(len(ctx.task().splits["train"]), self.hparams.optim())
        objective = CaRotObjective(captions, ctx.engine, self.hparams, teacher, total, backbone)
        return objective, {"objective": objective, "teacher": teacher}
