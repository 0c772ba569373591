"""Inference throughput: image-tower feature extraction, from tensors and from JPEG files.

Three figures, each beside a plain loop in the same run:

* ``encode_images``: the engine's :func:`bench.engine.loop.extract_features` over uint8
  images in host memory (copies, on-device normalisation and the encoder), against
  ``model.encode_image`` on normalised images already on the device;
* ``extract_jpeg``: the same over JPEG files on disk, decoded as ``runtime.decode`` says,
  against a torchvision-style ``DataLoader`` decoding with PIL in worker processes;
* ``decode_jpeg``: decoding and resizing alone (no model): PIL in one process, PIL in a
  process per core (the host's decode ceiling), and the device decoder.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.perf.hardware import Device, count_flops, plain_autocast, seconds_per_call
from bench.perf.report import Measurement
from bench.perf.training import _engine, _free, _split, synthetic_images

#: ImageNet's typical photo: 500 x 375 (its median size), saved at JPEG quality 90.
JPEG_SIZE = (500, 375)


@dataclass
class InferenceSettings:
    """Sizes of the inference measurements.

    Attributes:
        batch_size: Images per forward pass.
        images: Images per timed pass (in memory, and JPEG files written).
        repeats: Timed passes (their mean is reported).
        compile_plain: Also time the plain loop compiled.
        compile_engine: Also time the engine with ``runtime.compile``.
    """

    batch_size: int
    images: int
    repeats: int
    compile_plain: bool
    compile_engine: bool


def write_jpegs(folder: str | os.PathLike, count: int, size=JPEG_SIZE, seed: int = 0) -> list[str]:
    """Writes ``count`` photo-like JPEG files (smooth colour fields plus noise).

    Pure noise would compress far worse than photos and slow decoding unrealistically;
    smooth fields with mild noise give files of about ImageNet's typical size. 64
    distinct images are encoded and the files cycle through them (decoding costs the
    same; encoding thousands would take minutes).

    Returns:
        The file names, relative to ``folder``.
    """
    import io

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    blobs = []
    for _ in range(min(64, count)):
        phase = rng.uniform(0, 2 * np.pi, (3, 3))
        channels = [
            128 + 60 * np.sin(xs / (20 + 10 * p[0]) + p[1]) * np.cos(ys / (15 + 10 * p[2]))
            for p in phase
        ]
        image = np.stack(channels, -1) + rng.normal(0, 12, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    names = [f"img_{i:05d}.jpg" for i in range(count)]
    for i, name in enumerate(names):
        (folder / name).write_bytes(blobs[i % len(blobs)])
    return names


def _normalized(batch: int, size: int, device: Device) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, device=device.torch_device)


def _rows(measure, implementation, device, images, seconds, flops_per_image, batch, detail):
    rate = images / seconds
    achieved = flops_per_image * rate / 1e12 if flops_per_image else None
    mfu = achieved / device.peak_tflops if achieved and device.peak_tflops else None
    return Measurement(measure, implementation, rate, "img/s", batch, achieved, mfu, None, detail)


class PlainEncoder:
    """``model.encode_image`` under ``inference_mode`` and bf16 autocast (on CUDA)."""

    def __init__(self, visual: nn.Module, device: Device, compiled: bool):
        self.visual, self.device = visual.eval(), device
        self.forward = torch.compile(self._forward) if compiled else self._forward

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        with plain_autocast(self.device.torch_device.type):
            return self.visual(images)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward(images)


def image_inference(
    device: Device,
    backbone_name: str,
    options: dict,
    settings: InferenceSettings,
    jpeg_folder: str | os.PathLike,
) -> list[Measurement]:
    """``encode_images``, ``extract_jpeg`` and ``decode_jpeg`` (see the module docstring)."""
    from bench.backbones import create_backbone
    from bench.data.images import ImageFiles
    from bench.engine.loop import extract_features

    rows: list[Measurement] = []
    backbone = create_backbone(backbone_name, **options).to(device.torch_device).eval()
    size = int(backbone.image_size)
    batch = settings.batch_size
    detail = f"{backbone_name} {size}px"
    probe = _normalized(batch, size, device)
    with torch.inference_mode():
        flops = count_flops(lambda: backbone.model.visual(probe)) / batch
    in_memory = _split(synthetic_images(settings.images, size), np.zeros(settings.images))
    names = write_jpegs(jpeg_folder, settings.images)
    files = _split(ImageFiles(jpeg_folder, np.asarray(names)), np.zeros(len(names)))
    jpeg_detail = f"{detail}, {settings.images} JPEGs {JPEG_SIZE[0]}x{JPEG_SIZE[1]}"

    engines = [("engine", False)] + ([("engine compiled", True)] if settings.compile_engine else [])
    for name, compiled in engines:
        engine = _engine(device, batch, compile_model=compiled)
        model = create_backbone(backbone_name, **options).to(device.torch_device).eval()
        seconds = seconds_per_call(
            lambda m=model, e=engine: extract_features(m, in_memory, e), device, 1,
            settings.repeats,
        )  # fmt: skip
        rows.append(
            _rows("encode_images", name, device, settings.images, seconds, flops, batch, detail)
        )
        for decode in ("device", "host") if device.is_cuda else ("host", "device"):
            engine.decode = decode
            seconds = seconds_per_call(
                lambda m=model, e=engine: extract_features(m, files, e), device, 1,
                settings.repeats,
            )  # fmt: skip
            rows.append(
                _rows(
                    "extract_jpeg",
                    f"{name}, decode {decode}, {engine.data_workers} workers",
                    device,
                    settings.images,
                    seconds,
                    flops,
                    batch,
                    jpeg_detail,
                )  # fmt: skip
            )
        del model
    plain_best = None
    for compiled in (False, True) if settings.compile_plain else (False,):
        visual = create_backbone(backbone_name, **options).model.visual.to(device.torch_device)
        encoder = PlainEncoder(visual, device, compiled)
        passes = max(1, settings.images // batch)

        def encode_all(enc=encoder, k=passes) -> None:
            for _ in range(k):
                enc(probe)

        seconds = seconds_per_call(encode_all, device, 1, settings.repeats)
        label = "plain compiled" if compiled else "plain eager"
        rows.append(
            _rows("encode_images", label, device, passes * batch, seconds, flops, batch, detail)
        )
        plain_best = encoder
    rows.append(plain_jpeg_loader(device, plain_best, jpeg_folder, names, size, batch, flops,
                                  settings.repeats, jpeg_detail))  # fmt: skip
    rows += decode_throughput(device, jpeg_folder, names, size, settings.repeats)
    _free(device)
    return rows


class _PILFolder(torch.utils.data.Dataset):
    """torchvision's recipe: PIL decode, bicubic resize of the shorter side, centre crop."""

    def __init__(self, folder, names, size: int):
        self.folder, self.names, self.size = Path(folder), list(names), size

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(_pil_decode(self.folder / self.names[i], self.size))


