"""The backbone interface every method programs against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class Backbone(nn.Module):
    """An encoder that maps a batch of raw task inputs to pooled features ``[B, D]``.

    Subclasses set ``modality`` and ``feature_dim`` and implement :meth:`prepare`
    (raw inputs -> tensors, on CPU, cheap) and :meth:`forward` (tensors -> features).
    Vision-language subclasses also implement the CLIP interface
    (``encode_image``, ``encode_text``, ``tokenize``, ``logit_scale``).

    Attributes:
        name: Registered name.
        modality: ``vision`` or ``text``.
        feature_dim: Size of the pooled feature.
    """

    name: str = ""
    modality: str = ""
    feature_dim: int = 0

    def prepare(self, raw: np.ndarray | Sequence[str], train: bool = False) -> Any:
        """Turns raw inputs (uint8 images or strings) into model inputs on the CPU.

        Args:
            raw: A batch of raw inputs as stored in :class:`bench.tasks.Split`.
            train: Whether to apply training-time augmentation.
        """
        raise NotImplementedError

    def forward(self, batch: Any) -> torch.Tensor:  # noqa: D102 - documented on the class
        raise NotImplementedError

    def image_transform(self, train: bool):
        """Decoder of image files for this backbone's input size (vision backbones).

        Returns a small picklable :class:`bench.data.images.ImageTransform`, which
        DataLoader workers run instead of :meth:`prepare` so the model is never copied
        to them; :meth:`prepare` then only has to convert its uint8 output.
        """
        from bench.data.images import ImageTransform

        return ImageTransform(int(self.image_size), train=train)

    def compile_targets(self) -> list[nn.Module]:
        """The modules ``torch.compile`` compiles when the engine asks (``runtime.compile``).

        The default is the whole backbone, preprocessing on the device included, so its
        resize and normalisation fuse into the first kernels.
        """
        return [self]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups (towers, projections).

        Methods freeze or regularize by group; the default is one group of everything.
        """
        return {"encoder": list(self.parameters())}

    def classifier_parameters(self) -> list[nn.Parameter]:
        """The parameters :meth:`forward` uses (a CLIP model's text tower is not among them).

        Methods that regularise or sample "the trained parameters" restrict themselves
        to these; the default is every parameter.
        """
        return list(self.parameters())

    def run_info(self) -> dict[str, Any]:
        """Facts recorded in run.json (weights source, sizes)."""
        return {
            "name": self.name,
            "parameters": int(sum(p.numel() for p in self.parameters())),
            "feature_dim": self.feature_dim,
        }


def to_device(batch: Any, device: torch.device) -> Any:
    """Moves a tensor or a dict of tensors to ``device`` without blocking the host."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    raise TypeError(f"cannot move a {type(batch).__name__} to a device")


def images_to_tensor(raw, transform=None) -> torch.Tensor:
    """uint8 ``[B, H, W]`` or ``[B, H, W, 3]`` -> uint8 ``[B, C, H, W]`` (C = 1 or 3).

    Only a view change on the host for in-memory images: resizing and normalisation
    happen on the device in :func:`resize_to_rgb`, so the CPU never bottlenecks a GPU
    job and 4x fewer bytes cross the bus than with float images. Image files
    (:class:`bench.data.images.ImageFiles`) are first decoded by ``transform``.
    """
    if hasattr(raw, "subset"):  # ImageFiles: decode (usually done in a DataLoader worker)
        if transform is None:
            raise ValueError("image files need a transform to be decoded")
        raw = transform(raw)
    if isinstance(raw, torch.Tensor):  # decoded by a DataLoader worker, maybe pinned
        images = raw
    else:
        images = torch.from_numpy(np.ascontiguousarray(np.asarray(raw)))
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        return images.unsqueeze(1)
    if images.ndim == 4 and images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2)
    raise ValueError(f"expected images [B,H,W] or [B,H,W,3], got shape {tuple(images.shape)}")


def resize_to_rgb(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float ``[B, 3, S, S]`` on the 0-255 scale (on its device).

    Grey images are repeated over three channels; bilinear resizing with antialiasing
    so small images (28 px) upsample smoothly.
    """
    images = images.float()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        images = nn.functional.interpolate(
            images,
            size=(image_size, image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
    return images


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Flips a random half of the batch horizontally (training augmentation)."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
