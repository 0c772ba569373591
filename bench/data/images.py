"""Image files on disk: lazy split inputs, decoding, resizing, class-folder scans.

ImageNet-scale splits cannot sit in memory as arrays, so their inputs are an
:class:`ImageFiles`: a root and relative paths, decoded batch by batch when a backbone
prepares a batch (in DataLoader workers on a GPU machine). The transforms follow the
CLIP / open_clip preprocessing every paper in this benchmark uses:

* evaluation: resize the shorter side to the input size (bicubic), centre crop;
* training: random resized crop with scale 0.9-1.0 and the image's aspect ratio
  range 3/4-4/3 (open_clip's train transform), bicubic.

Transforms return ``uint8 [B, S, S, 3]`` numpy arrays; normalisation happens on the
device in the backbone. With ``runtime.decode: device`` the workers only read the files'
bytes (:func:`read_image_bytes`) and :class:`DeviceImageDecoder` decodes and resizes
them on the GPU with nvJPEG, cropping the same boxes for the same seed. Randomness
comes from Python's ``random`` module, which the training seed sets in the main process
and torch's DataLoader seeds in each worker, so augmented runs are reproducible.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: File name suffixes treated as images (lower-cased comparison).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


def _unreadable(path, error: Exception) -> ImageReadError:
    return ImageReadError(
        f"{path}: cannot read image ({error}); re-download this file or the dataset"
    )


@dataclass(frozen=True)
class ImageFiles:
    """Images stored as files: ``root / paths[i]``.

    Attributes:
        root: Folder the paths are relative to.
        paths: Relative paths (numpy string array, cheap to index with an index array).
        crop_border: Pixels removed from every edge after decoding (ObjectNet's images
            carry a border that is not part of the photo).
    """

    root: Path
    paths: np.ndarray
    crop_border: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "paths", np.asarray(self.paths, dtype=str))

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageFiles:
        """The images at ``index`` (same root and border)."""
        return ImageFiles(
            self.root, self.paths[np.asarray(index, dtype=np.int64)], self.crop_border
        )

    def path(self, i: int) -> Path:
        """Absolute path of image ``i``."""
        return self.root / str(self.paths[i])

    def open(self, i: int):
        """Decodes image ``i`` as an RGB ``PIL.Image``.

        Raises:
            ImageReadError: Naming the file, when it is missing or not a readable image.
        """
        from PIL import Image

        path = self.path(i)
        try:
            with Image.open(path) as handle:
                image = handle.convert("RGB")
        except (OSError, ValueError, SyntaxError) as error:
            raise _unreadable(path, error) from error
        if self.crop_border:
            b = self.crop_border
            image = image.crop((b, b, image.width - b, image.height - b))
        return image


def _shorter_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` after resizing the shorter side to ``size`` (both paths use it)."""
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def _resize_shorter(image, size: int):
    from PIL import Image

    return image.resize(_shorter_side_size(*image.size, size), Image.Resampling.BICUBIC)