def _pil_decode(path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as handle:
        image = handle.convert("RGB")
    scale = size / min(image.size)
    image = image.resize(
        (max(size, round(image.width * scale)), max(size, round(image.height * scale))),
        Image.Resampling.BICUBIC,
    )
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _workers(device: Device) -> int:
    return max(1, min(8, device.cores - 1)) if device.is_cuda else max(1, device.cores)


def plain_jpeg_loader(
    device, encoder, folder, names, size, batch, flops, repeats, detail
) -> Measurement:
    """JPEG files -> features with a plain DataLoader (PIL in workers, pinned memory)."""
    workers = _workers(device)
    loader = torch.utils.data.DataLoader(
        _PILFolder(folder, names, size),
        batch_size=batch,
        num_workers=workers,
        pin_memory=device.is_cuda,
        persistent_workers=True,
    )
    mean = torch.tensor([0.481, 0.458, 0.408], device=device.torch_device).view(1, 3, 1, 1)
    std = torch.tensor([0.269, 0.261, 0.276], device=device.torch_device).view(1, 3, 1, 1)

    def one_pass() -> None:
        for images in loader:
            images = images.to(device.torch_device, non_blocking=True).permute(0, 3, 1, 2)
            encoder((images.float() / 255 - mean) / std)

    seconds = seconds_per_call(one_pass, device, 1, repeats)
    return _rows(
        "extract_jpeg", f"plain loader, PIL, {workers} workers", device, len(names), seconds,
        flops, batch, detail,
    )  # fmt: skip


def _decode_chunk(args) -> int:
    folder, names, size = args
    for name in names:
        _pil_decode(Path(folder) / name, size)
    return len(names)


def decode_throughput(device: Device, folder, names, size: int, repeats: int) -> list[Measurement]:
    """Decode + resize + crop alone: PIL on one core, PIL on every core, the device decoder."""
    from torchvision.io import read_file

    from bench.data.images import ImageTransform

    detail = f"{len(names)} JPEGs {JPEG_SIZE[0]}x{JPEG_SIZE[1]} -> {size}px"
    rows = []
    single = names[: max(1, len(names) // 4)]
    seconds = seconds_per_call(lambda: _decode_chunk((folder, single, size)), device, 0, 1)
    rows.append(
        Measurement("decode_jpeg", "PIL, 1 process", len(single) / seconds, "img/s", detail=detail)
    )
    cores = max(1, device.cores)
    chunks = [(folder, names[i::cores], size) for i in range(cores)]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_decode_chunk, chunks))  # start the processes, warm the page cache
        seconds = seconds_per_call(lambda: list(pool.map(_decode_chunk, chunks)), device, 0, 1)
    rows.append(
        Measurement(
            "decode_jpeg", f"PIL, {cores} processes (host ceiling)", len(names) / seconds,
            "img/s", detail=detail,
        )
    )  # fmt: skip
    decoder = ImageTransform(size).on_device()
    encoded = [read_file(str(Path(folder) / n)) for n in names]
    batch = 256

    def decode_all() -> None:
        for start in range(0, len(encoded), batch):
            decoder(encoded[start : start + batch], device.torch_device)

    seconds = seconds_per_call(decode_all, device, 1, repeats)
    where = "nvJPEG" if device.is_cuda else "libjpeg-turbo"
    rows.append(
        Measurement(
            "decode_jpeg", f"torchvision.io on {device.torch_device.type} ({where})",
            len(names) / seconds, "img/s", batch, detail=detail + ", bytes in memory",
        )
    )  # fmt: skip
    return rows
