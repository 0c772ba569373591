"""FLYP and CaRot: the loss terms, the EMA teacher's schedule, CaRot = FLYP with its
coefficients at 0, preemption-safe resume, and end-to-end runs on tiny open_clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import signal_on_call
from test_methods import make_context

from bench.backbones import create_backbone
from bench.engine import seed_everything
from bench.engine.checkpoint import Checkpointer
from bench.errors import Preempted
from bench.methods import create_method
from bench.methods.carot import (
    CaRotHparams,
    cross_penalty,
    ema_momentum,
    ema_update,
    orthogonality_penalty,
    projection_matrices,
    self_distillation,
)
from bench.methods.flyp import CaptionSampler, contrastive_loss

TINY = {"epochs": 2, "batch_size": 16, "lr": 1e-4, "warmup_fraction": 0.1}


def test_orthogonality_penalty_is_zero_iff_orthonormal_and_descends_toward_it():
    q, _ = torch.linalg.qr(torch.randn(12, 5, dtype=torch.float64))
    assert float(orthogonality_penalty(q)) == pytest.approx(0.0, abs=1e-6)
    scaled = (1.5 * q).float().requires_grad_(True)
    penalty = orthogonality_penalty(scaled)
    expected = np.sqrt(5) * (1.5**2 - 1)  # W^T W - I = 1.25 I, Frobenius norm sqrt(5)*1.25
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    # The gradient points along W (shrinking the columns back toward unit norm lowers it).
    assert float((scaled.grad * scaled.detach()).sum()) > 0
    with torch.no_grad():
        stepped = scaled - 0.01 * scaled.grad
    assert float(orthogonality_penalty(stepped)) < float(penalty.detach())


def test_cross_penalty_and_self_distillation_against_direct_formulas():
    w_v, w_t = torch.randn(7, 4), torch.randn(6, 4)
    assert float(cross_penalty(w_v, w_t)) == pytest.approx(float((w_v @ w_t.T).norm()), rel=1e-5)
    student, teacher = torch.randn(5, 5), torch.randn(5, 5)
    expected = 0.0
    for s, t in ((student, teacher), (student.T, teacher.T)):
        expected -= (t.softmax(-1) * torch.log(s.softmax(-1))).sum(-1).mean()
    assert float(self_distillation(student, teacher)) == pytest.approx(float(expected), rel=1e-5)
    # A teacher equal to the student: L_SD is the two directions' entropies, its minimum.
    assert float(self_distillation(student, student)) <= float(self_distillation(student, teacher))


def test_contrastive_loss_is_symmetric_cross_entropy():
    logits = torch.randn(6, 6)
    targets = torch.arange(6)
    expected = 0.5 * (
        torch.nn.functional.cross_entropy(logits, targets)
        + torch.nn.functional.cross_entropy(logits.T, targets)
    )
    assert float(contrastive_loss(logits)) == pytest.approx(float(expected))


def test_ema_momentum_follows_the_published_schedule():
    hp = CaRotHparams()
    total = 1000  # warm-up: the first 200 steps
    assert ema_momentum(0, total, hp) == pytest.approx(0.05)
    assert ema_momentum(100, total, hp) == pytest.approx(0.05 + 0.85 * 0.5)
    assert ema_momentum(200, total, hp) == pytest.approx(0.9)
    assert ema_momentum(999, total, hp) == pytest.approx(0.9)
    teacher, student = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = teacher.weight.detach().clone()
    ema_update(teacher, student, 0.25)
    torch.testing.assert_close(teacher.weight, 0.25 * before + 0.75 * student.weight)


def test_teacher_updates_after_steps_that_are_multiples_of_ema_every(tiny_vision_task):
    """ema_every 4 over 20 steps: updates after steps 0, 4, 8, 12, 16, each with the
    scheduled momentum, so the teacher is a known mix of the pretrained weights and
    the students of those steps."""
    seed_everything(0)
    method = create_method("carot", **{**TINY, "epochs": 2}, ema_every=4)
    ctx = make_context(tiny_vision_task, "clip_tiny.random")
    method.run(ctx)
    summary = method.summary()
    assert summary["steps"] == 20
    assert summary["teacher_updates"] == 5  # after steps 0, 4, 8, 12, 16 (the one due
    # after the last step would never be used)
    assert summary["projection_terms"] == "applied"
    assert summary["mean_orth"] > 0 and summary["mean_distill"] > 0


def test_carot_with_zero_coefficients_is_flyp(tiny_vision_task):
    runs = {}
    for name, extra in (
        ("flyp", {}),
        ("carot", {"orth_weight": 0.0, "cross_weight": 0.0, "distill_weight": 0.0}),
    ):
        seed_everything(0)
        runs[name] = create_method(name, **TINY, **extra).run(
            make_context(tiny_vision_task, "clip_tiny.random")
        )
    for split in runs["flyp"]:
        np.testing.assert_array_equal(runs["carot"][split].values, runs["flyp"][split].values)


@pytest.mark.parametrize("name", ["flyp", "carot"])
def test_flyp_and_carot_learn_a_tiny_task_and_predict_every_split(tiny_vision_task, name):
    seed_everything(0)
    # 50 steps: the teacher must update more often than every 500 to follow the student.
    extra = {"ema_every": 5} if name == "carot" else {}
    method = create_method(name, **{**TINY, "epochs": 5, "lr": 3e-4}, **extra)
    ctx = make_context(tiny_vision_task, "clip_tiny.random")
    preds = method.run(ctx)
    assert set(preds) == set(tiny_vision_task.eval_splits())
    test = preds["test"]
    assert test.kind == "logits" and test.values.shape == (len(test.labels), 4)
    assert (test.values.argmax(-1) == test.labels).mean() > 0.5  # chance: 0.25
    assert method.summary()["logit_scale"] > 0


def test_caption_sampler_draws_one_template_per_example_and_resumes():
    sampler = CaptionSampler(["cat", "dog"], ["a {}.", "the {}!", "{} photo"], seed=0)
    captions = sampler(torch.tensor([0, 1, 1, 0, 1]))
    assert len(captions) == 5 and all(("cat" in c) != ("dog" in c) for c in captions)
    state = sampler.state_dict()
    again = sampler(torch.tensor([0, 1]))
    sampler.load_state_dict(state)
    assert sampler(torch.tensor([0, 1])) == again


def test_projection_matrices_of_open_clip():
    backbone = create_backbone("clip_tiny.random")
    w_v, w_t = projection_matrices(backbone)
    assert w_v is backbone.model.visual.proj and w_v.shape == (64, 32)
    assert w_t.shape == (64, 32)


@pytest.mark.parametrize(
    "optimizer, stopped_at",
    # IVON draws captions for each of its 2 weight draws: the 8th draw is in step 4.
    [({}, 8), ({"optimizer": "ivon", "lr": 30.0, "ivon": {"train_samples": 2}}, 4)],
    ids=["adamw", "ivon"],
)
def test_carot_resumes_bitwise_after_preemption(tmp_path, tiny_vision_task, optimizer, stopped_at):
    """The teacher, its schedule position and the caption generator survive a resume."""

    def run(checkpoint=None):
        seed_everything(0)
        ctx = make_context(tiny_vision_task, "clip_tiny.random")
        ctx.checkpoint = checkpoint
        method = create_method("carot", **{**TINY, "ema_every": 3, **optimizer})
        return method.run(ctx), method.summary()

    reference, ref_summary = run()
    checkpoint = Checkpointer(tmp_path / "train.pt", 0, "cellhash", lambda m: None)
    with signal_on_call(CaptionSampler, "tokens", 8), pytest.raises(Preempted):
        run(checkpoint)
    resumed, summary = run(checkpoint)
    assert summary["resumed_from_step"] == stopped_at
    assert summary["teacher_updates"] == ref_summary["teacher_updates"]
    for split in reference:
        np.testing.assert_array_equal(resumed[split].values, reference[split].values)


def test_lp_ft_fine_tunes_a_clip_image_tower_from_its_probe(tiny_vision_task):
    """LP-FT covers CLIP backbones: the probe on the cached image embeddings, then the
    image tower fine-tuned from that head (the ImageNet grid's lp_ft rows)."""
    seed_everything(0)
    method = create_method("lp_ft", epochs=2, batch_size=16, lr=1e-4, head_lr=1e-3)
    ctx = make_context(tiny_vision_task, "clip_tiny.random")
    preds = method.run(ctx)
    assert set(preds) == set(tiny_vision_task.eval_splits())
    assert "features" in ctx._cache  # the probe read the shared cache
    test = preds["test"]
    assert np.isfinite(test.values).all()
    assert float((test.values.argmax(1) == test.labels).mean()) > 0.5
