"""Low-rank adapters (LoRA) on the linear layers of an encoder.

``W x + b`` becomes ``W x + b + (alpha / rank) * B A x`` with ``A [rank, in]`` drawn
like a default linear layer's weight and ``B [out, rank]`` zero, so the adapted
encoder starts exactly at the pretrained function; the pretrained ``W`` and ``b`` are
frozen. Methods that fine-tune "a LoRA subset" (UAP's variational form, IVON) train
and regularise only ``A``, ``B`` and the head.

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
import math
from collections.abc import Sequence

import torch
from torch import nn

from bench.errors import ConfigError


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update.

    Args:
        base: The pretrained layer (its parameters are frozen in place).
        rank: Rank ``r`` of the update.
        alpha: Scale numerator; the update is multiplied by ``alpha / rank``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for param in base.parameters():
            param.requires_grad_(False)
        weight = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=weight.dtype))
        # nn.Linear's own initialisation, so A's scale does not depend on the layer width.
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = nn.functional.linear(nn.functional.linear(x, self.lora_a), self.lora_b)
        return self.base(x) + self.scaling * update


def add_lora(
    encoder: nn.Module, rank: int, alpha: float, targets: Sequence[str] = ("*",)
) -> list[str]:
    """Replaces the matching linear layers of ``encoder`` by :class:`LoRALinear`.

    Every other parameter of ``encoder`` is frozen as well, so afterwards exactly the
    adapters' ``lora_a`` / ``lora_b`` require gradients.

    Args:
        encoder: Module changed in place.
        rank: Rank of each update.
        alpha: Scale numerator (``alpha / rank``).
        targets: Shell-style patterns over qualified module names.

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
    for param in encoder.parameters():
        param.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    return chosen
