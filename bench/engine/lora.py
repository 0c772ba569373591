"""Low-rank adapters (LoRA) on the linear layers of an encoder, through ``peft``.

``W x + b`` becomes ``W x + b + (alpha / rank) * B dropout(A x)`` with ``A [rank, in]``
drawn like a default linear layer's weight and ``B [out, rank]`` zero, so the adapted
encoder starts exactly at the pretrained function; the pretrained ``W`` and ``b`` are
frozen. The adapters are ``peft``'s own layers, injected in place into any
``nn.Module`` (Hugging Face text encoders, open_clip towers, the suite's wrappers), so
the backbone keeps its interface. Methods that fine-tune "a LoRA subset" (``lora_ft``
with AdamW or IVON, UAP's variational form) train only ``A``, ``B`` and the head.

Targets are every ``nn.Linear`` of the encoder whose qualified name matches one of the
shell-style patterns (default: all of them; for BERT-style encoders that is the
attention projections and the MLP, for open_clip ViTs the attention output and the
MLP: ``nn.MultiheadAttention`` uses its projections' weights without calling them, so
they are left out). A convolutional encoder
(EfficientNet) has none, and :func:`add_lora` says so.

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from torch import nn

from bench.errors import ConfigError


def add_lora(
    encoder: nn.Module,
    rank: int,
    alpha: float,
    targets: Sequence[str] = ("*",),
    dropout: float = 0.0,
) -> list[str]:
    """Injects ``peft`` LoRA adapters into the matching linear layers of ``encoder``.

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
        ConfigError: If no ``nn.Linear`` matches (a convolutional encoder, or patterns
            that name nothing); the message lists the linear layers there are.
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
        if isinstance(module, nn.Linear) and name not in inside_attention
    ]
    chosen = [n for n in linear if any(fnmatch.fnmatchcase(n, p) for p in targets)]
    if not chosen:
        available = ", ".join(linear[:8]) + (" ..." if len(linear) > 8 else "")
        raise ConfigError(
            f"LoRA found no nn.Linear layer matching {list(targets)} in "
            f"{type(encoder).__name__}"
            + (f"; its linear layers: {available}" if linear else " (it has none)")
            + "; train all parameters instead (trained_params: all) or use a transformer backbone"
        )
    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
    from peft import LoraConfig, inject_adapter_in_model

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
