"""CIFAR-10 and CIFAR-100 with the UAP paper's shift and OOD sets (32x32 RGB, in memory).

The evaluation protocol of Rudner et al.'s function-space code, used for UAP: CIFAR-10
with CIFAR-10.1 and CIFAR-10-C as covariate shift and SVHN and CIFAR-100 as OOD.
Files and layouts are described in :mod:`bench.data.cifar`; they live under
``<data root>/cifar`` (option ``data_dir``: an absolute path replacing that folder).

Task ``cifar10`` (caps in brackets; all sampling seeded by ``data_seed`` only):

* ``train`` / ``val``: the 50,000 training images split per class into a 45,000-image
  train pool and a disjoint 5,000-image val pool (500 per class), then capped stratified
  [``max_train``] / [``max_val``]. CIFAR has no validation split; 45,000 / 5,000 is the
  hold-out Guo et al. (2017, "On Calibration of Modern Neural Networks") used to fit
  temperature scaling on CIFAR, so post-hoc calibration and model selection never see
  test images. The partition depends only on ``data_seed``, never on the caps;
* ``test`` (id): the 10,000 test images, capped stratified [``max_eval``];
* ``shift_cifar101`` (shift, family ``cifar10_1``; option ``shifts``): the 2,000
  CIFAR-10.1 v6 images, capped stratified [``max_eval``];
* ``shift_<corruption>_s<k>`` (shift, family ``<corruption>``, severity ``k``; options
  ``shifts``, ``corruptions`` (default: the 15 benchmark corruptions) and ``severities``
  (default 1..5)): CIFAR-10-C. Its files hold the test images in test order, so each
  of these splits is exactly the ``test`` split's images (same indices after the cap)
  with the corruption applied: differences from ``test`` are due to the corruption
  alone;
* ``ood_svhn`` (ood, family ``svhn``; option ``ood``): the 26,032 SVHN test digits
  [``max_eval``];
* ``ood_cifar100`` (ood, family ``cifar100``): the 10,000 CIFAR-100 test images
  [``max_eval``]. CIFAR-100's classes were chosen not to overlap CIFAR-10's (its
  ``pickup truck`` vs CIFAR-10's ``truck``, which excludes pickups), so this is
  near-OOD.

Task ``cifar100``: the same with the 100 fine labels (45,000 / 5,000 train / val, 50 val
images per class), OOD ``ood_svhn`` and ``ood_cifar10`` (the CIFAR-10 test set), and no
shift by default; ``shifts: [cifar100_c]`` adds CIFAR-100-C splits named as above.

Context points (``TaskData.context``, used by UAP): None unless option ``context``
names a source: ``cifar100_train`` for ``cifar10`` / ``cifar10_train`` for ``cifar100``,
the other dataset's 50,000 unlabelled training images, capped [``max_train``]. The
default is None because UAP's reference setting draws context images from ImageNet
(METHODS.md), which UAP's ``context_source: imagenet`` supplies (bench/methods/uap.py);
note that CIFAR-100 training images come from the same distribution as
``ood_cifar100``, so OOD scores with that context are optimistic (the model has been
trained to be uncertain on that very distribution).

Prompt templates: the 18 CIFAR templates of CLIP (openai/CLIP ``data/prompts.md``,
identical for CIFAR-10 and CIFAR-100); open_clip 3.3 ships only ImageNet templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import ManifestEntry, check_bool, check_data_dir, check_nonempty, resolve_options
from bench.data import cifar as cifar_data
from bench.data.cifar import (
    ALL_CORRUPTIONS,
    CIFAR10_BATCH_COUNT,
    CIFAR101_COUNT,
    CIFAR_COUNTS,
    CORRUPTION_FILE_COUNT,
    NUM_SEVERITIES,
    STANDARD_CORRUPTIONS,
    SVHN_COUNTS,
)
from bench.data.sampling import (
    capped_indices,
    derive_seed,
    holdout_train_val,
    stratified_indices,
)
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

#: Share of each class of the training batches held out as the val pool (5,000 images).
VAL_FRACTION = 0.1

#: Default folder under the data root.
DATA_SUBDIR = "cifar"

#: CLIP's prompt templates for CIFAR-10 and CIFAR-100 (openai/CLIP, ``data/prompts.md``).
CLIP_CIFAR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)

_SOURCE_CIFAR10 = (
    "CIFAR page (cs.toronto.edu/~kriz/cifar.html): 5 training batches and 1 test batch, "
    "10,000 images each"
)
_SOURCE_CIFAR100 = "CIFAR page (cs.toronto.edu/~kriz/cifar.html): 50,000 train / 10,000 test"
_SOURCE_CIFAR101 = "modestyachts/CIFAR-10.1 code/utils.py: v6 holds 2,000 images"
_SOURCE_C = "Hendrycks & Dietterich 2019 (Zenodo README): 5 severities x 10,000 test images"
_SOURCE_SVHN = "SVHN page (ufldl.stanford.edu/housenumbers): 73,257 train / 26,032 test"


@dataclass(frozen=True)
class _Spec:
    """What distinguishes the two tasks."""

    name: str
    dataset: str  # cifar10 | cifar100: the in-distribution data
    shifts: tuple[str, ...]  # valid shift sources
    default_shifts: tuple[str, ...]
    oods: tuple[str, ...]  # valid OOD sources, all on by default
    contexts: tuple[str, ...]  # valid context sources
    corruption_shift: str  # the shift source of the CIFAR-C corruption files
    corruption_dir: str


CIFAR10 = _Spec(
    name="cifar10",
    dataset="cifar10",
    shifts=("cifar10_1", "cifar10_c"),
    default_shifts=("cifar10_1", "cifar10_c"),
    oods=("svhn", "cifar100"),
    contexts=("cifar100_train",),
    corruption_shift="cifar10_c",
    corruption_dir=cifar_data.CIFAR10C_DIR,
)
CIFAR100 = _Spec(
    name="cifar100",
    dataset="cifar100",
    shifts=("cifar100_c",),
    default_shifts=(),
    oods=("svhn", "cifar10"),
    contexts=("cifar10_train",),
    corruption_shift="cifar100_c",
    corruption_dir=cifar_data.CIFAR100C_DIR,
)


def _defaults(spec: _Spec) -> dict[str, Any]:
    return {
        "data_dir": None,
        "shifts": spec.default_shifts,
        "corruptions": STANDARD_CORRUPTIONS,
        "severities": tuple(range(1, NUM_SEVERITIES + 1)),
        "ood": spec.oods,
        "context": None,
        "verify_counts": True,
    }


def _name_list(spec: _Spec, option: str, value: Any, valid: tuple[str, ...]) -> list[str]:
    """Validates a list-of-names option, keeping the given order without repeats."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            f"task {spec.name!r}: option {option!r} must be a list of names ([] for none), "
            f"got {value!r}"
        )
    unknown = [v for v in value if v not in valid]
    if unknown:
        raise ValueError(
            f"task {spec.name!r}: option {option!r} has unknown name(s) {unknown}; "
            f"valid: {', '.join(valid) or '(none)'}"
        )
    return list(dict.fromkeys(value))