def _center_crop(image, size: int):
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float], rng
) -> tuple[int, int, int, int] | None:
    """Samples a crop box as torchvision's RandomResizedCrop does (at most 10 tries).

    Host and device decoding both call it, so the same seed gives the same boxes.

    Returns:
        ``(left, top, w, h)``, or None when no try fits: the caller then centre crops.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return left, top, w, h
    return None


def _random_resized_crop(
    image, size: int, scale: tuple[float, float], ratio: tuple[float, float], rng
):
    """A random crop of ``image`` (see :func:`_crop_box`) resized to ``size``, bicubic."""
    from PIL import Image

    box = _crop_box(*image.size, scale, ratio, rng)
    if box is None:
        return _center_crop(_resize_shorter(image, size), size)
    left, top, w, h = box
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))


@dataclass(frozen=True)
class ResizeSpec:
    """How images are cropped and resized, shared by the host and the device decoders.

    Attributes:
        image_size: Output side length ``S``.
        train: Random resized crops (training) instead of resize + centre crop.
        scale: Area range of the random crops.
        ratio: Aspect-ratio range of the random crops.
    """

    image_size: int
    train: bool = False
    scale: tuple[float, float] = (0.9, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class ImageTransform(ResizeSpec):
    """Decodes and resizes a batch of :class:`ImageFiles` to ``uint8 [B, S, S, 3]``.

    Small and picklable, so DataLoader workers get it instead of the model. The fields
    are :class:`ResizeSpec`'s.
    """

    def __call__(self, files: ImageFiles, seed: int | None = None) -> np.ndarray:
        """Decodes ``files``; ``seed`` fixes the batch's random crops (else Python's ``random``)."""
        rng = random.Random(seed) if seed is not None else random
        out = np.empty((len(files), self.image_size, self.image_size, 3), dtype=np.uint8)
        for i in range(len(files)):
            image = files.open(i)
            if self.train:
                image = _random_resized_crop(image, self.image_size, self.scale, self.ratio, rng)
            else:
                image = _center_crop(_resize_shorter(image, self.image_size), self.image_size)
            out[i] = np.asarray(image, dtype=np.uint8)
        return out

    def on_device(self) -> DeviceImageDecoder:
        """The same transform for bytes decoded on a device (``runtime.decode: device``)."""
        return DeviceImageDecoder(self.image_size, self.train, self.scale, self.ratio)


def read_image_bytes(files: ImageFiles) -> list[torch.Tensor]:
    """The files' encoded bytes, one uint8 1-d tensor each (what device decoding reads).

    Raises:
        ImageReadError: Naming the file, when it is missing, empty or unreadable.
    """
    from torchvision.io import read_file

    encoded = []
    for i in range(len(files)):
        path = files.path(i)
        try:
            encoded.append(read_file(str(path)))
        except (OSError, RuntimeError) as error:
            raise _unreadable(path, error) from error
    return encoded


#: A JPEG file starts with an SOI marker followed by the first segment's marker.
_JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_on_host(data: torch.Tensor, name) -> torch.Tensor:
    """uint8 ``[3, H, W]`` on the CPU from any format torchvision or PIL reads."""
    import io

    import torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError:  # a format torchvision lacks (BMP, TIFF) or a damaged file
        pass
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as handle:
            pixels = np.array(handle.convert("RGB"), dtype=np.uint8)  # a writable copy
    except (OSError, ValueError, SyntaxError) as error:
        raise _unreadable(name, error) from error
    return torch.from_numpy(pixels).permute(2, 0, 1)


def _decode(encoded: Sequence[torch.Tensor], device, files) -> list[torch.Tensor]:
    """uint8 ``[3, H, W]`` images on ``device``; JPEGs in one batched ``decode_jpeg`` call."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def is_jpeg(data: torch.Tensor) -> bool:
        return data[:3].numpy().tobytes() == _JPEG_MAGIC

    def jpeg(data_list):
        return decode_jpeg(data_list, mode=ImageReadMode.RGB, device=device)

    images: list[torch.Tensor | None] = [None] * len(encoded)
    jpegs = [i for i, data in enumerate(encoded) if is_jpeg(data)]
    try:
        decoded = jpeg([encoded[i] for i in jpegs]) if jpegs else []
    except RuntimeError:
        # One file the decoder rejects (a damaged file, a JPEG kind nvJPEG lacks) fails
        # the whole batch: decode them one by one, so only those fall back to the host.
        decoded = []
        for i in jpegs:
            try:
                decoded.append(jpeg([encoded[i]])[0])
            except RuntimeError:
                decoded.append(None)
    for i, image in zip(jpegs, decoded, strict=True):
        images[i] = image
    for i, image in enumerate(images):
        if image is None:
            name = files.path(i) if files is not None else f"image {i} of the batch"
            images[i] = _decode_on_host(encoded[i], name).to(device, non_blocking=True)
    return images


