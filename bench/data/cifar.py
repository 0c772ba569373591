"""Readers of CIFAR-10 / CIFAR-100, CIFAR-10.1, CIFAR-10-C / CIFAR-100-C and SVHN.

Every reader returns ``uint8 [N, 32, 32, 3]`` images (rows, columns, RGB) and ``int64 [N]``
labels. The layouts are those of the official downloads, unpacked side by side under one
folder (``<data root>/cifar`` by default):

* ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
  ``batches.meta`` from ``cifar-10-python.tar.gz`` (www.cs.toronto.edu/~kriz/cifar.html).
  Each batch is a pickled dict with ``b"data"`` (``uint8 [10000, 3072]``: per image the
  1,024 red, then green, then blue values, each plane row-major, i.e. CHW) and
  ``b"labels"`` (list of ints); ``batches.meta`` holds ``b"label_names"``.
* ``cifar-100-python/``: ``train``, ``test`` and ``meta`` from ``cifar-100-python.tar.gz``;
  the same ``b"data"`` layout with ``b"fine_labels"`` / ``b"coarse_labels"``; ``meta``
  holds ``b"fine_label_names"`` (``aquarium_fish``: underscores become spaces here).
* ``CIFAR-10.1/``: ``cifar10.1_v6_data.npy`` (``uint8 [2000, 32, 32, 3]``) and
  ``cifar10.1_v6_labels.npy`` from github.com/modestyachts/CIFAR-10.1 (``datasets/``).
* ``CIFAR-10-C/`` and ``CIFAR-100-C/``: ``<corruption>.npy`` (``uint8 [50000, 32, 32,
  3]``) and ``labels.npy`` from Zenodo records 2535967 / 3555552 (Hendrycks & Dietterich,
  2019). Each file is the test set corrupted at severity 1, then 2, ..., then 5, 10,000
  images each, in test-set order (``make_cifar_c.py`` of github.com/hendrycks/robustness
  loops severities outside and the test images inside), so ``labels.npy`` is the test
  labels five times over.
* ``svhn/``: ``train_32x32.mat`` / ``test_32x32.mat`` / ``extra_32x32.mat`` (cropped
  digits, ufldl.stanford.edu/housenumbers): MATLAB v5 files with ``X`` ``uint8 [32, 32,
  3, N]`` (row, column, channel, image) and ``y`` ``[N, 1]`` holding 1..10, where 10 is
  the digit 0 (mapped to 0 here, as torchvision's ``SVHN`` does).

Trust assumption: the CIFAR python files are pickles, and unpickling can run arbitrary
code. Only the files named above are ever unpickled, and through an unpickler that
resolves no global but those a pickled numpy array needs (numpy's ``_reconstruct``
under its numpy 1 or numpy 2 module name, ``ndarray``, ``dtype``, and ``_codecs.encode``
used by protocol-2 pickles written by Python 3), so a tampered file fails with an error
instead of running code. Still, take the archives only from the official page (their
md5 sums are in torchvision's ``CIFAR10`` / ``CIFAR100`` classes). The ``.npy`` files
are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DataCountError, check_count

#: Sub-folders of the data folder, as the official archives unpack.
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR101_DIR = "CIFAR-10.1"
CIFAR10C_DIR = "CIFAR-10-C"
CIFAR100C_DIR = "CIFAR-100-C"
SVHN_DIR = "svhn"

#: Files of each split of the python-version CIFAR archives.
CIFAR10_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR100_FILES: dict[str, tuple[str, ...]] = {"train": ("train",), "test": ("test",)}
CIFAR10_META = "batches.meta"
CIFAR100_META = "meta"

#: CIFAR-10.1 v6 (the version recommended by its authors) image and label files.
CIFAR101_DATA = "cifar10.1_v6_data.npy"
CIFAR101_LABELS = "cifar10.1_v6_labels.npy"
#: Label file shared by all corruption files of CIFAR-10-C / CIFAR-100-C.
CORRUPTION_LABELS = "labels.npy"
#: SVHN cropped-digit files per split.
SVHN_FILES: dict[str, str] = {
    "train": "train_32x32.mat",
    "test": "test_32x32.mat",
    "extra": "extra_32x32.mat",
}

#: Images per split of CIFAR-10 and of CIFAR-100 (cs.toronto.edu/~kriz/cifar.html: "50000
#: training images and 10000 test images"; CIFAR-10's train split is five batches of 10,000).
CIFAR_COUNTS: dict[str, int] = {"train": 50000, "test": 10000}
CIFAR10_BATCH_COUNT = 10000
#: CIFAR-10.1 v6 images (modestyachts/CIFAR-10.1, ``code/utils.py`` asserts 2000 for v6).
CIFAR101_COUNT = 2000
#: Severities of CIFAR-10-C / CIFAR-100-C and images per corruption file (5 x 10,000;
#: the Zenodo README: "The first 10,000 images in each .npy are the test set images
#: corrupted at severity 1, and the last 10,000 images are ... at severity five").
NUM_SEVERITIES = 5
CORRUPTION_FILE_COUNT = NUM_SEVERITIES * CIFAR_COUNTS["test"]
#: SVHN cropped digits per split (ufldl.stanford.edu/housenumbers; TFDS ``svhn_cropped``).
SVHN_COUNTS: dict[str, int] = {"train": 73257, "test": 26032, "extra": 531131}

#: The 15 corruptions of the CIFAR-10-C benchmark (Hendrycks & Dietterich, 2019, Fig. 1),
#: named like their files (the corruption functions of ``make_cifar_c.py``).
STANDARD_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
#: The four extra corruptions shipped in the same folder (the paper's validation set).
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS

#: CIFAR-10 class names in label order (``batches.meta``; also CLIP's ``data/prompts.md``).
CIFAR10_CLASSNAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
#: CIFAR-100 fine class names in label order (``meta``'s ``fine_label_names`` with
#: underscores as spaces, identical to CIFAR100 ``classes`` in CLIP's ``data/prompts.md``).
CIFAR100_CLASSNAMES: tuple[str, ...] = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak tree", "orange", "orchid", "otter", "palm tree", "pear",
    "pickup truck", "pine tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
    "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow tree", "wolf", "woman", "worm",
)  # fmt: skip

IMAGE_SHAPE = (32, 32, 3)
_PIXELS = 32 * 32 * 3


def _numpy_reconstruct():
    try:  # numpy >= 2 moved the implementation; old pickles name numpy.core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


#: The only globals a CIFAR pickle may reference (module, name).
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a pickled numpy array needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch holds only arrays, "
                "lists and strings"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return {"ndarray": np.ndarray, "dtype": np.dtype, "encode": codecs.encode}[name]


def unpickle_cifar(path: str | Path) -> dict[bytes, Any]:
    """Reads one file of the python-version CIFAR archives (see the module's trust note).

    Args:
        path: A batch, ``train`` / ``test`` or meta file.

    Returns:
        The pickled dict, with ``bytes`` keys (``encoding="bytes"``, because the files
        were written by Python 2 and their arrays' raw data are byte strings).

    Raises:
        DataCountError: If the file is truncated, not a pickle, holds anything but a dict
            or references a global other than numpy's array machinery.

    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            content = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as error:  # pickle raises many types on damaged input
        raise DataCountError(
            f"{path}: cannot be read as a CIFAR python pickle ({type(error).__name__}: {error}); "
            "the copy is corrupted, re-download and unpack the official archive"
        ) from error
    if not isinstance(content, dict):
        raise DataCountError(f"{path}: expected a pickled dict, found {type(content).__name__}")
    return content


def _field(content: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in content:
        found = ", ".join(sorted(k.decode("latin-1") for k in content if isinstance(k, bytes)))
        raise DataCountError(f"{path}: no {key.decode()!r} entry (found: {found or 'none'})")
    return content[key]


def rows_to_images(rows: np.ndarray, path: str | Path) -> np.ndarray:
    """Turns CIFAR's ``[N, 3072]`` CHW rows into ``uint8 [N, 32, 32, 3]`` HWC images."""
    rows = np.asarray(rows)
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != _PIXELS:
        raise DataCountError(
            f"{path}: expected uint8 data [N, {_PIXELS}], got {rows.dtype} {rows.shape}"
        )
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataCountError(
            f"{path}: labels outside 0..{num_classes - 1} (found {labels.min()}..{labels.max()})"
        )
    return labels


def _read_python_split(
    folder: Path, names: tuple[str, ...], label_key: bytes, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        path = folder / name
        content = unpickle_cifar(path)
        batch = rows_to_images(_field(content, b"data", path), path)
        batch_labels = _check_labels(_field(content, label_key, path), num_classes, path)
        if len(batch) != len(batch_labels):
            raise DataCountError(
                f"{path}: {len(batch)} images but {len(batch_labels)} {label_key.decode()}"
            )
        images.append(batch)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def _split_names(files: dict[str, tuple[str, ...]], split: str) -> tuple[str, ...]:
    if split not in files:
        raise ValueError(f"CIFAR split must be one of {tuple(files)}, got {split!r}")
    return files[split]


def load_cifar10(
    folder: str | Path, split: str, expected: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of CIFAR-10 (python version).

    Args:
        folder: The ``cifar-10-batches-py`` folder.
        split: ``train`` (the five data batches, in order) or ``test``.
        expected: Images of the complete split (``CIFAR_COUNTS[split]``); None skips it.

    Returns:
        ``uint8 [N, 32, 32, 3]`` images and ``int64 [N]`` labels in 0..9.

    Raises:
        DataCountError: If a file is damaged or the count differs from ``expected``.

    """
    folder = Path(folder)
    names = _split_names(CIFAR10_FILES, split)
    images, labels = _read_python_split(folder, names, b"labels", len(CIFAR10_CLASSNAMES))
    where = folder / names[0] if len(names) == 1 else folder
    what = "images" if len(names) == 1 else f"images in {names[0]}..{names[-1]}"
    check_count(where, len(images), expected, what)
    return images, labels


def load_cifar100(
    folder: str | Path, split: str, expected: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of CIFAR-100 (python version) with its fine labels.

    Args:
        folder: The ``cifar-100-python`` folder.
        split: ``train`` or ``test``.
        expected: Images of the complete split (``CIFAR_COUNTS[split]``); None skips it.

    Returns:
        ``uint8 [N, 32, 32, 3]`` images and ``int64 [N]`` fine labels in 0..99.

    Raises:
        DataCountError: If the file is damaged or the count differs from ``expected``.

    """
    folder = Path(folder)
    names = _split_names(CIFAR100_FILES, split)
    images, labels = _read_python_split(folder, names, b"fine_labels", len(CIFAR100_CLASSNAMES))
    check_count(folder / names[0], len(images), expected, "images")
    return images, labels


def _read_names(path: Path, key: bytes, published: tuple[str, ...], verify: bool) -> list[str]:
    raw = _field(unpickle_cifar(path), key, path)
    names = [(n.decode("utf-8") if isinstance(n, bytes) else str(n)).replace("_", " ") for n in raw]
    if verify and tuple(names) != published:
        raise DataCountError(
            f"{path}: {key.decode()} lists {len(names)} names starting {names[:3]}, expected "
            f"the {len(published)} published ones starting {list(published[:3])}; is this "
            "the right dataset?"
        )
    return names


def cifar10_classnames(folder: str | Path, verify: bool = True) -> list[str]:
    """CIFAR-10 class names from ``batches.meta`` (checked against the published list)."""
    path = Path(folder) / CIFAR10_META
    return _read_names(path, b"label_names", CIFAR10_CLASSNAMES, verify)


def cifar100_classnames(folder: str | Path, verify: bool = True) -> list[str]:
    """CIFAR-100 fine class names from ``meta``, underscores replaced by spaces."""
    path = Path(folder) / CIFAR100_META
    return _read_names(path, b"fine_label_names", CIFAR100_CLASSNAMES, verify)


def _open_npy(path: Path) -> np.ndarray:
    """Memory-maps an ``.npy`` file (header read only), naming the file on failure."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as error:  # bad magic, truncated payload, object arrays
        raise DataCountError(
            f"{path}: cannot be read as a .npy array ({type(error).__name__}: {error}); "
            "the copy is corrupted, re-download it"
        ) from error


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise DataCountError(
            f"{path}: expected uint8 images [N, 32, 32, 3], got {images.dtype} {images.shape}"
        )


def load_cifar101(folder: str | Path, expected: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loads CIFAR-10.1 v6.

    Args:
        folder: The ``CIFAR-10.1`` folder.
        expected: Number of images (``CIFAR101_COUNT``); None skips the check.

    Returns:
        ``uint8 [N, 32, 32, 3]`` images and ``int64 [N]`` CIFAR-10 labels.

    """
    data_path, label_path = Path(folder) / CIFAR101_DATA, Path(folder) / CIFAR101_LABELS
    images = _open_npy(data_path)
    _check_images(images, data_path)
    labels = _check_labels(_open_npy(label_path), len(CIFAR10_CLASSNAMES), label_path)
    if len(images) != len(labels):
        raise DataCountError(
            f"{data_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    check_count(data_path, len(images), expected, "images")
    return np.array(images), labels


def check_corruption(corruption: str) -> str:
    """Returns ``corruption`` if it names a CIFAR-10-C file, else raises a ValueError."""
    if corruption not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; valid: {', '.join(ALL_CORRUPTIONS)}")
    return corruption


def corruption_file(folder: str | Path, corruption: str) -> Path:
    """Path of one corruption's ``.npy`` file (the name is checked)."""
    return Path(folder) / f"{check_corruption(corruption)}.npy"


def load_corruption_labels(
    folder: str | Path, test_labels: np.ndarray, expected: int | None = None
) -> None:
    """Checks ``labels.npy`` of a CIFAR-C folder against the clean test labels.

    The corrupted images are paired with the clean test images by position, which is
    only valid if ``labels.npy`` is the test labels repeated once per severity.

    Args:
        folder: The ``CIFAR-10-C`` or ``CIFAR-100-C`` folder.
        test_labels: Labels of the clean test split, in file order.
        expected: Labels of the complete file (``CORRUPTION_FILE_COUNT``); None skips it.

    Raises:
        DataCountError: If the count or the order differs.

    """
    path = Path(folder) / CORRUPTION_LABELS
    labels = np.asarray(_open_npy(path)).astype(np.int64).reshape(-1)
    check_count(path, len(labels), expected, "labels")
    if len(labels) != NUM_SEVERITIES * len(test_labels):
        raise DataCountError(
            f"{path}: holds {len(labels)} labels, expected {NUM_SEVERITIES} severities x "
            f"{len(test_labels)} test images = {NUM_SEVERITIES * len(test_labels)}"
        )
    if not np.array_equal(labels, np.tile(test_labels, NUM_SEVERITIES)):
        raise DataCountError(
            f"{path}: labels are not the clean test labels repeated per severity, so its "
            "images cannot be paired with the test set; is it from the matching dataset?"
        )


def load_corrupted(
    folder: str | Path,
    corruption: str,
    severity: int,
    index: np.ndarray,
    num_test: int,
    expected: int | None = None,
) -> np.ndarray:
    """Reads the images of one corruption and severity for the given test indices.

    The file is memory-mapped, so only the selected rows are read.

    Args:
        folder: The ``CIFAR-10-C`` or ``CIFAR-100-C`` folder.
        corruption: File stem, one of :data:`ALL_CORRUPTIONS`.
        severity: 1 (mildest) .. 5.
        index: Positions in the clean test set.
        num_test: Size of the clean test set (images per severity block).
        expected: Images of the complete file (``CORRUPTION_FILE_COUNT``); None skips it.

    Returns:
        ``uint8 [len(index), 32, 32, 3]``: the corrupted versions of test images ``index``.

    Raises:
        ValueError: If the corruption or severity is unknown.
        DataCountError: If the file is damaged or its size does not fit 5 x ``num_test``.

    """
    if not 1 <= int(severity) <= NUM_SEVERITIES:
        raise ValueError(f"severity must be in 1..{NUM_SEVERITIES}, got {severity!r}")
    path = corruption_file(folder, corruption)
    images = _open_npy(path)
    _check_images(images, path)
    check_count(path, len(images), expected, "images")
    if len(images) != NUM_SEVERITIES * num_test:
        raise DataCountError(
            f"{path}: holds {len(images)} images, expected {NUM_SEVERITIES} severities x "
            f"{num_test} test images = {NUM_SEVERITIES * num_test}"
        )
    start = (int(severity) - 1) * num_test
    return np.array(images[start + np.asarray(index, dtype=np.int64)])


def load_svhn(
    folder: str | Path, split: str, expected: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of SVHN cropped digits.

    Args:
        folder: The ``svhn`` folder.
        split: ``train``, ``test`` or ``extra``.
        expected: Number of digits (``SVHN_COUNTS[split]``); None skips the check.

    Returns:
        ``uint8 [N, 32, 32, 3]`` images and ``int64 [N]`` digits 0..9 (label 10 -> 0).

    Raises:
        DataCountError: If the file is damaged or the count differs from ``expected``.

    """
    if split not in SVHN_FILES:
        raise ValueError(f"SVHN split must be one of {tuple(SVHN_FILES)}, got {split!r}")
    import scipy.io  # deferred: scipy costs import time the registry must not pay

    path = Path(folder) / SVHN_FILES[split]
    try:
        content = scipy.io.loadmat(path, variable_names=("X", "y"))
    except FileNotFoundError:
        raise
    except Exception as error:
        raise DataCountError(
            f"{path}: cannot be read as a MATLAB file ({type(error).__name__}: {error}); "
            "the copy is corrupted, re-download it"
        ) from error
    if "X" not in content or "y" not in content:
        raise DataCountError(f"{path}: expected variables 'X' and 'y'")
    stacked = content["X"]
    if stacked.dtype != np.uint8 or stacked.ndim != 4 or stacked.shape[:3] != IMAGE_SHAPE:
        raise DataCountError(
            f"{path}: expected X uint8 [32, 32, 3, N], got {stacked.dtype} {stacked.shape}"
        )
    images = np.ascontiguousarray(stacked.transpose(3, 0, 1, 2))
    digits = np.asarray(content["y"]).astype(np.int64).reshape(-1)
    if len(digits) != len(images):
        raise DataCountError(f"{path}: {len(images)} images but {len(digits)} labels")
    if len(digits) and (digits.min() < 1 or digits.max() > 10):
        raise DataCountError(f"{path}: labels outside 1..10 (10 stands for the digit 0)")
    check_count(path, len(images), expected, "images")
    return images, np.where(digits == 10, 0, digits)


def count_pickle_images(path: Path) -> int:
    """Images in one CIFAR python file (unpickles it; no image decoding involved)."""
    return len(_field(unpickle_cifar(path), b"data", path))


def count_npy_rows(path: Path) -> int:
    """Rows of an ``.npy`` file, read from its header."""
    return int(_open_npy(path).shape[0])


def count_svhn_images(path: Path) -> int:
    """Images in an SVHN ``.mat`` file, read from its variable directory."""
    import scipy.io

    for name, shape, _ in scipy.io.whosmat(path):
        if name == "X":
            return int(shape[-1])
    raise DataCountError(f"{path}: no variable 'X'")


__all__ = [
    "ALL_CORRUPTIONS",
    "CIFAR100_CLASSNAMES",
    "CIFAR10_CLASSNAMES",
    "CIFAR101_COUNT",
    "CIFAR_COUNTS",
    "CORRUPTION_FILE_COUNT",
    "EXTRA_CORRUPTIONS",
    "NUM_SEVERITIES",
    "STANDARD_CORRUPTIONS",
    "SVHN_COUNTS",
    "check_corruption",
    "cifar100_classnames",
    "cifar10_classnames",
    "count_npy_rows",
    "count_pickle_images",
    "count_svhn_images",
    "load_cifar10",
    "load_cifar100",
    "load_cifar101",
    "load_corrupted",
    "load_corruption_labels",
    "load_svhn",
    "rows_to_images",
    "unpickle_cifar",
]
