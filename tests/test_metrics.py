"""Tests for bench.metrics against outside references.

References: torchmetrics (calibration error, accuracy), sklearn (ROC / PR / log-loss /
Brier), scipy (softmax, entropy, logsumexp), and, where no library implements the exact
definition (adaptive and class-wise ECE, AURC and friends with the tie convention),
slow loop implementations written for clarity rather than speed.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
)

import bench.metrics as M

SEEDS = range(20)


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """Inputs here are tiny: one intra-op thread avoids OpenMP spin-waits on a busy
    2-core machine (which made each torch call ~10 ms). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SHAPES = [(60, 2), (400, 10), (1000, 100)]


# --------------------------------------------------------------------------- inputs


@functools.cache
def make_logits(seed: int, n: int, c: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Logits with a seed-dependent temperature and labels that are right ~half the time.

    Cached across tests, so the arrays are returned read-only.
    """
    rng = np.random.default_rng(seed)
    scale = 0.5 + 3.0 * rng.random()
    logits = (rng.standard_normal((n, c)) * scale).astype(dtype)
    labels = rng.integers(0, c, size=n)
    hit = rng.random(n) < 0.5
    labels[hit] = logits[hit].argmax(axis=1)
    logits.flags.writeable = labels.flags.writeable = False
    return logits, labels


def make_logprobs(seed: int, s: int, n: int, c: int, dtype=np.float32) -> np.ndarray:
    """S Monte Carlo log-softmax samples around a shared mean logit."""
    rng = np.random.default_rng(seed + 1000)
    base = rng.standard_normal((n, c)) * 2.0
    z = base[None] + rng.standard_normal((s, n, c))
    return scipy.special.log_softmax(z, axis=2).astype(dtype)


def top1(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return probs.max(axis=1), probs.argmax(axis=1) == labels


def tied_confidences(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences on a grid of 11 values (0.0 and 1.0 included): heavy ties."""
    rng = np.random.default_rng(seed + 2000)
    conf = np.round(rng.random(n) * 10) / 10
    correct = rng.random(n) < conf
    return conf, correct


# ------------------------------------------------------------------ slow references


def ref_bin_masks(values: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """Equal-width bins [e_b, e_{b+1}), last bin closed, on torchmetrics' edges."""
    tdtype = torch.float32 if values.dtype == np.float32 else torch.float64
    edges = torch.linspace(0, 1, n_bins + 1, dtype=tdtype).numpy()
    masks = []
    for b in range(n_bins):
        upper_ok = values < edges[b + 1] if b < n_bins - 1 else np.ones(values.shape, bool)
        masks.append((values >= edges[b]) & upper_ok)
    return masks


def ref_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    total = 0.0
    for mask in ref_bin_masks(conf, n_bins):
        if mask.any():
            gap = abs(correct[mask].mean() - conf[mask].astype(np.float64).mean())
            total += mask.mean() * gap
    return total


def ref_mce(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    gaps = [
        abs(correct[m].mean() - conf[m].astype(np.float64).mean())
        for m in ref_bin_masks(conf, n_bins)
        if m.any()
    ]
    return max(gaps)


def ref_ece_classwise(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Mean over classes k of ref_ece(p[:, k], y == k), all classes binned at once."""
    n, c = probs.shape
    onehot = labels[:, None] == np.arange(c)[None, :]
    per_class = np.zeros(c)
    for mask in ref_bin_masks(probs, n_bins):  # mask: [N, C]
        count = mask.sum(axis=0)
        gap = np.abs((onehot & mask).sum(axis=0) - (probs * mask).sum(axis=0, dtype=np.float64))
        per_class += np.where(count > 0, gap, 0.0) / n
    return float(per_class.mean())


def ref_ece_adaptive(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """np.array_split chunks of the sorted examples; each tie group joins the last chunk
    any of its members landed in."""
    n = conf.shape[0]
    order = np.argsort(conf, kind="stable")
    bin_of = np.empty(n, dtype=int)
    for b, chunk in enumerate(np.array_split(np.arange(n), n_bins)):
        bin_of[order[chunk]] = b
    _, group = np.unique(conf, return_inverse=True)
    last_bin = np.zeros(group.max() + 1, dtype=int)
    np.maximum.at(last_bin, group, bin_of)
    bin_of = last_bin[group]
    total = 0.0
    for b in range(n_bins):
        m = bin_of == b
        total += abs(correct[m].sum() - conf[m].astype(np.float64).sum())
    return total / n


def ref_aurc(conf: np.ndarray, correct: np.ndarray) -> float:
    """Each example scores the risk over all examples at least as confident."""
    risks = [np.mean(~correct[conf >= c]) for c in conf]
    return float(np.mean(risks))


def ref_aurc_sorted(errors_in_order: np.ndarray) -> float:
    """Geifman's (1/N) sum_k (errors in the top k) / k for a strict ranking."""
    k = np.arange(1, errors_in_order.shape[0] + 1)
    return float(np.mean(np.cumsum(errors_in_order) / k))


def ref_eaurc(conf: np.ndarray, correct: np.ndarray) -> float:
    oracle = np.sort(~correct)  # correct (False = no error) first
    return ref_aurc(conf, correct) - ref_aurc_sorted(oracle)


def ref_risk_coverage(conf: np.ndarray, correct: np.ndarray):
    coverage, risk = [], []
    for t in np.unique(conf)[::-1]:
        covered = conf >= t
        coverage.append(covered.mean())
        risk.append(np.mean(~correct[covered]))
    return np.array(coverage), np.array(risk)


def ref_acc_at_coverage(conf: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    n = conf.shape[0]
    m = max(1, math.ceil(Fraction(str(coverage)) * n))
    taken, n_correct = 0, 0.0
    for t in np.unique(conf)[::-1]:
        group = conf == t
        take = min(int(group.sum()), m - taken)
        n_correct += take * correct[group].mean()
        taken += take
        if taken == m:
            break
    return n_correct / m


def ref_fpr95(score_id: np.ndarray, score_ood: np.ndarray) -> float:
    y = np.r_[np.ones(score_id.size), np.zeros(score_ood.size)]
    fpr, tpr, _ = roc_curve(y, np.r_[score_id, score_ood], drop_intermediate=False)
    return float(fpr[np.argmax(tpr >= 0.95)])


def ood_labels(score_id, score_ood):
    return np.r_[np.ones(len(score_id)), np.zeros(len(score_ood))], np.r_[score_id, score_ood]


# ------------------------------------------------------------ probabilities, scores


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,c", SHAPES)
def test_to_probs_logits_matches_scipy_softmax(seed, n, c):
    logits, _ = make_logits(seed, n, c)
    probs = M.to_probs(logits, "logits")
    assert probs.dtype == np.float32 and probs.shape == (n, c)
    ref = scipy.special.softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(probs, ref, rtol=2e-6, atol=1e-8)
    probs64 = M.to_probs(logits.astype(np.float64), "logits")
    assert probs64.dtype == np.float64
    np.testing.assert_allclose(probs64, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("s", [1, 2, 7])
def test_to_probs_logprobs_is_mean_of_exp(seed, s):
    lp = make_logprobs(seed, s, 300, 10)
    ref = np.exp(lp.astype(np.float64)).mean(axis=0)
    np.testing.assert_allclose(M.to_probs(lp, "logprobs"), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", range(10))
def test_scores_against_scipy(seed):
    logits, _ = make_logits(seed, 400, 10, dtype=np.float64)
    p = scipy.special.softmax(logits, axis=1)
    np.testing.assert_allclose(M.score_msp(logits, "logits"), p.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        M.score_neg_entropy(logits, "logits"), -scipy.stats.entropy(p, axis=1), rtol=1e-10
    )
    np.testing.assert_allclose(
        M.score_energy(logits, "logits"), scipy.special.logsumexp(logits, axis=1), rtol=1e-12
    )
    assert M.score_neg_mutual_information(logits, "logits") is None

    lp = make_logprobs(seed, 5, 400, 10, dtype=np.float64)
    ps = np.exp(lp)
    pbar = ps.mean(axis=0)
    mi = scipy.stats.entropy(pbar, axis=1) - scipy.stats.entropy(ps, axis=2).mean(axis=0)
    np.testing.assert_allclose(
        M.score_neg_mutual_information(lp, "logprobs"), -mi, rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(
        M.score_neg_entropy(lp, "logprobs"), -scipy.stats.entropy(pbar, axis=1), rtol=1e-10
    )
    np.testing.assert_allclose(M.score_msp(lp, "logprobs"), pbar.max(axis=1), rtol=1e-12)
    assert M.score_energy(lp, "logprobs") is None
    assert M.score_neg_mutual_information(lp[:1], "logprobs") is None


def test_scores_accept_minus_inf_logprobs():
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([[[0.5, 0.5, 0.0]], [[1.0, 0.0, 0.0]]]))  # zeros -> -inf
    pbar = np.array([[0.75, 0.25, 0.0]])
    np.testing.assert_allclose(
        M.score_neg_entropy(lp, "logprobs"), -scipy.stats.entropy(pbar, axis=1)
    )
    mean_h = (scipy.stats.entropy([0.5, 0.5, 0.0]) + scipy.stats.entropy([1.0, 0.0, 0.0])) / 2
    np.testing.assert_allclose(
        M.score_neg_mutual_information(lp, "logprobs"),
        -(scipy.stats.entropy(pbar, axis=1) - mean_h),
    )


# ------------------------------------------------------------------ classification


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,c", SHAPES)
def test_classification_against_sklearn_and_torchmetrics(seed, n, c):
    logits, labels = make_logits(seed, n, c, dtype=np.float64)
    probs = M.to_probs(logits, "logits")
    ref_acc = multiclass_accuracy(
        torch.from_numpy(probs), torch.from_numpy(labels), c, average="micro", validate_args=False
    ).item()
    assert M.accuracy(probs, labels) == pytest.approx(ref_acc, abs=1e-7)
    assert M.accuracy(probs, labels) == pytest.approx(
        accuracy_score(labels, probs.argmax(1)), abs=1e-15
    )
    ref_nll = log_loss(labels, probs, labels=np.arange(c))
    assert M.nll(probs, labels) == pytest.approx(ref_nll, rel=1e-10)
    ref_brier = brier_score_loss(labels, probs, labels=np.arange(c), scale_by_half=False)
    assert M.brier(probs, labels) == pytest.approx(ref_brier, rel=1e-10, abs=1e-14)
    if c == 2:  # the classic binary Brier score is half of the two-class sum
        binary = brier_score_loss(labels, probs[:, 1])
        assert M.brier(probs, labels) == pytest.approx(2 * binary, rel=1e-10)
    out = M.score_predictions(logits, labels, "logits")
    assert out["cls/acc"] == M.accuracy(probs, labels)
    assert out["cls/nll"] == pytest.approx(ref_nll, rel=1e-10)
    assert out["cls/brier"] == pytest.approx(ref_brier, rel=1e-10, abs=1e-14)


def test_nll_underflow_is_exact_in_score_predictions():
    logits = np.array([[0.0, 200.0], [5.0, 0.0], [0.0, 800.0]], dtype=np.float32)
    labels = np.array([0, 0, 0])
    exact = -scipy.special.log_softmax(logits.astype(np.float64), axis=1)[np.arange(3), labels]
    out = M.score_predictions(logits, labels, "logits")
    assert out["cls/nll"] == pytest.approx(exact.mean(), rel=1e-6)
    # The functional form sees p_y == 0 and clips at NLL_EPS.
    clipped = np.array([-np.log(M.NLL_EPS), exact[1], -np.log(M.NLL_EPS)])
    assert M.nll(M.to_probs(logits, "logits"), labels) == pytest.approx(clipped.mean(), rel=1e-6)

    lp = scipy.special.log_softmax(
        np.stack([logits, logits + np.array([[0.0, -200.0]], np.float32)]).astype(np.float64),
        axis=2,
    )
    exact_lp = -(scipy.special.logsumexp(lp[:, np.arange(3), labels], axis=0) - np.log(2))
    assert M.score_predictions(lp, labels, "logprobs")["cls/nll"] == pytest.approx(
        exact_lp.mean(), rel=1e-10
    )


# --------------------------------------------------------------------- calibration


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,c", SHAPES)
def test_ece_mce_match_torchmetrics(seed, n, c):
    logits, labels = make_logits(seed, n, c)
    probs = M.to_probs(logits, "logits")
    keep = probs.max(axis=1) < 1.0  # torchmetrics puts exactly 1.0 in an extra bin
    probs, labels = probs[keep], labels[keep]
    conf, correct = top1(probs, labels)
    p_t, y_t = torch.from_numpy(probs), torch.from_numpy(labels)
    for n_bins in (15, 10):
        for norm, fn in (("l1", M.ece_equal_width), ("max", M.mce)):
            ref = multiclass_calibration_error(
                p_t, y_t, c, n_bins=n_bins, norm=norm, validate_args=False
            ).item()
            assert fn(conf, correct, n_bins) == pytest.approx(ref, abs=1e-5)
    assert M.ece_equal_width(conf, correct) == pytest.approx(ref_ece(conf, correct, 15), abs=1e-12)
    assert M.mce(conf, correct) == pytest.approx(ref_mce(conf, correct, 15), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_carot_per_batch_ece_matches_torchmetrics_batch_by_batch(seed):
    """CaRot's loop, written out: a new MulticlassCalibrationError per batch of 512,
    weighted by batch size; confidences of exactly 1.0 included (their own bin)."""
    logits, labels = make_logits(seed, 1300, 7)
    logits = logits.copy()
    logits[:40] *= 1e4  # some rows with confidence exactly 1.0
    probs = M.to_probs(logits, "logits")
    assert (probs.max(axis=1) == 1.0).any()
    conf, correct = top1(probs, labels)
    total = 0.0
    for start in range(0, 1300, 512):
        p_b = torch.from_numpy(probs[start : start + 512])
        y_b = torch.from_numpy(labels[start : start + 512])
        ece_b = multiclass_calibration_error(p_b, y_b, 7, n_bins=10, norm="l1").item()
        total += ece_b * len(y_b)
    assert M.ece_per_batch(conf, correct) == pytest.approx(total / 1300, abs=1e-6)
    # It depends on the order of the examples (batches of 2 here): the dataset-level
    # ECE of both orders is |0.5 - 0.9| = 0.4.
    conf = np.full(4, 0.9, dtype=np.float32)
    assert M.ece_per_batch(conf, [1, 0, 1, 0], batch_size=2) == pytest.approx(0.4)
    assert M.ece_per_batch(conf, [1, 1, 0, 0], batch_size=2) == pytest.approx(0.5)


@pytest.mark.parametrize("n_bins", [3, 7, 10, 15])
def test_ece_confidences_on_bin_edges_match_torchmetrics(n_bins):
    edges = torch.linspace(0, 1, n_bins + 1).numpy()
    on_edge = edges[(edges > 0.5) & (edges < 1.0)]
    below = np.nextafter(on_edge, np.float32(0))
    conf = np.repeat(np.r_[on_edge, below].astype(np.float32), 3)
    probs = np.stack([1 - conf, conf], axis=1).astype(np.float32)
    labels = np.tile([1, 0, 1], conf.size // 3)
    correct = labels == 1
    for norm, fn in (("l1", M.ece_equal_width), ("max", M.mce)):
        ref = multiclass_calibration_error(
            torch.from_numpy(probs), torch.from_numpy(labels), 2, n_bins=n_bins, norm=norm
        ).item()
        assert fn(conf, correct, n_bins) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_confidence_one_goes_to_last_bin(seed):
    conf, correct = tied_confidences(seed, 400)
    conf32 = conf.astype(np.float32)
    assert (conf32 == 1.0).any()
    assert M.ece_equal_width(conf32, correct) == pytest.approx(ref_ece(conf32, correct, 15))
    assert M.mce(conf32, correct) == pytest.approx(ref_mce(conf32, correct, 15))
    # torchmetrics' own kernel with the last edge nudged above 1.0 gives the same bins.
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    edges = torch.linspace(0, 1, 16)
    edges[-1] = float(np.nextafter(np.float32(1), np.float32(2)))
    ref = _ce_compute(torch.from_numpy(conf32), torch.from_numpy(correct).float(), edges, "l1")
    assert M.ece_equal_width(conf32, correct) == pytest.approx(ref.item(), abs=1e-6)
    bin_conf, bin_acc, count = M.reliability_bins(conf32, correct)
    assert count[-1] == np.sum(conf32 >= edges[14].item())
    assert count.sum() == conf.size


@pytest.mark.parametrize("seed", SEEDS)
def test_reliability_bins(seed):
    logits, labels = make_logits(seed, 500, 10)
    conf, correct = top1(M.to_probs(logits, "logits"), labels)
    bin_conf, bin_acc, count = M.reliability_bins(conf, correct, n_bins=15)
    assert bin_conf.shape == bin_acc.shape == count.shape == (15,)
    for b, mask in enumerate(ref_bin_masks(conf, 15)):
        assert count[b] == mask.sum()
        if mask.any():
            assert bin_conf[b] == pytest.approx(conf[mask].astype(np.float64).mean(), rel=1e-12)
            assert bin_acc[b] == pytest.approx(correct[mask].mean(), rel=1e-12)
        else:
            assert np.isnan(bin_conf[b]) and np.isnan(bin_acc[b])
    ece = np.nansum(count / count.sum() * np.abs(bin_acc - bin_conf))
    assert M.ece_equal_width(conf, correct) == pytest.approx(ece, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,c", SHAPES)
def test_ece_adaptive_and_classwise_against_loops(seed, n, c):
    logits, labels = make_logits(seed, n, c)
    probs = M.to_probs(logits, "logits")
    conf, correct = top1(probs, labels)
    assert M.ece_adaptive(conf, correct) == pytest.approx(
        ref_ece_adaptive(conf, correct, 15), abs=1e-12
    )
    assert M.ece_classwise(probs, labels) == pytest.approx(
        ref_ece_classwise(probs, labels, 15), abs=1e-9
    )
    assert M.ece_classwise(probs, labels, n_bins=1) == pytest.approx(
        ref_ece_classwise(probs, labels, 1), abs=1e-9
    )
    out = M.score_predictions(logits, labels, "logits")
    assert out["cal/ece_adaptive"] == M.ece_adaptive(conf, correct)
    assert out["cal/ece_classwise"] == M.ece_classwise(probs, labels)
    assert out["cal/ece"] == M.ece_equal_width(conf, correct, 15)
    assert out["cal/ece_10bin"] == M.ece_equal_width(conf, correct, 10)
    assert out["cal/mce"] == M.mce(conf, correct, 15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [7, 100, 1001])
def test_ece_adaptive_with_ties(seed, n):
    conf, correct = tied_confidences(seed, n)
    for n_bins in (1, 4, 15):
        assert M.ece_adaptive(conf, correct, n_bins) == pytest.approx(
            ref_ece_adaptive(conf, correct, n_bins), abs=1e-12
        )
    perm = np.random.default_rng(seed).permutation(n)
    assert M.ece_adaptive(conf[perm], correct[perm]) == pytest.approx(
        M.ece_adaptive(conf, correct), abs=1e-12
    )


def test_ece_adaptive_equal_width_without_ties_uses_array_split_sizes():
    conf = np.linspace(0.05, 0.95, 30)
    correct = np.arange(30) % 3 == 0
    expected = sum(
        abs(correct[ix].sum() - conf[ix].sum()) for ix in np.array_split(np.arange(30), 4)
    )
    assert M.ece_adaptive(conf, correct, 4) == pytest.approx(expected / 30)


def test_ece_classwise_single_class_present_and_exact_one():
    probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.7, 0.1], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    labels = np.zeros(4, dtype=np.int64)
    assert M.ece_classwise(probs, labels) == pytest.approx(ref_ece_classwise(probs, labels, 15))
    probs32 = probs.astype(np.float32)
    assert M.ece_classwise(probs32, labels) == pytest.approx(
        ref_ece_classwise(probs32, labels, 15), abs=1e-7
    )


# --------------------------------------------------------------- selective / AURC


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,c", SHAPES)
def test_selective_without_ties(seed, n, c):
    logits, labels = make_logits(seed, n, c, dtype=np.float64)
    conf, correct = top1(M.to_probs(logits, "logits"), labels)
    assert np.unique(conf).size == n
    errors_in_order = ~correct[np.argsort(-conf)]
    aurc = ref_aurc_sorted(errors_in_order)
    eaurc = aurc - ref_aurc_sorted(np.sort(~correct))
    assert M.aurc(conf, correct) == pytest.approx(aurc, rel=1e-12)
    assert M.eaurc(conf, correct) == pytest.approx(eaurc, abs=1e-12)
    if n <= 400:  # the quadratic loop agrees with Geifman's sorted formula without ties
        assert M.aurc(conf, correct) == pytest.approx(ref_aurc(conf, correct), rel=1e-12)
    out = M.score_predictions(logits, labels, "logits")
    assert out["sc/aurc"] == pytest.approx(aurc, rel=1e-12)
    assert out["sc/eaurc"] == pytest.approx(eaurc, abs=1e-12)
    for cov in (0.5, 0.8, 0.9):
        top = errors_in_order[: math.ceil(Fraction(str(cov)) * n)]
        assert M.accuracy_at_coverage(conf, correct, cov) == pytest.approx(1 - top.mean())
        key = f"sc/acc_at_{round(cov * 100)}"
        assert out[key] == pytest.approx(1 - top.mean())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 9, 200, 1000])
def test_selective_with_ties(seed, n):
    conf, correct = tied_confidences(seed, n)
    coverage, risk = M.risk_coverage_curve(conf, correct)
    ref_cov, ref_risk = ref_risk_coverage(conf, correct)
    np.testing.assert_allclose(coverage, ref_cov, rtol=1e-12)
    np.testing.assert_allclose(risk, ref_risk, rtol=1e-12)
    assert M.aurc(conf, correct) == pytest.approx(ref_aurc(conf, correct), abs=1e-12)
    assert M.eaurc(conf, correct) == pytest.approx(ref_eaurc(conf, correct), abs=1e-12)
    assert M.eaurc(conf, correct) >= -1e-12
    for cov in (0.05, 0.37, 0.5, 0.8, 0.9, 1.0):
        assert M.accuracy_at_coverage(conf, correct, cov) == pytest.approx(
            ref_acc_at_coverage(conf, correct, cov), abs=1e-12
        )
    perm = np.random.default_rng(seed).permutation(n)
    assert M.aurc(conf[perm], correct[perm]) == pytest.approx(M.aurc(conf, correct), abs=1e-12)


def test_selective_edge_cases():
    conf = np.array([0.9, 0.8, 0.8, 0.3])
    all_right = np.ones(4, bool)
    assert M.aurc(conf, all_right) == 0.0
    assert M.eaurc(conf, all_right) == 0.0
    assert M.accuracy_at_coverage(conf, all_right, 0.5) == 1.0
    all_wrong = np.zeros(4, bool)
    assert M.aurc(conf, all_wrong) == pytest.approx(1.0)
    assert M.eaurc(conf, all_wrong) == pytest.approx(0.0, abs=1e-15)
    # A single tie group: the curve is one point and AURC is the error rate.
    flat = np.full(5, 0.7)
    correct = np.array([1, 0, 1, 1, 0])
    coverage, risk = M.risk_coverage_curve(flat, correct)
    np.testing.assert_array_equal(coverage, [1.0])
    np.testing.assert_allclose(risk, [0.4])
    assert M.aurc(flat, correct) == pytest.approx(0.4)
    assert M.accuracy_at_coverage(flat, correct, 0.2) == pytest.approx(0.6)
    # Geifman's closed form is the large-N limit of the exact oracle.
    rng = np.random.default_rng(0)
    big = rng.random(200_000) < 0.8
    r = 1 - big.mean()
    oracle_conf = (big + rng.random(big.size)) / 2  # every correct one above every error
    assert M.eaurc(oracle_conf, big) == pytest.approx(0.0, abs=1e-12)
    assert M.aurc(oracle_conf, big) == pytest.approx(r + (1 - r) * np.log(1 - r), abs=1e-4)


# -------------------------------------------------------------------------- OOD


def _ood_scores(seed: int, tied: bool):
    rng = np.random.default_rng(seed + 3000)
    n_id, n_ood = rng.integers(20, 800, size=2)
    s_id = rng.normal(1.0, 1.0, n_id)
    s_ood = rng.normal(0.0, 1.0, n_ood)
    if tied:
        s_id, s_ood = np.round(s_id * 2) / 2, np.round(s_ood * 2) / 2
    return s_id, s_ood


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tied", [False, True])
def test_ood_metrics_against_sklearn(seed, tied):
    s_id, s_ood = _ood_scores(seed, tied)
    y, s = ood_labels(s_id, s_ood)
    assert M.ood_auroc(s_id, s_ood) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.ood_aupr_in(s_id, s_ood) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.ood_aupr_out(s_id, s_ood) == pytest.approx(
        average_precision_score(1 - y, -s), abs=1e-12
    )
    assert M.ood_fpr_at_95tpr(s_id, s_ood) == ref_fpr95(s_id, s_ood)
    fpr, tpr = M.ood_roc_curve(s_id, s_ood)
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-15)


def test_fpr95_tie_straddling_threshold():
    s_id = np.r_[np.full(90, 2.0), np.full(10, 1.0)]  # TPR jumps from 0.9 to 1.0
    s_ood = np.r_[np.full(5, 1.0), np.zeros(95)]
    assert M.ood_fpr_at_95tpr(s_id, s_ood) == pytest.approx(0.05)
    assert M.ood_fpr_at_95tpr(s_id, s_ood) == ref_fpr95(s_id, s_ood)


@pytest.mark.parametrize("seed", range(5))
def test_score_ood_logits_and_logprobs(seed):
    logits, _ = make_logits(seed, 600, 10)
    l_id, l_ood = logits[:400], logits[400:] * 0.3
    out = M.score_ood(l_id, l_ood, "logits")
    assert list(out) == [k for k in M.list_metrics("ood/*") if not k.endswith("_mi")]
    funcs = {
        "msp": M.score_msp,
        "entropy": M.score_neg_entropy,
        "energy": M.score_energy,
        "mi": M.score_neg_mutual_information,
    }
    for name in ("msp", "entropy", "energy"):
        s_id, s_ood = funcs[name](l_id, "logits"), funcs[name](l_ood, "logits")
        y, s = ood_labels(s_id, s_ood)
        assert out[f"ood/auroc_{name}"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert out[f"ood/aupr_in_{name}"] == pytest.approx(average_precision_score(y, s))
        assert out[f"ood/aupr_out_{name}"] == pytest.approx(average_precision_score(1 - y, -s))
        assert out[f"ood/fpr95_{name}"] == ref_fpr95(s_id, s_ood)

    lp = make_logprobs(seed, 4, 600, 10)
    out = M.score_ood(lp[:, :400], lp[:, 400:], "logprobs")
    assert list(out) == [k for k in M.list_metrics("ood/*") if "_energy" not in k]
    s_id = M.score_neg_mutual_information(lp[:, :400], "logprobs")
    s_ood = M.score_neg_mutual_information(lp[:, 400:], "logprobs")
    y, s = ood_labels(s_id, s_ood)
    assert out["ood/auroc_mi"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    single = M.score_ood(lp[:1, :400], lp[:1, 400:], "logprobs")
    assert all(k.split("_")[-1] in ("msp", "entropy") for k in single)
    assert len(single) == 8


# ------------------------------------------------------------ aggregate / registry


EXPECTED_KEYS = [
    "cls/acc",
    "cls/nll",
    "cls/brier",
    "cal/ece",
    "cal/ece_adaptive",
    "cal/mce",
    "cal/ece_classwise",
    "cal/ece_10bin",
    "cal/ece_carot",
    "sc/aurc",
    "sc/eaurc",
    "sc/acc_at_50",
    "sc/acc_at_80",
    "sc/acc_at_90",
] + [
    f"ood/{m}_{s}"
    for s in ("msp", "entropy", "energy", "mi")
    for m in ("auroc", "aupr_in", "aupr_out", "fpr95")
]


def test_registry():
    assert list(M.METRICS) == EXPECTED_KEYS
    assert M.list_metrics() == EXPECTED_KEYS
    assert M.list_metrics("sc/acc_at_*") == ["sc/acc_at_50", "sc/acc_at_80", "sc/acc_at_90"]
    for key, spec in M.METRICS.items():
        assert spec.key == key and spec.kind == key.split("/")[0] and spec.description
    higher = {k for k, v in M.METRICS.items() if v.higher_is_better}
    assert higher == {"cls/acc", "sc/acc_at_50", "sc/acc_at_80", "sc/acc_at_90"} | {
        k for k in EXPECTED_KEYS if k.startswith(("ood/auroc", "ood/aupr"))
    }
    assert [k for k, v in M.METRICS.items() if v.legacy] == ["cal/ece_10bin", "cal/ece_carot"]
    assert M.metric_spec("cal/mce").higher_is_better is False
    with pytest.raises(KeyError, match="valid choices"):
        M.metric_spec("cal/nope")
    with pytest.raises(TypeError):
        M.METRICS["x"] = None  # read-only


@pytest.mark.parametrize("seed", range(5))
def test_score_predictions_keys_logprobs_and_invariance(seed):
    logits, labels = make_logits(seed, 300, 5, dtype=np.float64)
    out = M.score_predictions(logits, labels, "logits")
    assert list(out) == M.list_metrics("cls/*") + M.list_metrics("cal/*") + M.list_metrics("sc/*")
    assert all(type(v) is float and 0.0 <= v for v in out.values())
    lp = scipy.special.log_softmax(logits, axis=1)[None]  # S = 1 logprobs, same predictions
    out_lp = M.score_predictions(lp, labels, "logprobs")
    for key in out:
        assert out_lp[key] == pytest.approx(out[key], rel=1e-9, abs=1e-12), key
    perm = np.random.default_rng(seed).permutation(300)
    out_perm = M.score_predictions(logits[perm], labels[perm], "logits")
    for key in out:
        assert out_perm[key] == pytest.approx(out[key], rel=1e-9, abs=1e-12), key


def test_float16_and_readonly_inputs():
    logits, labels = make_logits(0, 200, 4)
    ro = logits.astype(np.float16)
    ro.flags.writeable = False
    out = M.score_predictions(ro, labels, "logits")
    ref = M.score_predictions(ro.astype(np.float32), labels, "logits")
    assert out == ref


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "pred,kind,labels,match",
    [
        (np.zeros((4, 3)), "probs", np.zeros(4, int), "kind must be one of"),
        (np.zeros(4), "logits", np.zeros(4, int), r"\[N, C\]"),
        (np.zeros((2, 4, 3)), "logits", np.zeros(4, int), r"\[N, C\]"),
        (np.zeros((4, 3)), "logprobs", np.zeros(4, int), r"\[S, N, C\]"),
        (np.zeros((4, 1)), "logits", np.zeros(4, int), "at least 2 classes"),
        (np.zeros((0, 3)), "logits", np.zeros(0, int), "no examples"),
        (np.zeros((4, 3), int), "logits", np.zeros(4, int), "floating-point"),
        (np.full((4, 3), np.nan), "logits", np.zeros(4, int), "NaN"),
        (np.full((4, 3), np.inf), "logits", np.zeros(4, int), r"\+inf"),
        (np.full((4, 3), -np.inf), "logits", np.zeros(4, int), "-inf"),
        (np.zeros((4, 3)), "logits", np.zeros(5, int), "5 entries"),
        (np.zeros((4, 3)), "logits", np.zeros((4, 1), int), "1-D"),
        (np.zeros((4, 3)), "logits", np.zeros(4), "integer"),
        (np.zeros((4, 3)), "logits", np.full(4, -1), "score_ood"),
        (np.zeros((4, 3)), "logits", np.full(4, 3), "< num_classes=3"),
        (np.ones((2, 4, 3)), "logprobs", np.zeros(4, int), "log-softmax"),
    ],
)
def test_score_predictions_rejects_bad_inputs(pred, kind, labels, match):
    with pytest.raises(ValueError, match=match):
        M.score_predictions(pred, labels, kind)


def test_functional_validation():
    conf, correct = np.array([0.2, 0.9]), np.array([True, False])
    probs, labels = np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 0])
    bad_calls = [
        (lambda: M.ece_equal_width(conf, correct, n_bins=0), "n_bins"),
        (lambda: M.mce(conf, correct, n_bins=2.5), "n_bins"),
        (lambda: M.ece_adaptive(np.array([0.2, 1.5]), correct), r"\[0, 1\]"),
        (lambda: M.ece_equal_width(np.array([0.2, np.nan]), correct), r"\[0, 1\]"),
        (lambda: M.reliability_bins(conf, correct[:1]), "same length"),
        (lambda: M.aurc(conf, np.array([0, 2])), "0/1"),
        (lambda: M.aurc(np.array([]), np.array([], bool)), "empty"),
        (lambda: M.accuracy_at_coverage(conf, correct, 0.0), "coverage"),
        (lambda: M.accuracy_at_coverage(conf, correct, 1.5), "coverage"),
        (lambda: M.accuracy(probs - 1.0, labels), r"\[0, 1\]"),
        (lambda: M.nll(probs[None], labels), r"\[N, C\]"),
        (lambda: M.brier(probs, np.array([1, 2])), "num_classes"),
        (lambda: M.ece_classwise(probs, labels[:1]), "1 entries"),
        (lambda: M.ood_auroc(np.array([]), np.array([1.0])), "empty"),
        (lambda: M.ood_fpr_at_95tpr(np.array([1.0, np.inf]), np.array([1.0])), "finite"),
        (lambda: M.ood_aupr_in(np.ones((2, 2)), np.array([1.0])), "1-D"),
        (lambda: M.score_ood(np.zeros((3, 4)), np.zeros((3, 5)), "logits"), "classes"),
        (lambda: M.to_probs(np.zeros((3, 4)), "logprobs"), r"\[S, N, C\]"),
    ]
    for call, match in bad_calls:
        with pytest.raises(ValueError, match=match):
            call()
    # Accepted spellings of "correct".
    assert M.aurc(conf, np.array([1, 0])) == M.aurc(conf, correct)
    assert M.aurc(conf, np.array([1.0, 0.0])) == M.aurc(conf, correct)
