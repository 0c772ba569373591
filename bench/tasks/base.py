"""What a task is: named splits of raw inputs with labels, class names and prompts.

A task is built from its config and a data root. Every evaluation split carries a
``kind`` that decides how it is scored:

* ``id``: in-distribution test set (classification, calibration, selective metrics);
* ``shift``: covariate / domain shift with the same label space (same metrics as id);
* ``ood``: semantically new inputs (labels are ``-1``); scored against the id split
  with OOD detection metrics;
* ``new``: test images of classes held out from training (base-to-new transfer),
  labelled over their own class names; classification metrics like ``id``;
* ``train`` and ``val`` are used for fitting and post-hoc calibration.

Two optional fields of :class:`SplitInfo` describe splits whose label space is not the
task's own:

* ``label_map`` (ImageNet-R/A's 200 classes, ObjectNet's 113): evaluation class ``k``
  is the union of task classes ``label_map[k]``; labels index the evaluation classes.
  Models still predict all task classes; scoring restricts (and for ObjectNet pools)
  the predictions before any metric (:func:`restrict_scores`).
* ``classnames`` without ``label_map`` (the *new* classes of base-to-new transfer): the
  split's labels index these names, which the model never saw. Only open-vocabulary
  methods (zero-shot heads, prompt learners) can predict it; the others skip it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

SplitKind = Literal["train", "val", "id", "shift", "ood", "new"]
Modality = Literal["vision", "text"]

OOD_LABEL = -1


@dataclass(frozen=True)
class SplitInfo:
    """Static description of one split.

    Attributes:
        name: Key used in files and tables, e.g. ``test``, ``shift_blur_s2``.
        kind: How the split is used and scored (see module docstring).
        family: Shift or OOD source (``gaussian_noise``, ``mr``, ``heldout``) or None.
        severity: Shift severity (1 = mildest) for graded corruptions, else None.
        classnames: Names of the evaluation classes when they are not the task's.
        label_map: Task classes making up each evaluation class (see module docstring).
    """

    name: str
    kind: SplitKind
    family: str | None = None
    severity: int | None = None
    classnames: tuple[str, ...] | None = None
    label_map: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the frozen record hashable.
        if self.classnames is not None:
            object.__setattr__(self, "classnames", tuple(self.classnames))
        if self.label_map is not None:
            object.__setattr__(self, "label_map", tuple(tuple(g) for g in self.label_map))
            if self.classnames is not None and len(self.classnames) != len(self.label_map):
                raise ValueError(
                    f"split {self.name!r}: {len(self.classnames)} classnames but "
                    f"{len(self.label_map)} label_map groups"
                )

    @property
    def open_vocabulary(self) -> bool:
        """Whether predicting the split needs class names the model was not trained on."""
        return self.classnames is not None and self.label_map is None


@dataclass
class Split:
    """Raw inputs and labels of one split.

    Attributes:
        info: Static description.
        inputs: ``uint8`` images ``[N, H, W]`` (grey) or ``[N, H, W, 3]``, or
            :class:`bench.data.images.ImageFiles` (decoded batch by batch) for vision;
            a list of ``N`` strings for text.
        labels: ``int64 [N]`` class indices into the task's class names, ``-1`` for OOD.
    """

    info: SplitInfo
    inputs: np.ndarray | list[str]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(
                f"split {self.info.name!r}: {len(self.inputs)} inputs but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FewShot:
    """How a few-shot task draws its training (and validation) examples per seed.

    The task's ``train`` and ``val`` splits are the pools; each training seed of the
    grid draws its own ``shots`` examples per class from them (CoOp's protocol: the
    seed picks both the shots and the training randomness), so seeds differ in data,
    as in the papers' few-shot tables.

    Attributes:
        shots: Training examples per class (a class with fewer keeps all of them).
        val_shots: Validation examples per class (CoOp: ``min(shots, 4)``).
        data_seed: Base seed combined with the training seed.
    """

    shots: int
    val_shots: int
    data_seed: int = 0

    def indices(self, labels: np.ndarray, seed: int, split: str, task: str) -> np.ndarray:
        """Sorted indices of the examples split ``split`` keeps for training seed ``seed``."""
        from bench.data.sampling import derive_seed, per_class_indices

        per_class = self.shots if split == "train" else self.val_shots
        return per_class_indices(
            labels, per_class, derive_seed(self.data_seed, task, "shots", split, seed)
        )


@dataclass
class TaskData:
    """A built task.

    Attributes:
        name: Registered task name.
        modality: ``vision`` or ``text``.
        classnames: In-distribution class names, index = label.
        splits: Every split by name; must include ``train``, ``val`` and one ``id`` split.
        templates: Prompt templates with a ``{}`` for the class name (vision-language
            methods); may be empty for text tasks.
        context: Unlabelled inputs unlike the training data, for methods that
            regularise predictions on "context" points (UAP); None when the task has none.
        few_shot: Per-seed draw of the training examples; None trains on all of ``train``.
    """

    name: str
    modality: Modality
    classnames: list[str]
    splits: dict[str, Split]
    templates: list[str] = field(default_factory=list)
    context: Any = None
    few_shot: FewShot | None = None

    def for_seed(self, seed: int) -> TaskData:
        """The task as training seed ``seed`` sees it (few-shot draw applied)."""
        if self.few_shot is None:
            return self
        splits = dict(self.splits)
        for name in ("train", "val"):
            split = splits[name]
            keep = self.few_shot.indices(split.labels, seed, name, self.name)
            splits[name] = Split(split.info, take(split.inputs, keep), split.labels[keep])
        return replace(self, splits=splits)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def eval_splits(self) -> list[str]:
        """Names of the splits predicted after fitting (val, id, shift and ood)."""
        return [n for n, s in self.splits.items() if s.info.kind != "train"]

    def id_split(self) -> str:
        """Name of the in-distribution test split."""
        names = [n for n, s in self.splits.items() if s.info.kind == "id"]
        if len(names) != 1:
            raise ValueError(f"task {self.name!r} must have exactly one id split, has {names}")
        return names[0]


def base_to_new(task: TaskData) -> TaskData:
    """CoCoOp's base-to-new protocol applied to a built task.

    Base classes are the first ``ceil(C / 2)`` class indices, new ones the rest
    (``subsample_classes`` in CoOp's dataset code). ``train``, ``val`` and the id split
    keep base-class examples; the id split's new-class examples become ``test_new``
    (kind ``new``), labelled ``0..`` over the new class names. Shift and OOD splits are
    dropped: the protocol scores base and new accuracy (and their harmonic mean) only.
    """
    num_base = -(-task.num_classes // 2)
    id_name = task.id_split()
    splits: dict[str, Split] = {}
    for name, split in task.splits.items():
        if split.info.kind not in ("train", "val", "id"):
            continue
        base = np.flatnonzero(split.labels < num_base)
        splits[name] = Split(split.info, take(split.inputs, base), split.labels[base])
    test = task.splits[id_name]
    new = np.flatnonzero(test.labels >= num_base)
    new_names = tuple(task.classnames[num_base:])
    splits[f"{id_name}_new"] = Split(
        SplitInfo(f"{id_name}_new", "new", classnames=new_names),
        take(test.inputs, new),
        test.labels[new] - num_base,
    )
    return replace(task, classnames=list(task.classnames[:num_base]), splits=splits)


def take(inputs, index: np.ndarray):
    """Selects rows of an array, images of an ImageFiles, or items of a list."""
    if isinstance(inputs, np.ndarray):
        return inputs[index]
    if hasattr(inputs, "subset"):
        return inputs.subset(index)
    return [inputs[i] for i in index]


def restrict_scores(values: np.ndarray, label_map, kind: str) -> np.ndarray:
    """Restricts task-class scores to a split's evaluation classes.

    Each evaluation class gets the largest score of its task classes: with one task
    class per group (ImageNet-R/A) this is column selection, and softmax of the result
    is the model's distribution renormalised over the evaluation classes; with several
    (ObjectNet) it is the max-pooling of WiSE-FT's and model soups' ObjectNet
    evaluation, so accuracies match the published protocol.

    Args:
        values: ``[..., C]`` logits or log-probabilities over the task classes.
        label_map: One tuple of task-class indices per evaluation class.
        kind: ``logits`` or ``logprobs``; log-probabilities are renormalised so that
            each Monte Carlo sample stays a distribution.

    Returns:
        ``[..., K]`` scores over the ``K`` evaluation classes, float32.
    """
    from scipy.special import logsumexp

    values = np.asarray(values, dtype=np.float64)
    if all(len(group) == 1 for group in label_map):
        out = values[..., [group[0] for group in label_map]]
    else:
        out = np.stack([values[..., list(group)].max(axis=-1) for group in label_map], -1)
    if kind == "logprobs":
        out = out - logsumexp(out, axis=-1, keepdims=True)
    return out.astype(np.float32)
