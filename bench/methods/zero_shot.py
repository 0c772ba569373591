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
        scale = float(backbone.logit_scale.detach().exp().item())
        heads: dict[tuple[str, ...], torch.Tensor] = {}

        def head(classnames: tuple[str, ...]) -> torch.Tensor:
            if classnames not in heads:
                with ctx.engine.autocast():
                    weights = backbone.zero_shot_weights(list(classnames), templates)
                heads[classnames] = torch.nn.functional.normalize(weights.float(), dim=-1)
            return heads[classnames]

        out = {}
        with torch.no_grad():
            for name, split in feats.splits.items():
                if split.info.kind == "train":
                    continue
                names = split.info.classnames if split.info.open_vocabulary else feats.classnames
                features = torch.from_numpy(split.features).to(ctx.engine.device)
                image = backbone.project_image(features).float()
                image = torch.nn.functional.normalize(image, dim=-1)
                logits = scale * image @ head(tuple(names)).T
                out[name] = SplitPrediction(
                    info=split.info,
                    labels=split.labels,
                    values=logits.cpu().numpy().astype(np.float32),
                    kind="logits",
                )
        self._summary = {"templates": len(templates), "logit_scale": scale}
        ctx.engine.log(f"zero-shot: {len(templates)} templates, logit scale {scale:.2f}")
        return out
