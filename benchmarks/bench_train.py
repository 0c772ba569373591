"""Training and inference throughput of the suite's engine, for one backbone.

Runs the same code a ``fit`` job runs (``bench.engine.loop.train_classifier`` and
``predict_logits``) on synthetic inputs, so the figure includes host-side batching and
transfers, and prints one JSON line per measurement. Runs on CPU or GPU:

    python benchmarks/bench_train.py --backbone clip_vit_b16.openai --options '{"pretrained": null}'
    python benchmarks/bench_train.py --backbone effnet_lite0.imagenet --image-size 224

``--options`` are backbone options (``{"pretrained": null}`` times an architecture with
random weights, which costs the same as the pretrained one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_split(modality: str, n: int, image_size: int, words: int):
    import numpy as np

    from bench.tasks.base import Split, SplitInfo

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    if modality == "vision":
        inputs = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    else:
        vocab = ["alpha", "beta", "gamma", "delta", "omega", "theta", "kappa", "sigma"]
        inputs = [" ".join(rng.choice(vocab, words)) for _ in range(n)]
    return Split(SplitInfo("train", "train"), inputs, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--options", default="{}", help="backbone options as JSON")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224, help="raw image side (vision)")
    parser.add_argument("--words", type=int, default=24, help="words per synthetic text")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args()

    import torch

    from bench.backbones import create_backbone
    from bench.engine import Engine, seed_everything
    from bench.engine.loop import Classifier, OptimConfig, predict_logits, train_classifier

    engine = Engine.create(
        args.device, args.precision, args.threads, eval_batch_size=args.batch_size
    )
    engine.log_every = 10**9
    seed_everything(0)
    backbone = create_backbone(args.backbone, **json.loads(args.options))
    model = Classifier(backbone, 10).to(engine.device)
    results = []

    def sync():
        if engine.device.type == "cuda":
            torch.cuda.synchronize()

    # Warm-up (allocator, cuDNN autotuning, lazy init), then the timed run.
    warm = synthetic_split(
        backbone.modality, args.batch_size * args.warmup, args.image_size, args.words
    )
    train_classifier(model, warm, OptimConfig(epochs=1, batch_size=args.batch_size), engine, 0)
    timed = synthetic_split(
        backbone.modality, args.batch_size * args.steps, args.image_size, args.words
    )
    sync()
    start = time.perf_counter()
    train_classifier(model, timed, OptimConfig(epochs=1, batch_size=args.batch_size), engine, 1)
    sync()
    seconds = time.perf_counter() - start
    results.append(
        {
            "measure": "train_step",
            "examples_per_s": args.batch_size * args.steps / seconds,
            "ms_per_step": 1000 * seconds / args.steps,
        }
    )
    predict_logits(model, warm, engine)
    sync()
    start = time.perf_counter()
    predict_logits(model, timed, engine)
    sync()
    seconds = time.perf_counter() - start
    results.append({"measure": "inference", "examples_per_s": len(timed) / seconds})
    common = {
        "backbone": args.backbone,
        "options": json.loads(args.options),
        "batch_size": args.batch_size,
        "image_size": args.image_size if backbone.modality == "vision" else None,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        **engine.describe(),
        "torch": torch.__version__,
        "peak_cuda_mb": engine.peak_memory_mb().get("peak_cuda_mb"),
        "date": time.strftime("%Y-%m-%d"),
    }
    lines = [json.dumps({**common, **r}) for r in results]
    print("\n".join(lines), flush=True)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
