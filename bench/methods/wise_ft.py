"""WiSE-FT: weight-space interpolation between the zero-shot and a fine-tuned CLIP model.

A grid names it as a modifier of a fine-tuning method, ``<method>+wise`` (``full_ft``
with ``head_init: zero_shot``, ``flyp``, ``carot``). The base method's fit job keeps its
fine-tuned weights (``weights.pt``, written only when the grid lists ``<method>+wise``);
the WiSE-FT job then evaluates the image classifier

    θ_α = (1 − α) θ_0 + α θ_1,    logits = W_α · normalize(f_α(x)) + b_α,

for every α of the grid's ``wise_ft.alphas``. θ_0 is the pretrained image tower with the
zero-shot head ``W_0 = exp(s_0) · prompt-ensembled class embeddings`` (bias 0); θ_1 is
the fine-tuned image tower with the fine-tuned head: the trained linear head of
``full_ft``, or for FLYP and CaRot the zero-shot head of the fine-tuned text tower and
logit scale (so the heads, not the text towers, are interpolated, as in CaRot's and
FLYP's evaluation code). Every floating-point tensor of the backbone's state is
interpolated; integer buffers must agree. Open-vocabulary splits (the *new* classes of
base-to-new transfer) get heads of their own class names from both endpoints, so FLYP
and CaRot keep predicting them.

The α reported on the leaderboard is chosen on the validation split (highest accuracy,
or lowest NLL with ``select_by: nll``; ties go to the smaller α, the one closer to the
zero-shot model). With ``curve: true`` every evaluation split is also scored at every α,
and the per-α table (``wise_curve.csv``) feeds the WiSE-FT table and figure.

References:
    Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022.
    https://github.com/mlfoundations/wise-ft
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.io import SplitPrediction, atomic_file
from bench.methods.base import FitContext

#: Version of the saved-weights format; a file of another version is refused.
WEIGHTS_FORMAT = 1

#: The metrics of the per-α table (all from :func:`bench.metrics.scoring.score_predictions`).
CURVE_METRICS = ("cls/acc", "cls/nll", "cal/ece")

#: ``select_by`` choices: the validation metric α is chosen on, and whether higher is better.
SELECTION = {"accuracy": ("cls/acc", True), "nll": ("cls/nll", False)}


@dataclass
class WiseSettings:
    """The grid's ``wise_ft`` block.

    Attributes:
        alphas: Mixing coefficients, 0 (zero-shot) to 1 (fine-tuned).
        select_by: Validation metric that picks the reported α (``accuracy``, ``nll``).
        curve: Also score every evaluation split at every α (the WiSE-FT curve); off,
            only the chosen α is evaluated beyond the validation split.
    """

    alphas: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    select_by: str = "accuracy"
    curve: bool = True

    def __post_init__(self) -> None:
        if not self.alphas or any(not 0.0 <= a <= 1.0 for a in self.alphas):
            raise ValueError(
                f"wise_ft.alphas must be non-empty values in [0, 1], got {self.alphas}"
            )
        if self.select_by not in SELECTION:
            raise ValueError(
                f"wise_ft.select_by must be one of {', '.join(SELECTION)}, got {self.select_by!r}"
            )


def save_finetuned_weights(
    ctx: FitContext,
    backbone,
    head: torch.nn.Linear | None = None,
    templates: Sequence[str] = (),
    normalized_features: bool = True,
) -> None:
    """Writes the fine-tuned endpoint for ``<method>+wise`` when the fit job asks for it.

    Args:
        ctx: The fit context; nothing is written unless ``ctx.weights_path`` is set.
        backbone: The fine-tuned backbone (its whole state, in float32).
        head: The trained linear head on normalised image embeddings (``full_ft``), or
            None when the head is the backbone's own zero-shot head (FLYP, CaRot).
        templates: Prompt templates of the zero-shot heads (both endpoints use them).
        normalized_features: Whether ``head`` reads L2-normalised embeddings (a head
            trained on raw features cannot be interpolated with a zero-shot head).
    """
    if ctx.weights_path is None:
        return
    state = {
        "format": WEIGHTS_FORMAT,
        "backbone": {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()},
        "head": None
        if head is None
        else {k: v.detach().float().cpu().clone() for k, v in head.state_dict().items()},
        "templates": list(templates),
        "normalized_features": normalized_features,
    }
    with atomic_file(ctx.weights_path) as handle:
        torch.save(state, handle)
    ctx.engine.log(f"wrote fine-tuned weights to {ctx.weights_path}")


def load_finetuned_weights(path: str | Path) -> dict[str, Any]:
    """Reads a file from :func:`save_finetuned_weights`.

    Raises:
        ValueError: If the file is not such a file (or of another format version).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != WEIGHTS_FORMAT:
        raise ValueError(
            f"{path} is not a fine-tuned-weights file of format {WEIGHTS_FORMAT}; rerun the "
            "base method's fit job (delete its run folder) to rewrite it"
        )
    return state


