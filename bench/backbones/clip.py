"""CLIP backbones through open_clip, with the vision-language interface.

Real weights are open_clip ``pretrained`` tags (downloaded on first use, or read from
``weights_path`` on clusters without internet). ``clip_tiny.random`` is a 2-layer
model built from ``configs/clip_tiny.json`` for tests, the way open_clip's own tests
register tiny architectures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.backbones.base import Backbone, images_to_tensor, resize_to_rgb

_CONFIG_DIR = Path(__file__).parent / "configs"

# CLIP's image normalisation (open_clip.OPENAI_DATASET_MEAN / STD), on the 0-1 scale.
_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


class OpenCLIPBackbone(Backbone):
    """An open_clip model: image features for classification plus the CLIP interface.

    Args:
        arch: open_clip architecture name (``ViT-B-32``) or a config in ``configs/``.
        pretrained: open_clip weights tag, or None for random weights.
        weights_path: Local checkpoint file used instead of downloading ``pretrained``.
        image_size: Override of the architecture's input size (None keeps it).
    """

    modality = "vision"

    def __init__(
        self,
        arch: str,
        pretrained: str | None,
        weights_path: str | None = None,
        image_size: int | None = None,
    ):
        super().__init__()
        import open_clip

        if (_CONFIG_DIR / f"{arch}.json").exists():
            open_clip.add_model_config(_CONFIG_DIR / f"{arch}.json")
        source = weights_path or pretrained
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)  # random-weight models are identical in every run
                model = open_clip.create_model(arch, pretrained=source)
        except Exception as error:  # open_clip raises several types for a failed download
            raise RuntimeError(
                f"could not load open_clip {arch} weights {source!r}: {error}. Without "
                "internet, download the checkpoint elsewhere and set the backbone option "
                "weights_path"
            ) from error
        self.model = model
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.image_size = image_size or model.visual.image_size[0]
        self.feature_dim = (
            int(model.text_projection.shape[1]) if model.text_projection is not None else 0
        )
        self.weights = str(source)

    # --- the CLIP interface ------------------------------------------------------------

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    @torch.no_grad()
    def zero_shot_weights(
        self, classnames: Sequence[str], templates: Sequence[str]
    ) -> torch.Tensor:
        """Zero-shot class embeddings ``[C, D]``.

        The normalised mean over templates of normalised text embeddings (the CLIP
        paper's prompt ensembling).
        """
        device = self.model.logit_scale.device
        weights = []
        for name in classnames:
            tokens = self.tokenize([t.format(name) for t in templates]).to(device)
            emb = nn.functional.normalize(self.encode_text(tokens), dim=-1).mean(0)
            weights.append(nn.functional.normalize(emb, dim=-1))
        return torch.stack(weights)

    # --- the Backbone interface --------------------------------------------------------

    def prepare(self, raw: np.ndarray | Sequence[str], train: bool = False) -> torch.Tensor:
        return images_to_tensor(raw, self.image_transform(train))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 images from :meth:`prepare` -> CLIP's normalised float input."""
        images = resize_to_rgb(batch, self.image_size) / 255.0
        return (images - _MEAN.to(images.device)) / _STD.to(images.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encode_image(self.normalize(batch))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {
            "visual": [],
            "visual_projection": [],
            "text": [],
            "text_projection": [],
            "logit_scale": [],
        }
        for name, param in self.model.named_parameters():
            if name == "logit_scale":
                groups["logit_scale"].append(param)
            elif name == "visual.proj":
                groups["visual_projection"].append(param)
            elif name.startswith("visual."):
                groups["visual"].append(param)
            elif name == "text_projection":
                groups["text_projection"].append(param)
            else:
                groups["text"].append(param)
        return groups

    def run_info(self) -> dict:
        return {**super().run_info(), "weights": self.weights, "image_size": self.image_size}


def build_open_clip(**options) -> OpenCLIPBackbone:
    """Builder for every ``clip_*`` backbone."""
    return OpenCLIPBackbone(**options)
