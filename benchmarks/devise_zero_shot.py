"""Zero-shot quality of the offline DeViSE-style backbone on Fashion-MNIST.

Prints, for each image size: the ridge strength chosen by class-held-out
cross-validation, the self-distilled logit scale (no labels: the cosine head over the
1000 ImageNet names fitted to the classifier's own probabilities on unlabelled
Fashion-MNIST *training* images), and zero-shot accuracy / ECE / NLL on the fmnist
task's test split (its 8 in-distribution classes, chance 12.5%) with the backbone's
built-in scale and with the self-distilled one, for the task's prompt templates and for
the single anchor template. For comparison it also scores ConSE (Norouzi et al., 2014)
on the same two towers: an image's embedding is the classifier-probability-weighted mean
of the MiniLM embeddings of the 1000 ImageNet names, matched by cosine to the MiniLM
embeddings of the class prompts (accuracy only; the design the backbone does not use).

    python benchmarks/devise_zero_shot.py --image-size 64 224 --max-eval 2000

Runs on CPU in a few minutes (224 px costs ~0.1 s per image on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax


def self_distilled_scale(features: np.ndarray, backbone) -> float:
    """exp(logit_scale) whose cosine head best matches the ImageNet classifier (KL)."""
    from bench.backbones.devise import ANCHOR_TEMPLATE, imagenet_categories

    state = torch.load(backbone.image.weights_path, map_location="cpu", weights_only=True)
    teacher = softmax(
        features @ state["_fc.weight"].double().numpy().T + state["_fc.bias"].numpy(), 1
    )
    with torch.no_grad():
        weights = (
            backbone.zero_shot_weights(imagenet_categories(), [ANCHOR_TEMPLATE]).double().numpy()
        )
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit @ weights.T

    def cross_entropy(log_scale: float) -> float:
        return float(-(teacher * log_softmax(np.exp(log_scale) * cosine, 1)).sum(1).mean())

    return float(np.exp(minimize_scalar(cross_entropy, bounds=(0.0, 7.0), method="bounded").x))


def conse_accuracy(features: np.ndarray, labels: np.ndarray, backbone, classnames, templates):
    """Zero-shot accuracy of ConSE over all 1000 ImageNet classes on the same towers."""
    from bench.backbones.devise import ANCHOR_TEMPLATE, imagenet_categories

    state = torch.load(backbone.image.weights_path, map_location="cpu", weights_only=True)
    probs = softmax(
        features @ state["_fc.weight"].double().numpy().T + state["_fc.bias"].numpy(), 1
    )
    names = [ANCHOR_TEMPLATE.format(c) for c in imagenet_categories()]
    anchors = backbone._sentence_embeddings(names).double().numpy()
    prompts = np.stack(
        [
            backbone._sentence_embeddings([t.format(c) for t in templates]).double().numpy().mean(0)
            for c in classnames
        ]
    )
    return float(((probs @ anchors) @ prompts.T).argmax(1).__eq__(labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--max-eval", type=int, default=2000, help="fmnist test images scored")
    parser.add_argument("--unlabelled", type=int, default=1000, help="train images for the scale")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bench.backbones import create_backbone
    from bench.engine import Engine
    from bench.engine.loop import extract_features
    from bench.metrics import score_predictions
    from bench.tasks import DataPaths, SizeLimits, create_task

    task = create_task(
        "fmnist",
        DataPaths(root=args.data_root),
        SizeLimits(max_train=args.unlabelled, max_eval=args.max_eval),
        ood_classes=["sandal", "bag"],
    )
    engine = Engine.create("cpu", "fp32", args.threads)
    results = []
    for size in args.image_size:
        start = time.perf_counter()
        backbone = create_backbone("devise_lite0_minilm.imagenet", image_size=size).eval()
        test = task.splits["test"]
        features = extract_features(backbone, test, engine).astype(np.float64)
        unlabelled = extract_features(backbone, task.splits["train"], engine).astype(np.float64)
        distilled = self_distilled_scale(unlabelled, backbone)
        built_in = float(backbone.logit_scale.detach().exp())
        unit = torch.from_numpy(features / np.linalg.norm(features, axis=1, keepdims=True))
        conse = conse_accuracy(features, test.labels, backbone, task.classnames, task.templates)
        print(json.dumps({"image_size": size, "method": "conse", "acc": round(conse, 4)}))
        for prompts, templates in (("task", task.templates), ("single", ["a photo of a {}."])):
            weights = backbone.zero_shot_weights(task.classnames, templates).double()
            cosine = (unit @ weights.T).numpy()
            for scale_name, scale in (("built_in", built_in), ("self_distilled", distilled)):
                metrics = score_predictions(scale * cosine, test.labels, "logits")
                row = {
                    "image_size": size,
                    "prompts": prompts,
                    "scale": scale_name,
                    "logit_scale": round(scale, 3),
                    "n": len(test),
                    "ridge": backbone.ridge,
                    "acc": round(float(metrics["cls/acc"]), 4),
                    "ece": round(float(metrics["cal/ece"]), 4),
                    "nll": round(float(metrics["cls/nll"]), 4),
                    "seconds": round(time.perf_counter() - start, 1),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    print(f"chance: {1 / task.num_classes:.3f} ({task.num_classes} classes)")


if __name__ == "__main__":
    main()
