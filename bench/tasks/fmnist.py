"""Fashion-MNIST with held-out classes, graded corruptions and a far-OOD digit set.

Splits (``SizeLimits`` caps in brackets, all sampling seeded by ``data_seed`` only):

* ``train`` / ``val``: the train file's in-distribution (ID) images, split per class
  into a 90% train pool and a disjoint 10% val pool, then capped stratified
  [``max_train``] / [``max_val``]. With option ``shots`` (k images per class) the two
  parts stay uncapped and are the few-shot *pools*: each training seed draws its own k
  training and ``min(k, 4)`` validation images per class from them
  (:class:`bench.tasks.base.FewShot`, CoOp's protocol), the same draw for every method
  of that seed;
* ``test`` (id): t10k images of the ID classes, capped stratified [``max_eval``];
* ``shift_{c}_s{k}`` (shift): corruption ``c`` at severity ``k`` of exactly the
  ``test`` images, with a seed derived from (``data_seed``, ``c``, ``k``);
* ``ood_heldout`` (ood): t10k images of the held-out classes [``max_eval``];
* ``ood_digits`` (ood): scikit-learn's digits resized to 28x28 [``max_eval``].

Base-to-new (option ``base_to_new``, CoCoOp's protocol through
:func:`bench.tasks.base.base_to_new`): the first half of the in-distribution classes
(t-shirt/top, trouser, pullover, dress with the default held-out classes) are the base
classes that ``train``, ``val`` and ``test`` keep; ``test_new`` holds the other half's
test images under their own names; the shift and OOD splits are dropped, as the
protocol scores base and new classes only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import check_bool, check_nonempty, resolve_options
from bench.data.corruptions import CORRUPTIONS, MAX_SEVERITY, corrupt
from bench.data.digits import DIGITS_COUNT, load_digits_28
from bench.data.fashion_mnist import CLASSNAMES, COUNTS, SPLITS, load_fashion_mnist, split_files
from bench.data.sampling import (
    capped_indices,
    derive_seed,
    holdout_train_val,
    stratified_indices,
)
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, FewShot, Split, SplitInfo, TaskData, base_to_new

NAME = "fmnist"

#: Share of each ID class of the train file held out as the validation pool.
VAL_FRACTION = 0.1

DEFAULT_OPTIONS: dict[str, Any] = {
    # Sandal and bag: one footwear and one non-clothing class, each with no near twin
    # among the remaining classes (unlike shirt vs t-shirt/top), so the held-out set is
    # semantically new rather than a relabelled ID class.
    "ood_classes": ("sandal", "bag"),
    "shots": None,
    "base_to_new": False,
    "verify_counts": True,
}

#: Few-shot validation images per class never exceed this (CoOp: ``min(shots, 4)``).
MAX_VAL_SHOTS = 4

#: CLIP-style prompts; the images are grey 28x28 product photos.
TEMPLATES: list[str] = [
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a {}, a type of fashion product.",
]


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    check_bool(NAME, "base_to_new", opts["base_to_new"])
    ood = opts["ood_classes"]
    if isinstance(ood, str) or not all(isinstance(c, str) for c in ood):
        raise TypeError(f"task {NAME!r}: option 'ood_classes' must be a list of class names")
    names = [c.strip().lower() for c in ood]
    unknown = [c for c in names if c not in CLASSNAMES]
    if unknown:
        raise ValueError(
            f"task {NAME!r}: option 'ood_classes' names unknown class(es) {unknown}; "
            f"valid: {', '.join(CLASSNAMES)}"
        )
    if len(set(names)) > len(CLASSNAMES) - 2:
        raise ValueError(
            f"task {NAME!r}: option 'ood_classes' must leave at least 2 in-distribution classes"
        )
    opts["ood_classes"] = sorted(set(names), key=CLASSNAMES.index)
    shots = opts["shots"]
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise ValueError(
            f"task {NAME!r}: option 'shots' must be null (all of train) or a positive number "
            f"of training images per class (the papers use 1, 2, 4, 8, 16), got {shots!r}"
        )
    return opts


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """The four IDX files (digits ship inside scikit-learn)."""
    _options(options)
    return [p for split in SPLITS for p in split_files(paths.fashion_mnist, split)]


def manifest(paths: DataPaths, **options: Any) -> list:
    """The four IDX files with their record counts (read from the IDX headers)."""
    import gzip
    import struct

    from bench.data import ManifestEntry
    from bench.data.fashion_mnist import COUNTS

    def records(path: Path) -> int:
        with gzip.open(path, "rb") as handle:
            return struct.unpack(">I", handle.read(8)[4:8])[0]

    _options(options)
    source = "Xiao et al. (2017), Fashion-MNIST README: 60,000 train / 10,000 test"
    return [
        ManifestEntry(path, "records", COUNTS[split], records, source)
        for split in SPLITS
        for path in split_files(paths.fashion_mnist, split)
    ]


@register_task(
    NAME,
    modality="vision",
    description=(
        "Fashion-MNIST, 8 classes (sandal and bag held out as OOD); shifts: noise, blur, "
        "contrast, rotation at 3 severities; OOD: held-out classes and sklearn digits"
    ),
    required_files=required_files,
    manifest=manifest,
)
def build_fmnist(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.fashion_mnist``).
        limits: Split size caps and the data seed.
        **options: ``ood_classes`` (class names held out, default sandal and bag);
            ``shots`` (k-shot training drawn per seed; null trains on the capped pool);
            ``base_to_new`` (CoCoOp's base-to-new split of the classes);
            ``verify_counts`` (check the files against the published counts).

    Returns:
        The task with uint8 ``[N, 28, 28]`` inputs; with ``shots`` its ``few_shot``
        draws each seed's training and validation images.

    """
    opts = _options(options)
    verify = opts["verify_counts"]
    ood_ids = [CLASSNAMES.index(c) for c in opts["ood_classes"]]
    id_ids = [i for i in range(len(CLASSNAMES)) if i not in ood_ids]
    classnames = [CLASSNAMES[i] for i in id_ids]
    remap = np.full(len(CLASSNAMES), OOD_LABEL, dtype=np.int64)
    remap[id_ids] = np.arange(len(id_ids))
    seed = limits.data_seed

    train_x, train_y = load_fashion_mnist(
        paths.fashion_mnist, "train", COUNTS["train"] if verify else None
    )
    test_x, test_y = load_fashion_mnist(
        paths.fashion_mnist, "t10k", COUNTS["t10k"] if verify else None
    )
    train_y, test_y = remap[train_y], remap[test_y]

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: np.ndarray, labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(labels), cause)
        splits[info.name] = Split(info, np.ascontiguousarray(inputs), labels.astype(np.int64))

    # Train/val: a fixed per-class partition of the train file first, then the caps, so
    # the val images never depend on max_train and never overlap the train images. A
    # few-shot task keeps whole pools: a cap first could leave a class short of k images.
    shots = opts["shots"]
    max_train, max_val = (limits.max_train, limits.max_val) if shots is None else (None, None)
    id_train = np.flatnonzero(train_y != OOD_LABEL)
    tr, va = (
        id_train[part]
        for part in holdout_train_val(
            train_y[id_train], VAL_FRACTION, max_train, max_val, seed, NAME
        )
    )
    cause = "no in-distribution images in the train file (or a cap of 0)"
    add(SplitInfo("train", "train"), train_x[tr], train_y[tr], cause)
    add(SplitInfo("val", "val"), train_x[va], train_y[va], cause)

    id_test = np.flatnonzero(test_y != OOD_LABEL)
    te = id_test[
        stratified_indices(test_y[id_test], limits.max_eval, derive_seed(seed, NAME, "test"))
    ]
    add(SplitInfo("test", "id"), test_x[te], test_y[te], "no in-distribution t10k images")

    clean = splits["test"].inputs
    for family in CORRUPTIONS:
        for severity in range(1, MAX_SEVERITY + 1):
            shifted = corrupt(clean, family, severity, derive_seed(seed, NAME, family, severity))
            info = SplitInfo(f"shift_{family}_s{severity}", "shift", family, severity)
            add(info, shifted, splits["test"].labels.copy(), "empty test split")

    ood_test = np.flatnonzero(test_y == OOD_LABEL)
    oo = ood_test[
        capped_indices(len(ood_test), limits.max_eval, derive_seed(seed, NAME, "ood_heldout"))
    ]
    add(
        SplitInfo("ood_heldout", "ood", "heldout"),
        test_x[oo],
        np.full(len(oo), OOD_LABEL, dtype=np.int64),
        f"no t10k images of ood_classes {opts['ood_classes']} (is ood_classes empty?)",
    )

    digits, _ = load_digits_28(size=test_x.shape[1], expected=DIGITS_COUNT if verify else None)
    dg = capped_indices(len(digits), limits.max_eval, derive_seed(seed, NAME, "ood_digits"))
    add(
        SplitInfo("ood_digits", "ood", "digits"),
        digits[dg],
        np.full(len(dg), OOD_LABEL, dtype=np.int64),
        "scikit-learn returned no digits (or max_eval is 0)",
    )
    few_shot = None if shots is None else FewShot(shots, min(shots, MAX_VAL_SHOTS), seed)
    task = TaskData(NAME, "vision", classnames, splits, list(TEMPLATES), few_shot=few_shot)
    return base_to_new(task) if opts["base_to_new"] else task
