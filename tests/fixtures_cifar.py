"""Writers of tiny CIFAR-10/100, CIFAR-10.1, CIFAR-10/100-C and SVHN copies in their real formats.

The files are what the official downloads hold (python pickles with ``uint8 [N, 3072]``
CHW rows, ``.npy`` arrays, an SVHN MATLAB v5 file with ``X [32, 32, 3, N]`` and label 10
for the digit 0), with a handful of images per class. Every image is seeded noise in
0..99 plus one marker pixel of value 255 at (:data:`MARK_ROW`, :data:`MARK_COL`,
:data:`MARK_CHANNEL`), so a reader that mixes up rows, columns or channels moves the
marker and fails the tests. Corrupted copies are the clean test images with pixel
(31, 31, 0) set to ``200 + severity`` and pixel (31, 31, 1) to the corruption's index.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from bench.data.cifar import (
    ALL_CORRUPTIONS,
    CIFAR10_CLASSNAMES,
    CIFAR100_CLASSNAMES,
    NUM_SEVERITIES,
)
from bench.tasks import DataPaths

#: Marker pixel (row, column, channel) set to 255 in every fixture image.
MARK_ROW, MARK_COL, MARK_CHANNEL = 1, 5, 2
#: Pixel carrying ``200 + severity`` (channel 0) and the corruption index (channel 1).
CODE_ROW, CODE_COL = 31, 31

CIFAR10_TRAIN_PER_CLASS = 10  # 100 images over the five batches
CIFAR10_TEST_PER_CLASS = 3
CIFAR100_TRAIN_PER_CLASS = 10  # 10% of 10 leaves one val image per class
CIFAR100_TEST_PER_CLASS = 1
CIFAR101_PER_CLASS = 2
SVHN_TEST_DIGITS = 25
#: Corruption files written for CIFAR-10-C (two standard, one extra) and CIFAR-100-C.
CIFAR10C_CORRUPTIONS = ("gaussian_noise", "fog", "speckle_noise")
CIFAR100C_CORRUPTIONS = ("contrast",)


def fixture_images(count: int, seed: int) -> np.ndarray:
    """``uint8 [count, 32, 32, 3]`` distinct noise images carrying the marker pixel."""
    images = np.random.default_rng(seed).integers(0, 100, (count, 32, 32, 3), dtype=np.uint8)
    images[:, MARK_ROW, MARK_COL, MARK_CHANNEL] = 255
    return images


def balanced_labels(num_classes: int, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` labels of every class in a seeded random order."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


def to_rows(images: np.ndarray) -> np.ndarray:
    """HWC images to CIFAR's ``[N, 3072]`` rows (red plane, green, blue; each row-major)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def write_pickle(path: Path, content: dict, protocol: int = 2) -> Path:
    """Pickles ``content`` (protocol 2 by default, like the Python 2 era originals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=protocol)
    return path


def write_cifar10(folder: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes ``cifar-10-batches-py``; returns the split images and labels written."""
    train_y = balanced_labels(10, CIFAR10_TRAIN_PER_CLASS, seed)
    train_x = fixture_images(len(train_y), seed + 1)
    test_y = balanced_labels(10, CIFAR10_TEST_PER_CLASS, seed + 2)
    test_x = fixture_images(len(test_y), seed + 3)
    for batch, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        write_pickle(
            folder / f"data_batch_{batch}",
            {
                b"batch_label": f"training batch {batch} of 5".encode(),
                b"labels": [int(y) for y in train_y[part]],
                b"data": to_rows(train_x[part]),
                b"filenames": [f"img_{i}.png".encode() for i in part],
            },
        )
    write_pickle(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(y) for y in test_y],
            b"data": to_rows(test_x),
            b"filenames": [f"test_{i}.png".encode() for i in range(len(test_y))],
        },
    )
    write_pickle(
        folder / "batches.meta",
        {
            b"num_cases_per_batch": 10000,
            b"label_names": [n.encode() for n in CIFAR10_CLASSNAMES],
            b"num_vis": 3072,
        },
    )
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


