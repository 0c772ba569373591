"""What every method implements, and the context a fit job hands it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.io import SplitPrediction


@dataclass
class FitContext:
    """Everything a method may use.

    Built lazily, so a features-only method never loads raw data or the backbone.

    Attributes:
        task_name: Registered task name.
        backbone_name: Registered backbone name.
        seed: Training seed of the cell.
        engine: :class:`bench.engine.Engine`.
        load_task: Returns the built :class:`bench.tasks.TaskData`.
        load_backbone: Returns a fresh :class:`bench.backbones.base.Backbone`.
        load_features: Returns the cached :class:`bench.engine.features.FeatureSet`.
        checkpoint: The job's :class:`bench.engine.checkpoint.Checkpointer` (None: no
            checkpoints); a method with a training loop passes it on, so a preempted
            job resumes where it stopped.
        load_other_task: ``name -> TaskData``: builds another registered task with the
            grid's data paths (and its options and caps where the grid runs it), for
            methods that draw unlabelled inputs from another dataset (UAP's context).
        weights_path: Where a method that supports ``+wise`` saves its fine-tuned
            weights (:func:`bench.methods.wise_ft.save_finetuned_weights`); None: the
            grid does not interpolate this method, nothing is saved.
    """

    task_name: str
    backbone_name: str
    seed: int
    engine: Any
    load_task: Callable[[], Any]
    load_backbone: Callable[[], Any]
    load_features: Callable[[], Any]
    checkpoint: Any = None
    load_other_task: Callable[[str], Any] | None = None
    weights_path: str | None = None
    _cache: dict = field(default_factory=dict)

    def task(self):
        if "task" not in self._cache:
            self._cache["task"] = self.load_task()
        return self._cache["task"]

    def backbone(self):
        """A new backbone each call: fine-tuning mutates it."""
        return self.load_backbone()

    def build_task(self, name: str):
        """Another registered task (see ``load_other_task``), built once per name."""
        if self.load_other_task is None:
            raise ValueError(f"this fit job cannot build other tasks (asked for {name!r})")
        key = f"other:{name}"
        if key not in self._cache:
            self._cache[key] = self.load_other_task(name)
        return self._cache[key]

    def classnames(self) -> list[str]:
        """Class names from whichever of the task or the feature cache is loaded."""
        if "task" in self._cache or "features" not in self._cache:
            return list(self.task().classnames)
        return list(self._cache["features"].classnames)

    def features(self):
        if "features" not in self._cache:
            self._cache["features"] = self.load_features()
        return self._cache["features"]


def closed_vocabulary_view(data):
    """A task or feature set without its open-vocabulary splits (base-to-new *new*).

    A method with a fixed classifier head cannot name classes it never saw; it gets
    this view, and its predictions file simply has no such split.
    """
    splits = {n: s for n, s in data.splits.items() if not s.info.open_vocabulary}
    if len(splits) == len(data.splits):
        return data
    return dataclasses.replace(data, splits=splits)


class Method:
    """Base class: built from a hyperparameter dataclass, ``run`` fits and predicts.

    Subclasses set ``Hparams`` (a dataclass whose defaults are the published ones;
    ``config/methods/<name>.yaml`` repeats them for the grid, a test keeps the two
    equal) and implement :meth:`run`.
    """

    Hparams: ClassVar[type]

    def __init__(self, **hparams: Any) -> None:
        # IVON's own settings travel as one block beside the method's hyperparameters
        # (``<method>@ivon``; see bench.engine.optimizers.IVONSettings).
        self.ivon_settings: dict[str, Any] = dict(hparams.pop("ivon", None) or {})
        valid = {f.name for f in dataclasses.fields(self.Hparams)}
        unknown = sorted(set(hparams) - valid)
        if unknown:
            name = type(self).__name__
            raise TypeError(f"{name}: unknown hyperparameter(s) {unknown}; valid: {sorted(valid)}")
        self.hparams = self.Hparams(**hparams)
        self.regularizers: list[str] = []

    def enable_regularizer(self, name: str) -> None:
        """Adds an objective modifier (``coop+dor``: ``dor``) to this method's training.

        The method reads ``self.regularizers`` in :meth:`run`; the registry has already
        checked that it supports ``name`` (``register_method(..., regularizers=...)``).
        """
        self.regularizers.append(name)

    def weight_posterior(self):
        """IVON's settings and an unbound :class:`~bench.engine.optimizers.WeightPosterior`.

        A method passes both to its training loop and predicts through the posterior:
        with AdamW it is the point estimate, with IVON the mean of ``eval_samples`` draws.
        """
        from bench.engine.optimizers import IVONSettings, WeightPosterior

        settings = IVONSettings.from_dict(self.ivon_settings)
        return settings, WeightPosterior(settings.eval_samples)

    def run(self, ctx: FitContext) -> dict[str, SplitPrediction]:
        """Fits and predicts.

        Fits on the training split (and val where the method says so) and returns
        predictions for every evaluation split (val, id, shift, ood).
        """
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Facts about the fit recorded in run.json (chosen regularisation, steps...)."""
        return getattr(self, "_summary", {})
