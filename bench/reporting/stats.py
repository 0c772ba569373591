"""Paired bootstrap intervals over test examples and significance tests against a reference.

For one (task, backbone), every run (method x seed) predicted the same evaluation
examples in the same order. A bootstrap replicate draws ``N`` examples with replacement
from a split, and the *same* draw is applied to every run: the comparison of two methods
is paired, so the spread of their difference excludes the example-sampling noise both
share. A replicate is represented by its resampling counts ``w`` (``w_i`` = how often
example ``i`` was drawn), and every metric is evaluated as the metric of the resampled
multiset; with integer counts this is exactly :mod:`bench.metrics` on the resampled
arrays (``tests/test_stats.py`` checks it against direct computation).

Per run, the replicates of derived quantities are formed replicate by replicate (the
mean over shift splits, the mean over OOD splits, the base-to-new harmonic mean); a
method's replicate is the mean of its seeds' replicates, which is the bootstrap
distribution of the seed mean reported in the tables. From them:

* the 95% percentile interval of the method's value, after centring the replicates on the
  full-sample value (:func:`centred`: binned metrics such as ECE are biased upwards under
  resampling, and an uncentred interval can miss the value it describes);
* the difference to the reference method (centred likewise), its interval, and the two-sided
  bootstrap p-value ``p = min(1, 2 (1 + #{Δ* on the far side of 0}) / (B + 1))``, the
  smallest level at which the percentile interval of the difference excludes zero
  (with the ``+1`` correction, so ``p`` is never 0 from finitely many replicates);
* Holm's step-down adjustment of the p-values of all methods compared with the reference
  on one (task, backbone, block, metric), so "significant" controls the family-wise error
  over the methods of a table column.

Which splits a replicate resamples independently: each evaluation split on its own; an
OOD split's AUROC resamples its OOD examples and reuses the id split's draw for the id
examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics.calibration import _equal_width_index
from bench.metrics.ood import TPR_LEVEL
from bench.metrics.scoring import N_BINS

#: Metrics of labelled splits (id, shift, new) with a bootstrap, and their per-example inputs.
LABELLED_METRICS = ("cls/acc", "cal/ece", "cls/nll", "sc/aurc")
#: Metrics of OOD splits with a bootstrap (MSP score, as in the leaderboards).
OOD_METRICS = ("ood/auroc_msp", "ood/fpr95_msp")
#: Block names of the derived quantities (the ``split`` column of the summary table).
SHIFT_MEAN = "shift (mean)"
OOD_MEAN = "ood (mean)"
BASE_TO_NEW = "base-to-new"
HARMONIC_MEAN = "base_new/hm"
#: Most resampling-count entries held in memory at once (rows x examples).
CHUNK_ENTRIES = 4_000_000

STAT_COLUMNS = [
    "task",
    "backbone",
    "method",
    "split",
    "metric",
    "boot_estimate",
    "ci_low",
    "ci_high",
    "reference",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_holm",
    "significant",
    "n_boot",
]


@dataclass
class RunExamples:
    """Per-example arrays of one run (see :func:`bench.reporting.score.load_examples`).

    Attributes:
        method: Method name (``<method>+ens`` for deep ensembles).
        seed: Seed label (``"0"``, ``"ensemble"``).
        kinds: ``{split: kind}``.
        arrays: ``{split: {"confidence", "correct", "nll"}}`` (OOD splits: confidence only).
    """

    method: str
    seed: str
    kinds: dict[str, str]
    arrays: dict[str, dict[str, np.ndarray]]


# --- resampling ---------------------------------------------------------------------------


def resample_indices(n: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """``[rows, n]`` example indices drawn uniformly with replacement."""
    return rng.integers(0, n, size=(rows, n))


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Resampling counts ``w[r, i]`` = how often example ``i`` is in row ``r`` of ``indices``."""
    rows = indices.shape[0]
    flat = (np.arange(rows)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _stream_key(*parts: str) -> int:
    """A stable 64-bit integer from strings (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def chunk_counts(
    n: int, n_boot: int, seed: int, key: Sequence[str], rows_per_chunk: int
) -> list[tuple[slice, np.ndarray]]:
    """Resampling counts of ``n_boot`` replicates in chunks of ``rows_per_chunk`` rows.

    The draw depends only on ``(seed, key, chunk, rows_per_chunk)``, never on which runs
    are scored, so every method sees the same replicates (pairing) and reruns reproduce
    them.

    Returns:
        ``[(replicate slice, counts [rows, n]), ...]`` covering ``range(n_boot)``.
    """
    out = []
    for chunk, start in enumerate(range(0, n_boot, rows_per_chunk)):
        rows = min(rows_per_chunk, n_boot - start)
        rng = np.random.default_rng([seed, _stream_key(*key), chunk])
        out.append(
            (slice(start, start + rows), counts_from_indices(resample_indices(n, rows, rng), n))
        )
    return out


# --- metrics of resampled multisets (rows of counts) --------------------------------------
#
# Everything that does not depend on the draw (sort orders, tie groups, bins) is computed
# once per run and split by the ``prepare_*`` functions; a chunk of draws then costs a few
# gathers, cumulative sums and one small matrix product per run.


@dataclass
class PreparedLabelled:
    """Draw-independent quantities of a labelled split (one run)."""

    correct: np.ndarray  # float64 [N]
    nll: np.ndarray  # float64 [N]
    gap: np.ndarray  # float64 [N, bins]: correct - confidence in the example's ECE bin
    order: np.ndarray  # examples by decreasing confidence (stable)
    errors_sorted: np.ndarray  # float64 [N], 1 - correct in that order
    group_ends: np.ndarray  # last position of each tie group of equal confidence


def prepare_labelled(confidence: np.ndarray, correct: np.ndarray, nll: np.ndarray | None = None):
    """:class:`PreparedLabelled` of one split (``nll`` may be omitted for ECE/AURC only)."""
    n = confidence.shape[0]
    correct = correct.astype(bool)
    bins = _equal_width_index(confidence, N_BINS)
    gap = np.zeros((n, N_BINS))
    gap[np.arange(n), bins] = correct - confidence.astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    ends = np.append(np.flatnonzero(np.diff(sorted_conf)), n - 1)
    return PreparedLabelled(
        correct=correct.astype(np.float64),
        nll=np.zeros(n) if nll is None else np.asarray(nll, dtype=np.float64),
        gap=gap,
        order=order,
        errors_sorted=(~correct[order]).astype(np.float64),
        group_ends=ends,
    )


def weighted_accuracy(w: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``cls/acc`` of each row of counts ``w [R, N]``."""
    return w @ correct.astype(np.float64) / w.shape[1]


def weighted_nll(w: np.ndarray, nll: np.ndarray) -> np.ndarray:
    """``cls/nll`` (mean per-example ``-log p_y``) of each row of counts."""
    return w @ nll / w.shape[1]


def _ece(w: np.ndarray, prepared: PreparedLabelled) -> np.ndarray:
    return np.abs(w @ prepared.gap).sum(axis=1) / w.shape[1]


def weighted_ece(w: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``cal/ece`` (equal-width bins of ``bench.metrics``) of each row of counts.

    ``ECE = (1/N) sum_b |sum_{i in b} w_i (correct_i - c_i)|``.
    """
    return _ece(w, prepare_labelled(confidence, correct))


def _aurc(w: np.ndarray, prepared: PreparedLabelled) -> np.ndarray:
    w_sorted = w[:, prepared.order]
    k = np.cumsum(w_sorted, axis=1)[:, prepared.group_ends]
    e = np.cumsum(w_sorted * prepared.errors_sorted, axis=1)[:, prepared.group_ends]
    n_g = np.diff(k, axis=1, prepend=0.0)
    risk = np.divide(e, k, out=np.zeros_like(k), where=k > 0)
    return (n_g * risk).sum(axis=1) / w.shape[1]


def weighted_aurc(w: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``sc/aurc`` of each row of counts, with ``bench.metrics``' tie convention.

    Tie groups of equal confidence enter together: ``AURC = (1/N) sum_g n_g e_g / k_g`` with
    ``n_g`` the (resampled) size of group ``g``, ``k_g`` and ``e_g`` the cumulative counts
    of examples and errors down to it. Groups absent from a replicate contribute nothing.
    """
    return _aurc(w, prepare_labelled(confidence, correct))


@dataclass
class PreparedOOD:
    """Draw-independent quantities of an (id split, OOD split) pair of scores (one run)."""

    id_order: np.ndarray  # id examples by increasing score
    ood_order: np.ndarray  # OOD examples by increasing score
    above: np.ndarray  # per OOD example (increasing order): id examples with score <= s
    below: np.ndarray  # per OOD example: id examples with score < s
    distinct_id_left: np.ndarray  # per distinct id score: its first position among sorted ids
    ood_left_of_distinct: np.ndarray  # per distinct id score: OOD examples with score < it


def prepare_ood(score_id: np.ndarray, score_ood: np.ndarray) -> PreparedOOD:
    """:class:`PreparedOOD` for MSP-style scores (higher = more in-distribution)."""
    score_id = np.asarray(score_id, dtype=np.float64)
    score_ood = np.asarray(score_ood, dtype=np.float64)
    id_order = np.argsort(score_id, kind="stable")
    ood_order = np.argsort(score_ood, kind="stable")
    sorted_id, sorted_ood = score_id[id_order], score_ood[ood_order]
    distinct_left = np.flatnonzero(np.diff(sorted_id, prepend=-np.inf))
    return PreparedOOD(
        id_order=id_order,
        ood_order=ood_order,
        above=np.searchsorted(sorted_id, sorted_ood, side="right"),
        below=np.searchsorted(sorted_id, sorted_ood, side="left"),
        distinct_id_left=distinct_left,
        ood_left_of_distinct=np.searchsorted(sorted_ood, sorted_id[distinct_left], side="left"),
    )


def _cumulative(w_sorted: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums ``C[:, i] = sum_{j < i} w[:, j]`` (length N + 1)."""
    out = np.zeros((w_sorted.shape[0], w_sorted.shape[1] + 1))
    np.cumsum(w_sorted, axis=1, out=out[:, 1:])
    return out


def _ood_metrics(
    w_id: np.ndarray, w_ood: np.ndarray, prepared: PreparedOOD, level: float = TPR_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    n_id, n_ood = w_id.shape[1], w_ood.shape[1]
    id_cum = _cumulative(w_id[:, prepared.id_order])
    ood_sorted = w_ood[:, prepared.ood_order]
    # AUROC = P(s_id > s_ood) + P(s_id = s_ood) / 2 over resampled pairs.
    id_above = n_id - id_cum[:, prepared.above]
    id_equal = id_cum[:, prepared.above] - id_cum[:, prepared.below]
    auroc = (ood_sorted * (id_above + 0.5 * id_equal)).sum(axis=1) / (n_id * n_ood)
    # FPR at the largest id score t whose resampled TPR(t) = mass(s_id >= t) / N reaches level.
    tpr = (n_id - id_cum[:, prepared.distinct_id_left]) / n_id
    reaches = tpr >= level
    last = reaches.shape[1] - 1 - np.argmax(reaches[:, ::-1], axis=1)
    ood_cum = _cumulative(ood_sorted)
    rows = np.arange(w_id.shape[0])
    fpr = (n_ood - ood_cum[rows, prepared.ood_left_of_distinct[last]]) / n_ood
    return auroc, fpr


def weighted_auroc(
    w_id: np.ndarray, w_ood: np.ndarray, score_id: np.ndarray, score_ood: np.ndarray
) -> np.ndarray:
    """``ood/auroc_*`` of each pair of count rows: ``P(s_id > s_ood) + P(s_id = s_ood) / 2``."""
    return _ood_metrics(w_id, w_ood, prepare_ood(score_id, score_ood))[0]


def weighted_fpr_at_tpr(
    w_id: np.ndarray, w_ood: np.ndarray, score_id: np.ndarray, score_ood: np.ndarray
) -> np.ndarray:
    """``ood/fpr95_*`` of each pair of count rows (first threshold from the top reaching TPR)."""
    return _ood_metrics(w_id, w_ood, prepare_ood(score_id, score_ood))[1]


def labelled_replicates(w: np.ndarray, arrays: dict | PreparedLabelled) -> dict[str, np.ndarray]:
    """Every metric of :data:`LABELLED_METRICS` for each row of counts."""
    prepared = (
        arrays
        if isinstance(arrays, PreparedLabelled)
        else prepare_labelled(arrays["confidence"], arrays["correct"], arrays["nll"])
    )
    return {
        "cls/acc": weighted_accuracy(w, prepared.correct),
        "cal/ece": _ece(w, prepared),
        "cls/nll": weighted_nll(w, prepared.nll),
        "sc/aurc": _aurc(w, prepared),
    }


def ood_replicates(
    w_id: np.ndarray, w_ood: np.ndarray, id_arrays: dict, ood_arrays: dict | None = None
) -> dict[str, np.ndarray]:
    """Every metric of :data:`OOD_METRICS` (MSP score) for each pair of count rows.

    ``id_arrays`` may be a :class:`PreparedOOD` (then ``ood_arrays`` is not needed).
    """
    prepared = (
        id_arrays
        if isinstance(id_arrays, PreparedOOD)
        else prepare_ood(id_arrays["confidence"], ood_arrays["confidence"])
    )
    auroc, fpr = _ood_metrics(w_id, w_ood, prepared)
    return {"ood/auroc_msp": auroc, "ood/fpr95_msp": fpr}


# --- per (task, backbone) ------------------------------------------------------------------


def _check_aligned(runs: Sequence[RunExamples], where: str) -> dict[str, str]:
    """The splits every run has, by kind; raises if runs saw different examples.

    Base-to-new *new* splits are predicted only by open-vocabulary methods, so a run
    without one is expected: such a split is left out of the paired bootstrap unless
    every run has it. Any other split missing from a run is an error, whichever run
    comes first.
    """
    shared = {
        split: kind
        for split, kind in runs[0].kinds.items()
        if all(split in run.kinds for run in runs)
    }
    for run in runs:
        for other in runs:
            for split, kind in other.kinds.items():
                if kind != "new" and split not in run.kinds:
                    raise ValueError(
                        f"{where}: {run.method} seed {run.seed} has no split {split!r} that "
                        f"{other.method} seed {other.seed} has; a paired bootstrap needs the "
                        "same evaluation splits in every run (rescore both with `bench score`)"
                    )
    first = runs[0]
    for run in runs[1:]:
        for split in shared:
            n_first = first.arrays[split]["confidence"].shape[0]
            n_run = run.arrays[split]["confidence"].shape[0]
            if n_first != n_run:
                raise ValueError(
                    f"{where}: split {split!r} has {n_run} examples in {run.method} seed "
                    f"{run.seed} but {n_first} in {first.method} seed {first.seed}; runs of one "
                    "task must be scored on the same examples (same limits and data_seed)"
                )
    return shared


def run_replicates(
    runs: Sequence[RunExamples],
    task: str,
    backbone: str,
    n_boot: int,
    seed: int,
    with_point: bool = True,
) -> list[dict[tuple[str, str], np.ndarray]]:
    """Bootstrap replicates ``[n_boot]`` of every (split or block, metric) of each run.

    Args:
        runs: The runs of one (task, backbone); they must share splits and example counts.
        task: Task name (part of the resampling stream's key).
        backbone: Backbone name (idem).
        n_boot: Number of replicates ``B``.
        seed: Base seed of the resampling streams.
        with_point: Also return the full-sample value as element ``B`` of each array
            (counts of one), so point and replicates come from the same code.

    Returns:
        Per run, ``{(split, metric): array [B (+1)]}`` including the blocks
        :data:`SHIFT_MEAN`, :data:`OOD_MEAN` and :data:`BASE_TO_NEW`.
    """
    where = f"{task}/{backbone}"
    kinds = _check_aligned(runs, where)
    id_splits = [s for s, k in kinds.items() if k == "id"]
    if len(id_splits) != 1:
        raise ValueError(f"{where}: expected exactly one id split, found {id_splits}")
    id_split = id_splits[0]
    total = n_boot + int(with_point)
    out: list[dict[tuple[str, str], np.ndarray]] = [{} for _ in runs]
    # One chunking for all splits of the task, so an OOD split's chunks line up with the
    # id split's (AUROC pairs them) and memory stays bounded by the largest split.
    largest = max(a["confidence"].shape[0] for a in runs[0].arrays.values())
    rows_per_chunk = max(1, min(n_boot, CHUNK_ENTRIES // max(largest, 1)))

    def counts(split: str) -> list[tuple[slice, np.ndarray]]:
        n = runs[0].arrays[split]["confidence"].shape[0]
        chunks = chunk_counts(n, n_boot, seed, (task, backbone, split), rows_per_chunk)
        if with_point:
            chunks.append((slice(n_boot, n_boot + 1), np.ones((1, n))))
        return chunks

    def store(run_index: int, split: str, where_: slice, values: dict[str, np.ndarray]) -> None:
        for metric, array in values.items():
            key = (split, metric)
            if key not in out[run_index]:
                out[run_index][key] = np.empty(total)
            out[run_index][key][where_] = array

    labelled = [s for s, k in kinds.items() if k in ("id", "shift", "new")]
    for split in labelled:
        prepared = [
            prepare_labelled(a["confidence"], a["correct"], a["nll"])
            for a in (run.arrays[split] for run in runs)
        ]
        for where_, w in counts(split):
            for i, run_prepared in enumerate(prepared):
                store(i, split, where_, labelled_replicates(w, run_prepared))
    ood = [s for s, k in kinds.items() if k == "ood"]
    if ood:
        id_counts = counts(id_split)
        for split in ood:
            prepared_ood = [
                prepare_ood(run.arrays[id_split]["confidence"], run.arrays[split]["confidence"])
                for run in runs
            ]
            for (where_, w_id), (_, w_ood) in zip(id_counts, counts(split), strict=True):
                for i, run_prepared in enumerate(prepared_ood):
                    store(i, split, where_, ood_replicates(w_id, w_ood, run_prepared))
    shifts = [s for s, k in kinds.items() if k == "shift"]
    news = [s for s, k in kinds.items() if k == "new"]
    for replicates in out:
        _add_blocks(replicates, shifts, ood, id_split, news)
    return out


def _add_blocks(
    replicates: dict[tuple[str, str], np.ndarray],
    shifts: list[str],
    ood: list[str],
    id_split: str,
    news: list[str],
) -> None:
    """Adds the derived blocks to one run's replicates, replicate by replicate."""
    for block, members, metrics in (
        (SHIFT_MEAN, shifts, LABELLED_METRICS),
        (OOD_MEAN, ood, OOD_METRICS),
    ):
        if members:
            for metric in metrics:
                replicates[(block, metric)] = np.mean(
                    [replicates[(s, metric)] for s in members], axis=0
                )
    if news:
        base = replicates[(id_split, "cls/acc")]
        new = np.mean([replicates[(s, "cls/acc")] for s in news], axis=0)
        replicates[(BASE_TO_NEW, HARMONIC_MEAN)] = harmonic_mean(base, new)


def harmonic_mean(base: Any, new: Any) -> np.ndarray:
    """``2 b n / (b + n)``, 0 where both are 0 (the CoCoOp base-to-new headline).

    NaN stays NaN (a run without a new-class split has no harmonic mean). The one
    definition used by the bootstrap, the summary table and ``leaderboard.csv``.
    """
    base = np.asarray(base, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    total = base + new
    out = np.divide(2 * base * new, total, out=np.zeros_like(total), where=total > 0)
    return np.where(np.isnan(total), np.nan, out)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries are left out and stay NaN).

    Sorted ascending, ``p_(j)`` becomes ``max_{i <= j} min(1, (m - i + 1) p_(i))`` with ``m``
    the number of finite p-values.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of a difference being zero (module docstring)."""
    d = differences[np.isfinite(differences)]
    if d.size == 0:
        return float("nan")
    far_side = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    return float(min(1.0, 2.0 * (1 + far_side) / (d.size + 1)))


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval (``numpy.quantile``'s linear interpolation)."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def centred(replicates: np.ndarray, point: float) -> np.ndarray:
    """Replicates shifted so their mean is the full-sample value (bootstrap bias removed).

    Resampling with replacement duplicates examples, which inflates binned and ranked
    metrics: on 200 examples the replicates of ECE sit a few points above the sample's
    ECE, so a plain percentile interval can exclude the value it describes. Subtracting
    the bootstrap estimate of the bias, ``mean(theta*) - theta_hat``, keeps the
    replicates' spread and centres them on the reported value; for means (accuracy,
    NLL) the shift is ~0.
    """
    return replicates - (np.mean(replicates) - point)


def compare_methods(
    method_replicates: dict[str, dict[tuple[str, str], np.ndarray]],
    reference: str | None,
    level: float = 0.95,
    alpha: float = 0.05,
    points: dict[tuple[str, str, str], float] | None = None,
) -> list[dict]:
    """Intervals and paired tests against ``reference`` from seed-averaged replicates.

    Args:
        method_replicates: ``{method: {(split, metric): replicates [B]}}`` on shared draws.
        reference: The reference method (no tests if ``None`` or absent).
        level: Interval coverage.
        alpha: Family-wise level of the Holm-adjusted tests.
        points: ``{(method, split, metric): full-sample value}``; when given, replicates
            and differences are bias-centred on them (:func:`centred`) before intervals
            and p-values.

    Returns:
        One dict per (method, split, metric) with the :data:`STAT_COLUMNS` after
        ``method`` (task and backbone are added by the caller).
    """
    rows = []
    has_reference = reference is not None and reference in method_replicates
    for method, replicates in method_replicates.items():
        for (split, metric), raw in replicates.items():
            point = None if points is None else points.get((method, split, metric))
            values = raw if point is None else centred(raw, point)
            low, high = percentile_interval(values, level)
            row = {
                "method": method,
                "split": split,
                "metric": metric,
                "boot_estimate": float(np.mean(raw)),
                "ci_low": low,
                "ci_high": high,
                "reference": reference if has_reference else None,
                "diff": np.nan,
                "diff_ci_low": np.nan,
                "diff_ci_high": np.nan,
                "p_value": np.nan,
                "n_boot": int(values.shape[0]),
            }
            ref_values = (
                method_replicates[reference].get((split, metric)) if has_reference else None
            )
            if method != reference and ref_values is not None:
                diff = raw - ref_values
                ref_point = None if points is None else points.get((reference, split, metric))
                if point is not None and ref_point is not None:
                    diff = centred(diff, point - ref_point)
                row["diff"] = float(np.mean(diff))
                row["diff_ci_low"], row["diff_ci_high"] = percentile_interval(diff, level)
                row["p_value"] = bootstrap_p_value(diff)
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return []
    frame["p_holm"] = np.nan
    for _, index in frame.groupby(["split", "metric"]).groups.items():
        frame.loc[index, "p_holm"] = holm(frame.loc[index, "p_value"].to_numpy())
    frame["significant"] = frame["p_holm"] < alpha
    return frame.to_dict("records")


def bootstrap_task(
    runs: Sequence[RunExamples],
    task: str,
    backbone: str,
    reference: str | None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Intervals and tests of every method of one (task, backbone); see module docstring.

    Returns:
        A frame with :data:`STAT_COLUMNS` plus ``point`` (the seed mean of the full-sample
        values, equal to the tidy table's mean).
    """
    if not runs:
        return pd.DataFrame(columns=[*STAT_COLUMNS, "point"])
    per_run = run_replicates(runs, task, backbone, n_boot, seed, with_point=True)
    by_method: dict[str, list[dict[tuple[str, str], np.ndarray]]] = {}
    for run, replicates in zip(runs, per_run, strict=True):
        by_method.setdefault(run.method, []).append(replicates)
    seed_means = {}
    points = {}
    for method, run_list in by_method.items():
        # In the first run's order (a set's order changes with the process's hash seed).
        keys = [k for k in run_list[0] if all(k in r for r in run_list[1:])]
        stacked = {k: np.mean([r[k] for r in run_list], axis=0) for k in keys}
        seed_means[method] = {k: v[:n_boot] for k, v in stacked.items()}
        points.update({(method, *k): float(v[n_boot]) for k, v in stacked.items()})
    if progress is not None:
        progress(f"{task}/{backbone}: {len(runs)} runs, {n_boot} paired bootstrap replicates")
    rows = compare_methods(seed_means, reference, level, alpha, points=points)
    frame = pd.DataFrame(rows)
    frame.insert(0, "backbone", backbone)
    frame.insert(0, "task", task)
    frame["point"] = [points[(r.method, r.split, r.metric)] for r in frame.itertuples()]
    return frame[[*STAT_COLUMNS, "point"]]
