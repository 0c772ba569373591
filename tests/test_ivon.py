"""IVON as an optimiser choice (``<method>@ivon``), gradient accumulation and LoRA.

The mean update is checked against IVON's equations written out by hand with the
posterior noise switched off; prediction against a manual average over draws; the
naming and hyperparameter layering at DAG build.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch
import yaml
from test_methods import FAST, accuracy, cached_context, make_context

from bench.config import REPO_ROOT, ConfigError, load_grid, result_hparams
from bench.engine import seed_everything
from bench.engine.optimizers import (
    IVONSettings,
    WeightPosterior,
    build_optimizer,
    check_ivon_parameters,
    optimizer_step,
)
from bench.methods import (
    create_method,
    fit_stem,
    method_optimizer,
    split_method_name,
    weights_stem,
)
from bench.registry import UnknownNameError

# IVON on the tiny tasks: most coordinates move by lr * clip_radius (1e-6) per step, so
# FAST's AdamW rates carry over divided by the radius.
IVON_FAST = {
    **FAST,
    "lr": FAST["lr"] / 1e-6,
    "head_lr": FAST["head_lr"] / 1e-6,
    "optimizer": "ivon",
}
IVON_SETTINGS = {"eval_samples": 4}


def linear_problem(seed: int = 0, n: int = 64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def ivon_for(model, n_train: int, **settings) -> torch.optim.Optimizer:
    groups = [{"params": list(model.parameters())}]
    return build_optimizer(
        groups,
        "ivon",
        lr=0.1,
        weight_decay=0.0,
        n_train=n_train,
        ivon_settings=IVONSettings(**settings),
    )


def test_settings_file_repeats_the_dataclass_defaults():
    on_disk = yaml.safe_load((REPO_ROOT / "config/optimizers/ivon.yaml").read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(IVONSettings)}
    assert on_disk["settings"] == defaults
    assert on_disk["method"]["optimizer"] == "ivon"


def test_without_posterior_noise_the_mean_update_is_ivons_and_the_model_trains():
    """ess * hess_init = 1e12 makes the draws the means (std 1e-6); with beta2 = 1 the
    Hessian stays at hess_init, so one step is, per weight, m = (1 - b1) g and
    theta' = theta - lr * clip((m / (1 - b1) + wd theta) / (hess_init + wd), r)."""
    torch.manual_seed(0)
    x, y = linear_problem()
    model = torch.nn.Linear(5, 2)
    settings = IVONSettings(ess=1e12, prior_precision=1e12 * 2.0, beta2=1.0, clip_radius=1e9)
    optimizer = build_optimizer(
        [{"params": list(model.parameters())}],
        "ivon",
        lr=0.1,
        weight_decay=0.01,
        n_train=len(x),
        ivon_settings=settings,
    )
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    optimizer_step(optimizer, lambda: iter([torch.nn.functional.cross_entropy(model(x), y)]))
    for param, start, grad in zip(model.parameters(), before, grads, strict=True):
        expected = start - 0.1 * (grad + 0.01 * start) / (2.0 + 0.01)
        torch.testing.assert_close(param.detach(), expected, rtol=1e-4, atol=1e-7)
        assert not torch.allclose(param.detach(), start)
    # And a run of such steps (the Hessian now learned) fits the problem.
    model = torch.nn.Linear(5, 2)
    optimizer = build_optimizer(
        [{"params": list(model.parameters())}],
        "ivon",
        lr=0.5,
        weight_decay=0.0,
        n_train=len(x),
        # hess_init 1 and draws of std 0.125 around the mean (ess 64).
        ivon_settings=IVONSettings(prior_precision=64.0, clip_radius=1.0),
    )

    def loss() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))

    first = loss()
    for _ in range(200):
        optimizer_step(optimizer, lambda: iter([torch.nn.functional.cross_entropy(model(x), y)]))
    assert loss() < 0.5 * first