def interpolate_state(
    start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 − α) start + α end`` for floating-point tensors; others are taken from ``end``.

    Integer buffers (BatchNorm's ``num_batches_tracked``, token position ids) count or
    index; they do not change what the model computes in eval mode.

    Raises:
        ValueError: If the keys or shapes differ.
    """
    if start.keys() != end.keys():
        extra = sorted(set(start) ^ set(end))[:3]
        raise ValueError(f"the two state dicts have different keys, e.g. {extra}")
    out = {}
    for key, a in start.items():
        b = end[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
        out[key] = (
            torch.lerp(a.float(), b.float(), alpha).to(a.dtype) if a.is_floating_point() else b
        )
    return out


def zero_shot_head(backbone, classnames: Sequence[str], templates: Sequence[str], engine):
    """``(W, b)``: ``exp(s)`` times the normalised class embeddings, and a zero bias."""
    with torch.no_grad(), engine.autocast():
        weights = backbone.zero_shot_weights(list(classnames), list(templates))
    weights = torch.nn.functional.normalize(weights.float(), dim=-1).cpu()
    scale = backbone.logit_scale.detach().float().exp().cpu()
    return scale * weights, torch.zeros(len(classnames))


def _class_sets(task) -> dict[str, tuple[str, ...]]:
    """Each evaluation split's head class names (open-vocabulary splits have their own)."""
    return {
        name: tuple(split.info.classnames) if split.info.open_vocabulary else tuple(task.classnames)
        for name, split in task.splits.items()
        if name in task.eval_splits()
    }


def _curve_scores(pred: SplitPrediction) -> dict[str, float]:
    from bench.metrics.scoring import score_predictions
    from bench.tasks.base import restrict_scores

    values = pred.values
    if pred.info.label_map is not None:
        values = restrict_scores(values, pred.info.label_map, pred.kind)
    scores = score_predictions(values, pred.labels, pred.kind)
    return {key: scores[key] for key in CURVE_METRICS}


def run_wise_ft(
    ctx: FitContext, weights_path: str | Path, settings: WiseSettings
) -> tuple[dict[str, SplitPrediction], list[dict[str, Any]], dict[str, Any]]:
    """Interpolates, selects α on the validation split and predicts every split.

    Args:
        ctx: Fit context of the ``<method>+wise`` cell (its backbone loads pretrained).
        weights_path: The base method's ``weights.pt``.
        settings: The grid's ``wise_ft`` block.

    Returns:
        Predictions at the chosen α; the per-α rows (``alpha``, ``split``, ``kind``,
        ``metric``, ``value``, ``selected``); a summary for run.json.

    Raises:
        ValueError: If the task has no validation split or the weights do not fit the
            backbone.
    """
    from bench.engine.loop import encode_split

    task, engine = ctx.task(), ctx.engine
    if "val" not in task.splits:
        raise ValueError(f"WiSE-FT chooses alpha on the validation split; {task.name} has none")
    saved = load_finetuned_weights(weights_path)
    if saved["head"] is not None and not saved["normalized_features"]:
        raise ValueError(
            f"{weights_path}: the fine-tuned head reads unnormalised features and cannot be "
            "interpolated with the zero-shot head; fine-tune with head_init: zero_shot"
        )
    backbone = ctx.backbone().to(engine.device).eval()
    start = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()}
    end = saved["backbone"]
    class_sets = _class_sets(task)
    if saved["head"] is not None:  # a trained head knows only the training classes
        class_sets = {n: c for n, c in class_sets.items() if c == tuple(task.classnames)}
    templates = saved["templates"] or list(task.templates)

    heads0 = {c: zero_shot_head(backbone, c, templates, engine) for c in set(class_sets.values())}
    if saved["head"] is None:
        backbone.load_state_dict(end)
        heads1 = {c: zero_shot_head(backbone, c, templates, engine) for c in heads0}
    else:
        heads1 = {tuple(task.classnames): (saved["head"]["weight"], saved["head"]["bias"])}

    def predict(alpha: float, split_names: Sequence[str]) -> dict[str, SplitPrediction]:
        backbone.load_state_dict(interpolate_state(start, end, alpha))
        out = {}
        for name in split_names:
            split, classes = task.splits[name], class_sets[name]
            (w0, b0), (w1, b1) = heads0[classes], heads1[classes]
            image = encode_split(backbone.encode_image, backbone, split, engine)
            image = torch.nn.functional.normalize(torch.from_numpy(image).float(), dim=-1)
            logits = image @ torch.lerp(w0, w1, alpha).T + torch.lerp(b0, b1, alpha)
            out[name] = SplitPrediction(
                info=split.info, labels=split.labels, values=logits.numpy(), kind="logits"
            )
        return out

    rows: list[dict[str, Any]] = []

    def record(alpha: float, predictions: dict[str, SplitPrediction]) -> None:
        for name, pred in predictions.items():
            if pred.info.kind == "ood":
                continue
            for metric, value in _curve_scores(pred).items():
                rows.append(
                    {
                        "alpha": alpha,
                        "split": name,
                        "kind": pred.info.kind,
                        "metric": metric,
                        "value": value,
                    }
                )

    metric, higher_is_better = SELECTION[settings.select_by]
    val_scores = {}
    for alpha in settings.alphas:
        engine.log(f"wise_ft: alpha {alpha} on val")
        val = predict(alpha, ["val"])
        record(alpha, val)
        val_scores[alpha] = _curve_scores(val["val"])[metric]
    sign = 1.0 if higher_is_better else -1.0
    chosen = max(settings.alphas, key=lambda a: (sign * val_scores[a], -a))
    engine.log(f"wise_ft: alpha {chosen} chosen ({metric} on val {val_scores[chosen]:.4f})")

    others = [n for n in class_sets if n != "val"]
    chosen_predictions = None
    for alpha in settings.alphas if settings.curve else [chosen]:
        engine.log(f"wise_ft: alpha {alpha} on {len(others)} splits")
        predictions = predict(alpha, others)
        if settings.curve:
            record(alpha, predictions)
        if alpha == chosen:
            chosen_predictions = predictions
    chosen_predictions["val"] = predict(chosen, ["val"])["val"]
    chosen_predictions = {name: chosen_predictions[name] for name in class_sets}
    for row in rows:
        row["selected"] = row["alpha"] == chosen
    summary = {
        "alpha": chosen,
        "select_by": settings.select_by,
        "val_" + metric.split("/")[1]: {str(a): float(v) for a, v in val_scores.items()},
        "templates": len(templates),
        "head": "trained linear head" if saved["head"] is not None else "fine-tuned zero-shot head",
    }
    return chosen_predictions, rows, summary


#: Columns of ``wise_curve.csv``, one row per α × split × metric.
CURVE_COLUMNS = ("alpha", "split", "kind", "metric", "value", "selected")


def write_curve(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Writes the per-α rows of :func:`run_wise_ft` as CSV, atomically."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(path) as handle:
        handle.write(buffer.getvalue().encode())