def _resample(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 ``[..., 3, h, w]`` -> ``[..., 3, height, width]`` of whole numbers 0-255, bicubic.

    torch's antialiased bicubic uses PIL's kernel (a = -0.5), so the two paths agree to
    about a grey level; it runs on float and is rounded as PIL rounds. The result stays
    float (or the uint8 input, unchanged): copying it into the uint8 batch casts it
    exactly, one kernel fewer per image than casting here. A stack ``[N, 3, h, w]`` of
    images of one size is resized in one call, each image as it would be alone.
    """
    import torch

    if tuple(images.shape[-2:]) == (height, width):
        return images  # PIL returns such a resize unchanged too
    # libjpeg-turbo decodes into [h, w, 3] memory; on a CPU the resize alone runs ~1.2x
    # faster from contiguous planes, the copy included (one core, 500x375 -> 298x224).
    batch = images.reshape(-1, *images.shape[-3:]).contiguous().float()
    resized = torch.nn.functional.interpolate(
        batch, size=(height, width), mode="bicubic", antialias=True
    )
    return resized.round_().clamp_(0, 255).reshape(*images.shape[:-2], height, width)


def _resize_center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., 3, h, w]`` -> ``[..., 3, size, size]`` as _resize_shorter + _center_crop."""
    height, width = images.shape[-2:]
    new_width, new_height = _shorter_side_size(width, height, size)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return _resample(images, new_height, new_width)[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class DeviceImageDecoder(ResizeSpec):
    """Decodes encoded image files on a device and resizes them as :class:`ImageTransform`.

    JPEGs are decoded in one batched ``torchvision.io.decode_jpeg`` call on the device
    (nvJPEG on a GPU, libjpeg-turbo on the CPU); other formats and files it rejects are
    decoded on the host and moved. Crops are sampled as the host path samples them
    (:func:`_crop_box`), so the same seed crops the same boxes; pixels differ from
    PIL's by about a grey level (decoder rounding, float resampling). The fields are
    :class:`ResizeSpec`'s.
    """

    def __call__(
        self,
        encoded: Sequence[torch.Tensor],
        device: torch.device | str = "cpu",
        seed: int | None = None,
        crop_border: int = 0,
        files: ImageFiles | None = None,
        group_by_size: bool | None = None,
    ) -> torch.Tensor:
        """Decodes a batch of encoded files (:func:`read_image_bytes`).

        Args:
            encoded: Each file's bytes, a uint8 1-d CPU tensor.
            device: Where to decode and resize.
            seed: Fixes the batch's random crops (else Python's ``random``).
            crop_border: Pixels removed from every edge after decoding (ObjectNet).
            files: The files ``encoded`` was read from, only to name one in an error.
            group_by_size: Whether evaluation resizes the images of one size in one
                call; None: on CUDA only. A GPU otherwise launches ~5 small kernels per
                image; a CPU resizes one image at a time faster, as it stays in cache
                (the resize alone, one core: 465 images/s one by one, 258 in stacks of
                64). The pixels are the same either way (tested).

        Returns:
            uint8 ``[B, S, S, 3]`` on ``device`` (a channels-last view of ``[B, 3, S, S]``).

        Raises:
            ImageReadError: A file no decoder reads (named when ``files`` is given).
        """
        import torch

        rng = random.Random(seed) if seed is not None else random
        device = torch.device(device)
        size = self.image_size
        out = torch.empty((len(encoded), 3, size, size), dtype=torch.uint8, device=device)
        images = _decode(encoded, device, files)
        if crop_border:
            b = crop_border
            images = [image[:, b : image.shape[1] - b, b : image.shape[2] - b] for image in images]
        if group_by_size is None:
            group_by_size = device.type == "cuda"
        if not self.train and group_by_size:
            # Evaluation resizes every image of one size alike: one call per size in the
            # batch (ImageNet's are mostly 500x375 or 375x500), not one per image.
            by_size: dict[tuple[int, int], list[int]] = {}
            for i, image in enumerate(images):
                by_size.setdefault(tuple(image.shape[1:]), []).append(i)
            for members in by_size.values():
                crops = _resize_center_crop(torch.stack([images[i] for i in members]), size)
                out.index_copy_(0, torch.tensor(members, device=device), crops.to(torch.uint8))
            return out.permute(0, 2, 3, 1)
        for i, image in enumerate(images):
            height, width = image.shape[1:]
            box = _crop_box(width, height, self.scale, self.ratio, rng) if self.train else None
            if box is None:
                out[i] = _resize_center_crop(image, size)
            else:
                left, top, w, h = box
                out[i] = _resample(image[:, top : top + h, left : left + w], size, size)
        return out.permute(0, 2, 3, 1)


def scan_class_folders(
    root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[str], list[str]]:
    """Lists ``root/<class>/<image>`` files (the torchvision ImageFolder layout).

    Args:
        root: Folder with one sub-folder per class.
        extensions: Image suffixes to keep (case-insensitive).

    Returns:
        ``(class_folders, paths, path_classes)``: sorted class folder names, image paths
        relative to ``root`` (sorted within each class), and each image's class folder.

    Raises:
        FileNotFoundError: If ``root`` is not a folder (names it).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder does not exist; check the data root")
    suffixes = tuple(e.lower() for e in extensions)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    paths, path_classes = [], []
    for name in classes:
        files = sorted(
            entry.name
            for entry in os.scandir(root / name)
            if entry.is_file() and entry.name.lower().endswith(suffixes)
        )
        paths += [f"{name}/{f}" for f in files]
        path_classes += [name] * len(files)
    return classes, paths, path_classes


def count_images(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> int:
    """Number of image files anywhere under ``root`` (0 if it does not exist)."""
    suffixes = tuple(e.lower() for e in extensions)
    total = 0
    for _, _, files in os.walk(root):
        total += sum(f.lower().endswith(suffixes) for f in files)
    return total


__all__ = [
    "IMAGE_EXTENSIONS",
    "DeviceImageDecoder",
    "ImageFiles",
    "ImageReadError",
    "ImageTransform",
    "count_images",
    "read_image_bytes",
    "scan_class_folders",
]
