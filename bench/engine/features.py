"""The frozen-feature cache: encoder outputs computed once per (task, backbone).

Every frozen-feature method (linear probe, LP-FT's first stage, adapters, post-hoc
calibrators) and every seed reads the same file, so the encoder runs once instead of
once per method and seed. Layout of ``features.npz``: ``{split}/features`` ``[N, D]``
float32, ``{split}/labels`` int64, ``__splits__`` and ``__classnames__`` as in
predictions.npz, ``__backbone__`` the backbone name, ``__templates__`` the task's
prompt templates (so zero-shot heads need not rebuild the task).

Few-shot tasks draw their training and validation examples per training seed
(:class:`bench.tasks.base.FewShot`). Their cache encodes only the union of the draws of
the grid's seeds (16 shots x 1000 classes x 3 seeds instead of all of ImageNet) and
adds ``{split}/pool_index`` (the rows' positions in the full pool), ``{split}/pool_labels``
(the pool's labels, from which any seed's draw is recomputed) and ``__few_shot__``;
:meth:`FeatureSet.for_seed` then selects one seed's rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from bench.io import atomic_write_npz
from bench.tasks.base import FewShot, SplitInfo, TaskData, take


@dataclass
class FeatureSplit:
    """Cached features of one split.

    Attributes:
        info: The split's description.
        features: ``[N, D]`` float32.
        labels: ``[N]`` int64.
        pool_index: For few-shot pools, each row's position in the full pool.
        pool_labels: For few-shot pools, the labels of the full pool.
    """

    info: SplitInfo
    features: np.ndarray
    labels: np.ndarray
    pool_index: np.ndarray | None = None
    pool_labels: np.ndarray | None = None


@dataclass
class FeatureSet:
    """Cached features of every split of a task for one backbone."""

    backbone: str
    classnames: list[str]
    splits: dict[str, FeatureSplit]
    task: str = ""
    few_shot: FewShot | None = None
    templates: list[str] = field(default_factory=list)

    def eval_splits(self) -> list[str]:
        return [n for n, s in self.splits.items() if s.info.kind != "train"]

    def for_seed(self, seed: int) -> FeatureSet:
        """The features training seed ``seed`` uses (its few-shot draw of train and val).

        Raises:
            ValueError: If the cache was computed for other seeds (names the fix).
        """
        if self.few_shot is None:
            return self
        splits = dict(self.splits)
        for name in ("train", "val"):
            split = splits[name]
            wanted = self.few_shot.indices(split.pool_labels, seed, name, self.task)
            rows = np.searchsorted(split.pool_index, wanted)
            rows = np.minimum(rows, len(split.pool_index) - 1)
            if len(wanted) and not np.array_equal(split.pool_index[rows], wanted):
                raise ValueError(
                    f"feature cache of {self.task}/{self.backbone} lacks the {name} draw of "
                    f"seed {seed}; it was computed for other seeds: delete it and rerun the "
                    "features job with this seed in the grid"
                )
            splits[name] = FeatureSplit(split.info, split.features[rows], split.labels[rows])
        return FeatureSet(self.backbone, self.classnames, splits, self.task, None, self.templates)


def compute_features(
    task: TaskData, backbone, engine, seeds: list[int] | tuple[int, ...] = (0,)
) -> FeatureSet:
    """Runs the frozen backbone over every split of ``task``.

    Args:
        task: The built task (few-shot pools undrawn).
        backbone: Frozen encoder.
        engine: Device settings.
        seeds: Training seeds whose few-shot draws the cache must cover (ignored for
            tasks without ``few_shot``).
    """
    from bench.engine.loop import extract_features
    from bench.tasks.base import Split

    backbone.to(engine.device)
    splits = {}
    for name, split in task.splits.items():
        pool_index = pool_labels = None
        if task.few_shot is not None and name in ("train", "val"):
            pool_labels = np.asarray(split.labels)
            draws = [task.few_shot.indices(pool_labels, seed, name, task.name) for seed in seeds]
            pool_index = np.unique(np.concatenate(draws)).astype(np.int64)
            split = Split(split.info, take(split.inputs, pool_index), pool_labels[pool_index])
        engine.log(f"features: {name} ({len(split)} examples)")
        feats = extract_features(backbone, split, engine)
        splits[name] = FeatureSplit(
            split.info, feats.astype(np.float32), np.asarray(split.labels), pool_index, pool_labels
        )
    return FeatureSet(
        backbone=backbone.name,
        classnames=list(task.classnames),
        splits=splits,
        task=task.name,
        few_shot=task.few_shot,
        templates=list(task.templates),
    )


def save_features(
    path: str | os.PathLike,
    features: FeatureSet,
    config_hash: str | None = None,
    seeds: list[int] | None = None,
) -> None:
    """Writes the cache atomically.

    Args:
        path: Destination ``features.npz``.
        features: The cache.
        config_hash: The grid's hash of the settings it was computed under
            (:meth:`bench.config.Grid.features_hash`), checked by :mod:`bench.stamps`.
        seeds: The training seeds whose few-shot draws its pools cover.
    """
    arrays = {
        "__backbone__": np.array(features.backbone),
        "__classnames__": np.array(json.dumps(features.classnames)),
        "__task__": np.array(features.task),
        "__templates__": np.array(json.dumps(features.templates)),
        "__few_shot__": np.array(
            json.dumps(None if features.few_shot is None else asdict(features.few_shot))
        ),
    }
    infos = {}
    for name, split in features.splits.items():
        arrays[f"{name}/features"] = split.features
        arrays[f"{name}/labels"] = split.labels.astype(np.int64)
        if split.pool_index is not None:
            arrays[f"{name}/pool_index"] = split.pool_index.astype(np.int64)
            arrays[f"{name}/pool_labels"] = split.pool_labels.astype(np.int64)
        infos[name] = asdict(split.info)
    arrays["__splits__"] = np.array(json.dumps(infos))
    if config_hash is not None:
        arrays["__config_hash__"] = np.array(config_hash)
    if seeds is not None:
        arrays["__seeds__"] = np.asarray(sorted(seeds), dtype=np.int64)
    # Uncompressed, so every cell that reads the cache skips decompression.
    atomic_write_npz(path, arrays, compressed=False)


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Reads a cache written by :func:`save_features` (CorruptFileError if damaged)."""
    from bench.io import reading

    with reading(path), np.load(path, allow_pickle=False) as data:
        infos = json.loads(str(data["__splits__"]))
        splits = {}
        for name, info in infos.items():
            pool = f"{name}/pool_index" in data
            splits[name] = FeatureSplit(
                SplitInfo(**info),
                data[f"{name}/features"],
                data[f"{name}/labels"],
                data[f"{name}/pool_index"] if pool else None,
                data[f"{name}/pool_labels"] if pool else None,
            )
        few_shot = json.loads(str(data["__few_shot__"])) if "__few_shot__" in data else None
        return FeatureSet(
            backbone=str(data["__backbone__"]),
            classnames=json.loads(str(data["__classnames__"])),
            splits=splits,
            task=str(data["__task__"]) if "__task__" in data else "",
            few_shot=None if few_shot is None else FewShot(**few_shot),
            templates=json.loads(str(data["__templates__"])) if "__templates__" in data else [],
        )
