"""Low-rank adapters (LoRA) on the linear and pointwise layers of an encoder, via ``peft``.

``W x + b`` becomes ``W x + b + (alpha / rank) * B dropout(A x)`` with ``A [rank, in]``
drawn like a default linear layer's weight and ``B [out, rank]`` zero, so the adapted
encoder starts exactly at the pretrained function; the pretrained ``W`` and ``b`` are
frozen. The adapters are ``peft``'s own layers, injected in place into any
``nn.Module`` (Hugging Face text encoders, open_clip towers, the suite's wrappers), so
the backbone keeps its interface. Methods that fine-tune "a LoRA subset" (``lora_ft``
with AdamW or IVON, UAP's variational form) train only ``A``, ``B`` and the head.

Targets are every ``nn.Linear`` and every ungrouped ``nn.Conv2d`` of the encoder whose
qualified name matches one of the shell-style patterns (default: all of them). For
BERT-style encoders that is the attention projections and the MLP; for open_clip ViTs
the MLP (``nn.MultiheadAttention`` uses its projections' weights without calling them,
so they are left out); for EfficientNet the stem and the 1x1 expansion and projection
convolutions of every block (peft's convolutional LoRA: ``A`` is a convolution with the
layer's kernel and ``rank`` outputs, ``B`` a 1x1 one). Depthwise (grouped) convolutions
are left out: a rank-``r`` update of a per-channel filter is not low-rank, and so are
convolution subclasses that do not compute as a plain ``nn.Conv2d`` (EfficientNet-Lite's
same-padding 3x3 and 5x5 ones; its 1x1 ones are plain).

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from torch import nn

from bench.errors import ConfigError


def _plain_conv(module: nn.Conv2d) -> bool:
    """Whether ``module`` is, or computes exactly as, a plain ``nn.Conv2d``.

    peft builds a convolution's adapter by calling the layer's own class, which fails
    for subclasses with another constructor (EfficientNet-Lite's static same-padding
    convolution). A subclass whose forward equals ``nn.Conv2d``'s on random inputs (a 1x1
    one pads nothing) can be adapted once re-classed (:func:`add_lora` does that for the
    layers it adapts); any other is left out.
    """
    if type(module) is nn.Conv2d:
        return True
    import torch

    # Two sizes: an odd one can hide a fixed one-sided padding under stride 2.
    for size in (7, 8):
        probe = torch.randn(1, module.in_channels, size, size, dtype=module.weight.dtype)
        with torch.no_grad():
            try:
                expected = module(probe)
            except (RuntimeError, ValueError):
                return False
            plain = nn.Conv2d.forward(module, probe)
        if plain.shape != expected.shape or not torch.allclose(plain, expected):
            return False
    return True


def add_lora(
    encoder: nn.Module,
    rank: int,
    alpha: float,
    targets: Sequence[str] = ("*",),
    dropout: float = 0.0,
) -> list[str]:
    """Injects ``peft`` LoRA adapters into the matching layers of ``encoder`` (see module).

    Every other parameter of ``encoder`` is frozen, so afterwards exactly the adapters'
    ``lora_A`` / ``lora_B`` weights require gradients.

    Args:
        encoder: Module changed in place.
        rank: Rank of each update.
        alpha: Scale numerator (``alpha / rank``).
        targets: Shell-style patterns over qualified module names.
        dropout: Dropout on the adapter's input (peft's ``lora_dropout``).

    Returns:
        The qualified names of the adapted layers.

    Raises:
        ConfigError: If no layer matches (patterns that name nothing, or an encoder
            with only grouped convolutions); the message lists the layers there are.
    """
    # nn.MultiheadAttention reads its out_proj's weight directly instead of calling it,
    # so an adapter there would be silently ignored: such layers are never targets.
    inside_attention = {
        f"{name}.out_proj" if name else "out_proj"
        for name, module in encoder.named_modules()
        if isinstance(module, nn.MultiheadAttention)
    }
    linear = [
        name
        for name, module in encoder.named_modules()
        if (isinstance(module, nn.Linear) and name not in inside_attention)
        or (isinstance(module, nn.Conv2d) and module.groups == 1 and _plain_conv(module))
    ]
    chosen = [n for n in linear if any(fnmatch.fnmatchcase(n, p) for p in targets)]
    if not chosen:
        available = ", ".join(linear[:8]) + (" ..." if len(linear) > 8 else "")
        raise ConfigError(
            f"LoRA found no linear or ungrouped convolutional layer matching {list(targets)} "
            f"in {type(encoder).__name__}"
            + (f"; its adaptable layers: {available}" if linear else " (it has none)")
            + "; fix lora_targets, or train all parameters (full_ft, trained_params: all)"
        )
    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
    from peft import LoraConfig, inject_adapter_in_model

    for name in chosen:
        module = encoder.get_submodule(name)
        if isinstance(module, nn.Conv2d):
            module.__class__ = nn.Conv2d  # same forward (checked by _plain_conv)

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        # A full-match pattern of the exact names: peft's list form also matches any
        # module whose name merely ends with a listed one.
        target_modules="^(?:" + "|".join(re.escape(n) for n in chosen) + ")$",
        bias="none",
    )
    inject_adapter_in_model(config, encoder)
    for name, param in encoder.named_parameters():
        param.requires_grad_(".lora_A." in f".{name}" or ".lora_B." in f".{name}")
    return chosen
