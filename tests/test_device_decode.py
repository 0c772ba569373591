"""Device decoding of image files (``runtime.decode: device``), exercised on the CPU.

On the CPU ``torchvision.io.decode_jpeg`` decodes with libjpeg-turbo, as PIL does, so
the two paths differ only by resampling: torch's antialiased bicubic on float against
PIL's fixed-point one. Measured on these images (torch 2.14.1, torchvision 0.29.1,
Pillow 13.0): mean absolute difference 0.16-0.24 grey levels, per-image means at most
0.36, single pixels at most 5 (random crops' edges, where PIL's filter reads pixels
outside the box). The tolerances below (2 and 4) leave room for other library versions;
another seed's crop boxes differ by 43-50 levels.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from bench.backbones import create_backbone
from bench.data.images import (
    DeviceImageDecoder,
    ImageFiles,
    ImageReadError,
    ImageTransform,
    read_image_bytes,
)
from bench.engine import Engine
from bench.engine.loop import prepared_batches

#: (height, width): down- and upsampled, square, portrait and landscape.
SIZES = [(64, 80), (100, 60), (37, 37), (200, 120), (30, 50)]


def photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth structure plus a little noise, like a photo (pure noise exaggerates
    resampling differences and hides whether two crops show the same place)."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [128 + 100 * np.sin(x / 7.0 + c) * np.cos(y / 11.0 + 2 * c) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 8, (height, width, 3))
    return pixels.clip(0, 255).astype(np.uint8)


def image_files(folder, crop_border: int = 0) -> ImageFiles:
    """JPEGs of several sizes, a grey JPEG, a CMYK JPEG, a PNG and a BMP."""
    rng = np.random.default_rng(0)
    names = []
    for i, (height, width) in enumerate(SIZES):
        Image.fromarray(photo(rng, height, width)).save(folder / f"{i}.jpg", quality=90)
        names.append(f"{i}.jpg")
    Image.fromarray(photo(rng, 50, 70)[..., 0]).save(folder / "grey.jpg", quality=90)
    Image.fromarray(photo(rng, 45, 65)).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    Image.fromarray(photo(rng, 45, 65)).save(folder / "lossless.png")
    Image.fromarray(photo(rng, 40, 60)).save(folder / "bitmap.bmp")  # torchvision lacks BMP
    names += ["grey.jpg", "cmyk.jpg", "lossless.png", "bitmap.bmp"]
    return ImageFiles(folder, names, crop_border=crop_border)


def assert_close_to_pil(device: torch.Tensor, host: np.ndarray) -> None:
    assert device.dtype == torch.uint8 and tuple(device.shape) == host.shape
    difference = np.abs(device.numpy().astype(np.int16) - host.astype(np.int16))
    per_image = difference.reshape(len(host), -1).mean(axis=1)
    assert difference.mean() < 2.0, per_image
    assert per_image.max() < 4.0, per_image


@pytest.mark.parametrize("crop_border", [0, 4])
def test_evaluation_decoding_matches_pil(tmp_path, crop_border):
    files = image_files(tmp_path, crop_border)
    transform = ImageTransform(32)
    decoded = transform.on_device()(read_image_bytes(files), "cpu", crop_border=crop_border)
    assert_close_to_pil(decoded, transform(files))


def test_evaluation_resizes_images_of_one_size_together_as_each_alone(tmp_path):
    """Images of one size share a resize call; each comes out bitwise as decoded alone."""
    image_files(tmp_path)
    names = ["0.jpg", "1.jpg", "0.jpg", "3.jpg", "1.jpg", "lossless.png", "0.jpg"]
    encoded = read_image_bytes(ImageFiles(tmp_path, names))
    decoder = ImageTransform(32).on_device()
    grouped = decoder(encoded, "cpu", crop_border=2, group_by_size=True)
    alone = torch.cat([decoder([e], "cpu", crop_border=2) for e in encoded])
    torch.testing.assert_close(grouped, alone, rtol=0, atol=0)
    torch.testing.assert_close(decoder(encoded, "cpu", crop_border=2), alone, rtol=0, atol=0)


def test_crop_border_removes_the_edges(tmp_path):
    files = image_files(tmp_path)
    decoder = ImageTransform(32).on_device()
    encoded = read_image_bytes(files)
    whole, bordered = decoder(encoded, "cpu"), decoder(encoded, "cpu", crop_border=6)
    difference = (whole.float() - bordered.float()).abs().mean(dim=(1, 2, 3))
    assert (difference > 4).all(), difference


def test_training_crops_match_pil_for_the_same_seed(tmp_path):
    files = image_files(tmp_path)
    transform = ImageTransform(32, train=True, scale=(0.3, 1.0))  # boxes far apart
    decoder = transform.on_device()
    assert decoder == DeviceImageDecoder(32, True, (0.3, 1.0), (3 / 4, 4 / 3))
    encoded = read_image_bytes(files)
    for seed in (0, 1, 2):
        assert_close_to_pil(decoder(encoded, "cpu", seed), transform(files, seed=seed))
    # The tolerance would catch other boxes: another seed's crops are far off.
    other = decoder(encoded, "cpu", 7).numpy().astype(np.int16)
    assert np.abs(other - transform(files, seed=0)).mean() > 10


def test_missing_or_damaged_files_are_named(tmp_path):
    files = image_files(tmp_path)
    (tmp_path / "2.jpg").unlink()
    with pytest.raises(ImageReadError, match="2.jpg"):
        read_image_bytes(files)
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 10)
    with pytest.raises(ImageReadError, match="2.jpg"):
        ImageTransform(32).on_device()(read_image_bytes(files), "cpu", files=files)


def test_decoder_is_picklable_for_workers():
    decoder = ImageTransform(32, train=True).on_device()
    assert pickle.loads(pickle.dumps(decoder)) == decoder


def batches_with(files: ImageFiles, train: bool, workers: int, decode: str) -> list:
    engine = Engine.create("cpu", "fp32", decode=decode, data_workers=workers)
    backbone = create_backbone("tiny_cnn.random")
    torch.manual_seed(0)  # the training seed, which draws each batch's crop seed
    batches = [np.array([3, 1, 4]), np.array([0, 8]), np.array([5, 2, 6, 7])]
    return [batch for _, batch in prepared_batches(backbone, files, batches, train, engine)]


@pytest.mark.parametrize("train", [False, True])
def test_prepared_batches_decode_on_the_device_whatever_the_workers(tmp_path, train):
    files = image_files(tmp_path, crop_border=2)
    here = batches_with(files, train, 0, "device")
    workers = batches_with(files, train, 2, "device")
    host = batches_with(files, train, 0, "host")
    assert [tuple(b.shape) for b in here] == [(3, 3, 28, 28), (2, 3, 28, 28), (4, 3, 28, 28)]
    for a, b, pil in zip(here, workers, host, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        # Same crop seeds per batch, so the same boxes as host decoding.
        assert_close_to_pil(a.permute(0, 2, 3, 1), pil.permute(0, 2, 3, 1).numpy())


def test_clip_backbone_prepares_device_decoded_batches(tmp_path):
    files = image_files(tmp_path)
    engine = Engine.create("cpu", "fp32", decode="device", data_workers=0)
    backbone = create_backbone("clip_tiny.random")
    size = int(backbone.image_size)
    [(_, batch)] = list(prepared_batches(backbone, files, [np.arange(4)], False, engine))
    assert tuple(batch.shape) == (4, 3, size, size) and batch.dtype == torch.uint8
    host = ImageTransform(size)(files.subset(np.arange(4)))
    assert_close_to_pil(batch.permute(0, 2, 3, 1), host)
