r"""Training throughput and MFU of FLYP's and CaRot's step on a CLIP backbone.

Runs the methods' own objectives (``bench.methods.flyp`` / ``bench.methods.carot``)
through the suite's training loop on synthetic images and class captions, so the
figure includes caption sampling, tokenisation, host-to-device transfers, the EMA
teacher's forward pass (CaRot) and the optimiser. FLOPs per step are counted once with
``torch.utils.flop_counter`` (forward and backward of the loss, teacher included), and
MFU = FLOPs per step x steps/s / the accelerator's dense peak. Prints one JSON line per
method; runs on CPU (no MFU) and GPU:

    python benchmarks/bench_clip_finetune.py --backbone clip_vit_b16.openai \\
        --options '{"random_init": true}' --batch-size 256 --precision bf16 --out GPU.jsonl
    python benchmarks/bench_clip_finetune.py --backbone clip_tiny.random --batch-size 16 --steps 3

``random_init`` builds the real architecture with random weights (no download), which
costs the same per step as the pretrained model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Dense bf16 peak (TFLOP/s) by device-name substring: NVIDIA's H100 SXM / H200 data
#: sheets (989.4 without sparsity); PCIe H100s have 756.
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0}


def synthetic_split(n: int, image_size: int, classes: int):
    import numpy as np

    from bench.tasks.base import Split, SplitInfo

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    return Split(SplitInfo("train", "train"), images, rng.integers(0, classes, n))


def build(method: str, backbone, classnames, engine, hparams, total_steps: int):
    """The method's objective and extra state, as its ``run`` builds them."""
    import copy

    from bench.methods.carot import CaRotObjective
    from bench.methods.flyp import CaptionSampler, FLYPObjective

    captions = CaptionSampler(classnames, ["a photo of a {}.", "a sketch of a {}."], seed=0)
    if method == "flyp":
        objective = FLYPObjective(captions, engine)
        return objective, {"objective": objective}
    teacher = copy.deepcopy(backbone).eval().requires_grad_(False)
    objective = CaRotObjective(captions, engine, hparams, teacher, total_steps)
    return objective, {"objective": objective, "teacher": teacher}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="clip_vit_b16.openai")
    parser.add_argument("--options", default='{"random_init": true}', help="backbone options")
    parser.add_argument("--methods", default="flyp,carot")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the peak")
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.backbones import create_backbone
    from bench.backbones.base import to_device
    from bench.engine import Engine, seed_everything
    from bench.engine.loop import OptimConfig, train_classifier
    from bench.methods.carot import CaRotHparams
    from bench.methods.flyp import ContrastiveModel

    engine = Engine.create(args.device, args.precision, args.threads, args.batch_size)
    engine.log_every = 10**9
    classnames = [f"class {i}" for i in range(args.classes)]
    name = torch.cuda.get_device_name() if engine.device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    lines = []
    for method in args.methods.split(","):
        seed_everything(0)
        backbone = create_backbone(args.backbone, **json.loads(args.options))
        backbone.to(engine.device)
        model = ContrastiveModel(backbone)
        image_size = int(backbone.image_size)
        cfg = OptimConfig(epochs=1, batch_size=args.batch_size, lr=1e-5, head_lr=1e-5)
        # CaRot's defaults, with the teacher updated every 5 steps so the timed window
        # includes EMA updates as a 10-epoch ImageNet run does (every 500 of 25,030).
        hparams = CaRotHparams(ema_every=5)
        steps = args.warmup + args.steps
        objective, extra = build(method, backbone, classnames, engine, hparams, steps)

        # FLOPs of one step's loss, forward and backward (the optimiser is negligible).
        split = synthetic_split(args.batch_size, image_size, args.classes)
        batch = to_device(backbone.prepare(split.inputs, train=True), engine.device)
        labels = torch.from_numpy(split.labels).to(engine.device)
        objective.step = 1  # CaRot: include the teacher's pass
        with FlopCounterMode(display=False) as counter:
            objective(model, batch, labels).backward()
        flops_per_step = counter.get_total_flops()
        model.zero_grad(set_to_none=True)
        objective, extra = build(method, backbone, classnames, engine, hparams, steps)

        def sync():
            if engine.device.type == "cuda":
                torch.cuda.synchronize()

        warm = synthetic_split(args.batch_size * args.warmup, image_size, args.classes)
        train_classifier(model, warm, cfg, engine, 0, extra_state=extra, objective=objective)
        timed = synthetic_split(args.batch_size * args.steps, image_size, args.classes)
        sync()
        start = time.perf_counter()
        train_classifier(model, timed, cfg, engine, 1, extra_state=extra, objective=objective)
        sync()
        seconds = time.perf_counter() - start
        images_per_s = args.batch_size * args.steps / seconds
        achieved = flops_per_step * args.steps / seconds
        record = {
            "measure": f"{method}_train_step",
            "backbone": args.backbone,
            "options": json.loads(args.options),
            "batch_size": args.batch_size,
            "image_size": image_size,
            "images_per_s": images_per_s,
            "ms_per_step": 1000 * seconds / args.steps,
            "tflops_per_step": flops_per_step / 1e12,
            "achieved_tflops": achieved / 1e12,
            "mfu": achieved / (peak * 1e12) if peak else None,
            "peak_tflops": peak,
            "params_m": sum(p.numel() for p in backbone.parameters()) / 1e6,
            **engine.describe(),
            "torch": torch.__version__,
            "peak_cuda_mb": engine.peak_memory_mb().get("peak_cuda_mb"),
            "date": time.strftime("%Y-%m-%d"),
        }
        lines.append(json.dumps(record))
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
