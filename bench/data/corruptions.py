"""Deterministic image corruptions for covariate-shift splits (ImageNet-C style).

Each corruption maps ``uint8`` images ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` to
``uint8`` images of the same shape. Randomness (noise values, rotation directions)
comes only from the ``seed`` argument, and the arithmetic is plain numpy / scipy
(no threads, no GPU), so a rerun with the same seed is bit-identical.

Severities 1..3 were chosen on Fashion-MNIST (28x28, dark background) so that
severity 3 clearly hurts a classifier but leaves the object recognisable to a person;
the parameters and the measured effect are documented in ``docs/tasks.md``. They are
milder than ImageNet-C's levels 1..5 because a 28-pixel image has far less redundancy
than a 224-pixel photo.
"""

from __future__ import annotations

import numpy as np

#: Parameter per severity (index 0 = severity 1).
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    # Standard deviation of additive Gaussian noise, as a fraction of the 0..255 range.
    "gaussian_noise": (0.08, 0.16, 0.25),
    # Standard deviation of the Gaussian blur kernel, in pixels.
    "gaussian_blur": (0.8, 1.2, 1.8),
    # Factor the deviation from each image's mean intensity is multiplied by.
    "contrast": (0.6, 0.45, 0.3),
    # Rotation angle in degrees; the direction (+/-) is drawn per image.
    "rotation": (10.0, 15.0, 20.0),
}

CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMS)
MAX_SEVERITY = 3


def _spatial_sigma(images: np.ndarray, sigma: float) -> tuple[float, ...]:
    # Blur only the two spatial axes: not across images, not across colour channels.
    return (0.0, sigma, sigma) + ((0.0,) if images.ndim == 4 else ())


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_noise(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Adds zero-mean Gaussian noise with standard deviation ``std * 255``."""
    noise = rng.standard_normal(images.shape, dtype=np.float64) * (std * 255.0)
    return _to_uint8(images.astype(np.float64) + noise)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blurs each image with an isotropic Gaussian kernel of ``sigma`` pixels."""
    from scipy import ndimage  # ~0.35 s; kept out of module import (task registry, DAG)

    blurred = ndimage.gaussian_filter(
        images.astype(np.float64), sigma=_spatial_sigma(images, sigma), mode="nearest"
    )
    return _to_uint8(blurred)


def contrast(images: np.ndarray, factor: float) -> np.ndarray:
    """Scales each image's deviation from its own mean intensity by ``factor``."""
    x = images.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    return _to_uint8((x - mean) * factor + mean)


def rotation(images: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotates each image by ``+degrees`` or ``-degrees`` (drawn per image) about its centre.

    Uncovered corners are filled with 0, the background of Fashion-MNIST.
    """
    from scipy import ndimage  # ~0.35 s; kept out of module import (task registry, DAG)

    signs = rng.choice(np.array([-1.0, 1.0]), size=len(images))
    out = np.empty_like(images)
    for sign in (-1.0, 1.0):
        idx = np.flatnonzero(signs == sign)
        if len(idx) == 0:
            continue
        rotated = ndimage.rotate(
            images[idx].astype(np.float64),
            sign * degrees,
            axes=(2, 1),
            reshape=False,
            order=1,
            mode="constant",
            cval=0.0,
        )
        out[idx] = _to_uint8(rotated)
    return out


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Applies corruption ``name`` at ``severity`` (1..3).

    Args:
        images: ``uint8 [N, H, W]`` or ``[N, H, W, 3]``.
        name: One of :data:`CORRUPTIONS`.
        severity: 1 (mildest) to 3.
        seed: Seed of the corruption's randomness (unused by blur and contrast).

    Returns:
        Corrupted ``uint8`` images, same shape; the input is not modified.

    Raises:
        ValueError: For an unknown name, a severity outside 1..3 or a non-uint8 input.

    """
    if name not in SEVERITY_PARAMS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be in 1..{MAX_SEVERITY}, got {severity}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            f"corrupt expects uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} {images.shape}"
        )
    param = SEVERITY_PARAMS[name][severity - 1]
    rng = np.random.default_rng(seed)
    if name == "gaussian_noise":
        return gaussian_noise(images, param, rng)
    if name == "gaussian_blur":
        return gaussian_blur(images, param)
    if name == "contrast":
        return contrast(images, param)
    return rotation(images, param, rng)