def _options(spec: _Spec, options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(spec.name, options, _defaults(spec))
    check_bool(spec.name, "verify_counts", opts["verify_counts"])
    opts["data_dir"] = check_data_dir(
        spec.name, "data_dir", opts["data_dir"], f"<data root>/{DATA_SUBDIR}"
    )
    opts["shifts"] = _name_list(spec, "shifts", opts["shifts"], spec.shifts)
    opts["ood"] = _name_list(spec, "ood", opts["ood"], spec.oods)
    opts["corruptions"] = _name_list(spec, "corruptions", opts["corruptions"], ALL_CORRUPTIONS)
    severities = opts["severities"]
    if not isinstance(severities, list | tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= NUM_SEVERITIES
        for s in severities
    ):
        raise ValueError(
            f"task {spec.name!r}: option 'severities' must be a list of integers in "
            f"1..{NUM_SEVERITIES}, got {severities!r}"
        )
    opts["severities"] = sorted(set(severities))
    wants_corruptions = spec.corruption_shift in opts["shifts"]
    if wants_corruptions and not (opts["corruptions"] and opts["severities"]):
        raise ValueError(
            f"task {spec.name!r}: shift {spec.corruption_shift!r} needs non-empty "
            "'corruptions' and 'severities' (or drop it from 'shifts')"
        )
    context = opts["context"]
    if context is not None and context not in spec.contexts:
        raise ValueError(
            f"task {spec.name!r}: option 'context' must be null or one of "
            f"{', '.join(spec.contexts)}, got {context!r}"
        )
    return opts


def _root(paths: DataPaths, opts: dict[str, Any]) -> Path:
    return opts["data_dir"] if opts["data_dir"] is not None else paths.root / DATA_SUBDIR


def _python_entries(root: Path, dataset: str, split: str) -> list[ManifestEntry]:
    """Manifest entries of one split of the python-version CIFAR-10 / CIFAR-100."""
    if dataset == "cifar10":
        names = cifar_data.CIFAR10_FILES[split]
        folder, per_file = root / cifar_data.CIFAR10_DIR, CIFAR10_BATCH_COUNT
        source = _SOURCE_CIFAR10
    else:
        names = cifar_data.CIFAR100_FILES[split]
        folder, per_file = root / cifar_data.CIFAR100_DIR, CIFAR_COUNTS[split]
        source = _SOURCE_CIFAR100
    count = cifar_data.count_pickle_images
    return [ManifestEntry(folder / name, "images", per_file, count, source) for name in names]


def _meta_entry(root: Path, dataset: str) -> ManifestEntry:
    if dataset == "cifar10":
        return ManifestEntry(root / cifar_data.CIFAR10_DIR / cifar_data.CIFAR10_META, "file")
    return ManifestEntry(root / cifar_data.CIFAR100_DIR / cifar_data.CIFAR100_META, "file")


def _entries(spec: _Spec, root: Path, opts: dict[str, Any]) -> list[ManifestEntry]:
    """Every file the task reads with these options, with its published size."""
    entries = _python_entries(root, spec.dataset, "train")
    entries += _python_entries(root, spec.dataset, "test")
    entries.append(_meta_entry(root, spec.dataset))
    count_rows = cifar_data.count_npy_rows
    if "cifar10_1" in opts["shifts"]:
        folder = root / cifar_data.CIFAR101_DIR
        for name in (cifar_data.CIFAR101_DATA, cifar_data.CIFAR101_LABELS):
            what = "images" if name == cifar_data.CIFAR101_DATA else "labels"
            entries.append(
                ManifestEntry(folder / name, what, CIFAR101_COUNT, count_rows, _SOURCE_CIFAR101)
            )
    if spec.corruption_shift in opts["shifts"]:
        folder = root / spec.corruption_dir
        entries.append(
            ManifestEntry(
                folder / cifar_data.CORRUPTION_LABELS,
                "labels",
                CORRUPTION_FILE_COUNT,
                count_rows,
                _SOURCE_C,
            )
        )
        entries += [
            ManifestEntry(
                cifar_data.corruption_file(folder, corruption),
                "images",
                CORRUPTION_FILE_COUNT,
                count_rows,
                _SOURCE_C,
            )
            for corruption in opts["corruptions"]
        ]
    for source in opts["ood"]:
        if source == "svhn":
            entries.append(
                ManifestEntry(
                    root / cifar_data.SVHN_DIR / cifar_data.SVHN_FILES["test"],
                    "images",
                    SVHN_COUNTS["test"],
                    cifar_data.count_svhn_images,
                    _SOURCE_SVHN,
                )
            )
        else:
            entries += _python_entries(root, source, "test")
    if opts["context"] is not None:
        entries += _python_entries(root, opts["context"].removesuffix("_train"), "train")
    return entries


def _load_python(
    root: Path, dataset: str, split: str, verify: bool
) -> tuple[np.ndarray, np.ndarray]:
    expected = CIFAR_COUNTS[split] if verify else None
    if dataset == "cifar10":
        return cifar_data.load_cifar10(root / cifar_data.CIFAR10_DIR, split, expected)
    return cifar_data.load_cifar100(root / cifar_data.CIFAR100_DIR, split, expected)


def _classnames(root: Path, dataset: str, verify: bool) -> list[str]:
    if dataset == "cifar10":
        return cifar_data.cifar10_classnames(root / cifar_data.CIFAR10_DIR, verify)
    return cifar_data.cifar100_classnames(root / cifar_data.CIFAR100_DIR, verify)


def _build(spec: _Spec, paths: DataPaths, limits: SizeLimits, options: dict) -> TaskData:
    opts = _options(spec, options)
    root, verify, seed, name = (
        _root(paths, opts),
        opts["verify_counts"],
        limits.data_seed,
        spec.name,
    )
    classnames = _classnames(root, spec.dataset, verify)
    train_x, train_y = _load_python(root, spec.dataset, "train", verify)
    test_x, test_y = _load_python(root, spec.dataset, "test", verify)

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: np.ndarray, labels: np.ndarray, cause: str) -> None:
        check_nonempty(name, info.name, len(labels), cause)
        splits[info.name] = Split(info, np.ascontiguousarray(inputs), labels.astype(np.int64))

    def ood_labels(n: int) -> np.ndarray:
        return np.full(n, OOD_LABEL, dtype=np.int64)

    # The val pool is fixed before any cap, so it never depends on max_train.
    tr, va = holdout_train_val(train_y, VAL_FRACTION, limits.max_train, limits.max_val, seed, name)
    cause = "the training batches hold no images (or a cap of 0)"
    add(SplitInfo("train", "train"), train_x[tr], train_y[tr], cause)
    add(SplitInfo("val", "val"), train_x[va], train_y[va], cause)
    del train_x

    te = stratified_indices(test_y, limits.max_eval, derive_seed(seed, name, "test"))
    add(SplitInfo("test", "id"), test_x[te], test_y[te], "the test file holds no images")

    if "cifar10_1" in opts["shifts"]:
        images, labels = cifar_data.load_cifar101(
            root / cifar_data.CIFAR101_DIR, CIFAR101_COUNT if verify else None
        )
        keep = stratified_indices(labels, limits.max_eval, derive_seed(seed, name, "cifar10_1"))
        add(
            SplitInfo("shift_cifar101", "shift", "cifar10_1"),
            images[keep],
            labels[keep],
            "CIFAR-10.1 holds no images",
        )

    if spec.corruption_shift in opts["shifts"]:
        folder = root / spec.corruption_dir
        expected = CORRUPTION_FILE_COUNT if verify else None
        cifar_data.load_corruption_labels(folder, test_y, expected)
        for corruption in opts["corruptions"]:
            for severity in opts["severities"]:
                images = cifar_data.load_corrupted(
                    folder, corruption, severity, te, len(test_y), expected
                )
                add(
                    SplitInfo(f"shift_{corruption}_s{severity}", "shift", corruption, severity),
                    images,
                    test_y[te],
                    "the test split is empty",
                )

    for source in opts["ood"]:
        if source == "svhn":
            images, _ = cifar_data.load_svhn(
                root / cifar_data.SVHN_DIR, "test", SVHN_COUNTS["test"] if verify else None
            )
        else:
            images, _ = _load_python(root, source, "test", verify)
        keep = capped_indices(len(images), limits.max_eval, derive_seed(seed, name, source))
        add(
            SplitInfo(f"ood_{source}", "ood", source),
            images[keep],
            ood_labels(len(keep)),
            f"the {source} test file holds no images (or max_eval is 0)",
        )

    context = None
    if opts["context"] is not None:
        images, _ = _load_python(root, opts["context"].removesuffix("_train"), "train", verify)
        keep = capped_indices(len(images), limits.max_train, derive_seed(seed, name, "context"))
        context = np.ascontiguousarray(images[keep])
    return TaskData(name, "vision", classnames, splits, list(CLIP_CIFAR_TEMPLATES), context=context)


