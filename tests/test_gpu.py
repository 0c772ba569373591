"""GPU correctness: bf16 autocast training and CUDA inference agree with the CPU path.

Skipped (with the reason) on machines without CUDA, which includes CI; run on a GPU
machine with ``python -m pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import in_memory_context

from bench.backbones import create_backbone
from bench.engine import Engine, seed_everything
from bench.engine.features import compute_features
from bench.methods import create_method

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def context(task, engine, backbone="tiny_cnn.random", **options):
    return in_memory_context(task, backbone, engine, **options)


def test_auto_engine_uses_cuda_with_bf16():
    engine = Engine.create()
    assert engine.device.type == "cuda" and engine.precision == "bf16"


def test_bf16_fine_tuning_learns_on_gpu(tiny_vision_task):
    engine = Engine.create("cuda", "bf16")
    seed_everything(0)
    preds = create_method("full_ft", epochs=3, batch_size=16, lr=3e-3, head_lr=1e-2).run(
        context(tiny_vision_task, engine)
    )
    test = preds["test"]
    assert np.isfinite(test.values).all()
    assert (test.values.argmax(1) == test.labels).mean() > 0.5


def test_cuda_features_match_cpu_features(tiny_vision_task):
    cpu = compute_features(
        tiny_vision_task,
        create_backbone("effnet_lite0.imagenet", image_size=64),
        Engine.create("cpu", "fp32"),
    )
    gpu = compute_features(
        tiny_vision_task,
        create_backbone("effnet_lite0.imagenet", image_size=64),
        Engine.create("cuda", "fp32"),
    )
    for name, split in cpu.splits.items():
        np.testing.assert_allclose(gpu.splits[name].features, split.features, rtol=1e-3, atol=1e-3)
    bf16 = compute_features(
        tiny_vision_task,
        create_backbone("effnet_lite0.imagenet", image_size=64),
        Engine.create("cuda", "bf16"),
    )
    # bf16 autocast changes features by well under their scale.
    scale = np.abs(cpu.splits["test"].features).mean()
    assert np.abs(bf16.splits["test"].features - cpu.splits["test"].features).mean() < 0.05 * scale


def test_linear_probe_on_gpu_features_matches_cpu(tiny_vision_task):
    results = []
    for device in ("cpu", "cuda"):
        seed_everything(0)
        engine = Engine.create(device, "fp32")
        preds = create_method("linear_probe").run(context(tiny_vision_task, engine))
        results.append(preds["test"].values)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-2, atol=1e-2)
