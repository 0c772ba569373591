"""Seeded, deterministic subsampling and splitting of index sets.

All functions take an explicit integer seed and return sorted ``int64`` indices, so a
split is a pure function of (data, ``data_seed``, cap) and every method and training
seed sees the same examples. Seeds for different purposes are derived from the base
``data_seed`` and a string key with :func:`derive_seed` (a CRC32 of the key, never
Python's salted ``hash``) so they are stable across processes and machines.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(base: int, *keys: str | int) -> int:
    """Derives an independent 32-bit seed from a base seed and a sequence of keys.

    Args:
        base: The data seed.
        *keys: Purpose of the seed, e.g. ``("fmnist", "shift", "contrast", 2)``.

    Returns:
        A seed in ``[0, 2**32)`` that depends on every key and is stable across runs.

    """
    entropy = [int(base) & 0xFFFFFFFF]
    for key in keys:
        entropy.append(zlib.crc32(str(key).encode("utf-8")))
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def capped_indices(num: int, cap: int | None, seed: int) -> np.ndarray:
    """Returns ``min(num, cap)`` indices of ``range(num)`` drawn without replacement.

    Args:
        num: Number of items.
        cap: Maximum number kept; None keeps all.
        seed: Sampling seed.

    Returns:
        Sorted ``int64`` indices.

    """
    if cap is not None and cap < 0:
        raise ValueError(f"cap must be >= 0 or None, got {cap}")
    if cap is None or cap >= num:
        return np.arange(num, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(num)[:cap]).astype(np.int64)


def _allocate(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Splits ``total`` draws over classes proportionally to ``counts`` (largest remainder).

    Every class present gets at least one draw when ``total`` allows it, so a small cap
    on a many-class task (150 CLINC intents) does not silently drop classes.
    """
    quota = counts * (total / counts.sum())
    alloc = np.minimum(np.floor(quota).astype(np.int64), counts)
    remainder = quota - alloc
    # Random tie-breaking: on balanced data the remainders are equal, and breaking ties
    # by class index would always favour the first classes.
    order = np.lexsort((rng.random(len(counts)), -remainder))
    left = total - alloc.sum()
    for c in order:
        if left == 0:
            break
        if alloc[c] < counts[c]:
            alloc[c] += 1
            left -= 1
    if total >= len(counts):
        for c in np.flatnonzero(alloc == 0):
            donor = int(np.argmax(alloc))
            alloc[donor] -= 1
            alloc[c] += 1
    return alloc


def stratified_indices(labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Returns a class-stratified subsample of at most ``cap`` indices.

    Classes keep their proportions (largest-remainder rounding, ties broken at random,
    at least one example per class when ``cap`` >= number of classes). Within a class
    the examples are the first of a seeded permutation, so for a fixed seed a smaller
    cap mostly selects a subset of a larger cap's selection.

    Args:
        labels: ``[N]`` integer labels.
        cap: Maximum number kept; None keeps all.
        seed: Sampling seed.

    Returns:
        Sorted ``int64`` indices into ``labels``.

    """
    labels = np.asarray(labels)
    num = len(labels)
    if cap is not None and cap < 0:
        raise ValueError(f"cap must be >= 0 or None, got {cap}")
    if cap is None or cap >= num:
        return np.arange(num, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    alloc = _allocate(counts, cap, rng)
    chosen = []
    for c, members in enumerate(class_members(inverse)):
        chosen.append(members[rng.permutation(len(members))[: alloc[c]]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Partitions indices into disjoint parts with the given fractions within each class.

    Args:
        labels: ``[N]`` integer labels.
        fractions: Fractions of each part, summing to 1 (e.g. ``(0.7, 0.1, 0.2)``).
        seed: Seed of the per-class permutation.

    Returns:
        One sorted ``int64`` index array per fraction; together they cover ``range(N)``.

    """
    fr = np.asarray(fractions, dtype=np.float64)
    if np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for members in class_members(labels):
        members = members[rng.permutation(len(members))]
        # Cumulative rounding keeps the part sizes within one of the exact fractions.
        bounds = np.round(np.cumsum(fr) * len(members)).astype(np.int64)
        start = 0
        for p, stop in enumerate(bounds):
            parts[p].append(members[start:stop])
            start = stop
    return [
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts
    ]


def holdout_train_val(
    labels: np.ndarray,
    val_fraction: float,
    max_train: int | None,
    max_val: int | None,
    seed: int,
    task: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Holds a stratified validation part out of a training set, then caps both parts.

    The partition is drawn before any cap, so ``val`` never depends on ``max_train``.
    Seeds: ``derive_seed(seed, task, "val")`` for the partition, ``"train"`` and
    ``"val_cap"`` for the caps.

    Args:
        labels: ``[N]`` labels of the training set.
        val_fraction: Share of each class held out.
        max_train: Cap of the train part (None keeps it all).
        max_val: Cap of the val part.
        seed: The data seed.
        task: Task name (part of every derived seed).

    Returns:
        ``(train, val)``: sorted, disjoint ``int64`` indices into ``labels``.
    """
    labels = np.asarray(labels)
    train_pool, val_pool = stratified_split(
        labels, (1 - val_fraction, val_fraction), derive_seed(seed, task, "val")
    )
    train = train_pool[
        stratified_indices(labels[train_pool], max_train, derive_seed(seed, task, "train"))
    ]
    val = val_pool[
        stratified_indices(labels[val_pool], max_val, derive_seed(seed, task, "val_cap"))
    ]
    return train, val


def per_class_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Returns up to ``per_class`` indices of every class, drawn without replacement.

    The k-shot draw of few-shot learning (CoOp / Dassl's ``generate_fewshot_dataset``):
    a class with fewer than ``per_class`` examples keeps all of them.

    Args:
        labels: ``[N]`` integer labels.
        per_class: Examples kept per class (>= 1).
        seed: Sampling seed.

    Returns:
        Sorted ``int64`` indices into ``labels``.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = [
        members[rng.permutation(len(members))[:per_class]] for members in class_members(labels)
    ]
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def class_members(labels: np.ndarray) -> list[np.ndarray]:
    """Ascending indices of each class's examples, classes in sorted order.

    One stable sort instead of a ``labels == c`` pass per class: ImageNet's 1.28M labels
    x 1000 classes would otherwise cost over a billion comparisons.
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:]) if len(order) else []
