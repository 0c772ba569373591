"""What a task is: named splits of raw inputs with labels, class names and prompts.

A task is built from its config and a data root. Every evaluation split carries a
``kind`` that decides how it is scored:

* ``id``: in-distribution test set (classification, calibration, selective metrics);
* ``shift``: covariate / domain shift with the same label space (same metrics as id);
* ``ood``: semantically new inputs (labels are ``-1``); scored against the id split
  with OOD detection metrics;
* ``train`` and ``val`` are used for fitting and post-hoc calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SplitKind = Literal["train", "val", "id", "shift", "ood"]
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
    """

    name: str
    kind: SplitKind
    family: str | None = None
    severity: int | None = None


@dataclass
class Split:
    """Raw inputs and labels of one split.

    Attributes:
        info: Static description.
        inputs: ``uint8`` images ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` for vision;
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
    """

    name: str
    modality: Modality
    classnames: list[str]
    splits: dict[str, Split]
    templates: list[str] = field(default_factory=list)

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
