"""k-shot and base-to-new tasks on the ten non-ImageNet CoOp datasets.

One task per row of :data:`bench.data.coop.COOP_DATASETS`, named ``fewshot_<name>``:
``fewshot_caltech101``, ``fewshot_oxford_pets``, ``fewshot_stanford_cars``,
``fewshot_flowers102``, ``fewshot_food101``, ``fewshot_fgvc_aircraft``,
``fewshot_sun397``, ``fewshot_dtd``, ``fewshot_eurosat``, ``fewshot_ucf101``. Inputs
are :class:`bench.data.images.ImageFiles` under ``<data root>/coop/<CoOp folder>``
(option ``data_dir`` overrides the folder); the prompt is CoOp's hand-crafted one.

Splits (CoOp's fixed split files; caps in brackets, stratified by class and seeded by
``derive_seed(data_seed, task, split)``):

* ``train``: the split file's train part. With ``shots`` (1, 2, 4, 8 or 16; default
  16) it is the *pool*: ``TaskData.few_shot = FewShot(shots, min(shots, 4),
  data_seed)`` makes each training seed draw its own ``shots`` images per class
  (CoOp's protocol: the seed picks the shots). With ``shots: null`` it is all of
  train [``max_train``].
* ``val``: the val part; with ``shots`` the pool from which each seed draws
  ``min(shots, 4)`` per class (CoOp's validation rule), not capped, because a cap
  applied first could leave a class fewer than ``min(shots, 4)`` images (SUN397 has
  397 classes); with ``shots: null`` capped [``max_val``].
* ``test`` (id): the test part [``max_eval``].

Base-to-new (option ``base_to_new``, CoCoOp's protocol, ``subsample_classes`` in
CoOp's ``datasets/oxford_pets.py``): the labels of the train split are sorted, the
first ``ceil(n / 2)`` are the *base* classes and the rest the *new* ones. ``train``,
``val`` and ``test`` keep base-class images only and the task's class names are the
base names; ``test_new`` (kind ``new``) holds the new-class test images, relabelled
``0..n_new - 1`` over ``SplitInfo.classnames`` = the new names (no ``label_map``: the
model never saw these classes) [``max_eval``].

Far-OOD splits (option ``ood_datasets``, a list of other CoOp dataset names, default
none): ``ood_<name>`` (kind ``ood``) holds that dataset's test images
[``max_eval``, stratified by its classes], read from ``<data root>/coop/<its folder>``,
so OOD detection is scored on every cell of a few-shot grid (DTD's textures are the
usual choice, as OpenOOD's "Textures" for ImageNet). ``imagenet`` takes the same option.

Counts (``verify_counts``, default true): split-file sizes and class counts must
equal the CoOp paper's table, and every listed image must exist (one
``os.path.isfile`` per image; the first missing file and the number missing are
reported). See ``docs/tasks_fewshot.md``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import check_bool, check_data_dir, check_nonempty, resolve_options
from bench.data.coop import COOP_DATASETS, CoopDataset, coop_manifest, load_coop, resolve_layout
from bench.data.images import ImageFiles
from bench.data.sampling import derive_seed, stratified_indices
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, FewShot, Split, SplitInfo, TaskData

#: Shots per class of the CoOp papers' few-shot tables.
SHOT_CHOICES = (1, 2, 4, 8, 16)

#: CoOp validates on ``min(shots, MAX_VAL_SHOTS)`` images per class.
MAX_VAL_SHOTS = 4

DEFAULT_OPTIONS: dict[str, Any] = {
    "shots": 16,
    "base_to_new": False,
    "data_dir": None,
    "ood_datasets": [],
    "verify_counts": True,
}


def task_name(spec: CoopDataset) -> str:
    """Registered name of a dataset's task."""
    return f"fewshot_{spec.name}"


def _options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(name, options, DEFAULT_OPTIONS)
    check_bool(name, "verify_counts", opts["verify_counts"])
    check_bool(name, "base_to_new", opts["base_to_new"])
    shots = opts["shots"]
    if shots is not None and (
        isinstance(shots, bool) or not isinstance(shots, int) or shots not in SHOT_CHOICES
    ):
        raise ValueError(
            f"task {name!r}: option 'shots' must be null (all of train) or one of "
            f"{', '.join(map(str, SHOT_CHOICES))}, got {shots!r}"
        )
    opts["data_dir"] = check_data_dir(
        name, "data_dir", opts["data_dir"], "<data root>/coop/<folder>"
    )
    opts["ood_datasets"] = check_ood_datasets(name, opts["ood_datasets"], exclude=name)
    return opts


def check_ood_datasets(task: str, names: Any, exclude: str | None = None) -> list[str]:
    """Validates an ``ood_datasets`` option: distinct CoOp dataset names, not the task's own.

    Raises:
        TypeError: Not a list of names.
        ValueError: An unknown or repeated name, or the task's own dataset.
    """
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise TypeError(f"task {task!r}: option 'ood_datasets' must be a list, got {names!r}")
    valid = [n for n in COOP_DATASETS if exclude != f"fewshot_{n}"]
    bad = [n for n in names if n not in valid]
    if bad or len(set(names)) != len(names):
        raise ValueError(
            f"task {task!r}: option 'ood_datasets' must list distinct CoOp datasets other "
            f"than the task's own; got {list(names)!r}; valid: {', '.join(valid)}"
        )
    return list(names)


