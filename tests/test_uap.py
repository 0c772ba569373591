"""UAP (uap_map, uap), L2-SP and their parts: the function-space term against scipy, the
KL against torch.distributions, the lambda = 0 reduction to full fine-tuning, Monte Carlo
prediction, context sampling, LoRA, preemption-safe resume and the DAG-build checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import signal_on_call
from scipy.stats import multivariate_normal
from test_methods import FAST, make_context

from bench.backbones import create_backbone
from bench.config import ConfigError, load_grid
from bench.engine import seed_everything
from bench.engine.checkpoint import Checkpointer
from bench.engine.context import ContextSampler, strong_image_augment, word_salad
from bench.engine.loop import Classifier
from bench.engine.lora import add_lora
from bench.engine.posterior import MeanFieldGaussian
from bench.errors import KernelError, Preempted
from bench.methods import create_method
from bench.methods.uap import (
    UAPMapHparams,
    UAPObjective,
    context_kernel,
    function_space_nll,
    predict_sampled,
    stable_cholesky,
)
from bench.metrics.uncertainty import score_msp

# --- the function-space term ------------------------------------------------------------


def test_function_space_term_equals_scipy_gaussian_log_density():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 5)) * 3.0
    logits = rng.normal(size=(6, 4))
    scale, jitter = 0.05, 0.1
    kernel = context_kernel(torch.tensor(features, dtype=torch.float32), scale, jitter)
    chol, added = stable_cholesky(kernel)
    assert added == 0.0
    got = float(function_space_nll(torch.tensor(logits, dtype=torch.float32), chol))

    # Outside reference: K written out in float64 and scipy's multivariate normal.
    k_ref = scale * features @ features.T + scale * np.ones((6, 6)) + jitter * np.eye(6)
    np.testing.assert_allclose(kernel.numpy(), k_ref, rtol=1e-5, atol=1e-7)
    expected = -sum(
        multivariate_normal(mean=np.zeros(6), cov=k_ref).logpdf(logits[:, k]) for k in range(4)
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_function_space_term_pulls_context_logits_toward_uniform():
    """The gradient is K^-1 f per class: a descent step shrinks every class's logits
    toward 0 (equal logits, a uniform softmax); with K close to d I it is about f / d."""
    generator = torch.Generator().manual_seed(0)
    chol, _ = stable_cholesky(context_kernel(torch.randn(8, 3, generator=generator), 1e-5, 1e-2))
    logits = torch.randn(8, 5, generator=generator, requires_grad=True)
    function_space_nll(logits, chol).backward()
    assert ((logits.grad * logits.detach()).sum(0) > 0).all()  # f_k^T K^-1 f_k > 0
    torch.testing.assert_close(logits.grad * 1e-2, logits.detach(), rtol=0, atol=0.02)


def test_cholesky_adds_jitter_only_when_needed_and_fails_clearly():
    features = torch.ones(4, 2) * 1e4  # rank one, huge: float32 round-off breaks PD-ness
    singular = context_kernel(features, 1.0, 0.0) - 1e-3 * torch.eye(4)
    chol, added = stable_cholesky(singular + 2e-3 * torch.eye(4))
    assert torch.isfinite(chol).all()
    with pytest.raises(KernelError, match="non-finite entries"):
        stable_cholesky(torch.full((3, 3), float("nan")))
    with pytest.raises(KernelError, match="raise kernel_jitter"):
        stable_cholesky(-torch.eye(3))
    _, added = stable_cholesky(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    assert added > 0


# --- the variational family -------------------------------------------------------------


def test_mean_field_kl_matches_torch_distributions():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(3, 4))
    bias = torch.nn.Parameter(torch.randn(3))
    posterior = MeanFieldGaussian({"w": weight, "b": bias}, init_std=0.3)
    with torch.no_grad():
        posterior.rho[0].add_(torch.randn(3, 4) * 0.5)
    center = torch.randn(3, 4)
    got = posterior.kl_to_gaussian([center, None], prior_var=2.0).detach()
    q = torch.distributions.Normal(
        torch.cat([weight.flatten(), bias]), torch.cat([s.flatten() for s in posterior.stds()])
    )
    p = torch.distributions.Normal(torch.cat([center.flatten(), torch.zeros(3)]), 2.0**0.5)
    expected = torch.distributions.kl_divergence(q, p).sum().detach()
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert posterior.stds()[1].allclose(torch.full((3,), 0.3))


def test_posterior_samples_are_reparameterised():
    weight = torch.nn.Parameter(torch.zeros(200))
    posterior = MeanFieldGaussian({"w": weight}, init_std=0.5)
    draw = posterior.sample()["w"]
    assert 0.4 < float(draw.detach().std()) < 0.6
    draw.sum().backward()
    assert weight.grad is not None and posterior.rho[0].grad is not None


# --- the method on tiny models ----------------------------------------------------------


def test_uap_map_with_zero_weight_is_full_fine_tuning(tiny_vision_task, tiny_text_task):
    """lambda = 0: the same loss and the same steps as full_ft, hence identical weights."""
    cases = ((tiny_vision_task, "tiny_cnn.random"), (tiny_text_task, "tiny_bert.random"))
    for task, backbone in cases:
        runs = {}
        for name, extra in (("full_ft", {}), ("uap_map", {"prior_weight": 0.0})):
            seed_everything(0)
            runs[name] = create_method(name, **FAST, **extra).run(make_context(task, backbone))
        for split in runs["full_ft"]:
            np.testing.assert_array_equal(
                runs["uap_map"][split].values, runs["full_ft"][split].values
            )


def objective_for(task, hparams: UAPMapHparams, posterior=False, seed=0):
    seed_everything(seed)
    backbone = create_backbone("tiny_cnn.random")
    pretrained = create_backbone("tiny_cnn.random")
    pretrained.load_state_dict(backbone.state_dict())
    pretrained.requires_grad_(False)  # as UAPMap.build_model leaves it
    model = Classifier(backbone, task.num_classes)
    centers = {
        n: (dict(pretrained.named_parameters())[n.removeprefix("backbone.")]
            if n.startswith("backbone.") else None)
        for n, _ in model.named_parameters()
    }  # fmt: skip
    sampler = ContextSampler(task.splits["train"].inputs, "augment", 8, seed)
    ctx = make_context(task, "tiny_cnn.random")
    q = MeanFieldGaussian({n: p for n, p in model.named_parameters() if n.startswith("head.")}, 0.1)
    objective = UAPObjective(
        hparams, 160, pretrained.eval(), centers, sampler, ctx.engine, q if posterior else None
    )
    return model, pretrained, sampler, objective


def test_objective_is_cross_entropy_plus_scaled_prior_terms(tiny_vision_task):
    hp = UAPMapHparams(prior_weight=3.0, prior_var=0.5, kernel_scale=1e-3, kernel_jitter=0.05)
    model, pretrained, sampler, objective = objective_for(tiny_vision_task, hp)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.01)  # away from theta_0, so the parameter-space term is not 0
    train = tiny_vision_task.splits["train"]
    batch = model.backbone.prepare(train.inputs[:16], train=False)
    labels = torch.from_numpy(train.labels[:16])
    state = sampler.state_dict()
    loss = objective(model, batch, labels)

    sampler.load_state_dict(state)  # the same context batch, recomputed by hand
    context = model.backbone.prepare(sampler.draw(), train=False)
    with torch.no_grad():
        chol, _ = stable_cholesky(context_kernel(pretrained(context), 1e-3, 0.05))
    ce = torch.nn.functional.cross_entropy(model(batch), labels)
    fs = function_space_nll(model(context), chol)
    theta0 = dict(pretrained.named_parameters())
    ps = sum(
        ((p - theta0[n.removeprefix("backbone.")]) if n.startswith("backbone.") else p)
        .pow(2).sum() / (2 * 0.5)
        for n, p in model.named_parameters()
    )  # fmt: skip
    assert float(ps.detach()) > 0
    expected = ce + 3.0 / 160 * (fs + ps)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_variational_objective_uses_mc_samples_and_the_kl(tiny_vision_task):
    hp = create_method("uap", train_samples=3).hparams
    model, _, _, objective = objective_for(tiny_vision_task, hp, posterior=True)
    train = tiny_vision_task.splits["train"]
    batch = model.backbone.prepare(train.inputs[:16], train=False)
    labels = torch.from_numpy(train.labels[:16])
    torch.manual_seed(1)
    first = objective(model, batch, labels)
    torch.manual_seed(2)
    second = objective(model, batch, labels)
    assert float(first.detach()) != float(second.detach())  # fresh posterior draws each call
    first.backward()
    assert objective.posterior.rho[0].grad is not None
    assert all(p.grad is None for p in objective.pretrained.parameters())


def test_mc_prediction_shapes_and_averaging(tiny_vision_task):
    seed_everything(0)
    method = create_method("uap", **{**FAST, "epochs": 1}, eval_samples=7, init_std=0.5)
    ctx = make_context(tiny_vision_task, "tiny_cnn.random")
    preds = method.run(ctx)
    test = preds["test"]
    assert test.kind == "logprobs" and test.values.shape == (7, len(test.labels), 4)
    np.testing.assert_allclose(np.exp(test.values).sum(-1), 1.0, atol=1e-5)
    assert not np.allclose(test.values[0], test.values[1])  # distinct draws
    # The scorer's predictive is the mean of the draws' softmax.
    probs = np.exp(test.values.astype(np.float64)).mean(0)
    np.testing.assert_allclose(score_msp(test.values, "logprobs"), probs.max(-1), rtol=1e-5)
    feature_dim = create_backbone("tiny_cnn.random").feature_dim
    assert method.summary()["stochastic_parameters"] == 4 * (feature_dim + 1)


def test_head_posterior_prediction_equals_manual_draws(tiny_vision_task):
    """Draw s of every split uses the generator seeded with SeedSequence([seed, s])."""
    seed_everything(0)
    model = Classifier(create_backbone("tiny_cnn.random"), 4).eval()
    posterior = MeanFieldGaussian(
        {n: p for n, p in model.named_parameters() if n.startswith("head.")}, 0.2
    )
    ctx = make_context(tiny_vision_task, "tiny_cnn.random")
    split = tiny_vision_task.splits["test"]
    with torch.no_grad():
        got = predict_sampled(model, posterior, ctx, 3, seed=5)["test"].values
        features = model.backbone(model.backbone.prepare(split.inputs))
        for s in range(3):
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([5, s]).generate_state(1)[0])
            )
            draw = posterior.sample(generator)
            logits = torch.nn.functional.linear(features, draw["head.weight"], draw["head.bias"])
            np.testing.assert_allclose(got[s], torch.log_softmax(logits, -1).numpy(), atol=1e-5)
        other = predict_sampled(model, posterior, ctx, 3, seed=6)["test"].values
    assert not np.array_equal(got, other)


def with_context_pool(task):
    """The tiny text task with unrelated sentences as its context set (like CLINC's wiki).

    Its word-salad augmentations would keep the sentiment words that decide the label,
    so a prior asking for uncertainty there fights the data.
    """
    pool = [f"the train to station {i} leaves at {i % 12} o'clock" for i in range(60)]
    return dataclasses.replace(task, context=pool)


@pytest.mark.parametrize(
    ("options", "learns"),
    [
        ({}, True),
        ({"stochastic_params": "trained"}, True),
        ({"trained_params": "head"}, False),
        ({"trained_params": "lora", "stochastic_params": "trained"}, False),
    ],
    ids=["head-stochastic", "all-stochastic", "frozen-encoder", "lora"],
)
def test_uap_variants_on_tiny_text_task(tiny_text_task, options, learns):
    """Every variant trains and predicts; those that train the whole (random-weight) tiny
    encoder learn the task; a frozen random encoder or rank-8 adapters in 21 steps do not."""
    seed_everything(0)
    method = create_method("uap", **FAST, eval_samples=3, **options)
    preds = method.run(make_context(with_context_pool(tiny_text_task), "tiny_bert.random"))
    probs = np.exp(preds["test"].values).mean(0)
    if learns:
        assert (probs.argmax(-1) == preds["test"].labels).mean() > 0.9
    summary = method.summary()
    assert summary["context"].startswith("task context of tiny_text")
    head = 2 * (create_backbone("tiny_bert.random").feature_dim + 1)
    if options.get("trained_params") == "lora":
        adapters = summary["trained_parameters"] - head
        assert summary["lora_layers"] > 0 and 0 < adapters < 100_000
        assert summary["stochastic_parameters"] == summary["trained_parameters"]
    elif options.get("trained_params") == "head":
        assert summary["trained_parameters"] == summary["stochastic_parameters"] == head
    else:
        assert summary["posterior_mean_std"] > 1e-3  # the KL's entropy term widened q


def test_l2_sp_has_no_function_space_term(tiny_vision_task):
    seed_everything(0)
    method = create_method("l2_sp", **FAST, prior_weight=50.0)
    method.run(make_context(tiny_vision_task, "tiny_cnn.random"))
    summary = method.summary()
    assert summary["mean_function_space"] == 0 and summary["mean_parameter_space"] > 0
    assert summary["context"].startswith("none")
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        create_method("l2_sp", kernel_scale=1.0)


def test_bad_choices_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="trained_params must be one of all, lora, head"):
        create_method("uap_map", trained_params="some")
    with pytest.raises(ValueError, match="stochastic_params must be one of head, trained"):
        create_method("uap", stochastic_params="encoder")


# --- preemption ---------------------------------------------------------------------------


def test_uap_resumes_bitwise_after_preemption(tmp_path, tiny_vision_task):
    """Context sampler, posterior scales and the objective's sums all survive a resume."""

    def run(checkpoint=None):
        seed_everything(0)
        ctx = make_context(tiny_vision_task, "tiny_cnn.random")
        ctx.checkpoint = checkpoint
        method = create_method("uap", **FAST, eval_samples=2)
        return method.run(ctx), method.summary()

    reference, ref_summary = run()
    checkpoint = Checkpointer(tmp_path / "train.pt", 0, "cellhash", lambda m: None)
    with signal_on_call(ContextSampler, "draw", 9), pytest.raises(Preempted):
        run(checkpoint)
    resumed, summary = run(checkpoint)
    assert summary["resumed_from_step"] == 9
    assert summary["mean_function_space"] == pytest.approx(ref_summary["mean_function_space"])
    for split in reference:
        np.testing.assert_array_equal(resumed[split].values, reference[split].values)


# --- context points -----------------------------------------------------------------------


def test_context_sampler_is_seeded_and_resumable():
    pool = [f"sentence number {i}" for i in range(50)]
    a, b = ContextSampler(pool, "pool", 4, seed=3), ContextSampler(pool, "pool", 4, seed=3)
    assert a.draw() == b.draw()
    state = a.state_dict()
    after = a.draw()
    b.load_state_dict(state)
    assert b.draw() == after
    assert (
        ContextSampler(pool, "pool", 4, seed=4).draw() != ContextSampler(pool, "pool", 4, 3).draw()
    )
    with pytest.raises(ValueError, match="no inputs"):
        ContextSampler([], "pool", 4, 0)


def test_strong_image_augmentation_keeps_format_and_destroys_layout():
    rng = np.random.default_rng(0)
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    images[:, :14] = 255  # top half white
    out = strong_image_augment(images, rng)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    rgb = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert strong_image_augment(rgb, rng).shape == rgb.shape


def test_word_salad_keeps_length_and_vocabulary():
    rng = np.random.default_rng(0)
    sentences = ["book a flight to paris", "what is my balance"]
    vocabulary = np.array(" ".join(sentences).split())
    out = word_salad(sentences, vocabulary, rng)
    assert [len(s.split()) for s in out] == [5, 4]
    assert set(" ".join(out).split()) <= set(vocabulary)
    assert out != sentences


def test_nlp_task_context_is_the_default_source(tiny_text_task):
    task = dataclasses.replace(tiny_text_task, context=[f"wiki line {i}" for i in range(40)])
    seed_everything(0)
    method = create_method("uap_map", **{**FAST, "epochs": 1})
    method.run(make_context(task, "tiny_bert.random"))
    assert method.summary()["context"].startswith("task context of")


# --- LoRA -----------------------------------------------------------------------------------


def test_lora_starts_at_the_pretrained_function_and_trains_only_adapters():
    seed_everything(0)
    backbone = create_backbone("tiny_bert.random")
    batch = backbone.prepare(["a short text", "another one"])
    before = backbone.eval()(batch)
    adapted = add_lora(backbone, rank=2, alpha=4.0)
    # peft's LoRA layer wraps each adapted linear layer (its frozen base_layer inside).
    assert adapted and all(
        type(backbone.get_submodule(n)).__module__.startswith("peft.") for n in adapted
    )
    torch.testing.assert_close(backbone(batch), before)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert len(trainable) == 2 * len(adapted)
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # The update is (alpha / rank) * B A x: with B set, the output moves by exactly that.
    layer = backbone.get_submodule(adapted[0])
    x = torch.randn(3, layer.base_layer.in_features)
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
        expected = layer.base_layer(x) + 2.0 * (
            x @ layer.lora_A["default"].weight.T @ layer.lora_B["default"].weight.T
        )
    torch.testing.assert_close(layer(x), expected)


def test_lora_skips_attention_projections_and_depthwise_convs():
    attention = torch.nn.Sequential(torch.nn.MultiheadAttention(8, 2), torch.nn.Linear(8, 8))
    assert add_lora(attention, 2, 2.0) == ["1"]
    convs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Conv2d(8, 4, 1)
    )
    x = torch.randn(2, 3, 9, 9)
    before = convs(x)
    assert add_lora(convs, 2, 2.0) == ["0", "2"]
    torch.testing.assert_close(convs(x), before)
    with pytest.raises(ValueError, match="has none"):
        add_lora(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4)), 2, 2.0)
    with pytest.raises(ValueError, match="fix lora_targets"):
        add_lora(torch.nn.Sequential(torch.nn.Linear(4, 4)), 2, 2.0, targets=["nope*"])


