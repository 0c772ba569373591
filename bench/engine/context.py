"""Context points: unlabelled inputs unlike the training data, drawn fresh each step.

Function-space priors (UAP) regularise a model's predictions on *context* inputs, where
the prior wants high uncertainty. :class:`ContextSampler` draws a batch of raw inputs
per optimiser step from one of two kinds of source:

* a **pool**: another dataset's inputs (vision: the training images of another task,
  with the random-resized crop of training, as the FS-EB code crops ImageNet images;
  language: the CLINC150 Wikipedia sentences);
* **augmentations** of the task's own training inputs strong enough to destroy their
  class: for images a random crop of 5-30% of the area resized back to full size,
  then cut into a 4x4 grid of tiles that are shuffled; for texts a "word salad" that
  shuffles a training sentence's words and replaces each with probability 1/2 by a
  word drawn from the whole training vocabulary. The inputs keep the task's
  low-level statistics (textures, vocabulary) without its semantics.

The sampler owns a NumPy generator seeded from the training seed, and its state goes
into training checkpoints, so a resumed run draws the same context batches.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

ContextMode = Literal["pool", "augment"]

#: Share of the image area the strong augmentation's crop keeps (min, max).
CROP_AREA = (0.05, 0.3)
#: Tiles per side of the jigsaw shuffle.
JIGSAW_GRID = 4
#: Probability that a word of a word-salad sentence is replaced by a random one.
WORD_REPLACE_PROB = 0.5


def _is_image_files(inputs) -> bool:
    return hasattr(inputs, "subset")


def strong_image_augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop-and-jigsaw augmentation of uint8 images ``[M, H, W]`` or ``[M, H, W, 3]``.

    Each image: a random crop of :data:`CROP_AREA` of its area (aspect ratio 3/4 to
    4/3), resized bilinearly back to ``H x W``, then its :data:`JIGSAW_GRID` squared
    tiles permuted at random (a border that does not fill a whole tile stays put).
    """
    images = np.asarray(images)
    height, width = images.shape[1], images.shape[2]
    out = np.empty_like(images)
    tile_h, tile_w = height // JIGSAW_GRID, width // JIGSAW_GRID
    for i, image in enumerate(images):
        area = rng.uniform(*CROP_AREA) * height * width
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        crop_h = int(np.clip(round(np.sqrt(area / ratio)), 1, height))
        crop_w = int(np.clip(round(np.sqrt(area * ratio)), 1, width))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        crop = torch.from_numpy(
            np.ascontiguousarray(image[top : top + crop_h, left : left + crop_w])
        )
        channels_last = crop.ndim == 3
        crop = crop.permute(2, 0, 1) if channels_last else crop.unsqueeze(0)
        resized = torch.nn.functional.interpolate(
            crop[None].float(), size=(height, width), mode="bilinear", align_corners=False
        )[0]
        resized = resized.round().clamp(0, 255).to(torch.uint8)
        resized = resized.permute(1, 2, 0) if channels_last else resized[0]
        result = resized.numpy().copy()
        if tile_h and tile_w:
            tiles = [
                result[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w].copy()
                for r in range(JIGSAW_GRID)
                for c in range(JIGSAW_GRID)
            ]
            for slot, source in enumerate(rng.permutation(len(tiles))):
                r, c = divmod(slot, JIGSAW_GRID)
                result[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w] = tiles[source]
        out[i] = result
    return out


def word_salad(sentences: list[str], vocabulary: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Shuffles each sentence's words and replaces each with probability 1/2.

    Replacements are drawn uniformly from ``vocabulary`` (the training split's word
    tokens, repeats kept, so frequent words are drawn more often).
    """
    out = []
    for sentence in sentences:
        words = sentence.split() or [""]
        words = [words[j] for j in rng.permutation(len(words))]
        replace = rng.random(len(words)) < WORD_REPLACE_PROB
        draws = vocabulary[rng.integers(0, len(vocabulary), len(words))]
        out.append(
            " ".join(str(d) if r else w for w, r, d in zip(words, replace, draws, strict=True))
        )
    return out


class ContextSampler:
    """Draws ``batch_size`` raw context inputs per call (see module docstring).

    Args:
        inputs: The pool (``mode="pool"``) or the training inputs (``"augment"``): a list
            of strings, uint8 images ``[N, H, W(, 3)]`` or
            :class:`bench.data.images.ImageFiles`.
        mode: ``pool`` or ``augment``.
        batch_size: Context points per draw.
        seed: Seeds the sampler's own generator (the training seed).
        image_transform: ``(files, seed) -> uint8 [M, S, S, 3]``: decodes image files,
            with the training crop for a pool, the evaluation crop for augmentations;
            required for :class:`ImageFiles` inputs.

    Raises:
        ValueError: An empty pool, an unknown mode, or image files without a transform.
    """

    def __init__(
        self,
        inputs: Any,
        mode: ContextMode,
        batch_size: int,
        seed: int,
        image_transform=None,
    ):
        if mode not in ("pool", "augment"):
            raise ValueError(f"context mode must be 'pool' or 'augment', got {mode!r}")
        if len(inputs) == 0:
            raise ValueError("the context source has no inputs")
        if _is_image_files(inputs) and image_transform is None:
            raise ValueError("context image files need an image_transform to be decoded")
        self.inputs = inputs
        self.mode = mode
        self.batch_size = batch_size
        self.image_transform = image_transform
        # 0xC0 keeps this stream apart from the (seed, epoch) batch-order generators.
        self.rng = np.random.default_rng([seed, 0xC0])
        self.vocabulary = None
        if mode == "augment" and isinstance(inputs, list):
            self.vocabulary = np.array([w for text in inputs for w in text.split()] or [""])

    def draw(self):
        """The next batch of raw context inputs (strings or uint8 images)."""
        index = self.rng.integers(0, len(self.inputs), self.batch_size)
        if isinstance(self.inputs, list):
            texts = [self.inputs[i] for i in index]
            return word_salad(texts, self.vocabulary, self.rng) if self.mode == "augment" else texts
        if _is_image_files(self.inputs):
            decoded = self.image_transform(
                self.inputs.subset(index), seed=int(self.rng.integers(0, 2**31 - 1))
            )
            images = np.asarray(decoded)
        else:
            images = np.asarray(self.inputs)[index]
        return strong_image_augment(images, self.rng) if self.mode == "augment" else images

    def describe(self) -> str:
        """One line for run.json: the mode and pool size."""
        return f"{self.mode} over {len(self.inputs)} inputs, {self.batch_size} per step"

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
