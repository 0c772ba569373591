"""The training loop and batched inference, written once for every method."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.backbones.base import Backbone, to_device
from bench.engine.checkpoint import (
    Checkpointer,
    Stateful,
    capture,
    restore,
    rng_state,
    set_rng_state,
)
from bench.engine.optimizers import (
    IVONSettings,
    WeightPosterior,
    build_optimizer,
    optimizer_step,
)
from bench.engine.runtime import Engine
from bench.errors import NonFiniteLossError, Preempted
from bench.tasks.base import Split, take


class Classifier(nn.Module):
    """Backbone followed by a linear head: ``logits = head(backbone(x))``.

    Args:
        backbone: The encoder.
        num_classes: Rows of the head.
        normalize_features: L2-normalise the features before the head, as a head built
            from CLIP's class embeddings expects (``exp(s) cos(image, class)``).
    """

    def __init__(self, backbone: Backbone, num_classes: int, normalize_features: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        self.normalize_features = normalize_features

    def forward(self, batch) -> torch.Tensor:
        features = self.backbone(batch)
        if self.normalize_features:
            features = nn.functional.normalize(features, dim=-1)
        return self.head(features)


@dataclass
class OptimConfig:
    """Optimiser and schedule of a fine-tuning run.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Examples per step.
        lr: Learning rate of the backbone.
        head_lr: Learning rate of the head (new parameters learn faster than pretrained ones).
        weight_decay: AdamW decoupled weight decay (not applied to biases and norms).
        warmup_fraction: Share of steps with linear warm-up before cosine decay to 0.
        grad_clip: Max global gradient norm (0 disables clipping).
        label_smoothing: Cross-entropy label smoothing.
        optimizer: ``adamw``, or ``ivon`` (:mod:`bench.engine.optimizers`; a method name
            ``<method>@ivon`` sets it with IVON's learning rates).
        grad_accumulation: Micro-batches per optimiser step: each step's ``batch_size``
            examples are split into this many forward/backward passes whose gradients
            add up, for batches that do not fit in memory (the result is the same step).
    """

    epochs: float = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    optimizer: str = "adamw"
    grad_accumulation: int = 1


def index_batches(
    n: int,
    batch_size: int,
    shuffle: bool,
    generator: np.random.Generator | None,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yields index arrays covering ``range(n)`` in batches."""
    order = generator.permutation(n) if shuffle else np.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, generator: np.random.Generator, group: int = 50
) -> Iterator[np.ndarray]:
    """Random batches of similar-length texts (Hugging Face's ``group_by_length``).

    Shuffles, cuts the order into groups of ``group`` batches, sorts each group by
    length, splits it into batches and shuffles the batch order. Every example is seen
    once per epoch and batches stay random, but pad to nearly their own length, which
    on CPU roughly halves the cost of a step on sentence-length data. Drops the last
    incomplete batch, like :func:`index_batches` with ``drop_last``.
    """
    order = generator.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * group):
        chunk = order[start : start + batch_size * group]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or batches[:1]
    for position in generator.permutation(len(batches)):
        yield batches[position]


def is_text(inputs) -> bool:
    """Whether split inputs are texts (a list of strings) rather than images."""
    return isinstance(inputs, list)


def is_image_files(inputs) -> bool:
    """Whether split inputs are image files decoded batch by batch (ImageFiles)."""
    return hasattr(inputs, "subset")


class _DecodedBatches(torch.utils.data.Dataset):
    """Item ``i`` = ``transform(files[batches[i]], seed=seeds[i])``, run in DataLoader workers.

    With ``transform`` None (device decoding) item ``i`` is the files' encoded bytes
    instead (:func:`bench.data.images.read_image_bytes`), packed as ``(bytes, lengths)``:
    :meth:`unpack` turns it back into a list of uint8 tensors.
    ``files`` holds only the images of these batches (``batches`` index into it), so a
    worker started with spawn / forkserver is not sent a whole dataset's paths.
    """

    def __init__(self, files, batches: list[np.ndarray], seeds: list[int | None], transform):
        self.files, self.batches, self.seeds, self.transform = files, batches, seeds, transform

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, list[int]]:
        from bench.data.images import read_image_bytes

        files = self.files.subset(self.batches[i])
        if self.transform is None:
            # One tensor crosses to the main process, not one per file: read_file's
            # memory-mapped tensors fail to pickle into worker queues ("Bad file
            # descriptor"), and one shared-memory block per batch is cheaper anyway.
            encoded = read_image_bytes(files)
            return torch.cat(encoded), [len(data) for data in encoded]
        return torch.from_numpy(self.transform(files, seed=self.seeds[i]))

    @staticmethod
    def as_is(item):
        """Collate function that leaves packed bytes alone (picklable, unlike a lambda)."""
        return item

    @staticmethod
    def unpack(item: tuple[torch.Tensor, list[int]]) -> list[torch.Tensor]:
        """``(bytes, lengths)`` -> each file's bytes (views of the one tensor)."""
        packed, lengths = item
        return list(torch.split(packed, lengths))


