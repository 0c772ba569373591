"""The frozen-feature cache: encoder outputs computed once per (task, backbone).

Every frozen-feature method (linear probe, LP-FT's first stage, adapters, post-hoc
calibrators) and every seed reads the same file, so the encoder runs once instead of
once per method and seed. Layout of ``features.npz``: ``{split}/features`` ``[N, D]``
float16 (:data:`FEATURE_STORAGE`; read back as float32), ``{split}/labels`` int64,
``__splits__`` and ``__classnames__`` as in predictions.npz, ``__backbone__`` the
backbone name, ``__templates__`` the task's prompt templates (so zero-shot heads need
not rebuild the task).

Two optional parts serve the few-shot adapters (CLAP, BayesAdapter, Tip-Adapter, ...),
which then need no encoder pass of their own:

* ``train/views`` ``[V, N, D]`` (float16 too): ``V`` augmented views of every training
  image, encoded as the adapters' papers cache them (Tip-Adapter 10 views, CLAP 20): a
  random resized crop of 50-100% of the area and a horizontal flip of the
  evaluation-prepared image (in-memory images and decoded image files alike), seeded
  per image and view;
* ``__prototypes__`` ``[C, D]``: the zero-shot class embeddings of a vision-language
  backbone, prompt-ensembled over the task's templates as CLIP does (the normalised
  mean of normalised text embeddings); ``__prototypes_raw__`` ``[C, D]``: the plain
  mean of the unnormalised text embeddings, CLAP's anchor (its penalty's scale depends
  on their norm); ``__logit_scale__``: the backbone's ``exp(logit_scale)``.

* ``__outliers__`` (JSON list) and ``__outlier_embeddings__`` ``[K, D]``: DOR's outlier
  pool, the ``K`` WordNet nouns unlike every class of the task
  (:func:`bench.data.wordnet.outlier_nouns`) whose frozen text embeddings in
  ``outlier_template`` are closest, on average, to those of the task's classes, with
  those embeddings (L2-normalised), so DOR's frozen branch costs nothing per step.

The grid asks for them (:meth:`bench.config.Grid.features_settings`) only when one of
its methods uses them, so other caches and their hashes are unchanged.

Few-shot tasks draw their training and validation examples per training seed
(:class:`bench.tasks.base.FewShot`). Their cache encodes only the union of the draws of
the grid's seeds (16 shots x 1000 classes x 3 seeds instead of all of ImageNet) and
adds ``{split}/pool_index`` (the rows' positions in the full pool), ``{split}/pool_labels``
(the pool's labels, from which any seed's draw is recomputed) and ``__few_shot__``;
:meth:`FeatureSet.for_seed` then selects one seed's rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from bench.io import atomic_write_npz
from bench.tasks.base import FewShot, SplitInfo, TaskData, take

#: How features and views are stored: half float32's disk and read time (a 1000-class
#: ImageNet cache of 1.28M x 512 features is 1.3 GB instead of 2.6 GB). Its relative
#: rounding, 2^-11, is 8x finer than that of the bf16 encoder pass that computes them on
#: a GPU (2^-8). Caches written as float32 by earlier versions read the same.
FEATURE_STORAGE = np.float16


def _stored(values: np.ndarray) -> np.ndarray:
    """``values`` as :data:`FEATURE_STORAGE`, or float32 if they would overflow it."""
    finite = values[np.isfinite(values)]
    if finite.size and np.abs(finite).max() > np.finfo(FEATURE_STORAGE).max:
        return values.astype(np.float32)  # an unnormalised encoder with huge activations
    return values.astype(FEATURE_STORAGE)


def _loaded(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else values.astype(np.float32, copy=False)


@dataclass
class FeatureSplit:
    """Cached features of one split.

    Attributes:
        info: The split's description.
        features: ``[N, D]`` float32.
        labels: ``[N]`` int64.
        pool_index: For few-shot pools, each row's position in the full pool.
        pool_labels: For few-shot pools, the labels of the full pool.
        views: ``[V, N, D]`` float32 features of ``V`` augmented views of each row
            (training split only, when the grid asks for them).
    """

    info: SplitInfo
    features: np.ndarray
    labels: np.ndarray
    pool_index: np.ndarray | None = None
    pool_labels: np.ndarray | None = None
    views: np.ndarray | None = None


@dataclass
class FeatureSet:
    """Cached features of every split of a task for one backbone."""

    backbone: str
    classnames: list[str]
    splits: dict[str, FeatureSplit]
    task: str = ""
    few_shot: FewShot | None = None
    templates: list[str] = field(default_factory=list)
    prototypes: ClassPrototypes | None = None
    outliers: OutlierPool | None = None

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
            views = None if split.views is None else split.views[:, rows]
            splits[name] = FeatureSplit(
                split.info, split.features[rows], split.labels[rows], views=views
            )
        return dataclasses.replace(self, splits=splits, few_shot=None)


#: Area range of the random crops of the augmented training views (Tip-Adapter's).
VIEW_CROP_SCALE = (0.5, 1.0)
#: Aspect-ratio range of those crops (torchvision's RandomResizedCrop default).
VIEW_CROP_RATIO = (3 / 4, 4 / 3)


def augment_views(images, seeds: list[int]):
    """A seeded random-resized crop and horizontal flip of each uint8 image ``[B, C, H, W]``.

    Image ``i`` is cropped to ``VIEW_CROP_SCALE`` of its area at an aspect ratio in
    ``VIEW_CROP_RATIO``, resized back to ``H x W`` (bilinear) and flipped with
    probability 1/2, all drawn from a generator seeded with ``seeds[i]`` alone.
    """
    import math

    import torch

    out = torch.empty_like(images)
    _, _, height, width = images.shape
    log_low, log_high = (math.log(r) for r in VIEW_CROP_RATIO)
    low, high = VIEW_CROP_SCALE
    for i, seed in enumerate(seeds):
        draw = torch.rand(5, generator=torch.Generator().manual_seed(int(seed))).tolist()
        area = height * width * (low + (high - low) * draw[0])
        ratio = math.exp(log_low + (log_high - log_low) * draw[1])
        crop_w = min(width, max(1, round(math.sqrt(area * ratio))))
        crop_h = min(height, max(1, round(math.sqrt(area / ratio))))
        top = min(int(draw[2] * (height - crop_h + 1)), height - crop_h)
        left = min(int(draw[3] * (width - crop_w + 1)), width - crop_w)
        crop = images[i : i + 1, :, top : top + crop_h, left : left + crop_w].float()
        crop = torch.nn.functional.interpolate(
            crop, size=(height, width), mode="bilinear", align_corners=False
        )
        if draw[4] < 0.5:
            crop = crop.flip(-1)
        out[i] = crop[0].round().clamp(0, 255).to(images.dtype)
    return out


def encode_views(backbone, split, engine, views: int, task: str, keys=None) -> np.ndarray:
    """``[V, N, D]`` frozen features of ``views`` augmented passes over a split.

    Images are prepared as for evaluation (image files: resized and centre-cropped) and
    then augmented by :func:`augment_views`; image ``i`` of view ``v`` is seeded by
    ``(task, v, keys[i])`` alone (``keys``: each row's position in the few-shot pool,
    else its index), so a support image gets the same views whatever else the cache
    holds (other seeds' draws), the batch size or the machine.
    """
    import torch

    from bench.data.sampling import derive_seed
    from bench.engine.loop import index_batches, prepared_batches

    backbone.eval()
    keys = np.arange(len(split)) if keys is None else np.asarray(keys)
    batches = list(index_batches(len(split), engine.eval_batch_size, False, None))
    out = []
    for view in range(views):
        parts = []
        with torch.no_grad():
            for index, batch in prepared_batches(backbone, split.inputs, batches, False, engine):
                seeds = [derive_seed(0, task, "view", view, int(keys[i])) for i in index]
                with engine.autocast():
                    parts.append(backbone(augment_views(batch, seeds)).float().cpu())
        out.append(torch.cat(parts).numpy())
    return np.stack(out).astype(np.float32)


@dataclass
class ClassPrototypes:
    """Zero-shot class embeddings of a vision-language backbone (see module docstring).

    Attributes:
        normalized: ``[C, D]`` CLIP's prompt ensemble (unit norm).
        raw_mean: ``[C, D]`` mean of the unnormalised text embeddings over templates.
        logit_scale: ``exp(logit_scale)`` of the backbone (100 for OpenAI CLIP).
    """

    normalized: np.ndarray
    raw_mean: np.ndarray
    logit_scale: float


def class_prototypes(backbone, classnames: list[str], templates: list[str], engine):
    """The :class:`ClassPrototypes` of ``classnames`` (one text batch per class)."""
    import torch

    from bench.backbones.base import to_device

    backbone.eval()
    normalized, raw = [], []
    device = backbone.logit_scale.device
    with torch.no_grad():
        for name in classnames:
            tokens = to_device(backbone.tokenize([t.format(name) for t in templates]), device)
            with engine.autocast():
                embeddings = backbone.encode_text(tokens).float()
            raw.append(embeddings.mean(0))
            unit = torch.nn.functional.normalize(embeddings, dim=-1).mean(0)
            normalized.append(torch.nn.functional.normalize(unit, dim=-1))
        scale = float(backbone.logit_scale.detach().float().exp())
    return ClassPrototypes(
        torch.stack(normalized).cpu().numpy(), torch.stack(raw).cpu().numpy(), scale
    )


@dataclass
class OutlierPool:
    """DOR's outlier words and their frozen text embeddings (see module docstring).

    Attributes:
        words: The ``K`` words, most similar to the task's classes first.
        embeddings: ``[K, D]`` L2-normalised frozen embeddings of ``template`` with each.
        template: The prompt with ``{}`` for the word (``a photo of a {}.``).
    """

    words: list[str]
    embeddings: np.ndarray
    template: str


@dataclass(frozen=True)
class OutlierRequest:
    """What the features job needs to build an :class:`OutlierPool`.

    Attributes:
        wordnet: WordNet folder holding ``data.noun``.
        size: ``K``, the words kept.
        template: The frozen prompt (``a photo of a {}.``).
    """

    wordnet: str
    size: int
    template: str


def text_embeddings(backbone, texts: list[str], engine, batch_size: int = 512) -> np.ndarray:
    """L2-normalised frozen text embeddings ``[N, D]`` of many texts, batched."""
    import torch

    from bench.backbones.base import to_device

    backbone.eval()
    device = backbone.logit_scale.device
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = to_device(backbone.tokenize(texts[start : start + batch_size]), device)
            with engine.autocast():
                embeddings = backbone.encode_text(tokens).float()
            out.append(torch.nn.functional.normalize(embeddings, dim=-1).cpu())
    return torch.cat(out).numpy()


def outlier_pool(backbone, task: TaskData, request: OutlierRequest, engine) -> OutlierPool:
    """Ranks WordNet's outlier nouns by mean cosine to the task's classes; keeps the top K.

    The ranking is against the task's (training, i.e. base) classes, each in
    ``request.template``, as DOR's; no class of the task, base or new, is an outlier.
    """
    from pathlib import Path

    from bench.data.wordnet import outlier_nouns, read_noun_synsets

    synsets = read_noun_synsets(Path(request.wordnet) / "data.noun")
    every_class = list(task.classnames) + [
        name for split in task.splits.values() for name in (split.info.classnames or ())
    ]
    words = outlier_nouns(synsets, every_class)
    engine.log(f"features: ranking {len(words)} WordNet outlier nouns")
    class_prompts = [request.template.format(c) for c in task.classnames]
    classes = text_embeddings(backbone, class_prompts, engine)
    embeddings = text_embeddings(backbone, [request.template.format(w) for w in words], engine)
    similarity = embeddings @ classes.mean(0)  # mean cosine to the classes (unit rows)
    top = np.argsort(-similarity, kind="stable")[: request.size]
    return OutlierPool([words[i] for i in top], embeddings[top], request.template)


def compute_features(
    task: TaskData,
    backbone,
    engine,
    seeds: list[int] | tuple[int, ...] = (0,),
    train_views: int = 0,
    prototypes: bool = False,
    outliers: OutlierRequest | None = None,
) -> FeatureSet:
    """Runs the frozen backbone over every split of ``task``.

    Args:
        task: The built task (few-shot pools undrawn).
        backbone: Frozen encoder.
        engine: Device settings.
        seeds: Training seeds whose few-shot draws the cache must cover (ignored for
            tasks without ``few_shot``).
        train_views: Augmented views of the training split to encode as well (0: none).
        prototypes: Also store the zero-shot class embeddings (vision-language
            backbones; the task's templates).
        outliers: Also build DOR's outlier pool.

    Raises:
        ValueError: ``prototypes`` for a backbone without a text tower, or a task without
            prompt templates.
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
        views = None
        if name == "train" and train_views > 0:
            engine.log(f"features: {train_views} augmented views of train")
            views = encode_views(backbone, split, engine, train_views, task.name, pool_index)
        splits[name] = FeatureSplit(
            split.info,
            feats.astype(np.float32),
            np.asarray(split.labels),
            pool_index,
            pool_labels,
            views,
        )
    class_embeddings = None
    if prototypes:
        if not hasattr(backbone, "encode_text") or not task.templates:
            raise ValueError(
                f"features of {task.name}/{backbone.name}: zero-shot class prototypes need a "
                "vision-language backbone and a task with prompt templates"
            )
        engine.log(f"features: zero-shot prototypes of {len(task.classnames)} classes")
        class_embeddings = class_prototypes(backbone, task.classnames, task.templates, engine)
    pool = None if outliers is None else outlier_pool(backbone, task, outliers, engine)
    return FeatureSet(
        backbone=backbone.name,
        classnames=list(task.classnames),
        splits=splits,
        task=task.name,
        few_shot=task.few_shot,
        templates=list(task.templates),
        prototypes=class_embeddings,
        outliers=pool,
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
        arrays[f"{name}/features"] = _stored(split.features)
        arrays[f"{name}/labels"] = split.labels.astype(np.int64)
        if split.pool_index is not None:
            arrays[f"{name}/pool_index"] = split.pool_index.astype(np.int64)
            arrays[f"{name}/pool_labels"] = split.pool_labels.astype(np.int64)
        if split.views is not None:
            arrays[f"{name}/views"] = _stored(split.views)
        infos[name] = asdict(split.info)
    if features.prototypes is not None:
        arrays["__prototypes__"] = features.prototypes.normalized.astype(np.float32)
        arrays["__prototypes_raw__"] = features.prototypes.raw_mean.astype(np.float32)
        arrays["__logit_scale__"] = np.array(features.prototypes.logit_scale)
    if features.outliers is not None:
        arrays["__outliers__"] = np.array(json.dumps(features.outliers.words))
        arrays["__outlier_embeddings__"] = features.outliers.embeddings.astype(np.float32)
        arrays["__outlier_template__"] = np.array(features.outliers.template)
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
                _loaded(data[f"{name}/features"]),
                data[f"{name}/labels"],
                data[f"{name}/pool_index"] if pool else None,
                data[f"{name}/pool_labels"] if pool else None,
                _loaded(data[f"{name}/views"]) if f"{name}/views" in data else None,
            )
        few_shot = json.loads(str(data["__few_shot__"])) if "__few_shot__" in data else None
        return FeatureSet(
            backbone=str(data["__backbone__"]),
            classnames=json.loads(str(data["__classnames__"])),
            splits=splits,
            task=str(data["__task__"]) if "__task__" in data else "",
            few_shot=None if few_shot is None else FewShot(**few_shot),
            templates=json.loads(str(data["__templates__"])) if "__templates__" in data else [],
            prototypes=ClassPrototypes(
                data["__prototypes__"],
                data["__prototypes_raw__"],
                float(data["__logit_scale__"]),
            )
            if "__prototypes__" in data
            else None,
            outliers=OutlierPool(
                json.loads(str(data["__outliers__"])),
                data["__outlier_embeddings__"],
                str(data["__outlier_template__"]),
            )
            if "__outliers__" in data
            else None,
        )