def test_prediction_averages_the_softmax_over_draws():
    torch.manual_seed(0)
    x, y = linear_problem()
    model = torch.nn.Linear(5, 3)
    optimizer = ivon_for(model, len(x), prior_precision=10.0, eval_samples=6)
    posterior = WeightPosterior(eval_samples=6)
    posterior.bind(optimizer)
    mean_weights = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    values, kind = posterior.predict(lambda: {"test": model(x)})
    assert kind == "logprobs" and values["test"].shape == (6, len(x), 3)
    np.testing.assert_allclose(np.exp(values["test"]).sum(-1), 1.0, rtol=1e-5)
    # The draws differ, the means come back afterwards, and the same seed replays them:
    # each draw is the softmax of the model at mean + noise.
    assert np.ptp(values["test"], axis=0).max() > 1e-3
    for param, mean in zip(model.parameters(), mean_weights, strict=True):
        torch.testing.assert_close(param.detach(), mean)
    torch.manual_seed(1)
    manual = []
    for _ in range(6):
        with optimizer.sampled_params():
            manual.append(torch.log_softmax(model(x), -1).detach().numpy())
    np.testing.assert_allclose(values["test"], np.stack(manual), rtol=1e-5, atol=1e-6)


def test_adamw_posterior_is_the_point_estimate():
    model = torch.nn.Linear(5, 3)
    posterior = WeightPosterior()
    posterior.bind(build_optimizer([{"params": list(model.parameters())}], "adamw", lr=0.1,
                                   weight_decay=0.0, n_train=10))  # fmt: skip
    x, _ = linear_problem()
    values, kind = posterior.predict(lambda: {"test": model(x)})
    assert kind == "logits" and values["test"].shape == (len(x), 3)
    assert posterior.describe() == {}


@pytest.mark.parametrize("name", ["adamw", "ivon"])
def test_gradient_accumulation_takes_the_same_step(name):
    """Two half-batches give the batch's step; for IVON they share one weight draw."""
    x, y = linear_problem(n=32)

    def step(micro: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 2)
        optimizer = build_optimizer(
            [{"params": list(model.parameters())}],
            name,
            lr=0.05,
            weight_decay=0.0,
            n_train=len(x),
            ivon_settings=IVONSettings(prior_precision=100.0),
        )
        parts = torch.arange(len(x)).chunk(micro)

        def losses():
            for part in parts:
                loss = torch.nn.functional.cross_entropy(model(x[part]), y[part])
                yield loss * len(part) / len(x)

        for _ in range(3):
            optimizer_step(optimizer, losses)
        return [p.detach().clone() for p in model.parameters()]

    for whole, accumulated in zip(step(1), step(4), strict=True):
        torch.testing.assert_close(whole, accumulated, rtol=1e-5, atol=1e-6)


def test_ivon_rejects_parameters_of_mixed_dtypes_with_the_fix():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2).bfloat16())]
    with pytest.raises(ConfigError, match="float32 parameters of one dtype.*bf16"):
        check_ivon_parameters(params)
    with pytest.raises(ConfigError, match="optimizer must be one of adamw, sgd, ivon"):
        build_optimizer([{"params": params[:1]}], "lion", lr=1.0, weight_decay=0.0, n_train=1)


def test_ivon_state_round_trips_through_a_checkpoint():
    x, y = linear_problem()
    model = torch.nn.Linear(5, 2)
    optimizer = ivon_for(model, len(x))
    for _ in range(3):
        optimizer_step(optimizer, lambda: iter([torch.nn.functional.cross_entropy(model(x), y)]))
    state = optimizer.state_dict()
    fresh = ivon_for(torch.nn.Linear(5, 2), len(x))
    fresh.load_state_dict(state)
    assert fresh.current_step == optimizer.current_step == 3
    torch.testing.assert_close(fresh.param_groups[0]["hess"], optimizer.param_groups[0]["hess"])


def test_full_ft_at_ivon_learns_and_predicts_with_draws(tiny_text_task):
    seed_everything(0)
    method = create_method("full_ft", **IVON_FAST, ivon=IVON_SETTINGS)
    preds = method.run(make_context(tiny_text_task, "tiny_bert.random"))
    test = preds["test"]
    assert test.kind == "logprobs" and test.values.shape == (4, len(test.labels), 2)
    assert accuracy(test) > 0.8
    summary = method.summary()
    assert summary["ivon_ess"] == len(tiny_text_task.splits["train"])
    assert summary["ivon_eval_samples"] == 4 and summary["ivon_mean_posterior_std"] > 0


