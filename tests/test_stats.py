"""Bootstrap intervals and paired tests (bench.reporting.stats) against direct computation
and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.metrics import (
    aurc,
    ece_equal_width,
    example_statistics,
    ood_auroc,
    ood_fpr_at_95tpr,
    score_ood,
    score_predictions,
)
from bench.reporting import stats


def _logits(rng, n, c, scale=3.0, labels=None, strength=1.5):
    z = rng.normal(size=(n, c)) * scale
    if labels is not None:
        z[np.arange(n), labels] += strength * scale
    return z.astype(np.float32)


@pytest.fixture
def split_arrays():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=300)
    logits = _logits(rng, 300, 5, labels=labels)
    # Ties: a block of identical rows gives equal confidences (tie groups in AURC/AUROC).
    logits[:40] = logits[0]
    return example_statistics(logits, labels, "logits"), logits, labels


def test_example_statistics_reproduce_the_scored_metrics(split_arrays):
    arrays, logits, labels = split_arrays
    scored = score_predictions(logits, labels, "logits")
    assert arrays["correct"].mean() == pytest.approx(scored["cls/acc"], abs=1e-12)
    assert arrays["nll"].mean() == pytest.approx(scored["cls/nll"], rel=1e-9)
    ones = np.ones((1, labels.shape[0]))
    values = stats.labelled_replicates(ones, arrays)
    for metric in stats.LABELLED_METRICS:
        assert values[metric][0] == pytest.approx(scored[metric], abs=1e-12), metric


def test_weighted_metrics_equal_metrics_of_the_resampled_arrays(split_arrays):
    arrays, _, _ = split_arrays
    n = arrays["confidence"].shape[0]
    indices = stats.resample_indices(n, 25, np.random.default_rng(1))
    w = stats.counts_from_indices(indices, n)
    assert np.all(w.sum(axis=1) == n)
    values = stats.labelled_replicates(w, arrays)
    for r, idx in enumerate(indices):
        conf, correct = arrays["confidence"][idx], arrays["correct"][idx]
        assert values["cls/acc"][r] == pytest.approx(correct.mean(), abs=1e-12)
        assert values["cls/nll"][r] == pytest.approx(arrays["nll"][idx].mean(), rel=1e-12)
        assert values["cal/ece"][r] == pytest.approx(ece_equal_width(conf, correct), abs=1e-12)
        assert values["sc/aurc"][r] == pytest.approx(aurc(conf, correct), abs=1e-12)


def test_weighted_ood_metrics_equal_metrics_of_the_resampled_scores():
    rng = np.random.default_rng(2)
    # Rounded scores create ties between and within the two sets.
    s_id = np.round(rng.beta(5, 2, size=120), 2)
    s_ood = np.round(rng.beta(2, 3, size=80), 2)
    idx_id = stats.resample_indices(120, 30, rng)
    idx_ood = stats.resample_indices(80, 30, rng)
    w_id, w_ood = stats.counts_from_indices(idx_id, 120), stats.counts_from_indices(idx_ood, 80)
    auroc = stats.weighted_auroc(w_id, w_ood, s_id, s_ood)
    fpr = stats.weighted_fpr_at_tpr(w_id, w_ood, s_id, s_ood)
    for r in range(30):
        a, b = s_id[idx_id[r]], s_ood[idx_ood[r]]
        assert auroc[r] == pytest.approx(ood_auroc(a, b), abs=1e-12)
        assert fpr[r] == pytest.approx(ood_fpr_at_95tpr(a, b), abs=1e-12)
        # AUROC as the Mann-Whitney U statistic (scipy) divided by the number of pairs.
        u = scipy_stats.mannwhitneyu(a, b).statistic
        assert auroc[r] == pytest.approx(u / (a.size * b.size), abs=1e-12)


def test_ood_point_values_match_score_ood():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=150)
    id_logits = _logits(rng, 150, 4, labels=labels)
    ood_logits = _logits(rng, 90, 4)
    scored = score_ood(id_logits, ood_logits, "logits")
    id_arrays = example_statistics(id_logits, labels, "logits")
    ood_arrays = example_statistics(ood_logits, None, "logits")
    values = stats.ood_replicates(np.ones((1, 150)), np.ones((1, 90)), id_arrays, ood_arrays)
    assert values["ood/auroc_msp"][0] == pytest.approx(scored["ood/auroc_msp"], abs=1e-12)
    assert values["ood/fpr95_msp"][0] == pytest.approx(scored["ood/fpr95_msp"], abs=1e-12)


def test_percentile_interval_of_a_mean_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(4)
    correct = rng.random(400) < 0.7
    n_boot = 4000
    w = stats.counts_from_indices(stats.resample_indices(400, n_boot, rng), 400)
    ours = stats.percentile_interval(stats.weighted_accuracy(w, correct))
    theirs = scipy_stats.bootstrap(
        (correct.astype(float),),
        np.mean,
        n_resamples=n_boot,
        method="percentile",
        random_state=np.random.default_rng(5),
    ).confidence_interval
    # Two independent Monte Carlo estimates of the same quantiles (se ~ 0.003 here).
    assert ours[0] == pytest.approx(theirs.low, abs=0.012)
    assert ours[1] == pytest.approx(theirs.high, abs=0.012)


def test_paired_p_value_agrees_with_the_normal_approximation():
    """Paired accuracy difference: bootstrap p vs. z-test on per-example differences."""
    rng = np.random.default_rng(6)
    n = 2000
    a = rng.random(n) < 0.75
    b = np.where(rng.random(n) < 0.85, a, rng.random(n) < 0.68)
    w = stats.counts_from_indices(stats.resample_indices(n, 4000, rng), n)
    diff = stats.weighted_accuracy(w, a) - stats.weighted_accuracy(w, b)
    ours = stats.bootstrap_p_value(diff)
    d = a.astype(float) - b.astype(float)
    z = d.mean() / (d.std(ddof=1) / np.sqrt(n))
    assert 0.001 < ours < 0.2  # the regime where the comparison is informative
    # Compared on the z scale, where the Monte Carlo error of B = 4000 is about 0.05.
    assert scipy_stats.norm.isf(ours / 2) == pytest.approx(abs(z), abs=0.15)


def test_bootstrap_p_value_edges():
    assert stats.bootstrap_p_value(np.full(99, 0.1)) == pytest.approx(2 / 100)
    assert stats.bootstrap_p_value(np.zeros(99)) == 1.0
    symmetric = np.linspace(-1, 1, 101)
    assert stats.bootstrap_p_value(symmetric) == 1.0
    assert np.isnan(stats.bootstrap_p_value(np.array([np.nan])))


def test_holm_matches_a_hand_worked_example():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]
    # Sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> 0.06.
    expected = [0.03, 0.06, 0.06, np.nan, 0.02]
    np.testing.assert_allclose(stats.holm(p), expected, equal_nan=True)
    assert np.all(np.isnan(stats.holm([np.nan, np.nan])))


def _run(method, seed, rng, labels, logits_shift, ood=True, accuracy_boost=1.5):
    n = labels.shape[0]
    id_logits = _logits(rng, n, 4, labels=labels, strength=accuracy_boost)
    shift_logits = _logits(rng, n, 4, labels=labels, strength=accuracy_boost / 2)
    kinds = {"test": "id", "shift_a": "shift", "shift_b": "shift"}
    arrays = {
        "test": example_statistics(id_logits, labels, "logits"),
        "shift_a": example_statistics(shift_logits, labels, "logits"),
        "shift_b": example_statistics(shift_logits + logits_shift, labels, "logits"),
    }
    if ood:
        kinds["ood_x"] = "ood"
        arrays["ood_x"] = example_statistics(_logits(rng, 60, 4), None, "logits")
    return stats.RunExamples(method, str(seed), kinds, arrays)


def test_bootstrap_task_pairs_methods_and_averages_seeds():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, size=120)
    runs = [
        _run(m, s, rng, labels, 0.3, accuracy_boost=boost)
        for m, boost in (("ref", 1.0), ("better", 2.5))
        for s in (0, 1)
    ]
    frame = stats.bootstrap_task(runs, "t", "b", reference="ref", n_boot=300, seed=0)
    row = frame.set_index(["method", "split", "metric"])
    # Point = seed mean of the full-sample metric.
    for method in ("ref", "better"):
        accs = [r.arrays["test"]["correct"].mean() for r in runs if r.method == method]
        assert row.loc[(method, "test", "cls/acc"), "point"] == pytest.approx(np.mean(accs))
        shift = [
            np.mean([r.arrays[s]["correct"].mean() for s in ("shift_a", "shift_b")])
            for r in runs
            if r.method == method
        ]
        assert row.loc[(method, stats.SHIFT_MEAN, "cls/acc"), "point"] == pytest.approx(
            np.mean(shift)
        )
    better = row.loc[("better", "test", "cls/acc")]
    assert better["ci_low"] <= better["point"] <= better["ci_high"]
    assert better["diff"] > 0 and better["significant"] and better["p_holm"] < 0.05
    assert np.isnan(row.loc[("ref", "test", "cls/acc"), "p_value"])
    assert ("better", stats.OOD_MEAN, "ood/auroc_msp") in row.index
    # Same seed, same draws: rerunning reproduces every interval.
    again = stats.bootstrap_task(runs, "t", "b", reference="ref", n_boot=300, seed=0)
    np.testing.assert_array_equal(frame["ci_low"], again["ci_low"])


def test_replicates_are_paired_across_methods():
    """Two methods with identical predictions have identical replicates (zero difference)."""
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 4, size=80)
    run = _run("a", 0, rng, labels, 0.0)
    twin = stats.RunExamples("b", "0", run.kinds, run.arrays)
    frame = stats.bootstrap_task([run, twin], "t", "b", reference="a", n_boot=200)
    b_rows = frame[frame.method == "b"]
    assert np.all(b_rows["diff"] == 0) and np.all(b_rows["p_value"] == 1.0)


def test_misaligned_runs_are_rejected_with_the_fix():
    rng = np.random.default_rng(9)
    run = _run("a", 0, rng, rng.integers(0, 4, size=50), 0.0)
    other = _run("b", 0, rng, rng.integers(0, 4, size=60), 0.0)
    with pytest.raises(ValueError, match="same examples"):
        stats.bootstrap_task([run, other], "t", "b", reference="a", n_boot=10)


def test_new_class_splits_may_be_missing_whatever_the_run_order():
    """Only open-vocabulary methods predict base-to-new *new* splits; a closed-vocabulary
    run without one is fine before or after them, a missing id/shift/ood split is not."""
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 4, size=60)
    closed = _run("probe", 0, rng, labels, 0.0)
    open_vocab = _run("prompt", 0, rng, labels, 0.0)
    open_vocab.kinds["test_new"] = "new"
    open_vocab.arrays["test_new"] = open_vocab.arrays["test"]
    for order in ([closed, open_vocab], [open_vocab, closed]):
        frame = stats.bootstrap_task(order, "t", "b", reference="probe", n_boot=20)
        assert "test_new" not in set(frame["split"])  # not shared: left out of the bootstrap
    short = _run("short", 0, rng, labels, 0.0, ood=False)
    for order in ([short, closed], [closed, short]):
        with pytest.raises(ValueError, match="has no split 'ood_x'"):
            stats.bootstrap_task(order, "t", "b", reference="probe", n_boot=10)


def test_base_to_new_harmonic_mean_block():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 4, size=100)
    base = example_statistics(_logits(rng, 100, 4, labels=labels), labels, "logits")
    new = example_statistics(_logits(rng, 100, 4, labels=labels, strength=0.5), labels, "logits")
    run = stats.RunExamples("m", "0", {"test": "id", "new": "new"}, {"test": base, "new": new})
    frame = stats.bootstrap_task([run], "t", "b", reference=None, n_boot=50)
    hm = frame.set_index(["split", "metric"]).loc[(stats.BASE_TO_NEW, stats.HARMONIC_MEAN)]
    b, n = base["correct"].mean(), new["correct"].mean()
    assert hm["point"] == pytest.approx(2 * b * n / (b + n))
    assert stats.harmonic_mean(np.array([0.0]), np.array([0.0]))[0] == 0.0


def test_intervals_are_centred_on_the_reported_value():
    """ECE is biased upwards under resampling; the interval must still describe the value."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, size=200)
    run = _run("m", 0, rng, labels, 0.0, ood=False)
    frame = stats.bootstrap_task([run], "t", "b", reference=None, n_boot=400)
    ece = frame.set_index(["split", "metric"]).loc[("test", "cal/ece")]
    assert ece["boot_estimate"] > ece["point"]  # the raw replicates sit above the value
    assert ece["ci_low"] <= ece["point"] <= ece["ci_high"]
    # A mean is unbiased: centring leaves accuracy's interval where it was.
    acc = frame.set_index(["split", "metric"]).loc[("test", "cls/acc")]
    assert acc["boot_estimate"] == pytest.approx(acc["point"], abs=0.01)
    centred = stats.centred(np.array([1.0, 2.0, 3.0]), 1.0)
    np.testing.assert_allclose(centred, [0.0, 1.0, 2.0])
