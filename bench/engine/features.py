"""The frozen-feature cache: encoder outputs computed once per (task, backbone).

Every frozen-feature method (linear probe, LP-FT's first stage, adapters, post-hoc
calibrators) and every seed reads the same file, so the encoder runs once instead of
once per method and seed. Layout of ``features.npz``: ``{split}/features`` ``[N, D]``
float32, ``{split}/labels`` int64, ``__splits__`` and ``__classnames__`` as in
predictions.npz, ``__backbone__`` the backbone name.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from bench.io import atomic_write_bytes
from bench.tasks.base import SplitInfo, TaskData


@dataclass
class FeatureSplit:
    """Cached features of one split."""

    info: SplitInfo
    features: np.ndarray
    labels: np.ndarray


@dataclass
class FeatureSet:
    """Cached features of every split of a task for one backbone."""

    backbone: str
    classnames: list[str]
    splits: dict[str, FeatureSplit]

    def eval_splits(self) -> list[str]:
        return [n for n, s in self.splits.items() if s.info.kind != "train"]


def compute_features(task: TaskData, backbone, engine) -> FeatureSet:
    """Runs the frozen backbone over every split of ``task``."""
    from bench.engine.loop import extract_features

    backbone.to(engine.device)
    splits = {}
    for name, split in task.splits.items():
        engine.log(f"features: {name} ({len(split)} examples)")
        feats = extract_features(backbone, split, engine)
        splits[name] = FeatureSplit(split.info, feats.astype(np.float32), np.asarray(split.labels))
    return FeatureSet(backbone=backbone.name, classnames=list(task.classnames), splits=splits)


def save_features(path: str | os.PathLike, features: FeatureSet) -> None:
    """Writes the cache atomically."""
    arrays = {
        "__backbone__": np.array(features.backbone),
        "__classnames__": np.array(json.dumps(features.classnames)),
    }
    infos = {}
    for name, split in features.splits.items():
        arrays[f"{name}/features"] = split.features
        arrays[f"{name}/labels"] = split.labels.astype(np.int64)
        infos[name] = asdict(split.info)
    arrays["__splits__"] = np.array(json.dumps(infos))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Reads a cache written by :func:`save_features`."""
    with np.load(path, allow_pickle=False) as data:
        infos = json.loads(str(data["__splits__"]))
        splits = {
            name: FeatureSplit(SplitInfo(**info), data[f"{name}/features"], data[f"{name}/labels"])
            for name, info in infos.items()
        }
        return FeatureSet(
            backbone=str(data["__backbone__"]),
            classnames=json.loads(str(data["__classnames__"])),
            splits=splits,
        )