def test_lora_ft_trains_only_adapters_and_head_with_adamw_and_ivon(tiny_text_task):
    for extra in ({}, {**IVON_FAST, "ivon": IVON_SETTINGS}):
        seed_everything(0)
        method = create_method("lora_ft", **{**FAST, "lr": 1e-2, **extra})
        preds = method.run(make_context(tiny_text_task, "tiny_bert.random"))
        assert accuracy(preds["test"]) > 0.7, extra
        summary = method.summary()
        assert summary["lora_layers"] > 0
        # rank-8 adapters and the 2-way head: far fewer than the encoder's weights.
        assert summary["trained_parameters"] < 50_000


def test_coop_at_ivon_predicts_with_a_prompt_per_draw(clip_tiny_cache):
    seed_everything(0)
    ctx = cached_context(clip_tiny_cache)
    method = create_method(
        "coop", epochs=2, batch_size=16, train_views=0, optimizer="ivon", lr=1.0,
        ivon={"eval_samples": 3},
    )  # fmt: skip
    preds = method.run(ctx)
    assert preds["test"].kind == "logprobs" and preds["test"].values.shape[0] == 3
    assert np.ptp(preds["test"].values, axis=0).max() > 0  # the draws differ
    assert method.summary()["ivon_eval_samples"] == 3


@pytest.mark.parametrize("name", ["uap_map", "l2_sp"])
def test_prior_methods_at_ivon_keep_their_prior_and_predict_with_draws(tiny_text_task, name):
    seed_everything(0)
    method = create_method(name, **IVON_FAST, ivon=IVON_SETTINGS)
    preds = method.run(make_context(tiny_text_task, "tiny_bert.random"))
    test = preds["test"]
    assert test.kind == "logprobs" and test.values.shape == (4, len(test.labels), 2)
    assert np.ptp(test.values, axis=0).max() > 0  # the draws differ
    assert accuracy(test) > 0.7
    summary = method.summary()
    assert summary["ivon_ess"] == len(tiny_text_task.splits["train"])
    assert summary["mean_parameter_space"] > 0  # the pull toward the pretrained weights


def test_tip_adapter_f_at_ivon_predicts_with_a_cache_per_draw(clip_tiny_cache):
    seed_everything(0)
    ctx = cached_context(clip_tiny_cache)
    method = create_method(
        "tip_adapter_f", epochs=2, batch_size=16, train_views=0, optimizer="ivon", lr=1e3,
        weight_decay=0.0, ivon={"eval_samples": 3, "prior_precision": 1e4},
    )  # fmt: skip
    preds = method.run(ctx)
    test = preds["test"]
    assert test.kind == "logprobs" and test.values.shape == (3, len(test.labels), 4)
    assert np.ptp(test.values, axis=0).max() > 0  # each draw is its own cache
    assert accuracy(test) > 0.5  # chance: 0.25
    summary = method.summary()
    assert summary["ivon_eval_samples"] == 3 and "alpha" in summary


def test_carot_at_ivon_updates_its_teacher_from_the_means_once_per_step(
    tiny_vision_task, monkeypatch
):
    """With two weight draws per step, the EMA teacher still follows the optimiser's
    schedule (updates after steps 0, 4, 8, 12, 16 of 20) and never averages a draw."""
    import ivon

    import bench.methods.carot as carot

    inside_draw = []
    sampled_params = ivon.IVON.sampled_params

    @contextlib.contextmanager
    def tracked(self, train=False):
        inside_draw.append(True)
        try:
            with sampled_params(self, train):
                yield
        finally:
            inside_draw.pop()

    momenta = []
    update = carot.ema_update

    def checked_update(teacher, student, momentum):
        assert not inside_draw, "the teacher averaged a posterior draw"
        momenta.append(momentum)
        update(teacher, student, momentum)

    monkeypatch.setattr(ivon.IVON, "sampled_params", tracked)
    monkeypatch.setattr(carot, "ema_update", checked_update)
    seed_everything(0)
    method = create_method(
        "carot", epochs=2, batch_size=16, lr=30.0, warmup_fraction=0.1, ema_every=4,
        optimizer="ivon", ivon={"train_samples": 2, "eval_samples": 3},
    )  # fmt: skip
    preds = method.run(make_context(tiny_vision_task, "clip_tiny.random"))
    summary = method.summary()
    assert summary["steps"] == 20 and summary["teacher_updates"] == 5
    hp = carot.CaRotHparams(ema_every=4)
    assert momenta == pytest.approx([carot.ema_momentum(t, 20, hp) for t in (0, 4, 8, 12, 16)])
    assert summary["mean_distill"] > 0 and summary["ivon_eval_samples"] == 3
    test = preds["test"]
    assert test.kind == "logprobs" and test.values.shape == (3, len(test.labels), 4)


