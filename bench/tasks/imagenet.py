"""ImageNet-1k with its natural distribution shifts (V2, Sketch, R, A, ObjectNet).

Splits (caps in brackets; every cap is a class-stratified draw seeded by
``derive_seed(data_seed, "imagenet", split)``); inputs are lazy
:class:`bench.data.images.ImageFiles`, never decoded while the task is built:

* ``train`` (train): ImageNet train minus the held-out ``val``, 1,271,167 images
  [``max_train``];
* ``val`` (val): ``val_per_class`` (default 10) images per class held out of ImageNet
  *train*, 10,000 images, drawn with ``derive_seed(data_seed, "imagenet",
  "val_holdout")`` [``max_val``]. ImageNet's official validation set is the test set
  here, as in CLIP, WiSE-FT and CoOp (the ILSVRC test labels were never released), so
  temperature scaling and hyperparameter selection need images of their own;
* ``test`` (id): the official validation set, 50,000 images [``max_eval``];
* ``ood_<name>`` (ood) for each CoOp dataset of the option ``ood_datasets`` (default
  none): its test images as a far-OOD split [``max_eval``] (``bench/tasks/fewshot.py``);
* shift splits chosen by the option ``shifts`` (default all five) [``max_eval`` each],
  family = the dataset:

  - ``shift_v2`` (``v2``): ImageNet-V2 matched-frequency, 10,000 images, 1000 classes;
  - ``shift_sketch`` (``sketch``): ImageNet-Sketch, 50,889 images, 1000 classes;
  - ``shift_r`` (``r``): ImageNet-R, 30,000 images of 200 classes;
  - ``shift_a`` (``a``): ImageNet-A, 7,500 images of 200 classes;
  - ``shift_objectnet`` (``objectnet``): the 18,574 ObjectNet images of the 113 ObjectNet
    classes that overlap ImageNet (border cropped, see :mod:`bench.data.imagenet`).

Label spaces: ImageNet-R / -A are scored over their 200 classes (evaluation classes =
their wnids in ImageNet order, ``label_map = ((imagenet_index,), ...)``, classnames =
the CLIP names of those classes); ObjectNet over its 113 classes (``label_map`` = the
ImageNet classes pooled into each ObjectNet class, classnames = ObjectNet's names).
Models always predict the 1000 ImageNet classes; scoring restricts them
(:func:`bench.tasks.base.restrict_scores`).

Class names and templates: the 1000 CLIP-paper class names and the 80 OpenAI ImageNet
templates, read from the installed open_clip package.

Few-shot (option ``shots``): with an integer ``k`` the task carries
``FewShot(k, min(k, 4), data_seed)``: every training seed draws ``k`` images per class
from ``train`` and ``min(k, 4)`` from ``val`` (CoOp's protocol; CoOp's own ImageNet
loader validates on the test set, which this benchmark never does).

Base-to-new (option ``base_to_new``): CoCoOp's protocol via
:func:`bench.tasks.base.base_to_new`: train, val and ``test`` keep the first 500
classes; ``test_new`` holds the other 500 classes' test images over their own names;
no shift folder is read. ``max_eval`` caps ``test`` and ``test_new`` each, after the
class split (as for ``fewshot_*``).

Caps and few-shot: with ``shots`` set, ``max_train`` / ``max_val`` are ignored, since
each seed draws its shots from the whole pools (as for ``fewshot_*``).

Trimmed copies (``verify_counts=False``, used by the tests): the task's classes are the
wnids present in ImageNet train, in ImageNet order; ``test`` and ``shift_v2`` /
``shift_sketch`` keep the images of those classes; ImageNet-R / -A evaluation classes
are their published wnids among them; ObjectNet classes keep the ImageNet classes among
them and are dropped when none is left. With ``verify_counts=True`` (default) every
folder must hold the published classes and image counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import ManifestEntry, check_bool, check_data_dir, check_nonempty, resolve_options
from bench.data import imagenet as data
from bench.data.images import count_images
from bench.data.sampling import derive_seed, per_class_indices, stratified_indices
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import FewShot, Split, SplitInfo, TaskData, base_to_new
from bench.tasks.fewshot import check_ood_datasets, ood_dataset_files, ood_dataset_splits

NAME = "imagenet"

#: Shift name -> (split name, option overriding its folder, default folder under the root).
SHIFTS: dict[str, tuple[str, str, str]] = {
    "v2": ("shift_v2", "v2_dir", "imagenetv2-matched-frequency-format-val"),
    "sketch": ("shift_sketch", "sketch_dir", "imagenet-sketch/sketch"),
    "r": ("shift_r", "r_dir", "imagenet-r"),
    "a": ("shift_a", "a_dir", "imagenet-a"),
    "objectnet": ("shift_objectnet", "objectnet_dir", "objectnet-1.0"),
}

#: Default folder of ImageNet-1k (holding ``train/`` and ``val/``) under the data root.
IMAGENET_FOLDER = "imagenet"

#: Few-shot validation images per class never exceed this (CoOp: ``min(shots, 4)``).
FEW_SHOT_MAX_VAL = 4

DEFAULT_OPTIONS: dict[str, Any] = {
    "data_dir": None,
    "v2_dir": None,
    "sketch_dir": None,
    "r_dir": None,
    "a_dir": None,
    "objectnet_dir": None,
    "shifts": list(SHIFTS),
    "shots": None,
    "base_to_new": False,
    "val_per_class": 10,
    "ood_datasets": [],
    "verify_counts": True,
}


#: ImageNet-1k training images per class range from 732 to 1,300 (Russakovsky et al.,
#: IJCV 2015); more shots than the smallest class would silently unbalance the draw.
SMALLEST_TRAIN_CLASS = 732


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"task {NAME!r}: option {name!r} must be a positive integer, got {value!r}")
    return value


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    shifts = opts["shifts"]
    if isinstance(shifts, str) or not isinstance(shifts, list | tuple):
        raise TypeError(f"task {NAME!r}: option 'shifts' must be a list, got {shifts!r}")
    unknown = [s for s in shifts if s not in SHIFTS]
    if unknown or len(set(shifts)) != len(shifts):
        raise ValueError(
            f"task {NAME!r}: option 'shifts' must list distinct names from "
            f"{', '.join(SHIFTS)}; got {list(shifts)!r}"
        )
    opts["shifts"] = list(shifts)
    opts["ood_datasets"] = check_ood_datasets(NAME, opts["ood_datasets"])
    check_bool(NAME, "base_to_new", opts["base_to_new"])
    if opts["base_to_new"]:
        opts["shifts"] = []  # the base-to-new protocol scores base and new classes only
    if opts["shots"] is not None:
        _positive_int("shots", opts["shots"])
        if opts["shots"] > SMALLEST_TRAIN_CLASS:
            raise ValueError(
                f"task {NAME!r}: option 'shots' is {opts['shots']}, but the smallest ImageNet-1k "
                f"class has {SMALLEST_TRAIN_CLASS} training images; use shots <= "
                f"{SMALLEST_TRAIN_CLASS} (the few-shot papers use 1-16)"
            )
    _positive_int("val_per_class", opts["val_per_class"])
    opts["data_dir"] = check_data_dir(NAME, "data_dir", opts["data_dir"], "<data root>/imagenet")
    for _, key, default in SHIFTS.values():
        opts[key] = check_data_dir(NAME, key, opts[key], f"<data root>/{default}")
    return opts


def _folder(paths: DataPaths, opts: dict[str, Any], option: str, default: str) -> Path:
    given = opts[option]
    return Path(given).expanduser() if given is not None else paths.root / default


def _imagenet_folder(paths: DataPaths, opts: dict[str, Any]) -> Path:
    return _folder(paths, opts, "data_dir", IMAGENET_FOLDER)


def _shift_folder(paths: DataPaths, opts: dict[str, Any], shift: str) -> Path:
    _, option, default = SHIFTS[shift]
    return _folder(paths, opts, option, default)


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """ImageNet train / val and the folders (and ObjectNet mapping files) of the shifts."""
    opts = _options(options)
    imagenet = _imagenet_folder(paths, opts)
    files = [imagenet / "train", imagenet / "val"]
    for shift in opts["shifts"]:
        folder = _shift_folder(paths, opts, shift)
        if shift == "objectnet":
            files.append(folder / "images")
            files += [folder / "mappings" / name for name in data.OBJECTNET_MAPPING_FILES]
        else:
            files.append(folder)
    return files + ood_dataset_files(paths, opts["ood_datasets"])


def manifest(paths: DataPaths, **options: Any) -> list[ManifestEntry]:
    """Image and class-folder counts of every folder the task reads, with sources."""
    opts = _options(options)
    imagenet = _imagenet_folder(paths, opts)
    source = data.SOURCES

    def folder(path: Path, images: int, classes: int, key: str) -> list[ManifestEntry]:
        return [
            ManifestEntry(path, "images", images, count_images, source[key]),
            ManifestEntry(path, "class folders", classes, data.count_class_folders, source[key]),
        ]

    entries = folder(imagenet / "train", data.IMAGENET_TRAIN_IMAGES, 1000, "imagenet")
    entries += folder(imagenet / "val", data.IMAGENET_VAL_IMAGES, 1000, "imagenet")
    published = {
        "v2": (data.IMAGENET_V2_IMAGES, 1000),
        "sketch": (data.IMAGENET_SKETCH_IMAGES, 1000),
        "r": (data.IMAGENET_R_IMAGES, 200),
        "a": (data.IMAGENET_A_IMAGES, 200),
    }
    for shift in opts["shifts"]:
        path = _shift_folder(paths, opts, shift)
        if shift != "objectnet":
            entries += folder(path, *published[shift], shift)
            continue
        entries += folder(path / "images", data.OBJECTNET_IMAGES, data.OBJECTNET_FOLDERS, shift)
        entries.append(
            ManifestEntry(
                path / "images",
                "images in the 113 ImageNet-overlap classes",
                data.OBJECTNET_OVERLAP_IMAGES,
                data.count_objectnet_overlap,
                source["objectnet_overlap"],
            )
        )
        entries += [
            ManifestEntry(path / "mappings" / name, "file", source=source["objectnet"])
            for name in data.OBJECTNET_MAPPING_FILES
        ]
    return entries


@register_task(
    NAME,
    modality="vision",
    description=(
        "ImageNet-1k (official val as test, 10/class held out of train as val); shifts: "
        "ImageNet-V2, -Sketch, -R, -A, ObjectNet; optional k-shot (CoOp protocol)"
    ),
    required_files=required_files,
    manifest=manifest,
)
def build_imagenet(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (folders under ``paths.root`` unless overridden).
        limits: Split size caps and the data seed.
        **options: ``data_dir`` (ImageNet folder with ``train/`` and ``val/``),
            ``v2_dir`` / ``sketch_dir`` / ``r_dir`` / ``a_dir`` / ``objectnet_dir`` (shift
            folders), ``shifts`` (subset of ``v2, sketch, r, a, objectnet``), ``shots``
            (None = full training set, or images per class per seed),
            ``val_per_class`` (held-out validation images per class), ``verify_counts``.

    Returns:
        The task with :class:`ImageFiles` inputs, the CLIP class names of its classes
        and the 80 OpenAI templates.
    """
    opts = _options(options)
    verify = opts["verify_counts"]
    seed = limits.data_seed
    imagenet = _imagenet_folder(paths, opts)
    all_names, templates, _ = data.openai_imagenet_metadata()
    wnids = data.imagenet_wnids()

    def expect(count: int) -> int | None:
        return count if verify else None

    train_pool = data.read_wnid_folders(
        imagenet / "train",
        expect(data.IMAGENET_TRAIN_IMAGES),
        wnids if verify else None,
        "ImageNet train",
    )
    # Task classes: the ImageNet classes present in train (all 1000 when verified).
    classes = np.unique(train_pool.labels)
    to_task = np.full(1000, -1, dtype=np.int64)
    to_task[classes] = np.arange(len(classes))
    classnames = [all_names[i] for i in classes]

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, images: data.ImageSet, labels: np.ndarray, cap, cause: str) -> None:
        keep = stratified_indices(labels, cap, derive_seed(seed, NAME, info.name))
        check_nonempty(NAME, info.name, len(keep), cause)
        splits[info.name] = Split(info, images.files.subset(keep), labels[keep].astype(np.int64))

    def in_task(images: data.ImageSet) -> tuple[data.ImageSet, np.ndarray]:
        # Images of task classes, relabelled to task indices (drops others when trimmed).
        labels = to_task[images.labels]
        keep = np.flatnonzero(labels >= 0)
        return data.ImageSet(images.files.subset(keep), images.labels[keep]), labels[keep]

    def add_class_subset(split_name, shift, images, image_class, groups, names, cause) -> None:
        # A shift scored on its own classes (ImageNet-R/A, ObjectNet): image_class is each
        # image's evaluation class (-1: none), groups the ImageNet classes of each one.
        # Evaluation classes without a task class (trimmed copies) are dropped.
        task_groups = [tuple(int(to_task[i]) for i in g if to_task[i] >= 0) for g in groups]
        kept = [k for k, group in enumerate(task_groups) if group]
        position = np.full(len(groups) + 1, -1, dtype=np.int64)  # last entry: image_class -1
        position[kept] = np.arange(len(kept))
        labels = position[image_class]
        keep = np.flatnonzero(labels >= 0)
        info = SplitInfo(
            split_name,
            "shift",
            shift,
            classnames=tuple(names[k] for k in kept),
            label_map=tuple(task_groups[k] for k in kept),
        )
        subset = data.ImageSet(images.files.subset(keep), images.labels[keep])
        add(info, subset, labels[keep], limits.max_eval, cause)

    # Hold out val_per_class images of every class from train (see module docstring).
    train_labels = to_task[train_pool.labels]
    held_out = per_class_indices(
        train_labels, opts["val_per_class"], derive_seed(seed, NAME, "val_holdout")
    )
    rest = np.setdiff1d(np.arange(len(train_labels)), held_out)
    # Few-shot tasks draw per seed from the whole pools (as fewshot_* do): capping them
    # first could leave classes with fewer than k shots.
    pool_caps = (None, None) if opts["shots"] is not None else (limits.max_train, limits.max_val)
    for name, kind, index, cap in (
        ("train", "train", rest, pool_caps[0]),
        ("val", "val", held_out, pool_caps[1]),
    ):
        part = data.ImageSet(train_pool.files.subset(index), train_pool.labels[index])
        cause = f"{imagenet / 'train'} has no images left for it (val_per_class too large?)"
        add(SplitInfo(name, kind), part, train_labels[index], cap, cause)

    test = data.read_wnid_folders(
        imagenet / "val",
        expect(data.IMAGENET_VAL_IMAGES),
        wnids if verify else None,
        "ImageNet val",
    )
    test, test_labels = in_task(test)
    add(
        SplitInfo("test", "id"),
        test,
        test_labels,
        None if opts["base_to_new"] else limits.max_eval,  # capped after the class split
        f"{imagenet / 'val'} has no images of the training classes",
    )

    for shift in opts["shifts"]:
        split_name = SHIFTS[shift][0]
        folder = _shift_folder(paths, opts, shift)
        cause = f"{folder} has no images of the task's classes"
        if shift in ("v2", "sketch"):
            if shift == "v2":
                images = data.read_imagenet_v2(folder, expect(data.IMAGENET_V2_IMAGES))
            else:
                images = data.read_wnid_folders(
                    folder,
                    expect(data.IMAGENET_SKETCH_IMAGES),
                    wnids if verify else None,
                    "ImageNet-Sketch",
                )
            images, labels = in_task(images)
            add(SplitInfo(split_name, "shift", shift), images, labels, limits.max_eval, cause)
        elif shift in ("r", "a"):
            published = data.IMAGENET_R_WNIDS if shift == "r" else data.IMAGENET_A_WNIDS
            what = "ImageNet-R" if shift == "r" else "ImageNet-A"
            count = data.IMAGENET_R_IMAGES if shift == "r" else data.IMAGENET_A_IMAGES
            images = data.read_wnid_folders(
                folder, expect(count), published if verify else None, what
            )
            index = data.wnid_to_index()
            published_index = [index[w] for w in published]
            position = np.full(1000, -1, dtype=np.int64)
            position[published_index] = np.arange(len(published))
            add_class_subset(
                split_name,
                shift,
                images,
                position[images.labels],
                [(i,) for i in published_index],
                [all_names[i] for i in published_index],
                cause,
            )
        else:
            images, mapping = data.read_objectnet(folder, verify)
            add_class_subset(
                split_name,
                shift,
                images,
                images.labels,
                mapping.imagenet_indices,
                mapping.names,
                cause,
            )

    few_shot = None
    if opts["shots"] is not None:
        shots = opts["shots"]
        few_shot = FewShot(shots, min(shots, FEW_SHOT_MAX_VAL), seed)
    task = TaskData(NAME, "vision", classnames, splits, list(templates), few_shot=few_shot)
    if opts["base_to_new"]:
        # As in fewshot_*: max_eval caps each of test and test_new after the class split.
        task = base_to_new(task)
        for name in ("test", "test_new"):
            split = task.splits[name]
            keep = stratified_indices(split.labels, limits.max_eval, derive_seed(seed, NAME, name))
            task.splits[name] = Split(split.info, split.inputs.subset(keep), split.labels[keep])
    task.splits.update(ood_dataset_splits(NAME, paths, limits, opts["ood_datasets"], verify))
    return task
