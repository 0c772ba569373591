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

from bench.backbones.base import Backbone, images_to_tensor, resize_to_rgb, to_device
from bench.errors import MissingWeightsError

_CONFIG_DIR = Path(__file__).parent / "configs"

# CLIP's image normalisation (open_clip.OPENAI_DATASET_MEAN / STD), on the 0-1 scale:
# the default for tags whose pretrained config does not give its own.
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@torch.no_grad()
def prompt_ensemble(model, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot class embeddings ``[C, D]`` of any model with the CLIP interface.

    Each class: the normalised mean over templates of the normalised text embeddings
    (the CLIP paper's prompt ensembling). One text batch per class.
    """
    device = model.logit_scale.device
    weights = []
    for name in classnames:
        tokens = to_device(model.tokenize([t.format(name) for t in templates]), device)
        emb = nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).mean(0)
        weights.append(nn.functional.normalize(emb, dim=-1))
    return torch.stack(weights)


class OpenCLIPBackbone(Backbone):
    """An open_clip model: image features for classification plus the CLIP interface.

    Preprocessing follows the weights' own settings from open_clip's pretrained table:
    input size, normalisation (OpenAI's mean/std for most tags, 0.5/0.5 for some LAION
    ones) and QuickGELU (the OpenAI checkpoints were trained with it; building them with
    plain GELU, which open_clip only warns about, gives wrong features). A local
    ``weights_path`` keeps the tag's settings, so a cluster without internet loads the
    same model.

    Args:
        arch: open_clip architecture name (``ViT-B-32``) or a config in ``configs/``.
        pretrained: open_clip weights tag, or None for random weights.
        weights_path: Local checkpoint file used instead of downloading ``pretrained``.
        image_size: Override of the architecture's input size (None keeps it).
        random_init: Build the architecture with random weights (shape checks offline).
    """

    modality = "vision"

    def __init__(
        self,
        arch: str,
        pretrained: str | None,
        weights_path: str | None = None,
        image_size: int | None = None,
        random_init: bool = False,
    ):
        super().__init__()
        import open_clip

        if (_CONFIG_DIR / f"{arch}.json").exists():
            open_clip.add_model_config(_CONFIG_DIR / f"{arch}.json")
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
        if pretrained and not tag_cfg and not weights_path:
            raise ValueError(
                f"open_clip has no weights tag {pretrained!r} for {arch}; valid tags: "
                f"{', '.join(open_clip.list_pretrained_tags_by_model(arch))}"
            )
        if weights_path and not Path(weights_path).is_file():
            raise MissingWeightsError(
                f"backbone option weights_path={weights_path!r} is not a file; point it at the "
                f"downloaded {arch} {pretrained} checkpoint"
            )
        source = None if random_init else (weights_path or pretrained)
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)  # random-weight models are identical in every run
                model = open_clip.create_model(
                    arch,
                    pretrained=source,
                    force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                )
        except Exception as error:  # open_clip raises several types for a failed download
            raise MissingWeightsError(
                f"could not load open_clip {arch} weights {source!r}: {error}. Without "
                "internet, download the checkpoint elsewhere and set the backbone option "
                "weights_path"
            ) from error
        self.model = model
        self.tokenizer = open_clip.get_tokenizer(arch)
        native = model.visual.image_size  # an int for ResNets, a pair for ViTs
        self.image_size = image_size or (native if isinstance(native, int) else native[0])
        self.feature_dim = (
            int(model.text_projection.shape[1])
            if model.text_projection is not None
            else int(model.visual.output_dim)
        )
        self.mean = tuple(tag_cfg.get("mean", _OPENAI_MEAN))
        self.std = tuple(tag_cfg.get("std", _OPENAI_STD))
        self.quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        self.weights = "random" if source is None else str(source)

    # --- the CLIP interface ------------------------------------------------------------

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``[B, D]`` of a batch from :meth:`prepare` (unnormalised)."""
        return self.model.encode_image(self.normalize(batch))

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """Cached features -> image embeddings; CLIP's features already are embeddings."""
        return features

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``[N, D]`` of tokens from :meth:`tokenize` (unnormalised)."""
        return self.model.encode_text(tokens)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    # --- prompt learning: the text tower from token embeddings -------------------------

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, L, W]`` input embeddings of tokens from :meth:`tokenize` (before positions)."""
        return self.model.token_embedding(tokens)

    def encode_token_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor):
        """Text embeddings ``[N, D]`` of input embeddings (CoOp's learned context inside).

        Runs what ``encode_text`` runs after the embedding lookup; ``tokens`` (the same
        prompts' ids) say where each text ends, whose state is pooled.
        """
        from open_clip.transformer import text_global_pool

        model = self.model
        cast = model.transformer.get_cast_dtype()
        x = embeddings.to(cast) + model.positional_embedding.to(cast)
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        x = text_global_pool(
            x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
        )
        if isinstance(x, tuple):  # open_clip < 3 returned (pooled, tokens)
            x = x[0]
        if model.text_projection is None:
            return x
        if isinstance(model.text_projection, nn.Linear):
            return model.text_projection(x)
        return x @ model.text_projection

    @torch.no_grad()
    def zero_shot_weights(
        self, classnames: Sequence[str], templates: Sequence[str]
    ) -> torch.Tensor:
        """Zero-shot class embeddings ``[C, D]``.

        The normalised mean over templates of normalised text embeddings (the CLIP
        paper's prompt ensembling).
        """
        return prompt_ensemble(self, classnames, templates)

    # --- the Backbone interface --------------------------------------------------------

    def prepare(self, raw: np.ndarray | Sequence[str], train: bool = False) -> torch.Tensor:
        return images_to_tensor(raw, self.image_transform(train))

    @property
    def preprocess(self) -> dict:
        """The train and eval image transforms (decoding and cropping on the host).

        Normalisation is applied on the device by :meth:`normalize`.
        """
        return {"train": self.image_transform(True), "eval": self.image_transform(False)}

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 images from :meth:`prepare` -> the weights' normalised float input."""
        images = resize_to_rgb(batch, self.image_size) / 255.0
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encode_image(batch)

    def compile_targets(self) -> list[nn.Module]:
        """Both towers: contrastive methods (FLYP, CaRot, CoOp) run the text one too."""
        return [self.model.visual, self.model.transformer]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {
            "visual": [],
            "visual_projection": [],
            "text": [],
            "text_projection": [],
            "logit_scale": [],
        }
        for name, param in self.model.named_parameters():
            if name in ("logit_scale", "logit_bias"):
                groups["logit_scale"].append(param)
            elif name == "visual.proj" or name.startswith("visual.attnpool.c_proj."):
                # ViTs project with one matrix; ResNets with the attention pool's output layer.
                groups["visual_projection"].append(param)
            elif name.startswith("visual."):
                groups["visual"].append(param)
            elif name == "text_projection":
                groups["text_projection"].append(param)
            else:
                groups["text"].append(param)
        return groups

    def classifier_parameters(self) -> list[nn.Parameter]:
        """The image tower and its projection: all that :meth:`forward` runs."""
        groups = self.parameter_groups()
        return groups["visual"] + groups["visual_projection"]

    def run_info(self) -> dict:
        return {
            **super().run_info(),
            "weights": self.weights,
            "image_size": self.image_size,
            "quick_gelu": self.quick_gelu,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def build_open_clip(**options) -> OpenCLIPBackbone:
    """Builder for every ``clip_*`` backbone."""
    return OpenCLIPBackbone(**options)