def write_cifar100(folder: Path, seed: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes ``cifar-100-python`` (fine and coarse labels, underscored names in ``meta``)."""
    written = {}
    for offset, (split, per_class) in enumerate(
        (("train", CIFAR100_TRAIN_PER_CLASS), ("test", CIFAR100_TEST_PER_CLASS))
    ):
        labels = balanced_labels(100, per_class, seed + 2 * offset)
        images = fixture_images(len(labels), seed + 2 * offset + 1)
        write_pickle(
            folder / split,
            {
                b"filenames": [f"{split}_{i}.png".encode() for i in range(len(labels))],
                b"batch_label": f"{split} batch".encode(),
                b"fine_labels": [int(y) for y in labels],
                b"coarse_labels": [int(y) // 5 for y in labels],
                b"data": to_rows(images),
            },
            # The real train and test files were written with different tools; read both.
            protocol=2 if split == "train" else 4,
        )
        written[split] = (images, labels)
    write_pickle(
        folder / "meta",
        {
            b"fine_label_names": [n.replace(" ", "_").encode() for n in CIFAR100_CLASSNAMES],
            b"coarse_label_names": [f"superclass_{i}".encode() for i in range(20)],
        },
    )
    return written


def write_cifar101(folder: Path, seed: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Writes the CIFAR-10.1 v6 ``.npy`` pair."""
    labels = balanced_labels(10, CIFAR101_PER_CLASS, seed)
    images = fixture_images(len(labels), seed + 1)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "cifar10.1_v6_data.npy", images)
    np.save(folder / "cifar10.1_v6_labels.npy", labels.astype(np.int64))
    return images, labels


def corrupted_copy(clean: np.ndarray, corruption: str, severity: int) -> np.ndarray:
    """The fixture's "corruption": the clean images with the code pixel set."""
    images = clean.copy()
    images[:, CODE_ROW, CODE_COL, 0] = 200 + severity
    images[:, CODE_ROW, CODE_COL, 1] = ALL_CORRUPTIONS.index(corruption)
    return images


def write_cifar_c(
    folder: Path, test_images: np.ndarray, test_labels: np.ndarray, corruptions: tuple[str, ...]
) -> Path:
    """Writes ``<corruption>.npy`` (severities 1..5 stacked) and ``labels.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    for corruption in corruptions:
        stacked = [corrupted_copy(test_images, corruption, s) for s in range(1, NUM_SEVERITIES + 1)]
        np.save(folder / f"{corruption}.npy", np.concatenate(stacked))
    # uint8, as make_cifar_c.py saves it.
    np.save(folder / "labels.npy", np.tile(test_labels, NUM_SEVERITIES).astype(np.uint8))
    return folder


def write_svhn(folder: Path, count: int = SVHN_TEST_DIGITS, seed: int = 30):
    """Writes ``test_32x32.mat``; returns the HWC images and digits (0..9) written."""
    import scipy.io

    digits = np.arange(count) % 10
    images = fixture_images(count, seed)
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        folder / "test_32x32.mat",
        {
            "X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)),  # [32, 32, 3, N]
            "y": np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1),
        },
    )
    return images, digits


def make_cifar_tree(root: Path) -> DataPaths:
    """Writes every fixture under ``root / "cifar"`` and returns paths with that root."""
    base = root / "cifar"
    cifar10 = write_cifar10(base / "cifar-10-batches-py")
    cifar100 = write_cifar100(base / "cifar-100-python")
    write_cifar101(base / "CIFAR-10.1")
    write_cifar_c(base / "CIFAR-10-C", *cifar10["test"], CIFAR10C_CORRUPTIONS)
    write_cifar_c(base / "CIFAR-100-C", *cifar100["test"], CIFAR100C_CORRUPTIONS)
    write_svhn(base / "svhn")
    return DataPaths(root=root, fashion_mnist=root / "fmnist", wordnet=root / "wordnet")
