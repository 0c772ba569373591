"""Method registry: ``register_method`` / ``create_method`` / ``list_methods``.

Like the backbones, methods are registered in this torch-free table pointing at
``"module:Class"``, with the static facts the workflow needs at DAG build:

* ``uses_features``: the fit job reads the shared frozen-feature cache;
* ``uses_backbone``: the fit job builds the backbone and reads raw task inputs;
* ``vision_language``: the method needs a backbone with the CLIP interface;
* ``open_vocabulary``: the method can predict classes named only at test time (the
  *new* classes of base-to-new transfer); the others never see those splits;
* ``interpolable``: the method fine-tunes a CLIP image classifier whose weights WiSE-FT
  can interpolate with the zero-shot model (``<method>+wise``);
* ``uses_prototypes``: the method reads the zero-shot class embeddings stored in the
  feature cache (the few-shot adapters), so the features job computes them.

*Modifiers* follow a method's name: ``<method>+<modifier>``. Those that act on
``predictions`` (``+ts``) apply to any method's saved predictions; the one that acts on
``weights`` (``+wise``) reads the fine-tuned weights the base fit job keeps, comes right
after the method, and may itself be followed by prediction modifiers
(``flyp+wise+ts``). One that acts on the ``objective`` (``+dor``) adds a regulariser to
the training of the methods that list it (``regularizers``); it comes right after the
method, and ``<method>+<it>`` is a fit job of its own (``coop+dor``, ``coop+dor+ts``).

A method trained by gradient descent may name its optimiser after an ``@``:
``full_ft@ivon`` is ``full_ft`` trained with IVON (:mod:`bench.engine.optimizers`) and
predicting with its posterior draws; it is a fit job of its own, takes IVON's learning
rates from ``config/optimizers/ivon.yaml`` and its own ``hparams.<method>@ivon`` block,
and takes modifiers like any method (``full_ft@ivon+ts``). The methods that support it
list it in ``optimizers``: every gradient-trained method except those with a posterior
of their own (``uap``, ``bayes_adapter``, ``mc_dropout``, ``laplace_ll``, ``swag``).

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
    interpolable: bool = False,
    uses_prototypes: bool = False,
    regularizers: tuple[str, ...] = (),
    optimizers: tuple[str, ...] = (),
) -> None:
    """Registers a method class given as ``"module:Class"`` (see module docstring)."""
    METHODS.register(
        name,
        description=description,
        uses_features=uses_features,
        uses_backbone=uses_backbone,
        vision_language=vision_language,
        open_vocabulary=open_vocabulary,
        interpolable=interpolable,
        uses_prototypes=uses_prototypes,
        regularizers=tuple(regularizers),
        optimizers=tuple(optimizers),
    )(target)


def register_modifier(
    name: str, target: str, *, description: str, acts_on: str = "predictions"
) -> None:
    """Registers a modifier acting on ``predictions``, ``weights`` or the ``objective``.

    ``target`` is ``"module:function"`` for the first two; an objective modifier is
    applied by the method itself (:meth:`bench.methods.base.Method.enable_regularizer`).
    """
    MODIFIERS.register(name, description=description, acts_on=acts_on)(target)


def list_methods(pattern: str = "*") -> list[str]:
    """Names of registered methods matching a shell-style pattern."""
    return METHODS.names(pattern)


def list_modifiers(pattern: str = "*") -> list[str]:
    """Names of registered post-hoc modifiers."""
    return MODIFIERS.names(pattern)


#: Optimisers a method name may choose with ``@`` (``full_ft@ivon``).
OPTIMIZER_SUFFIXES = ("ivon",)


def method_head(name: str) -> str:
    """The method and its optimiser, no modifiers: ``"full_ft@ivon+ts"`` -> ``"full_ft@ivon"``."""
    return name.split("+")[0]


def method_optimizer(name: str) -> str | None:
    """The optimiser a method name chooses (``"full_ft@ivon+ts"`` -> ``"ivon"``), else None."""
    head = method_head(name)
    return head.split("@", 1)[1] if "@" in head else None


def split_method_name(name: str) -> tuple[str, list[str]]:
    """``"full_ft+ts"`` -> ``("full_ft", ["ts"])``, checking every part is registered.

    An optimiser suffix is checked and dropped: ``"full_ft@ivon+ts"`` ->
    ``("full_ft", ["ts"])`` (:func:`method_optimizer` reads it).

    Raises:
        UnknownNameError: Naming the unknown part and the valid choices.
        ValueError: A weights modifier that is not right after the method, or one that
            the method does not support; an optimiser the method cannot train with.
    """
    head, *modifiers = name.split("+")
    base, _, optimizer = head.partition("@")
    METHODS.get(base)
    if "@" in head:
        if optimizer not in OPTIMIZER_SUFFIXES:
            raise UnknownNameError(
                f"unknown optimizer {optimizer!r} in method {name!r}; valid after '@': "
                f"{', '.join(OPTIMIZER_SUFFIXES)}"
            )
        if optimizer not in METHODS.metadata(base)["optimizers"]:
            valid = ", ".join(
                n for n in METHODS.names() if optimizer in METHODS.metadata(n)["optimizers"]
            )
            raise ValueError(
                f"method {name!r}: {base} does not train with {optimizer}; methods that do: {valid}"
            )
    for position, modifier in enumerate(modifiers):
        if modifier not in MODIFIERS:
            raise UnknownNameError(
                f"unknown modifier {modifier!r} in method {name!r}; valid modifiers: "
                f"{', '.join(MODIFIERS.names())}"
            )
        acts_on = MODIFIERS.metadata(modifier)["acts_on"]
        if acts_on == "objective":
            if any(MODIFIERS.metadata(m)["acts_on"] != "objective" for m in modifiers[:position]):
                raise ValueError(
                    f"method {name!r}: +{modifier} changes the training objective, so it must "
                    f"come right after the method ({base}+{modifier}+...)"
                )
            if modifier not in METHODS.metadata(base)["regularizers"]:
                valid = ", ".join(
                    n for n in METHODS.names() if modifier in METHODS.metadata(n)["regularizers"]
                )
                raise ValueError(
                    f"method {name!r}: +{modifier} regularises the training of {valid}, not "
                    f"of {base}"
                )
            continue
        if acts_on != "weights":
            continue
        if any(MODIFIERS.metadata(m)["acts_on"] != "objective" for m in modifiers[:position]):
            raise ValueError(
                f"method {name!r}: +{modifier} acts on the fine-tuned weights, so it must come "
                f"right after the method ({base}+{modifier}+...)"
            )
        if not METHODS.metadata(base)["interpolable"]:
            valid = ", ".join(n for n in METHODS.names() if METHODS.metadata(n)["interpolable"])
            raise ValueError(
                f"method {name!r}: +{modifier} interpolates fine-tuned CLIP weights, which "
                f"{base} does not produce; valid methods: {valid}"
            )
    return base, modifiers


def weights_stem(name: str) -> str:
    """The part of a method name that a fit or weights job produces.

    ``"flyp+wise+ts"`` -> ``"flyp+wise"``; ``"full_ft+ts"`` -> ``"full_ft"``;
    ``"coop+dor+ts"`` -> ``"coop+dor"``; ``"full_ft@ivon+ts"`` -> ``"full_ft@ivon"``. The
    rest are prediction modifiers applied to that run's saved predictions.
    """
    _, modifiers = split_method_name(name)
    kept = [m for m in modifiers if MODIFIERS.metadata(m)["acts_on"] != "predictions"]
    return "+".join([method_head(name), *kept])


def fit_stem(name: str) -> str:
    """The part of a method name that a fit job trains: the method and its regularisers.

    ``"coop+dor+ts"`` -> ``"coop+dor"``; ``"flyp+wise"`` -> ``"flyp"``;
    ``"coop@ivon+dor"`` -> ``"coop@ivon+dor"``.
    """
    split_method_name(name)
    return "+".join([method_head(name), *objective_modifiers(name)])


def objective_modifiers(name: str) -> list[str]:
    """The regularisers ``name`` adds to its base method's training, in order."""
    _, modifiers = split_method_name(name)
    return [m for m in modifiers if MODIFIERS.metadata(m)["acts_on"] == "objective"]


