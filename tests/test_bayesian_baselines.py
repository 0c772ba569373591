"""MC dropout, last-layer Laplace and SWAG: proper predictive distributions, and each
reduces to its point estimate when its variance goes to zero."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from test_methods import FAST, accuracy, make_context

from bench.engine import seed_everything
from bench.engine.loop import Classifier
from bench.methods import create_method
from bench.methods.laplace_ll import (
    LastLayerLaplaceHparams,
    fit_last_layer_laplace,
    laplace_predictions,
)
from bench.methods.mc_dropout import DropoutClassifier, dropout_sampling
from bench.methods.swag import SWAGMoments


def assert_proper_samples(pred, samples: int, classes: int) -> None:
    """``[S, N, C]`` log-probabilities whose rows are distributions."""
    assert pred.kind == "logprobs"
    assert pred.values.shape == (samples, len(pred.labels), classes)
    np.testing.assert_allclose(np.exp(pred.values).sum(-1), 1.0, rtol=1e-4)


# --- MC dropout -----------------------------------------------------------------------------


def test_mc_dropout_samples_differ_and_collapse_without_dropout(tiny_vision_task):
    seed_everything(0)
    method = create_method("mc_dropout", **FAST, eval_samples=5)
    preds = method.run(make_context(tiny_vision_task, "tiny_cnn.random"))
    assert_proper_samples(preds["test"], 5, 4)
    assert np.ptp(preds["test"].values, axis=0).max() > 1e-3  # masks sample at test time
    assert accuracy(preds["test"]) > 0.5
    assert method.summary()["dropout_layers"] == 1  # the tiny CNN has only the head's

    seed_everything(0)
    no_dropout = create_method("mc_dropout", **FAST, eval_samples=3, dropout=0.0)
    preds = no_dropout.run(make_context(tiny_vision_task, "tiny_cnn.random"))
    np.testing.assert_allclose(preds["test"].values[0], preds["test"].values[2], atol=1e-6)


def test_dropout_sampling_leaves_batch_norm_frozen():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5))
    model.eval()
    with dropout_sampling(model) as layers:
        assert layers == 1 and model[1].training and not model[0].training
    assert not model[1].training


def test_dropout_classifier_reuses_the_base_head(tiny_vision_task):
    from bench.backbones import create_backbone

    base = Classifier(create_backbone("tiny_cnn.random"), 4)
    wrapped = DropoutClassifier(base, 0.2)
    assert wrapped.head is base.head and wrapped.backbone is base.backbone


# --- last-layer Laplace -------------------------------------------------------------------


def head_problem(n: int = 200, dim: int = 6, classes: int = 3):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n, dim, generator=generator)
    head = torch.nn.Linear(dim, classes)
    with torch.no_grad():
        labels = (features @ torch.randn(dim, classes, generator=generator)).argmax(-1)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=100)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(features), labels)
        loss = loss + 1e-3 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head, features, labels.numpy()


@pytest.mark.parametrize("structure", ["kron", "diag", "full"])
def test_laplace_predictive_is_a_distribution_and_collapses_to_the_map(structure):
    head, features, labels = head_problem()
    hp = LastLayerLaplaceHparams(hessian_structure=structure, prior_fit="marglik")
    approximation = fit_last_layer_laplace(head, features, labels, hp)
    assert float(approximation.prior_precision.mean()) > 0
    draws = laplace_predictions(approximation, features, 8, torch.Generator().manual_seed(0))
    assert draws.shape == (8, len(features), 3)
    np.testing.assert_allclose(np.exp(draws).sum(-1), 1.0, rtol=1e-4)
    assert np.ptp(draws, axis=0).max() > 1e-4

    # An enormous prior precision leaves no posterior variance: every draw is the MAP.
    tight = dataclasses.replace(hp, prior_fit="fixed", prior_precision=1e12)
    approximation = fit_last_layer_laplace(head, features, labels, tight)
    draws = laplace_predictions(approximation, features, 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = log_softmax(head(features).numpy(), axis=-1)
    for draw in draws:
        np.testing.assert_allclose(draw, expected, atol=1e-4)


def test_weight_sampling_equals_the_glm_predictive_of_a_linear_head():
    """The head is linear in its weights: laplace-torch's Jacobian-based GLM draws and the
    weight draws the suite uses (no [N, C, P] Jacobians) have the same distribution."""
    head, features, labels = head_problem(n=120)
    approximation = fit_last_layer_laplace(
        head, features, labels, LastLayerLaplaceHparams(prior_fit="fixed", prior_precision=0.5)
    )
    generator = torch.Generator().manual_seed(0)
    ours = np.exp(laplace_predictions(approximation, features[:20], 4000, generator))
    glm = approximation.predictive_samples(
        features[:20], pred_type="glm", n_samples=4000, generator=generator
    ).numpy()
    np.testing.assert_allclose(ours.mean(0), glm.mean(0), atol=0.02)
    np.testing.assert_allclose(ours.std(0), glm.std(0), atol=0.02)
    assert ours.std(0).max() > 0.05  # a real posterior spread, not a point mass


def test_laplace_ll_method_learns_and_predicts_samples(tiny_text_task):
    seed_everything(0)
    method = create_method("laplace_ll", **FAST, eval_samples=6)
    preds = method.run(make_context(tiny_text_task, "tiny_bert.random"))
    for pred in preds.values():
        assert_proper_samples(pred, 6, 2)
    assert accuracy(preds["test"]) > 0.8
    assert method.summary()["prior_precision"] > 0


# --- SWAG -----------------------------------------------------------------------------------


def test_swag_moments_and_the_sampling_covariance():
    """Mean and variance of the collected iterates; draws have covariance
    scale * (diag(var) + D D^T / (K - 1)) over the last K deviations."""
    param = torch.nn.Parameter(torch.zeros(3))
    moments = SWAGMoments([param], rank=3)
    iterates = torch.tensor([[1.0, 0.0, 2.0], [2.0, 1.0, 2.0], [4.0, -1.0, 2.0], [3.0, 0.0, 2.0]])
    deviations = []
    for count, theta in enumerate(iterates, start=1):
        with torch.no_grad():
            param.copy_(theta)
        moments.collect()
        deviations.append(theta - iterates[:count].mean(0))
    torch.testing.assert_close(moments.mean, iterates.mean(0))
    torch.testing.assert_close(moments.variance()[:2], iterates.var(0, unbiased=False)[:2])
    assert float(moments.variance()[2]) < 1e-6  # a constant weight has no variance
    assert len(moments.deviations) == 3
    torch.testing.assert_close(torch.stack(moments.deviations), torch.stack(deviations[-3:]))

    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([moments.sample(0.5, generator) for _ in range(40_000)])
    columns = torch.stack(deviations[-3:], dim=1)
    expected = 0.5 * (torch.diag(moments.variance()) + columns @ columns.T / 2)
    torch.testing.assert_close(draws.mean(0), moments.mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), expected, atol=0.05, rtol=0.05)
    torch.testing.assert_close(moments.sample(0.0, generator), moments.mean)


def test_swag_method_predicts_samples_and_reduces_to_swa_at_scale_zero(tiny_text_task):
    settings = {**FAST, "swag_epochs": 1, "swag_snapshots": 4, "swag_rank": 3, "eval_samples": 3}
    seed_everything(0)
    method = create_method("swag", **settings)
    preds = method.run(make_context(tiny_text_task, "tiny_bert.random"))
    for pred in preds.values():
        assert_proper_samples(pred, 3, 2)
    assert accuracy(preds["test"]) > 0.8
    summary = method.summary()
    assert summary["swag_snapshots"] == 4 and summary["swag_mean_std"] > 0

    seed_everything(0)
    swa = create_method("swag", **{**settings, "swag_scale": 0.0})
    values = swa.run(make_context(tiny_text_task, "tiny_bert.random"))["test"].values
    # Without covariance every draw is the SWA mean (tiny_bert has no batch norm).
    np.testing.assert_allclose(values[0], values[2], atol=1e-6)


def test_swag_recomputes_batch_norm_statistics_for_each_draw(tiny_vision_task):
    seed_everything(0)
    method = create_method(
        "swag", **FAST, swag_snapshots=4, swag_rank=3, eval_samples=2, bn_update_batches=2
    )
    preds = method.run(make_context(tiny_vision_task, "tiny_cnn.random"))
    assert_proper_samples(preds["test"], 2, 4)
    assert accuracy(preds["test"]) > 0.5


def test_swag_keeps_batch_norm_statistics_the_backbone_freezes():
    """EfficientNet-Lite fine-tunes with frozen batch-norm statistics: a SWAG draw must
    not re-estimate them (resetting them would leave mean 0, variance 1)."""
    from bench.backbones import create_backbone
    from bench.engine import Engine
    from bench.methods.swag import update_batch_norm

    task_images = np.random.default_rng(0).integers(0, 255, (16, 28, 28), dtype=np.uint8)

    class Train:
        inputs, labels = task_images, np.zeros(16, dtype=np.int64)

        def __len__(self):
            return 16

    model = Classifier(create_backbone("effnet_lite0.imagenet", image_size=32), 3)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = norms[0].running_mean.clone()
    engine = Engine.create("cpu", "fp32", eval_batch_size=8)
    assert update_batch_norm(model, Train(), engine, 2, 0) is False
    torch.testing.assert_close(norms[0].running_mean, before)
    model.backbone.freeze_bn_stats = False
    assert update_batch_norm(model, Train(), engine, 2, 0) is True
    assert not torch.allclose(norms[0].running_mean, before)
