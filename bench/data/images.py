"""Image files on disk: lazy split inputs, decoding, resizing, class-folder scans.

ImageNet-scale splits cannot sit in memory as arrays, so their inputs are an
:class:`ImageFiles`: a root and relative paths, decoded batch by batch when a backbone
prepares a batch (in DataLoader workers on a GPU machine). The transforms follow the
CLIP / open_clip preprocessing every paper in this benchmark uses:

* evaluation: resize the shorter side to the input size (bicubic), centre crop;
* training: random resized crop with scale 0.9-1.0 and the image's aspect ratio
  range 3/4-4/3 (open_clip's train transform), bicubic.

Transforms return ``uint8 [B, S, S, 3]`` numpy arrays; normalisation happens on the
device in the backbone. Randomness comes from Python's ``random`` module, which the
training seed sets in the main process and torch's DataLoader seeds in each worker,
so augmented runs are reproducible.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: File name suffixes treated as images (lower-cased comparison).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


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
            raise ImageReadError(
                f"{path}: cannot read image ({error}); re-download this file or the dataset"
            ) from error
        if self.crop_border:
            b = self.crop_border
            image = image.crop((b, b, image.width - b, image.height - b))
        return image


def _resize_shorter(image, size: int):
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(new, Image.Resampling.BICUBIC)


def _center_crop(image, size: int):
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _random_resized_crop(
    image, size: int, scale: tuple[float, float], ratio: tuple[float, float], rng
):
    """Samples a crop as torchvision's RandomResizedCrop does (10 tries, then a centre crop)."""
    from PIL import Image

    width, height = image.size
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
            return image.resize(
                (size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h)
            )
    return _center_crop(_resize_shorter(image, size), size)


@dataclass(frozen=True)
class ImageTransform:
    """Decodes and resizes a batch of :class:`ImageFiles` to ``uint8 [B, S, S, 3]``.

    Small and picklable, so DataLoader workers get it instead of the model.

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
    "ImageFiles",
    "ImageReadError",
    "ImageTransform",
    "count_images",
    "scan_class_folders",
]