# --- DAG-build checks -------------------------------------------------------------------


def grid_config(tmp_path, task="fmnist", **hparams):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {
        "data": {"root": str(data), "fashion_mnist": str(tmp_path), "wordnet": str(tmp_path)},
        "methods": ["uap"],
        "seeds": [0],
        "tasks": {task: {"backbones": ["tiny_cnn.random"], "hparams": {"uap": hparams}}},
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("task", "fmnist has no context set; use augment"),
        ("cifar1O", "is neither auto, task, augment nor a registered task"),
        ("fmnist", "cannot be its own context"),
        ("sst2", "is a text task but fmnist is vision"),
        ("cifar100", "its data file"),
    ],
)
def test_context_source_is_checked_when_the_grid_loads(tmp_path, source, message):
    with pytest.raises(ConfigError, match=message):
        load_grid(grid_config(tmp_path, context_source=source))


def test_uap_on_a_clip_image_tower_trains_only_what_the_classifier_uses(tiny_vision_task):
    """CLIP image tower + linear head: the text tower is neither trained nor in the prior;
    LoRA adapts the image tower's MLP layers."""
    backbone = create_backbone("clip_tiny.random")
    visual = sum(p.numel() for p in backbone.classifier_parameters())
    assert visual < sum(p.numel() for p in backbone.parameters())
    head = 4 * (backbone.feature_dim + 1)
    for options, trained in (({}, visual + head), ({"trained_params": "lora"}, None)):
        seed_everything(0)
        method = create_method("uap_map", **{**FAST, "epochs": 1}, **options)
        preds = method.run(make_context(tiny_vision_task, "clip_tiny.random"))
        assert np.isfinite(preds["test"].values).all()
        summary = method.summary()
        if trained is not None:
            assert summary["trained_parameters"] == trained
        else:
            assert summary["lora_layers"] > 0 and summary["trained_parameters"] < visual
