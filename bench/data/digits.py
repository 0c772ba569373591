"""scikit-learn's bundled 8x8 handwritten digits, made to look like 28x28 uint8 images.

Used as a far-OOD set for Fashion-MNIST: the data ships inside scikit-learn (no
download; read straight from its bundled csv when possible, see ``_bundled_digits``),
and resizing to 28x28 with the same dark background and 0..255 range means the OOD
images differ from the in-distribution ones in content, not in format.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from bench.data import check_count

#: Number of images in scikit-learn's ``load_digits``.
DIGITS_COUNT = 1797

#: Largest pixel value of the 8x8 digits (4x4 blocks of a 32x32 bitmap, counts 0..16).
_DIGITS_MAX = 16.0


def _bundled_digits() -> tuple[np.ndarray, np.ndarray] | None:
    """Reads scikit-learn's ``datasets/data/digits.csv.gz`` without importing scikit-learn.

    ``import sklearn`` takes 1-3 s, longer than the rest of a Fashion-MNIST build; the
    file it would read is a plain csv (64 pixels then the label per row). Returns None if
    the file is not where scikit-learn keeps it, so the caller can fall back to the API.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    return None


def load_digits_8x8() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits: ``float64 [1797, 8, 8]`` in 0..16 and ``int64`` labels."""
    bundled = _bundled_digits()
    if bundled is not None:
        return bundled
    # Imported here: scikit-learn is slow to import and only this fallback needs it.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def load_digits_28(
    size: int = 28, expected: int | None = DIGITS_COUNT
) -> tuple[np.ndarray, np.ndarray]:
    """Loads the digits, scaled to 0..255 and resized bilinearly to ``size`` x ``size``.

    Args:
        size: Output height and width.
        expected: Number of images to expect; None skips the check.

    Returns:
        ``uint8 [1797, size, size]`` images and ``int64 [1797]`` digit labels.

    """
    from scipy import ndimage  # ~0.35 s; kept out of module import (task registry, DAG)

    raw, labels = load_digits_8x8()
    check_count("scikit-learn digits", len(raw), expected, "images")
    images = raw * (255.0 / _DIGITS_MAX)
    zoom = size / images.shape[1]
    resized = ndimage.zoom(images, (1.0, zoom, zoom), order=1, mode="nearest", grid_mode=True)
    out = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    if out.shape[1:] != (size, size):  # zoom rounds the output size; fail loudly, never pad
        raise ValueError(f"resizing digits gave {out.shape[1:]}, wanted {(size, size)}")
    return out, labels
