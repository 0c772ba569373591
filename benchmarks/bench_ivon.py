r"""Cost of an IVON step against an AdamW step on the same model, batch and device.

Builds a registered backbone with a linear head, then times optimiser steps of the
suite's own training step (:func:`bench.engine.optimizers.optimizer_step`: forward,
backward, update) with AdamW and with IVON (one posterior draw per step, as the
defaults), and one prediction pass at the mean against one at a posterior draw. Prints
one JSON line per measurement and a summary with IVON's overhead per step. Random
inputs of the backbone's own kind, so no data is needed.

    python benchmarks/bench_ivon.py --backbone minilm_l6 --batch-size 32
    python benchmarks/bench_ivon.py --backbone clip_vit_b16.openai --batch-size 256 \
        --device cuda --precision bf16     # on a GPU node
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def random_batch(backbone, batch_size: int, seq_len: int, image_size: int, rng):
    """Model input of ``batch_size`` random texts or images, prepared by the backbone."""
    import numpy as np

    if backbone.modality == "text":
        words = ["alpha", "beta", "gamma", "delta", "query", "intent", "card", "pay"]
        texts = [" ".join(rng.choice(words, seq_len)) for _ in range(batch_size)]
        return backbone.prepare(texts, train=True)
    images = rng.integers(0, 255, (batch_size, image_size, image_size, 3), dtype=np.uint8)
    return backbone.prepare(images, train=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="minilm_l6")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per optimiser")
    parser.add_argument("--seq-len", type=int, default=12, help="words per random text")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from bench.backbones import create_backbone
    from bench.backbones.base import to_device
    from bench.engine import Engine, seed_everything
    from bench.engine.loop import Classifier
    from bench.engine.optimizers import IVONSettings, build_optimizer, optimizer_step

    engine = Engine.create(args.device, args.precision, threads=args.threads)
    rng = np.random.default_rng(0)
    results = {}
    for name in ("adamw", "ivon"):
        seed_everything(0)
        options = {"image_size": args.image_size} if "effnet" in args.backbone else {}
        model = Classifier(create_backbone(args.backbone, **options), 10).to(engine.device)
        model.train()
        batch = to_device(
            random_batch(model.backbone, args.batch_size, args.seq_len, args.image_size, rng),
            engine.device,
        )
        labels = torch.randint(0, 10, (args.batch_size,), device=engine.device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(
            [{"params": params}],
            name,
            lr=1e-4 if name == "adamw" else 100.0,
            weight_decay=0.0,
            n_train=1000,
            ivon_settings=IVONSettings(),
            fused=engine.device.type == "cuda",
        )

        def losses(model=model, batch=batch, labels=labels):
            with engine.autocast():
                logits = model(batch)
            yield torch.nn.functional.cross_entropy(logits.float(), labels)

        optimizer_step(optimizer, losses)  # warm-up: allocations, kernels
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            optimizer_step(optimizer, losses)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        step = (time.perf_counter() - start) / args.steps
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            if name == "ivon":
                with optimizer.sampled_params():
                    model(batch)
            else:
                model(batch)
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            predict = time.perf_counter() - start
        results[name] = step
        line = {
            "optimizer": name,
            "backbone": args.backbone,
            "device": str(engine.device),
            "trained_parameters": sum(p.numel() for p in params),
            "batch_size": args.batch_size,
            "seconds_per_step": round(step, 4),
            "seconds_per_prediction_pass": round(predict, 4),
        }
        print(json.dumps(line), flush=True)
    print(
        json.dumps(
            {
                "summary": "ivon_vs_adamw",
                "ivon_step_overhead": round(results["ivon"] / results["adamw"], 2),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
