"""Reader of Fashion-MNIST in its original IDX format (``*-ubyte.gz``).

The Debian package ``dataset-fashion-mnist`` installs the four files under
``/usr/share/datasets/fashion-mnist``; the same files come from the dataset's
GitHub release. IDX format: big-endian header ``0x00 0x00 <dtype> <ndim>``, then one
big-endian ``uint32`` per dimension, then the raw data.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bench.data import DataCountError, check_count

#: Class names in label order (lowercase, as used in prompts and tables).
CLASSNAMES: tuple[str, ...] = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

#: File stem of each split; files are ``{stem}-images-idx3-ubyte.gz`` / ``-labels-idx1-``.
SPLITS: tuple[str, ...] = ("train", "t10k")

#: Number of examples of the complete published files.
COUNTS: dict[str, int] = {"train": 60000, "t10k": 10000}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (gzip-compressed if the name ends in ``.gz``).

    Args:
        path: File to read.

    Returns:
        The array with the shape stored in the header (native byte order).

    Raises:
        DataCountError: If the header is malformed or the payload is shorter or longer
            than the header says (a truncated download).

    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        # One-shot decompression: ~2x faster than streaming through gzip.open.
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataCountError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected_bytes:
        raise DataCountError(
            f"{path}: header promises {shape} ({expected_bytes} bytes) but the file holds "
            f"{len(raw) - header} bytes; the copy is truncated or corrupted"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def split_files(folder: str | Path, split: str) -> tuple[Path, Path]:
    """Paths of the image and label files of ``split`` (``train`` or ``t10k``)."""
    if split not in SPLITS:
        raise ValueError(f"Fashion-MNIST split must be one of {SPLITS}, got {split!r}")
    folder = Path(folder)
    return (
        folder / f"{split}-images-idx3-ubyte.gz",
        folder / f"{split}-labels-idx1-ubyte.gz",
    )


def load_fashion_mnist(
    folder: str | Path, split: str, expected: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of Fashion-MNIST.

    Args:
        folder: Folder holding the four ``.gz`` files.
        split: ``train`` or ``t10k``.
        expected: Number of examples the complete file has (``COUNTS[split]``); None
            skips the check (fixture files).

    Returns:
        ``uint8 [N, 28, 28]`` images and ``int64 [N]`` labels in ``0..9``.

    Raises:
        DataCountError: If the files disagree with each other or with ``expected``, or
            hold labels outside 0..9.

    """
    image_path, label_path = split_files(folder, split)
    images = read_idx(image_path)
    labels = read_idx(label_path).astype(np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise DataCountError(
            f"{image_path}: expected uint8 images [N, H, W] and labels [N], got "
            f"{images.dtype} {images.shape} and {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataCountError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    check_count(image_path, len(images), expected, "images")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSNAMES)):
        raise DataCountError(f"{label_path}: labels outside 0..{len(CLASSNAMES) - 1}")
    return images, labels
