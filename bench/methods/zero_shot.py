"""Zero-shot classification with a vision-language model's text tower (prompt ensembling).

Each class's weight is the normalised mean of the normalised text embeddings of its
name in every prompt template (Radford et al., 2021, Sec. 3.1.4: the 80 ImageNet
templates add about 3.5 points over one template on ImageNet). Logits are
``logit_scale.exp() * cos(image embedding, class weight)``: the model's own learned
temperature, so the zero-shot row of a leaderboard reports the calibration the
pretrained model actually has (``zero_shot+ts`` adds temperature scaling).

Nothing is trained: the image embeddings come from the shared frozen-feature cache
and only the text tower runs in the fit job. Splits of classes named only at test
time (base-to-new *new* classes) get weights built from their own class names.

References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021. https://github.com/openai/CLIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method


@dataclass
class ZeroShotHparams:
    """Hyperparameters.

    Attributes:
        templates: Prompt templates with ``{}`` for the class name; an empty list uses
            the task's templates (the 80 OpenAI ones on ImageNet, CoOp's per-dataset
            prompt on the few-shot datasets).
    """

    templates: list[str] = field(default_factory=list)


def resolve_templates(own: list[str], task_templates: list[str], method: str, task: str):
    """The method's templates, else the task's; checked (one ``{}`` each).

    Shared by every method that builds class prompts (zero-shot heads, FLYP's captions).

    Raises:
        ValueError: No templates at all, or a template without exactly one ``{}``;
            names the method, the task and the fix.
    """
    templates = list(own) or list(task_templates)
    if not templates:
        raise ValueError(
            f"{method}: task {task!r} has no prompt templates; set the method's "
            "hyperparameter templates (e.g. ['a photo of a {}.'])"
        )
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise ValueError(f"{method}: templates need exactly one '{{}}', got {bad}")
    return templates


class ZeroShotHead:
    """``exp(s) cos(image embedding, prompt-ensembled class embedding)`` of a backbone.

    Uses the backbone's own text tower and logit scale (pretrained for ``zero_shot``,
    fine-tuned for FLYP and CaRot); the class embeddings of each set of class names (the
    task's, or an open-vocabulary split's own) are built once.
    """

    def __init__(self, backbone, templates: list[str], engine):
        self.backbone, self.templates, self.engine = backbone, list(templates), engine
        self.scale = float(backbone.logit_scale.detach().float().exp())
        self._heads: dict[tuple[str, ...], torch.Tensor] = {}

    @torch.no_grad()
    def logits(self, image_embeddings: torch.Tensor, classnames) -> np.ndarray:
        """float32 logits ``[N, C]`` of unnormalised image embeddings on the device."""
        names = tuple(classnames)
        if names not in self._heads:
            with self.engine.autocast():
                weights = self.backbone.zero_shot_weights(list(names), self.templates)
            self._heads[names] = torch.nn.functional.normalize(weights.float(), dim=-1)
        image = torch.nn.functional.normalize(image_embeddings.float(), dim=-1)
        return (self.scale * image @ self._heads[names].T).cpu().numpy().astype(np.float32)


class ZeroShot(Method):
    """Zero-shot head from class-name prompts (see module docstring)."""

    Hparams = ZeroShotHparams

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        feats = ctx.features()
        # The cache carries the task's templates: rebuilding ImageNet would rescan 1.3M files.
        templates = resolve_templates(
            self.hparams.templates, feats.templates, "zero_shot", ctx.task_name
        )
        backbone = ctx.backbone().to(ctx.engine.device).eval()
        head = ZeroShotHead(backbone, templates, ctx.engine)
        scale = head.scale
        out = {}
        with torch.no_grad():
            for name, split in feats.splits.items():
                if split.info.kind == "train":
                    continue
                names = split.info.classnames if split.info.open_vocabulary else feats.classnames
                features = torch.from_numpy(split.features).to(ctx.engine.device)
                out[name] = SplitPrediction(
                    info=split.info,
                    labels=split.labels,
                    values=head.logits(backbone.project_image(features), names),
                    kind="logits",
                )
        self._summary = {"templates": len(templates), "logit_scale": scale}
        ctx.engine.log(f"zero-shot: {len(templates)} templates, logit scale {scale:.2f}")
        return out
