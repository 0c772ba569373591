"""Preemption safety: a fit stopped by a signal and rerun ends exactly where an
uninterrupted one does; stale or damaged checkpoints are never resumed from; a
diverging loss stops the job with one line."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from bench.backbones import create_backbone
from bench.engine import Engine, seed_everything
from bench.engine.checkpoint import Checkpointer
from bench.engine.loop import Classifier, OptimConfig, predict_logits, train_classifier
from bench.errors import NonFiniteLossError, Preempted

CFG = OptimConfig(epochs=3, batch_size=16, lr=1e-3, head_lr=1e-2)  # 30 steps on 160 images


def fresh_model(task, seed=0):
    seed_everything(seed)
    return Classifier(create_backbone("tiny_bert.random" if task.modality == "text"
                                      else "tiny_cnn.random"), task.num_classes)  # fmt: skip


def signal_at(step_to_signal: int, signum: int = signal.SIGTERM):
    """Cross-entropy that sends ``signum`` to this process during step ``step_to_signal``."""
    calls = {"n": 0}

    def loss(logits, labels):
        calls["n"] += 1
        if calls["n"] == step_to_signal:
            os.kill(os.getpid(), signum)
        return torch.nn.functional.cross_entropy(logits, labels)

    return loss


def train(task, checkpoint=None, loss_fn=None, extra_state=None, seed=0):
    engine = Engine.create("cpu", "fp32")
    model = fresh_model(task, seed)
    summary = train_classifier(
        model, task.splits["train"], CFG, engine, seed, loss_fn, checkpoint, extra_state
    )
    return model, summary, engine


@pytest.mark.parametrize("modality", ["vision", "text"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_then_rerun_equals_uninterrupted(
    tmp_path, tiny_vision_task, tiny_text_task, modality, signum
):
    task = tiny_vision_task if modality == "vision" else tiny_text_task
    reference, ref_summary, engine = train(task)
    expected = predict_logits(reference, task.splits["test"], engine)

    checkpoint = Checkpointer(tmp_path / "train.pt", 0, "cellhash", lambda m: None)
    with pytest.raises(Preempted) as stopped:
        train(task, checkpoint, loss_fn=signal_at(11, signum))
    assert stopped.value.step == 11 and stopped.value.exit_code == 128 + signum
    assert (tmp_path / "train.pt").exists()
    # The handlers are restored once training stops.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    resumed, summary, engine = train(task, checkpoint)  # a fresh model: weights come from disk
    assert summary["resumed_from_step"] == 11
    assert summary["steps"] == ref_summary["steps"]
    assert summary["final_epoch_loss"] == ref_summary["final_epoch_loss"]
    got = predict_logits(resumed, task.splits["test"], engine)
    np.testing.assert_array_equal(got, expected)  # bitwise, not approximately


def test_periodic_checkpoints_and_extra_state(tmp_path, tiny_vision_task):
    """A kill without warning (SIGKILL) loses at most ``every`` steps; a method's extra
    state (an EMA of the weights here) is saved and restored with the model."""

    class Ema:
        def __init__(self):
            self.value = torch.zeros(())

        def state_dict(self):
            return {"value": self.value.clone()}

        def load_state_dict(self, state):
            self.value = state["value"].clone()

    def ema_loss(ema):
        def loss(logits, labels):
            value = torch.nn.functional.cross_entropy(logits, labels)
            ema.value = 0.9 * ema.value + 0.1 * value.detach()
            return value

        return loss

    ema_ref = Ema()
    reference, _, engine = train(
        tiny_vision_task, loss_fn=ema_loss(ema_ref), extra_state={"ema": ema_ref}
    )

    saves = []
    checkpoint = Checkpointer(tmp_path / "train.pt", 7, "cellhash", saves.append)
    ema = Ema()
    model, summary, _ = train(tiny_vision_task, checkpoint, ema_loss(ema), {"ema": ema})
    assert [m.split(" -> ")[0] for m in saves] == [
        "checkpoint: step 7", "checkpoint: step 14", "checkpoint: step 21",
        "checkpoint: step 28", "checkpoint: step 30",  # the last: training complete
    ]  # fmt: skip
    # Rerunning after completion (e.g. killed while predicting) skips the training.
    ema_again = Ema()
    again, summary, _ = train(tiny_vision_task, checkpoint, ema_loss(ema_again), {"ema": ema_again})
    assert summary["resumed_from_step"] == 30 and summary["train_seconds"] < 1
    assert torch.equal(ema_again.value, ema_ref.value)
    for a, b in zip(again.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_stale_or_damaged_checkpoint_is_discarded(tmp_path, tiny_vision_task):
    notes = []
    path = tmp_path / "train.pt"
    old = Checkpointer(path, 0, "old-config", notes.append)
    with pytest.raises(Preempted):
        train(tiny_vision_task, old, loss_fn=signal_at(5))
    reference, _, _ = train(tiny_vision_task)

    new = Checkpointer(path, 0, "new-config", notes.append)
    model, summary, _ = train(tiny_vision_task, new)
    assert "resumed_from_step" not in summary
    assert any("written under config hash old-config" in n for n in notes)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)

    path.write_bytes(b"\x80\x02truncated")
    assert new.load() is None and not path.exists()
    assert "unreadable" in notes[-1]


def test_non_finite_loss_stops_with_a_clear_error(tiny_vision_task):
    def diverging(logits, labels):
        loss = torch.nn.functional.cross_entropy(logits, labels)
        return loss * float("nan") if diverging.calls >= 4 else loss

    diverging.calls = 0

    def counted(logits, labels):
        diverging.calls += 1
        return diverging(logits, labels)

    with pytest.raises(NonFiniteLossError, match=r"loss is nan between steps \d+ and \d+.*lr"):
        train(tiny_vision_task, loss_fn=counted)


def test_checkpointer_rejects_a_negative_interval(tmp_path):
    with pytest.raises(ValueError, match=">= 0"):
        Checkpointer(tmp_path / "x.pt", -1, "h", print)
