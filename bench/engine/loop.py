"""The training loop and batched inference, written once for every method."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.backbones.base import Backbone, to_device
from bench.engine.runtime import Engine
from bench.tasks.base import Split, take


class Classifier(nn.Module):
    """Backbone followed by a linear head: ``logits = head(backbone(x))``."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.backbone(batch))


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
    """

    epochs: float = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    label_smoothing: float = 0.0


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

    ``files`` holds only the images of these batches (``batches`` index into it), so a
    worker started with spawn / forkserver is not sent a whole dataset's paths.
    """

    def __init__(self, files, batches: list[np.ndarray], seeds: list[int | None], transform):
        self.files, self.batches, self.seeds, self.transform = files, batches, seeds, transform

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor:
        decoded = self.transform(self.files.subset(self.batches[i]), seed=self.seeds[i])
        return torch.from_numpy(decoded)


def prepared_batches(
    backbone: Backbone, inputs, batches, train: bool, engine: Engine
) -> Iterator[tuple[np.ndarray, object]]:
    """Yields ``(index, model input on the device)`` for each index array in ``batches``.

    Image files are decoded by ``backbone.image_transform(train)``, in
    ``engine.data_workers`` DataLoader processes (pinned memory, two batches prefetched
    per worker) when it is above 0, so JPEG decoding overlaps the GPU's work. Each
    training batch's augmentation seed is drawn here, in order, from torch's global
    generator, so random crops are the same whatever the number of workers.
    Everything else is prepared in this process.
    """
    batches = list(batches)
    if not is_image_files(inputs):
        for index in batches:
            yield (
                index,
                to_device(backbone.prepare(take(inputs, index), train=train), engine.device),
            )
        return
    transform = backbone.image_transform(train)
    seeds = (
        torch.randint(0, 2**31 - 1, (len(batches),)).tolist() if train else [None] * len(batches)
    )
    if engine.data_workers == 0:
        for index, seed in zip(batches, seeds, strict=True):
            decoded = transform(inputs.subset(index), seed=seed)
            yield index, to_device(backbone.prepare(decoded, train=train), engine.device)
        return
    # Re-base the batches onto just the images they use (see _DecodedBatches).
    used = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    offsets = np.cumsum([0] + [len(b) for b in batches])
    local = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(batches))]
    loader = torch.utils.data.DataLoader(
        _DecodedBatches(inputs.subset(used), local, seeds, transform),
        batch_size=None,
        shuffle=False,
        num_workers=engine.data_workers,
        pin_memory=engine.device.type == "cuda",
        persistent_workers=False,
    )
    for index, decoded in zip(batches, loader, strict=True):
        # decoded is a (pinned) uint8 tensor: prepare only permutes it, the copy to the
        # device reads the pinned buffer directly.
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


def train_classifier(
    model: Classifier,
    train: Split,
    cfg: OptimConfig,
    engine: Engine,
    seed: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Fine-tunes ``model`` on ``train`` with AdamW and a cosine schedule.

    Args:
        model: Backbone + head, already on ``engine.device``.
        train: Training split.
        cfg: Optimiser settings.
        engine: Device and precision.
        seed: Seed of the batch order.
        loss_fn: ``(logits, labels) -> loss``; cross-entropy with ``cfg.label_smoothing``
            when None.

    Returns:
        Summary: steps, final training loss (mean over the last epoch), examples/s.
    """
    import time

    if loss_fn is None:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        loss_fn = criterion
    generator = np.random.default_rng(seed)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total_steps = max(1, int(round(steps_per_epoch * cfg.epochs)))
    log_interval = min(engine.log_every, max(1, total_steps // 5))
    fused = engine.device.type == "cuda"
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total_steps, cfg.warmup_fraction)
    )
    labels_all = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    text_lengths = np.array([len(t) for t in train.inputs]) if is_text(train.inputs) else None
    model.train()
    step = 0
    running = torch.zeros((), device=engine.device)
    running_steps = 0
    epoch_loss = torch.zeros((), device=engine.device)
    epoch_batches = 0
    start = time.perf_counter()
    while step < total_steps:
        epoch_loss.zero_()
        epoch_batches = 0
        if text_lengths is None:
            batches = index_batches(len(train), cfg.batch_size, True, generator, drop_last=True)
        else:
            batches = length_grouped_batches(text_lengths, cfg.batch_size, generator)
        # Never more batches than steps left, so decoding workers do no wasted work.
        batches = list(batches)[: total_steps - step]
        for index, batch in prepared_batches(model.backbone, train.inputs, batches, True, engine):
            labels = labels_all[index].to(engine.device, non_blocking=True)
            with engine.autocast():
                logits = model(batch)
            loss = loss_fn(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            # Accumulate on the device: reading loss.item() every step would sync.
            running += loss.detach()
            epoch_loss += loss.detach()
            epoch_batches += 1
            step += 1
            running_steps += 1
            if step % log_interval == 0 or step == total_steps:
                engine.log(f"step {step}/{total_steps} loss {running.item() / running_steps:.4f}")
                running.zero_()
                running_steps = 0
    seconds = time.perf_counter() - start
    return {
        "steps": step,
        "final_epoch_loss": float(epoch_loss.item() / max(1, epoch_batches)),
        "train_examples_per_s": step * cfg.batch_size / max(seconds, 1e-9),
        "train_seconds": seconds,
    }


@torch.no_grad()
def encode_split(fn: Callable, backbone: Backbone, split: Split, engine: Engine) -> np.ndarray:
    """Applies ``fn(prepared_batch) -> tensor`` over a split in eval mode, batched.

    Texts are batched in order of length (and the outputs put back in input order),
    so a batch pads to similar lengths instead of to the split's longest text.
    """
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