def _required_files(spec: _Spec):
    def required_files(paths: DataPaths, **options: Any) -> list[Path]:
        opts = _options(spec, options)
        return [entry.path for entry in _entries(spec, _root(paths, opts), opts)]

    required_files.__doc__ = f"Files ``{spec.name}`` reads with these options (cheap)."
    return required_files


def _manifest(spec: _Spec):
    def manifest(paths: DataPaths, **options: Any) -> list[ManifestEntry]:
        opts = _options(spec, options)
        return _entries(spec, _root(paths, opts), opts)

    manifest.__doc__ = f"What a complete copy of ``{spec.name}``'s files holds."
    return manifest


@register_task(
    CIFAR10.name,
    modality="vision",
    description=(
        "CIFAR-10 (45k/5k train/val, 10k test); shift: CIFAR-10.1 and CIFAR-10-C "
        "(15 corruptions x 5 severities); OOD: SVHN and CIFAR-100"
    ),
    required_files=_required_files(CIFAR10),
    manifest=_manifest(CIFAR10),
    has_context=lambda **options: options.get("context") is not None,
)
def build_cifar10(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds ``cifar10`` (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "cifar"`` unless ``data_dir``).
        limits: Split size caps and the data seed.
        **options: ``data_dir``, ``shifts`` (subset of ``cifar10_1``, ``cifar10_c``),
            ``corruptions``, ``severities``, ``ood`` (subset of ``svhn``, ``cifar100``),
            ``context`` (null or ``cifar100_train``), ``verify_counts``.

    Returns:
        The task with uint8 ``[N, 32, 32, 3]`` inputs and CLIP's CIFAR templates.

    """
    return _build(CIFAR10, paths, limits, options)


@register_task(
    CIFAR100.name,
    modality="vision",
    description=(
        "CIFAR-100 fine labels (45k/5k train/val, 10k test); OOD: SVHN and CIFAR-10; "
        "optional shift: CIFAR-100-C"
    ),
    required_files=_required_files(CIFAR100),
    manifest=_manifest(CIFAR100),
    has_context=lambda **options: options.get("context") is not None,
)
def build_cifar100(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds ``cifar100`` (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "cifar"`` unless ``data_dir``).
        limits: Split size caps and the data seed.
        **options: ``data_dir``, ``shifts`` (empty or ``[cifar100_c]``), ``corruptions``,
            ``severities``, ``ood`` (subset of ``svhn``, ``cifar10``), ``context`` (null or
            ``cifar10_train``), ``verify_counts``.

    Returns:
        The task with uint8 ``[N, 32, 32, 3]`` inputs and CLIP's CIFAR templates.

    """
    return _build(CIFAR100, paths, limits, options)