# --- names and hyperparameters at DAG build --------------------------------------------


def test_method_names_carry_the_optimizer():
    assert split_method_name("full_ft@ivon+ts") == ("full_ft", ["ts"])
    assert method_optimizer("full_ft@ivon+ts") == "ivon"
    assert method_optimizer("full_ft+ts") is None
    assert fit_stem("full_ft@ivon+ts") == weights_stem("full_ft@ivon+ts") == "full_ft@ivon"
    assert fit_stem("coop@ivon+dor+ts") == "coop@ivon+dor"
    with pytest.raises(UnknownNameError, match="valid after '@': ivon"):
        split_method_name("full_ft@adam")
    with pytest.raises(
        ValueError, match="swag does not train with ivon; methods that do: .*full_ft"
    ):
        split_method_name("swag@ivon")
    # Methods with a posterior of their own do not stack IVON's on it.
    for name in ("uap", "bayes_adapter", "mc_dropout", "laplace_ll"):
        with pytest.raises(ValueError, match=f"{name} does not train with ivon"):
            split_method_name(f"{name}@ivon")
    for name in ("carot", "uap_map", "l2_sp", "tip_adapter_f"):
        assert method_optimizer(f"{name}@ivon") == "ivon"


def grid_config(tmp_path, methods, **hparams):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {
        "data": {"root": str(data), "fashion_mnist": str(tmp_path), "wordnet": str(tmp_path)},
        "on_missing_data": "skip",
        "methods": methods,
        "seeds": [0],
        "hparams": hparams,
        "tasks": {
            "fmnist": {"backbones": ["tiny_cnn.random"], "hparams": {"*": {"lr": 3e-4}}},
        },
    }


def test_ivon_takes_its_own_rates_not_adamws(tmp_path):
    config = grid_config(
        tmp_path,
        ["full_ft", "full_ft@ivon", "full_ft@ivon+ts"],
        **{"full_ft": {"head_lr": 1e-2}, "full_ft@ivon": {"head_lr": 5.0, "prior_precision": 50}},
    )
    grid = load_grid(config)
    adamw = grid.method_hparams("fmnist", "full_ft")
    ivon = grid.method_hparams("fmnist", "full_ft@ivon")
    ivon_defaults = yaml.safe_load((REPO_ROOT / "config/optimizers/ivon.yaml").read_text())
    assert adamw["lr"] == 3e-4 and adamw["head_lr"] == 1e-2
    # "*" and full_ft's own rates do not reach IVON; its own block does.
    assert ivon["lr"] == ivon_defaults["method"]["lr"] and ivon["head_lr"] == 5.0
    assert ivon["optimizer"] == "ivon" and ivon["grad_clip"] == 0.0
    assert ivon["ivon"] == {**ivon_defaults["settings"], "prior_precision": 50}
    # The new keys at their defaults leave full_ft's cell hash as it was.
    assert "optimizer" not in result_hparams("full_ft", adamw)
    assert "grad_accumulation" not in result_hparams("full_ft", adamw)


