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
from bench.engine.optimizers import WeightPosterior
from bench.io import SplitPrediction
from bench.methods.base import FitContext, Method
from bench.methods.wise_ft import save_finetuned_weights
from bench.methods.zero_shot import resolve_templates

#: ``head_init`` choices of :class:`FullFineTuningHparams`.
HEAD_INITS = ("random", "zero_shot")


@dataclass
class FullFineTuningHparams(OptimConfig):
    """Hyperparameters: those of :class:`bench.engine.loop.OptimConfig`, and the head's start.

    Attributes:
        head_init: ``random``: a new linear head on the encoder's features. ``zero_shot``
            (vision-language backbones): the head is CLIP's zero-shot classifier,
            ``exp(s)`` times the prompt-ensembled class embeddings on L2-normalised image
            embeddings, bias 0, as WiSE-FT and FLYP fine-tune CLIP end to end; it is what
            makes ``full_ft+wise`` interpolate two heads of the same kind.
    """

    head_init: str = "random"

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            raise ValueError(
                f"head_init must be one of {', '.join(HEAD_INITS)}, got {self.head_init!r}"
            )


def predict_all_splits(
    model: Classifier, ctx: FitContext, posterior: WeightPosterior | None = None
) -> dict[str, SplitPrediction]:
    """Logits of ``model`` on every evaluation split of the task.

    With an IVON ``posterior``, log-probabilities of its draws ``[S, N, C]`` instead.
    """
    task = ctx.task()
    posterior = posterior or WeightPosterior()
    names = task.eval_splits()

    for name in names:
        ctx.engine.log(f"predict: {name} ({len(task.splits[name])} examples)")
    if posterior.samples:
        ctx.engine.log(f"predict: {posterior.eval_samples} posterior draws")
    values, kind = posterior.predict(
        lambda: {name: predict_logits(model, task.splits[name], ctx.engine) for name in names}
    )
    splits = {name: task.splits[name] for name in names}
    return {
        name: SplitPrediction(info=s.info, labels=s.labels, values=values[name], kind=kind)
        for name, s in splits.items()
    }


def zero_shot_classifier(
    backbone, classnames: list[str], templates: list[str], engine
) -> Classifier:
    """A classifier whose head is the backbone's zero-shot head (``head_init: zero_shot``).

    Raises:
        ValueError: If the backbone has no text tower.
    """
    if not hasattr(backbone, "zero_shot_weights"):
        raise ValueError(
            f"head_init zero_shot needs a vision-language backbone; {type(backbone).__name__} "
            "has no text tower"
        )
    model = Classifier(backbone, len(classnames), normalize_features=True)
    with torch.no_grad(), engine.autocast():
        weights = backbone.zero_shot_weights(list(classnames), list(templates))
    with torch.no_grad():
        scale = backbone.logit_scale.detach().float().exp()
        model.head.weight.copy_(scale * torch.nn.functional.normalize(weights.float(), dim=-1))
        model.head.bias.zero_()
    return model


class FullFineTuning(Method):
    """Fine-tunes every parameter with (optionally label-smoothed) cross-entropy."""

    Hparams = FullFineTuningHparams

    def build_model(self, ctx: FitContext) -> Classifier:
        """The classifier training starts from (LP-FT overrides it with a fitted probe)."""
        task = ctx.task()
        if self.hparams.head_init == "zero_shot":
            templates = resolve_templates([], task.templates, type(self).__name__, task.name)
            backbone = ctx.backbone().to(ctx.engine.device)
            return zero_shot_classifier(backbone, task.classnames, templates, ctx.engine)
        return Classifier(ctx.backbone(), task.num_classes)

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        task = ctx.task()
        model = self.build_model(ctx)
        model.to(ctx.engine.device)
        ivon, posterior = self.weight_posterior()
        self._summary = {
            **getattr(self, "_summary", {}),
            **train_classifier(
                model,
                task.splits["train"],
                self.hparams,
                ctx.engine,
                ctx.seed,
                checkpoint=ctx.checkpoint,
                ivon=ivon,
                posterior=posterior,
            ),
            **posterior.describe(),
        }
        save_finetuned_weights(
            ctx, model.backbone, head=model.head, normalized_features=model.normalize_features
        )
        with torch.no_grad():
            return predict_all_splits(model, ctx, posterior)