def ood_dataset_files(paths: DataPaths, names: list[str]) -> list[Path]:
    """What the far-OOD datasets need on disk (their CoOp layouts)."""
    return [
        path
        for n in names
        for path in resolve_layout(
            COOP_DATASETS[n], paths.root / "coop" / COOP_DATASETS[n].folder
        ).required_files()
    ]


def ood_dataset_splits(
    task: str, paths: DataPaths, limits: SizeLimits, names: list[str], verify_counts: bool
) -> dict[str, Split]:
    """``ood_<name>``: each named CoOp dataset's test images as a far-OOD split."""
    splits = {}
    for other in names:
        spec = COOP_DATASETS[other]
        data = load_coop(spec, paths.root / "coop" / spec.folder, verify_counts)
        split_name = f"ood_{other}"
        chosen = stratified_indices(
            data.labels["test"], limits.max_eval, derive_seed(limits.data_seed, task, split_name)
        )
        check_nonempty(task, split_name, len(chosen), f"no test images in {spec.title}")
        splits[split_name] = Split(
            SplitInfo(split_name, "ood", other),
            ImageFiles(data.image_dir, data.paths["test"][chosen]),
            np.full(len(chosen), OOD_LABEL, dtype=np.int64),
        )
    return splits


def dataset_folder(spec: CoopDataset, paths: DataPaths, data_dir: Path | None) -> Path:
    """The dataset's folder: ``data_dir`` or ``<data root>/coop/<CoOp folder>``."""
    return data_dir if data_dir is not None else paths.root / "coop" / spec.folder


def _class_subset(labels: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the examples of ``classes`` and their labels renumbered by position."""
    keep = np.flatnonzero(np.isin(labels, classes))
    position = {int(c): i for i, c in enumerate(classes)}
    return keep, np.asarray([position[int(y)] for y in labels[keep]], dtype=np.int64)


def build_fewshot(
    spec: CoopDataset, paths: DataPaths, limits: SizeLimits, **options: Any
) -> TaskData:
    """Builds ``fewshot_<spec.name>`` (see module docstring).

    Args:
        spec: The dataset's row of :data:`bench.data.coop.COOP_DATASETS`.
        paths: Dataset locations (uses ``paths.root / "coop" / spec.folder``).
        limits: Split size caps and the data seed.
        **options: ``shots``, ``base_to_new``, ``data_dir``, ``ood_datasets``,
            ``verify_counts``.

    Returns:
        The task; with ``shots`` its ``few_shot`` draws the per-seed training set.
    """
    name = task_name(spec)
    opts = _options(name, options)
    data = load_coop(spec, dataset_folder(spec, paths, opts["data_dir"]), opts["verify_counts"])
    seed, shots = limits.data_seed, opts["shots"]
    caps = {
        "train": limits.max_train if shots is None else None,
        "val": limits.max_val if shots is None else None,
        "test": limits.max_eval,
        "test_new": limits.max_eval,
    }

    all_classes = np.unique(data.labels["train"])
    if opts["base_to_new"]:
        num_base = math.ceil(len(all_classes) / 2)
        base, new = all_classes[:num_base], all_classes[num_base:]
    else:
        base, new = all_classes, all_classes[:0]

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, source: str, classes: np.ndarray) -> None:
        keep, labels = _class_subset(data.labels[source], classes)
        chosen = stratified_indices(labels, caps[info.name], derive_seed(seed, name, info.name))
        check_nonempty(
            name, info.name, len(chosen), f"no {source} images of its classes in the split file"
        )
        inputs = ImageFiles(data.image_dir, data.paths[source][keep[chosen]])
        splits[info.name] = Split(info, inputs, labels[chosen])

    add(SplitInfo("train", "train"), "train", base)
    add(SplitInfo("val", "val"), "val", base)
    add(SplitInfo("test", "id"), "test", base)
    if opts["base_to_new"]:
        new_names = tuple(data.classnames[int(c)] for c in new)
        add(SplitInfo("test_new", "new", classnames=new_names), "test", new)
    splits.update(
        ood_dataset_splits(name, paths, limits, opts["ood_datasets"], opts["verify_counts"])
    )

    few_shot = None if shots is None else FewShot(shots, min(shots, MAX_VAL_SHOTS), seed)
    return TaskData(
        name,
        "vision",
        [data.classnames[int(c)] for c in base],
        splits,
        [spec.template],
        few_shot=few_shot,
    )


def _register(spec: CoopDataset) -> None:
    name = task_name(spec)

    def required_files(paths: DataPaths, **options: Any) -> list[Path]:
        opts = _options(name, options)
        own = resolve_layout(spec, dataset_folder(spec, paths, opts["data_dir"])).required_files()
        return own + ood_dataset_files(paths, opts["ood_datasets"])

    def manifest(paths: DataPaths, **options: Any):
        opts = _options(name, options)
        return coop_manifest(spec, dataset_folder(spec, paths, opts["data_dir"]))

    counts = spec.counts

    @register_task(
        name,
        modality="vision",
        description=(
            f"CoOp {spec.title} ({counts.classes} classes, {counts.train}/{counts.val}/"
            f"{counts.test} train/val/test), k-shot (option shots); option base_to_new "
            "adds CoCoOp's test_new split"
        ),
        required_files=required_files,
        manifest=manifest,
    )
    def build(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
        return build_fewshot(spec, paths, limits, **options)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Builds {name!r} from CoOp's {spec.title} split (see module docstring)."


for _spec in COOP_DATASETS.values():
    _register(_spec)