def prediction_modifiers(name: str) -> list[str]:
    """The modifiers of ``name`` applied to saved predictions, in order."""
    _, modifiers = split_method_name(name)
    return [m for m in modifiers if MODIFIERS.metadata(m)["acts_on"] == "predictions"]


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
    interpolable=True,
    optimizers=("ivon",),
)
register_method(
    "label_smoothing",
    "bench.methods.label_smoothing:LabelSmoothing",
    description="full fine-tuning with label-smoothed cross-entropy",
    optimizers=("ivon",),
)
register_method(
    "lp_ft",
    "bench.methods.lp_ft:LinearProbeThenFineTune",
    description="linear probe on frozen features, then full fine-tuning from that head",
    uses_features=True,
    optimizers=("ivon",),
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
    optimizers=("ivon",),
)
register_method(
    "uap_map",
    "bench.methods.uap:UAPMap",
    description="fine-tuning with an uncertainty-aware function-space prior (MAP form)",
    optimizers=("ivon",),
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
    interpolable=True,
    optimizers=("ivon",),
)
register_method(
    "carot",
    "bench.methods.carot:CaRot",
    description="FLYP + orthogonal visual projection + self-distillation from an EMA teacher",
    vision_language=True,
    open_vocabulary=True,
    interpolable=True,
    optimizers=("ivon",),
)
register_method(
    "clap",
    "bench.methods.clap:CLAP",
    description="zero-shot-initialised class prototypes with CLAP's class-adaptive L2 penalty",
    uses_features=True,
    uses_backbone=False,
    vision_language=True,
    uses_prototypes=True,
    optimizers=("ivon",),
)
register_method(
    "bayes_adapter",
    "bench.methods.bayes_adapter:BayesAdapter",
    description="Gaussian posterior over class prototypes, prior at zero-shot; MC predictions",
    uses_features=True,
    uses_backbone=False,
    vision_language=True,
    uses_prototypes=True,
)
register_method(
    "clip_adapter",
    "bench.methods.clip_adapter:CLIPAdapter",
    description="residual bottleneck MLP on image embeddings, zero-shot text classifier",
    uses_features=True,
    uses_backbone=False,
    vision_language=True,
    uses_prototypes=True,
    optimizers=("ivon",),
)
register_method(
    "tip_adapter",
    "bench.methods.tip_adapter:TipAdapter",
    description="training-free key-value cache of support features + zero-shot head",
    uses_features=True,
    uses_backbone=False,
    vision_language=True,
    uses_prototypes=True,
)
register_method(
    "tip_adapter_f",
    "bench.methods.tip_adapter:TipAdapterF",
    description="Tip-Adapter with the cache keys fine-tuned",
    uses_features=True,
    uses_backbone=False,
    vision_language=True,
    uses_prototypes=True,
    optimizers=("ivon",),
)
register_method(
    "coop",
    "bench.methods.coop:CoOp",
    description="prompt tuning: learned context vectors in the text tower's token embeddings",
    uses_features=True,
    vision_language=True,
    open_vocabulary=True,
    uses_prototypes=True,
    regularizers=("dor",),
    optimizers=("ivon",),
)
register_method(
    "kgcoop",
    "bench.methods.kgcoop:KgCoOp",
    description="CoOp + a pull of the class text embeddings toward the zero-shot ones",
    uses_features=True,
    vision_language=True,
    open_vocabulary=True,
    uses_prototypes=True,
    regularizers=("dor",),
    optimizers=("ivon",),
)
register_method(
    "lora_ft",
    "bench.methods.lora_ft:LoRAFineTuning",
    description="LoRA adapters (peft) on the encoder's linear and 1x1 conv layers + a new head",
    optimizers=("ivon",),
)
register_method(
    "mc_dropout",
    "bench.methods.mc_dropout:MCDropout",
    description="fine-tuning with dropout; predictions average passes with dropout on",
)
register_method(
    "laplace_ll",
    "bench.methods.laplace_ll:LastLayerLaplace",
    description="fine-tuning, then a last-layer Laplace posterior (laplace-torch, KFAC GGN)",
)
register_method(
    "swag",
    "bench.methods.swag:SWAG",
    description="fine-tuning, then SWAG (diagonal + low-rank Gaussian) from the trajectory",
)
register_modifier(
    "dor",
    "bench.methods.dor:DORRegularizer",
    description="DOR: outlier words' learned-prompt embeddings held at zero-shot CLIP's",
    acts_on="objective",
)
register_modifier(
    "ts",
    "bench.methods.temperature_scaling:apply_temperature_scaling",
    description="temperature scaling fitted on the validation split (Guo et al., 2017)",
)
register_modifier(
    "wise",
    "bench.methods.wise_ft:run_wise_ft",
    description="WiSE-FT: zero-shot / fine-tuned weight interpolation, alpha chosen on val",
    acts_on="weights",
)