def prepared_batches(
    backbone: Backbone,
    inputs,
    batches,
    train: bool,
    engine: Engine,
    seeds: list[int] | None = None,
) -> Iterator[tuple[np.ndarray, object]]:
    """Yields ``(index, model input on the device)`` for each index array in ``batches``.

    Image files are decoded by ``backbone.image_transform(train)``, in
    ``engine.data_workers`` DataLoader processes (pinned memory, two batches prefetched
    per worker) when it is above 0, so JPEG decoding overlaps the GPU's work. With
    ``engine.decode == "device"`` the workers only read the files' bytes and this
    process decodes each batch on ``engine.device`` (the transform's
    :meth:`~bench.data.images.ImageTransform.on_device` decoder: nvJPEG on a GPU). Each
    training batch is augmented with its entry of ``seeds`` (drawn here, in order, from
    torch's global generator when None), so random crops are the same whatever the
    number of workers, and the same boxes on the host and the device. Everything else
    is prepared in this process.
    """
    batches = list(batches)
    if not is_image_files(inputs):
        for index in batches:
            yield (
                index,
                to_device(backbone.prepare(take(inputs, index), train=train), engine.device),
            )
        return
    from bench.data.images import read_image_bytes

    transform = backbone.image_transform(train)
    decoder = transform.on_device() if engine.decode == "device" else None
    if not train:
        seeds = [None] * len(batches)
    elif seeds is None:
        seeds = torch.randint(0, 2**31 - 1, (len(batches),)).tolist()

    def decode(files, seed: int | None, encoded: list[torch.Tensor]) -> torch.Tensor:
        # files only names a file in an error.
        return decoder(encoded, engine.device, seed, inputs.crop_border, files=files)

    if engine.data_workers == 0:
        for index, seed in zip(batches, seeds, strict=True):
            files = inputs.subset(index)
            if decoder is None:
                decoded = transform(files, seed=seed)
            else:
                decoded = decode(files, seed, read_image_bytes(files))
            yield index, to_device(backbone.prepare(decoded, train=train), engine.device)
        return
    # Re-base the batches onto just the images they use (see _DecodedBatches).
    used = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    offsets = np.cumsum([0] + [len(b) for b in batches])
    local = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(batches))]
    loader = torch.utils.data.DataLoader(
        _DecodedBatches(inputs.subset(used), local, seeds, transform if decoder is None else None),
        batch_size=None,
        shuffle=False,
        num_workers=engine.data_workers,
        # Bytes go to the decoder as they are: pinning would only copy them once more.
        collate_fn=None if decoder is None else _DecodedBatches.as_is,
        pin_memory=engine.device.type == "cuda" and decoder is None,
        persistent_workers=False,
    )
    for index, seed, item in zip(batches, seeds, loader, strict=True):
        # A decoded batch is a (pinned) uint8 tensor: prepare only permutes it, the copy
        # to the device reads the pinned buffer directly.
        if decoder is None:
            decoded = item
        else:
            decoded = decode(inputs.subset(index), seed, _DecodedBatches.unpack(item))
        yield index, to_device(backbone.prepare(decoded, train=train), engine.device)


