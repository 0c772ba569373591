"""Method registry: ``register_method`` / ``create_method`` / ``list_methods``.

Like the backbones, methods are registered in this torch-free table pointing at
``"module:Class"``, with the static facts the workflow needs at DAG build:

* ``uses_features``: the fit job reads the shared frozen-feature cache;
* ``uses_backbone``: the fit job builds the backbone and reads raw task inputs;
* ``vision_language``: the method needs a backbone with the CLIP interface;
* ``open_vocabulary``: the method can predict classes named only at test time (the
  *new* classes of base-to-new transfer); the others never see those splits.

Post-hoc *modifiers* (``+ts``) apply to any method's saved predictions; a grid names
them as ``<method>+<modifier>``, e.g. ``full_ft+ts``.

Adding a method: write ``bench/methods/<name>.py`` with a :class:`Method` subclass and
its hyperparameter dataclass, add ``config/methods/<name>.yaml`` with the published
defaults, and one ``register_method`` line below.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.registry import Registry, UnknownNameError

METHODS: Registry = Registry("method")
MODIFIERS: Registry = Registry("modifier")


def register_method(
    name: str,
    target: str,
    *,
    description: str,
    uses_features: bool = False,
    uses_backbone: bool = True,
    vision_language: bool = False,
    open_vocabulary: bool = False,
) -> None:
    """Registers a method class given as ``"module:Class"`` (see module docstring)."""
    METHODS.register(
        name,
        description=description,
        uses_features=uses_features,
        uses_backbone=uses_backbone,
        vision_language=vision_language,
        open_vocabulary=open_vocabulary,
    )(target)


def register_modifier(name: str, target: str, *, description: str) -> None:
    """Registers a post-hoc modifier function ``"module:function"``."""
    MODIFIERS.register(name, description=description)(target)


def list_methods(pattern: str = "*") -> list[str]:
    """Names of registered methods matching a shell-style pattern."""
    return METHODS.names(pattern)


def list_modifiers(pattern: str = "*") -> list[str]:
    """Names of registered post-hoc modifiers."""
    return MODIFIERS.names(pattern)


def split_method_name(name: str) -> tuple[str, list[str]]:
    """``"full_ft+ts"`` -> ``("full_ft", ["ts"])``, checking every part is registered.

    Raises:
        UnknownNameError: Naming the unknown part and the valid choices.
    """
    base, *modifiers = name.split("+")
    METHODS.get(base)
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise UnknownNameError(
                f"unknown modifier {modifier!r} in method {name!r}; valid modifiers: "
                f"{', '.join(MODIFIERS.names())}"
            )
    return base, modifiers


def method_metadata(name: str) -> dict[str, Any]:
    """Static facts of a base method (without modifiers)."""
    return METHODS.metadata(name)


def _load(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def method_class(name: str):
    """The :class:`bench.methods.base.Method` subclass registered as ``name``."""
    return _load(METHODS.get(name))


def create_method(name: str, **hparams: Any):
    """Builds a method from its hyperparameters (unset ones take the class defaults)."""
    return method_class(name)(**hparams)


def modifier_function(name: str):
    """The function registered as modifier ``name``."""
    return _load(MODIFIERS.get(name))


# --- the catalog ------------------------------------------------------------------------

register_method(
    "linear_probe",
    "bench.methods.linear_probe:LinearProbe",
    description="L2-regularised multinomial logistic regression on frozen features",
    uses_features=True,
    uses_backbone=False,
)
register_method(
    "full_ft",
    "bench.methods.full_ft:FullFineTuning",
    description="cross-entropy fine-tuning of the whole encoder and a new linear head",
)
register_method(
    "label_smoothing",
    "bench.methods.label_smoothing:LabelSmoothing",
    description="full fine-tuning with label-smoothed cross-entropy",
)
register_method(
    "lp_ft",
    "bench.methods.lp_ft:LinearProbeThenFineTune",
    description="linear probe on frozen features, then full fine-tuning from that head",
    uses_features=True,
)
register_method(
    "zero_shot",
    "bench.methods.zero_shot:ZeroShot",
    description="zero-shot head from prompt-ensembled class-name embeddings (no training)",
    uses_features=True,
    vision_language=True,
    open_vocabulary=True,
)
register_method(
    "l2_sp",
    "bench.methods.l2_sp:L2SP",
    description="full fine-tuning with an L2 pull toward the pretrained weights (L2-SP)",
)
register_method(
    "uap_map",
    "bench.methods.uap:UAPMap",
    description="fine-tuning with an uncertainty-aware function-space prior (MAP form)",
)
register_method(
    "uap",
    "bench.methods.uap:UAP",
    description="uncertainty-aware prior, mean-field variational posterior, MC predictions",
)
register_method(
    "flyp",
    "bench.methods.flyp:FLYP",
    description="contrastive fine-tuning of the whole CLIP model with class-name captions",
    vision_language=True,
    open_vocabulary=True,
)
register_method(
    "carot",
    "bench.methods.carot:CaRot",
    description="FLYP + orthogonal visual projection + self-distillation from an EMA teacher",
    vision_language=True,
    open_vocabulary=True,
)
register_modifier(
    "ts",
    "bench.methods.temperature_scaling:apply_temperature_scaling",
    description="temperature scaling fitted on the validation split (Guo et al., 2017)",
)
