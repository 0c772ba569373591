"""Task registry: ``register_task`` / ``create_task`` / ``list_tasks``.

A registered task is a builder function::

    @register_task("sst2", modality="text", description="...",
                   required_files=lambda paths, **opts: [...])
    def build_sst2(paths: DataPaths, limits: SizeLimits, **options) -> TaskData: ...

``required_files`` is cheap (no loading) so the workflow can check data presence
while Snakemake builds the DAG.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.registry import Registry
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

TASKS: Registry = Registry("task")

# Every module of this package except ``base`` registers tasks on import; they are
# imported on first use so that ``import bench.tasks`` stays light.
_NOT_TASK_MODULES = {"base"}


@dataclass(frozen=True)
class DataPaths:
    """Where the datasets live.

    Attributes:
        root: Data root holding ``nlp/clinc150``, ``nlp/sentence`` (``../shared/data`` in CI).
        fashion_mnist: Folder with the four Fashion-MNIST IDX ``.gz`` files.
        wordnet: WordNet 3.0 dict folder holding ``data.noun``.
    """

    root: Path
    fashion_mnist: Path = Path("/usr/share/datasets/fashion-mnist")
    wordnet: Path = Path("/usr/share/wordnet")

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> DataPaths:
        """Builds paths from the config's ``data`` section."""
        return cls(
            root=Path(data["root"]).expanduser(),
            fashion_mnist=Path(data.get("fashion_mnist", cls.fashion_mnist)).expanduser(),
            wordnet=Path(data.get("wordnet", cls.wordnet)).expanduser(),
        )


@dataclass(frozen=True)
class SizeLimits:
    """Caps on split sizes (None = use everything), applied with a fixed data seed.

    Attributes:
        max_train: Training examples kept (stratified by class where possible).
        max_val: Validation examples kept.
        max_eval: Examples kept in each id, shift and ood split.
        data_seed: Seed of the subsampling; independent of the training seed so
            every method and seed sees the same examples.
    """

    max_train: int | None = None
    max_val: int | None = None
    max_eval: int | None = None
    data_seed: int = 0


def register_task(
    name: str,
    *,
    modality: str,
    description: str,
    required_files,
    manifest=None,
    has_context=None,
):
    """Registers a task builder (see module docstring).

    Args:
        name: Task name (snake_case, safe as a Snakemake wildcard).
        modality: ``vision`` or ``text``.
        description: One line for ``python -m bench list tasks``.
        required_files: ``(paths, **options) -> [Path]``: files and folders that must
            exist; cheap, called while Snakemake builds the DAG.
        manifest: ``(paths, **options) -> [ManifestEntry]``: what a complete copy holds,
            checked by ``python -m bench data check``; defaults to ``required_files``
            with existence checks only.
        has_context: ``(**options) -> bool``: whether the built task carries a context
            set (:attr:`TaskData.context`, unlabelled inputs for UAP's prior) with these
            options; None: never.
    """
    return TASKS.register(
        name,
        modality=modality,
        description=description,
        required_files=required_files,
        manifest=manifest,
        has_context=has_context or (lambda **options: False),
    )


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_TASK_MODULES and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def list_tasks(pattern: str = "*") -> list[str]:
    """Names of registered tasks matching a shell-style pattern."""
    _import_all()
    return TASKS.names(pattern)


def task_metadata(name: str) -> dict[str, Any]:
    """Static facts of a task (modality, description, required_files)."""
    _import_all()
    return TASKS.metadata(name)


def missing_task_files(name: str, paths: DataPaths, **options: Any) -> list[Path]:
    """Files the task needs that do not exist (empty when the data is complete)."""
    required = task_metadata(name)["required_files"](paths, **options)
    return [Path(p) for p in required if not Path(p).exists()]


def task_has_context(name: str, **options: Any) -> bool:
    """Whether the task, built with ``options``, carries a context set (cheap)."""
    return bool(task_metadata(name)["has_context"](**options))


def task_manifest(name: str, paths: DataPaths, **options: Any):
    """The :class:`bench.data.ManifestEntry` list of a task with these options."""
    from bench.data import ManifestEntry

    meta = task_metadata(name)
    if meta["manifest"] is not None:
        return meta["manifest"](paths, **options)
    return [ManifestEntry(Path(p), "file") for p in meta["required_files"](paths, **options)]


def create_task(
    name: str, paths: DataPaths, limits: SizeLimits | None = None, **options: Any
) -> TaskData:
    """Builds a task by name.

    Args:
        name: Registered task name.
        paths: Dataset locations.
        limits: Split size caps; None keeps everything.
        **options: Task-specific options from the config (e.g. held-out classes).

    Raises:
        FileNotFoundError: If a required file is missing (names the file and the fix).
    """
    _import_all()
    builder = TASKS.get(name)
    missing = missing_task_files(name, paths, **options)
    if missing:
        raise FileNotFoundError(
            f"task {name!r} needs {missing[0]} which does not exist; "
            "set data.root (or the task's data path) in the config, or install the data"
        )
    return builder(paths, limits or SizeLimits(), **options)


__all__ = [
    "OOD_LABEL",
    "DataPaths",
    "SizeLimits",
    "Split",
    "SplitInfo",
    "TaskData",
    "create_task",
    "list_tasks",
    "missing_task_files",
    "register_task",
    "task_has_context",
    "task_manifest",
    "task_metadata",
]