def cosine_with_warmup(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0."""
    warmup = max(1, int(round(total_steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _param_groups(model: Classifier, cfg: OptimConfig) -> list[dict]:
    groups = []
    for module, lr in ((model.backbone, cfg.lr), (model.head, cfg.head_lr)):
        decay, no_decay = [], []
        for param in module.parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 else decay).append(param)
        groups.append({"params": decay, "lr": lr, "weight_decay": cfg.weight_decay})
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def _check_finite(loss_sum: torch.Tensor, first: int, last: int) -> float:
    """The mean of ``loss_sum`` over steps ``first..last``; raises if it is not finite.

    Checked where the loop reads the loss anyway (every log interval), so it costs no
    extra host synchronisation; one non-finite step makes the sum non-finite.
    """
    total = float(loss_sum.item())
    if not math.isfinite(total):
        raise NonFiniteLossError(
            f"training loss is {total} between steps {first} and {last}; the run diverged. "
            "Lower lr/head_lr or enable grad_clip for this method (tasks.<task>.hparams)"
        )
    return total / max(1, last - first + 1)


def total_training_steps(n_train: int, cfg: OptimConfig) -> int:
    """Optimiser steps of a run: whole batches per epoch times ``cfg.epochs``, at least 1.

    The last partial batch of an epoch is dropped. Schedules inside a method's objective
    (CaRot's EMA momentum) use this to agree with the loop.
    """
    steps_per_epoch = max(1, n_train // cfg.batch_size)
    return max(1, int(round(steps_per_epoch * cfg.epochs)))


def train_classifier(
    model: Classifier,
    train: Split,
    cfg: OptimConfig,
    engine: Engine,
    seed: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    checkpoint: Checkpointer | None = None,
    extra_state: dict[str, Stateful] | None = None,
    objective: Callable[[Classifier, object, torch.Tensor], torch.Tensor] | None = None,
    extra_param_groups: list[dict] | None = None,
    ivon: IVONSettings | None = None,
    posterior: WeightPosterior | None = None,
    schedule: Callable[[int], float] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Fine-tunes ``model`` on ``train`` with ``cfg.optimizer`` and a cosine schedule.

    Epoch ``e`` draws its batch order and augmentation seeds from a generator seeded
    with ``(seed, e)``, so a run resumed from a checkpoint sees exactly the batches the
    uninterrupted run would have.

    Args:
        model: Backbone + head, already on ``engine.device``.
        train: Training split.
        cfg: Optimiser settings.
        engine: Device and precision.
        seed: Seed of the batch order.
        loss_fn: ``(logits, labels) -> loss``; cross-entropy with ``cfg.label_smoothing``
            when None.
        checkpoint: Saves periodically and on a preemption signal, and resumes from a
            saved state (see :mod:`bench.engine.checkpoint`); None trains straight
            through.
        extra_state: Further objects whose state a resume needs (an EMA teacher, a
            posterior), saved and restored with the model's.
        objective: ``(model, batch, labels) -> loss`` for methods whose loss needs more
            than the batch's logits (priors on context points, Monte Carlo samples); it
            runs its own forward passes (under ``engine.autocast()``). None: ``loss_fn``
            of ``model(batch)``.
        extra_param_groups: AdamW parameter groups trained beside the model's (a
            variational posterior's scales), each a dict with ``params``, ``lr`` and
            ``weight_decay``; they follow the same schedule.
        ivon: IVON's settings when ``cfg.optimizer`` is ``ivon`` (None: the defaults).
        posterior: Bound to the optimiser, so the method can predict with IVON's
            posterior draws (:class:`bench.engine.optimizers.WeightPosterior`).
        schedule: Learning-rate multiplier per step (None: warm-up then cosine).
        on_step: Called with the step count after every optimiser step (SWAG collects
            its moments there).

    Returns:
        Summary: steps, final training loss (mean over the last epoch), examples/s,
        and the step a resumed run started from.

    Raises:
        Preempted: A preemption signal arrived; the checkpoint is saved.
        NonFiniteLossError: The loss became NaN or infinite.
    """
    import time

    if loss_fn is None:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        loss_fn = criterion
    total_steps = total_training_steps(len(train), cfg)
    log_interval = min(engine.log_every, max(1, total_steps // 5))
    accumulation = int(cfg.grad_accumulation)
    if not 1 <= accumulation <= cfg.batch_size:
        raise ValueError(
            f"grad_accumulation must be between 1 and batch_size ({cfg.batch_size}), got "
            f"{cfg.grad_accumulation}"
        )
    extra_param_groups = list(extra_param_groups or [])
    engine.prepare_model(model)
    optimizer = build_optimizer(
        _param_groups(model, cfg) + extra_param_groups,
        cfg.optimizer,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        n_train=len(train),
        ivon_settings=ivon,
        fused=engine.device.type == "cuda",
    )
    if posterior is not None:
        posterior.bind(optimizer)
    clipped = list(model.parameters()) + [p for g in extra_param_groups for p in g["params"]]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedule or cosine_with_warmup(total_steps, cfg.warmup_fraction)
    )
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    stateful.update(extra_state or {})
    labels_all = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    text_lengths = np.array([len(t) for t in train.inputs]) if is_text(train.inputs) else None
    model.train()
    # Position and running sums: all of it goes into a checkpoint.
    step = epoch = position = epoch_batches = 0
    running = torch.zeros((), device=engine.device)
    running_from = 1
    epoch_loss = torch.zeros((), device=engine.device)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        restore(stateful, saved["states"])
        set_rng_state(saved["rng"])
        step, epoch, position = saved["step"], saved["epoch"], saved["position"]
        epoch_batches = saved["epoch_batches"]
        running_from = saved["running_from"]
        running.fill_(saved["running"])
        epoch_loss.fill_(saved["epoch_loss"])
    resumed_from = step

    def snapshot() -> dict:
        return {
            "step": step,
            "epoch": epoch,
            "position": position,
            "epoch_batches": epoch_batches,
            "running": float(running.item()),
            "running_from": running_from,
            "epoch_loss": float(epoch_loss.item()),
            "states": capture(stateful),
            "rng": rng_state(),
        }

    start = time.perf_counter()
    with checkpoint if checkpoint is not None else contextlib.nullcontext():
        while step < total_steps:
            epoch_rng = np.random.default_rng([seed, epoch])
            if text_lengths is None:
                order = index_batches(len(train), cfg.batch_size, True, epoch_rng, drop_last=True)
            else:
                order = length_grouped_batches(text_lengths, cfg.batch_size, epoch_rng)
            # Never more batches than steps left, so decoding workers do no wasted work.
            batches = list(order)[: total_steps - (step - position)]
            crop_seeds = epoch_rng.integers(0, 2**31 - 1, len(batches)).tolist()
            if position == 0:
                epoch_loss.zero_()
            # Each batch is cut into ``accumulation`` micro-batches, prepared in order.
            micro_index, micro_seeds = [], []
            for index, crop_seed in zip(batches[position:], crop_seeds[position:], strict=True):
                parts = np.array_split(index, accumulation) if accumulation > 1 else [index]
                micro_index += parts
                micro_seeds += [crop_seed + k for k in range(len(parts))]
            prepared = iter(
                prepared_batches(
                    model.backbone, train.inputs, micro_index, True, engine, seeds=micro_seeds
                )
            )
            for _ in range(len(batches) - position):
                group = [next(prepared) for _ in range(accumulation)]
                batch_size = sum(len(index) for index, _ in group)
                group = [
                    (batch, labels_all[index].to(engine.device, non_blocking=True), len(index))
                    for index, batch in group
                ]

                def micro_losses(group=group, batch_size=batch_size):
                    for batch, labels, size in group:
                        if objective is None:
                            with engine.autocast():
                                logits = model(batch)
                            loss = loss_fn(logits.float(), labels)
                        else:
                            loss = objective(model, batch, labels)
                        yield loss * (size / batch_size) if len(group) > 1 else loss

                loss = optimizer_step(optimizer, micro_losses, clipped, cfg.grad_clip)
                scheduler.step()
                # Accumulate on the device: reading loss.item() every step would sync.
                running += loss.detach()
                epoch_loss += loss.detach()
                step += 1
                position += 1
                if on_step is not None:
                    on_step(step)
                if step % log_interval == 0 or step == total_steps:
                    mean = _check_finite(running, running_from, step)
                    engine.log(f"step {step}/{total_steps} loss {mean:.4f}")
                    running.zero_()
                    running_from = step + 1
                if checkpoint is not None and checkpoint.due(step, total_steps):
                    checkpoint.save(snapshot())
                    if checkpoint.requested is not None:
                        raise Preempted(checkpoint.requested, step, checkpoint.path)
            epoch_batches = position
            epoch += 1
            position = 0
        if checkpoint is not None and checkpoint.wants_final(total_steps) and resumed_from < step:
            # A preemption while predicting then costs a reload, not the training.
            checkpoint.save(snapshot())
    seconds = time.perf_counter() - start
    trained = step - resumed_from
    summary = {
        "steps": step,
        "final_epoch_loss": float(epoch_loss.item() / max(1, epoch_batches)),
        "train_examples_per_s": trained * cfg.batch_size / max(seconds, 1e-9),
        "train_seconds": seconds,
    }
    if resumed_from:
        summary["resumed_from_step"] = resumed_from
    return summary


@torch.inference_mode()
def encode_split(fn: Callable, backbone: Backbone, split: Split, engine: Engine) -> np.ndarray:
    """Applies ``fn(prepared_batch) -> tensor`` over a split in eval mode, batched.

    Runs under ``torch.inference_mode`` (no autograd bookkeeping at all). Texts are
    batched in order of length (and the outputs put back in input order), so a batch
    pads to similar lengths instead of to the split's longest text.
    """
    engine.prepare_model(fn if isinstance(fn, nn.Module) else backbone)
    was_training = backbone.training
    if is_text(split.inputs):
        order = np.argsort([len(t) for t in split.inputs], kind="stable")
    else:
        order = np.arange(len(split))
    outputs = []
    batches = [order[i] for i in index_batches(len(split), engine.eval_batch_size, False, None)]
    for _, batch in prepared_batches(backbone, split.inputs, batches, False, engine):
        with engine.autocast():
            outputs.append(fn(batch).float())
    backbone.train(was_training)
    result = torch.cat(outputs).cpu().numpy()
    restored = np.empty_like(result)
    restored[order] = result
    return restored


def predict_logits(model: Classifier, split: Split, engine: Engine) -> np.ndarray:
    """Logits ``[N, C]`` of ``model`` on a split."""
    model.eval()
    return encode_split(model, model.backbone, split, engine)


def extract_features(backbone: Backbone, split: Split, engine: Engine) -> np.ndarray:
    """Frozen pooled features ``[N, D]`` of a split."""
    backbone.eval()
    return encode_split(backbone, backbone, split, engine)