@pytest.mark.parametrize(
    ("methods", "hparams", "message"),
    [
        (
            ["full_ft@ivon"],
            {"full_ft@ivon": {"eval_samples": 0}},
            r"hparams.full_ft@ivon.eval_samples: 0 is less than the minimum of 1 \(Posterior",
        ),
        (
            ["lora_ft@ivon"],
            {"lora_ft@ivon": {"lora_rank": 0}},
            r"hparams.lora_ft@ivon.lora_rank: 0 is less than the minimum of 1 \(Rank",
        ),
    ],
    ids=["ivon-setting", "method-key-under-the-ivon-block"],
)
def test_bad_ivon_values_name_where_they_were_set(tmp_path, methods, hparams, message):
    """(docs/errors.md and tests/test_bad_input.py hold the other IVON DAG errors.)"""
    with pytest.raises(ConfigError, match=message):
        load_grid(grid_config(tmp_path, methods, **hparams))


def test_lora_adapts_efficientnets_pointwise_convolutions_only():
    """EfficientNet-Lite's convolutions are a same-padding subclass peft cannot rebuild;
    the 1x1 ones compute as plain convolutions and get adapters, the padded stem and the
    depthwise ones do not, and the adapted network starts at the pretrained function."""
    from bench.backbones import create_backbone
    from bench.engine.lora import add_lora

    backbone = create_backbone("effnet_lite0.imagenet", image_size=64).eval()
    images = np.random.default_rng(0).integers(0, 255, (2, 28, 28), dtype=np.uint8)
    batch = backbone.prepare(images, train=False)
    before = backbone(batch)
    adapted = add_lora(backbone, 8, 16.0)
    assert "net._conv_head" in adapted and "net._conv_stem" not in adapted
    assert all(n.endswith(("_expand_conv", "_project_conv", "_conv_head")) for n in adapted)
    torch.testing.assert_close(backbone(batch), before, atol=1e-5, rtol=1e-5)


def test_a_preempted_ivon_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_text_task):
    """IVON's Hessian, momentum, step count and the noise generator are checkpointed."""
    import signal

    from test_checkpoint import fresh_model, signal_at

    from bench.engine import Engine
    from bench.engine.checkpoint import Checkpointer
    from bench.engine.loop import OptimConfig, predict_logits, train_classifier
    from bench.errors import Preempted

    cfg = OptimConfig(epochs=3, batch_size=16, lr=1e3, head_lr=1e4, optimizer="ivon")
    settings = IVONSettings(eval_samples=3)
    engine = Engine.create("cpu", "fp32")

    def train(checkpoint=None, loss_fn=None):
        model = fresh_model(tiny_text_task)
        posterior = WeightPosterior(settings.eval_samples)
        summary = train_classifier(
            model, tiny_text_task.splits["train"], cfg, engine, 0, loss_fn, checkpoint,
            ivon=settings, posterior=posterior,
        )  # fmt: skip
        torch.manual_seed(5)
        test = tiny_text_task.splits["test"]
        values, _ = posterior.predict(lambda: {"test": predict_logits(model, test, engine)})
        return values["test"], summary

    expected, reference = train()
    checkpoint = Checkpointer(tmp_path / "train.pt", 0, "cellhash", lambda m: None)
    with pytest.raises(Preempted):
        train(checkpoint, loss_fn=signal_at(7, signal.SIGTERM))
    got, summary = train(checkpoint)
    assert summary["resumed_from_step"] == 7 and summary["steps"] == reference["steps"]
    np.testing.assert_array_equal(got, expected)


def test_flyp_at_ivon_rebuilds_the_text_head_in_every_draw(tiny_vision_task):
    """flyp@ivon: a posterior over both CLIP towers; each draw's text tower makes its own
    zero-shot head, so the draws differ on every split, new classes included."""
    seed_everything(0)
    method = create_method(
        "flyp", epochs=2, batch_size=16, lr=3e-4 / 1e-6, optimizer="ivon",
        ivon={"eval_samples": 3},
    )  # fmt: skip
    preds = method.run(make_context(tiny_vision_task, "clip_tiny.random"))
    assert set(preds) == set(tiny_vision_task.eval_splits())
    for pred in preds.values():
        assert pred.kind == "logprobs" and pred.values.shape[0] == 3
        np.testing.assert_allclose(np.exp(pred.values).sum(-1), 1.0, rtol=1e-4)
    assert np.ptp(preds["test"].values, axis=0).max() > 0
    assert method.summary()["ivon_eval_samples"] == 3
