"""Batches of image files: decoding in DataLoader workers gives the same model inputs,
augmented crops included, as decoding in the job's own process."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bench.backbones import create_backbone
from bench.data.images import ImageFiles
from bench.engine import Engine
from bench.engine.loop import prepared_batches


def image_files(folder, count: int = 10) -> ImageFiles:
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        pixels = rng.integers(0, 256, (24 + i, 40, 3), dtype=np.uint8)  # varied aspect ratios
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=95)
        names.append(f"{i}.jpg")
    return ImageFiles(folder, names)


def batches_with(workers: int, files: ImageFiles, train: bool) -> list[torch.Tensor]:
    engine = Engine.create("cpu", "fp32", data_workers=workers)
    backbone = create_backbone("tiny_cnn.random")
    torch.manual_seed(0)  # the training seed, which draws each batch's crop seed
    batches = [np.array([3, 1, 4]), np.array([0, 9]), np.array([5, 2, 6, 8])]
    return [batch for _, batch in prepared_batches(backbone, files, batches, train, engine)]


def test_worker_decoding_matches_in_process_decoding(tmp_path):
    files = image_files(tmp_path)
    for train in (False, True):
        here = batches_with(0, files, train)
        workers = batches_with(2, files, train)
        assert [b.shape for b in here] == [(3, 3, 28, 28), (2, 3, 28, 28), (4, 3, 28, 28)]
        for a, b in zip(here, workers, strict=True):
            assert a.dtype == torch.uint8
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_crops_follow_the_seed(tmp_path):
    files = image_files(tmp_path)
    first = batches_with(0, files, True)
    again = batches_with(0, files, True)
    evaluation = batches_with(0, files, False)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, evaluation, strict=True))
