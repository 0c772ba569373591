"""The few-shot adapters on the feature cache (CLAP, BayesAdapter, CLIP-Adapter,
Tip-Adapter(-F)), CoOp's linear-probe search, the cache's augmented views and zero-shot
prototypes, k-shot Fashion-MNIST and grid task variants."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from test_methods import cached_context

from bench.backbones import create_backbone
from bench.config import load_grid
from bench.engine import Engine
from bench.engine.features import compute_features
from bench.errors import ConfigError
from bench.methods import create_method, list_methods, method_metadata
from bench.methods.adapter_base import cosine_logits, learning_rate, load_adapter_data
from bench.methods.bayes_adapter import BayesAdapterHparams, BayesHead, gaussian_kl
from bench.methods.clap import CLAP, CLAPHead, class_multipliers
from bench.methods.linear_probe import coop_search, fit_logistic_regression
from bench.methods.tip_adapter import cache_keys, search_alpha_beta, tip_logits
from bench.metrics import score_predictions

# The adapters: trained on the cached prototypes alone (prompt learners also run a text tower).
ADAPTERS = sorted(
    m
    for m in list_methods()
    if method_metadata(m)["uses_prototypes"] and not method_metadata(m)["uses_backbone"]
)
# Short schedules: the synthetic textures separate in a few dozen steps.
QUICK = {
    "clap": {"epochs": 30, "train_views": 2},
    "bayes_adapter": {"epochs": 30, "train_views": 2, "eval_samples": 4},
    "clip_adapter": {"epochs": 40, "train_views": 2, "lr": 0.5, "ratio": 0.6},
    "tip_adapter": {"train_views": 2, "search_step": [20, 5]},
    "tip_adapter_f": {"epochs": 5, "train_views": 2, "search_step": [20, 5]},
}


def engine():
    return Engine.create("cpu", "fp32", threads=2, eval_batch_size=64)


def test_every_adapter_is_registered_as_a_feature_cache_vl_method():
    assert ADAPTERS == ["bayes_adapter", "clap", "clip_adapter", "tip_adapter", "tip_adapter_f"]
    for name in ADAPTERS:
        meta = method_metadata(name)
        assert meta["uses_features"] and not meta["uses_backbone"] and meta["vision_language"]


def test_cache_holds_seeded_views_and_the_zero_shot_prototypes(clip_tiny_cache):
    task, features = clip_tiny_cache
    train = features.splits["train"]
    assert train.views.shape == (2, *train.features.shape)
    assert all(s.views is None for n, s in features.splits.items() if n != "train")
    backbone = create_backbone("clip_tiny.random").eval()
    weights = torch.nn.functional.normalize(
        backbone.zero_shot_weights(task.classnames, task.templates), dim=-1
    )
    np.testing.assert_allclose(features.prototypes.normalized, weights.numpy(), atol=1e-5)
    tokens = backbone.tokenize([task.templates[0].format(c) for c in task.classnames])
    with torch.no_grad():
        raw = backbone.encode_text(tokens).numpy()  # one template: the mean is the embedding
    np.testing.assert_allclose(features.prototypes.raw_mean, raw, atol=1e-5)
    assert features.prototypes.logit_scale == pytest.approx(
        float(backbone.logit_scale.detach().exp()), rel=1e-6
    )
    # In-memory images are augmented too: the views differ from each other and from the
    # un-augmented features.
    assert not np.allclose(train.views[0], train.views[1])
    assert not np.allclose(train.views[0], train.features)
    # Seeded per (task, view, image): another extraction, at another batch size, gives
    # the same views.
    again = compute_features(
        task,
        create_backbone("clip_tiny.random"),
        Engine.create("cpu", "fp32", threads=2, eval_batch_size=7),
        train_views=2,
        prototypes=True,
    )
    # ``train`` was read back from the float16 file, ``again`` is fresh float32.
    np.testing.assert_allclose(again.splits["train"].views, train.views, rtol=1e-3, atol=1e-3)


def test_views_of_image_files_are_augmented_crops(tmp_path):
    """On image files the views are random crops: they differ from each other and from the
    un-augmented features."""
    from fixtures_coop import write_eurosat

    from bench.tasks import DataPaths, create_task

    write_eurosat(tmp_path / "coop" / "eurosat")
    task = create_task(
        "fewshot_eurosat", DataPaths(root=tmp_path), verify_counts=False, shots=2
    ).for_seed(0)
    features = compute_features(task, create_backbone("clip_tiny.random"), engine(), train_views=2)
    train = features.splits["train"]
    assert not np.allclose(train.views[0], train.views[1])
    assert not np.allclose(train.views[0], train.features)


def test_a_support_images_views_do_not_depend_on_the_grids_other_seeds(shared_data):
    """Few-shot pools: the views of seed 0's images are the same whether the cache also
    holds seed 1's draw or not (each image is seeded by its position in the pool)."""
    from bench.tasks import DataPaths, SizeLimits, create_task

    task = create_task("fmnist", DataPaths(root=shared_data), SizeLimits(max_eval=8), shots=2)
    backbone = create_backbone("tiny_cnn.random")
    alone = compute_features(task, backbone, engine(), seeds=(0,), train_views=2).for_seed(0)
    shared = compute_features(task, backbone, engine(), seeds=(0, 1), train_views=2).for_seed(0)
    np.testing.assert_allclose(alone.splits["train"].views, shared.splits["train"].views, atol=1e-5)


def test_adapter_data_needs_prototypes_and_enough_views(clip_tiny_cache):
    ctx = cached_context(clip_tiny_cache)
    with pytest.raises(ValueError, match="holds 2 augmented views"):
        load_adapter_data(ctx, "clap", 5)
    task, features = clip_tiny_cache
    bare = copy.copy(features)
    bare.prototypes = None
    ctx._cache["features"] = bare
    with pytest.raises(ValueError, match="no zero-shot prototypes"):
        load_adapter_data(ctx, "clap", 0)


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_learns_the_tiny_task_and_predicts_every_split(name, clip_tiny_cache):
    task, _ = clip_tiny_cache
    preds = create_method(name, **QUICK[name]).run(cached_context(clip_tiny_cache))
    assert set(preds) == set(task.eval_splits())
    for split_name, pred in preds.items():
        assert pred.values.shape[-2:] == (len(task.splits[split_name]), 4)
        assert np.isfinite(pred.values).all()
    test = preds["test"]
    mean_probs = np.exp(test.values).mean(0) if test.kind == "logprobs" else test.values
    assert float((mean_probs.argmax(-1) == test.labels).mean()) > 0.6


@pytest.mark.parametrize("name", ["clap", "bayes_adapter", "clip_adapter", "tip_adapter_f"])
def test_trained_adapters_are_deterministic_per_seed(name, clip_tiny_cache):
    def run(seed):
        return create_method(name, **QUICK[name]).run(cached_context(clip_tiny_cache, seed))["test"]

    np.testing.assert_array_equal(run(0).values, run(0).values)
    assert not np.array_equal(run(0).values, run(1).values)


def test_learning_rate_is_constant_warmup_then_cosine():
    from bench.methods.adapter_base import FeatureTrainingHparams

    hp = FeatureTrainingHparams(lr=0.1, epochs=4, warmup_epochs=1, warmup_lr=1e-5)
    assert learning_rate(0, 2, hp) == learning_rate(1, 2, hp) == 1e-5
    assert learning_rate(2, 2, hp) == pytest.approx(0.1)
    assert learning_rate(5, 2, hp) == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 6)))


# --- CLAP ---------------------------------------------------------------------------------


def test_clap_multipliers_are_the_zero_shot_probability_of_the_true_class():
    torch.manual_seed(0)
    views, labels = torch.randn(3, 12, 5), torch.arange(12) % 4
    anchors = torch.randn(4, 5)
    expected = []
    for k in range(4):
        probs = cosine_logits(views[:, labels == k], anchors, 10.0).softmax(-1)[..., k]
        expected.append(float(probs.mean()))
    torch.testing.assert_close(
        class_multipliers(views, labels, anchors, 10.0), torch.tensor(expected)
    )


def test_clap_objective_is_ce_plus_class_weighted_penalty(clip_tiny_cache):
    data = load_adapter_data(cached_context(clip_tiny_cache), "clap", 2)
    method = CLAP(penalty="adaptive")
    head = method.build_head(data)
    with torch.no_grad():
        head.prototypes.add_(0.3 * torch.randn_like(head.prototypes))
    x, y = data.features[:16], data.labels[:16]
    ce = torch.nn.functional.cross_entropy(
        data.logit_scale
        * torch.nn.functional.normalize(x, dim=-1)
        @ torch.nn.functional.normalize(head.prototypes, dim=-1).T,
        y,
    )
    squared = ((head.prototypes - data.raw_prototypes) ** 2).sum(-1)
    expected = ce + (head.multipliers * squared).sum() / data.num_classes
    torch.testing.assert_close(head.objective(x, y), expected)
    plain = CLAP(penalty="none").build_head(data)
    assert plain.multipliers is None
    torch.testing.assert_close(plain.penalty(), torch.zeros(()))


# --- BayesAdapter -------------------------------------------------------------------------


def test_bayes_kl_equals_torch_distributions():
    torch.manual_seed(0)
    mean = torch.randn(3, 7, dtype=torch.float64)
    prior_mean = torch.randn(3, 7, dtype=torch.float64)
    log_std = torch.randn(3, dtype=torch.float64) * 0.3 - 2
    q = torch.distributions.Independent(
        torch.distributions.Normal(mean, log_std.exp()[:, None].expand(3, 7)), 1
    )
    p = torch.distributions.Independent(torch.distributions.Normal(prior_mean, 0.05), 1)
    expected = torch.distributions.kl_divergence(q, p).sum()
    torch.testing.assert_close(gaussian_kl(mean, log_std, prior_mean, 0.05), expected)


def test_bayes_adapter_reduces_to_its_map_when_sigma_goes_to_zero(clip_tiny_cache):
    """sigma -> 0, beta = 0: the ELBO is the point estimate's cross-entropy (CLAP without
    penalty, i.e. ZS-LP); the mean's KL gradient is the MAP penalty's."""
    data = load_adapter_data(cached_context(clip_tiny_cache), "bayes_adapter", 0)
    hp = BayesAdapterHparams(posterior_init_std=1e-9, kl_weight=0.0)
    bayes = BayesHead(data, hp, epochs=10)
    clap = CLAPHead(data, multipliers=None)
    with torch.no_grad():
        shift = 0.2 * torch.randn_like(bayes.mean)
        bayes.mean.add_(shift)
        clap.prototypes.add_(shift)
    x, y = data.features, data.labels
    torch.testing.assert_close(
        bayes.objective(x, y, epoch=5), clap.objective(x, y), atol=1e-5, rtol=0
    )
    bayes.mean.grad = None
    bayes.kl().backward()
    torch.testing.assert_close(
        bayes.mean.grad, (bayes.mean - data.raw_prototypes).detach() / hp.prior_std**2
    )


def test_bayes_kl_weight_warms_up_linearly(clip_tiny_cache):
    data = load_adapter_data(cached_context(clip_tiny_cache), "bayes_adapter", 0)
    head = BayesHead(data, BayesAdapterHparams(), epochs=10)
    num_classes, dim = data.raw_prototypes.shape
    assert head.kl_weight == pytest.approx(1 / (1000 * num_classes * dim))
    assert head.beta(0) == 0 and head.beta(5) == pytest.approx(head.kl_weight / 2)
    assert head.beta(20) == pytest.approx(head.kl_weight)


def test_bayes_adapter_predicts_mc_samples_whose_softmax_average_is_scored(clip_tiny_cache):
    pred = create_method("bayes_adapter", **QUICK["bayes_adapter"]).run(
        cached_context(clip_tiny_cache)
    )["test"]
    assert pred.kind == "logprobs" and pred.values.shape[0] == 4
    np.testing.assert_allclose(np.exp(pred.values).sum(-1), 1, atol=1e-5)
    assert not np.allclose(pred.values[0], pred.values[1])  # distinct posterior draws
    mean_probs = np.exp(pred.values).mean(0)
    from_samples = score_predictions(pred.values, pred.labels, "logprobs")
    from_mean = score_predictions(np.log(mean_probs), pred.labels, "logits")
    for key in ("cls/acc", "cal/ece", "cls/nll"):
        assert from_samples[key] == pytest.approx(from_mean[key], abs=1e-6)


# --- Tip-Adapter / CLIP-Adapter -----------------------------------------------------------


def test_tip_logits_by_hand_and_alpha_zero_is_zero_shot():
    torch.manual_seed(0)
    f, keys, zs = torch.randn(5, 6), torch.randn(8, 6), torch.randn(3, 6)
    keys = torch.nn.functional.normalize(keys, dim=-1)
    zs = torch.nn.functional.normalize(zs, dim=-1)
    values = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    unit = f / f.norm(dim=-1, keepdim=True)
    manual = 100 * unit @ zs.T + 2.0 * torch.exp(-5.5 * (1 - unit @ keys.T)) @ values
    torch.testing.assert_close(tip_logits(f, keys, values, zs, 100.0, 2.0, 5.5), manual)
    torch.testing.assert_close(tip_logits(f, keys, values, zs, 100.0, 0.0, 5.5), 100 * unit @ zs.T)


def test_tip_keys_average_the_views_then_normalise(clip_tiny_cache):
    data = load_adapter_data(cached_context(clip_tiny_cache), "tip_adapter", 2)
    expected = torch.nn.functional.normalize(data.views.mean(0), dim=-1)
    torch.testing.assert_close(cache_keys(data), expected)


def test_tip_search_finds_the_best_grid_pair_and_keeps_the_initial_on_ties(clip_tiny_cache):
    from bench.methods.tip_adapter import TipAdapterHparams

    data = load_adapter_data(cached_context(clip_tiny_cache), "tip_adapter", 0)
    keys = cache_keys(data)
    values = torch.nn.functional.one_hot(data.labels, 4).float()
    val = clip_tiny_cache[1].splits["val"]
    x, y = torch.from_numpy(val.features), torch.from_numpy(val.labels)
    hp = TipAdapterHparams(search_step=[10, 4], search_scale=[5.0, 2.0])
    alpha, beta, best = search_alpha_beta(x, y, keys, values, data.prototypes, 1.0, hp, (0.0, 1.0))

    def accuracy(a, b):
        logits = tip_logits(x, keys, values, data.prototypes, 1.0, a, b)
        return float((logits.argmax(-1) == y).float().mean())

    grid = [
        (0.1 + j * 1.9 / 4, 0.1 + i * 4.9 / 10) for i in range(10) for j in range(4)
    ]  # (alpha, beta)
    assert best == pytest.approx(max([accuracy(0.0, 1.0)] + [accuracy(a, b) for a, b in grid]))
    assert accuracy(alpha, beta) == pytest.approx(best)
    # Nothing beats a perfect initial pair: it is kept.
    perfect = search_alpha_beta(
        data.features, data.labels, keys, values, data.prototypes, 1.0, hp, (50.0, 50.0)
    )
    assert perfect[:2] == (50.0, 50.0) and perfect[2] == 1.0


def test_tip_adapter_f_starts_from_tip_adapters_keys(clip_tiny_cache):
    base = create_method("tip_adapter", train_views=2, search=False)
    tuned = create_method("tip_adapter_f", train_views=2, search=False, epochs=1, lr=1e-12)
    first = base.run(cached_context(clip_tiny_cache))["test"].values
    second = tuned.run(cached_context(clip_tiny_cache))["test"].values
    np.testing.assert_allclose(first, second, atol=1e-4)


def test_clip_adapter_with_ratio_zero_is_the_zero_shot_head(clip_tiny_cache):
    data = load_adapter_data(cached_context(clip_tiny_cache), "clip_adapter", 0)
    pred = create_method("clip_adapter", ratio=0.0, epochs=1, train_views=0).run(
        cached_context(clip_tiny_cache)
    )["test"]
    test = torch.from_numpy(clip_tiny_cache[1].splits["test"].features)
    expected = cosine_logits(test, data.prototypes, data.logit_scale)
    np.testing.assert_allclose(pred.values, expected.numpy(), atol=1e-5)


# --- linear probe (CoOp's search) ---------------------------------------------------------


def test_coop_search_fits_sklearns_objective_and_follows_coops_interval_halving():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)) * 3
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    val_x = rng.normal(size=(60, 6)) * 3
    val_y = (val_x[:, 0] + 0.5 * val_x[:, 1] > 0).astype(int) + (val_x[:, 2] > 1).astype(int)
    c, weight, bias, scores = coop_search(x, y, val_x, val_y, 3, max_iter=500)
    assert len(scores) <= 23
    reference = LogisticRegression(C=c, max_iter=5000, tol=1e-10).fit(x, y)
    ours = torch.softmax(torch.from_numpy(x @ weight.T + bias), 1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(x), atol=3e-3)
    # The chosen C is at least as accurate on validation as every start but one decade
    # away (the search refines around the best start).
    assert scores[f"{c:.6g}"] >= max(scores[k] for k in ("1e+06", "10000", "100", "1")) - 0.05


def test_penalize_raw_puts_the_penalty_on_the_raw_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4)) * np.array([1, 5, 0.2, 2])
    y = (x[:, 0] > 0).astype(int)
    weight, bias = fit_logistic_regression(x, y, 2, 0.05, max_iter=500, penalize_raw=True)
    w = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    loss = (
        torch.nn.functional.cross_entropy(torch.from_numpy(x) @ w.T + b, torch.from_numpy(y))
        + 0.05 * w.pow(2).sum()
    )
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-3 and float(b.grad.abs().max()) < 1e-3


# --- k-shot Fashion-MNIST and task variants ------------------------------------------------


def fmnist_grid(shared_data, tasks, methods=("linear_probe", "clap")):
    return {
        "data": {"root": str(shared_data)},
        "seeds": [0, 1],
        "methods": list(methods),
        "tasks": tasks,
    }


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_fmnist_shots_must_be_a_positive_integer(bad):
    from bench.tasks.fmnist import _options

    with pytest.raises(ValueError, match="option 'shots'"):
        _options({"shots": bad})


def test_fmnist_k_shot_support_set_is_the_same_for_every_method_of_a_seed(shared_data):
    """The fit job's task and the feature cache draw the same support set per seed."""
    from bench.tasks import DataPaths, SizeLimits, create_task

    limits = SizeLimits(max_eval=40)
    task = create_task("fmnist", DataPaths(root=shared_data), limits, shots=4)
    assert task.few_shot.shots == 4 and task.few_shot.val_shots == 4
    seeds = (0, 1)
    features = compute_features(task, create_backbone("tiny_cnn.random"), engine(), seeds=seeds)
    for seed in seeds:
        drawn = task.for_seed(seed)
        cached = features.for_seed(seed)
        np.testing.assert_array_equal(np.bincount(drawn.splits["train"].labels), [4] * 8)
        np.testing.assert_array_equal(drawn.splits["train"].labels, cached.splits["train"].labels)
        with torch.no_grad():
            again = compute_features(drawn, create_backbone("tiny_cnn.random"), engine())
        np.testing.assert_allclose(
            again.splits["train"].features, cached.splits["train"].features, atol=1e-5
        )
    first, second = (task.for_seed(s).splits["train"].inputs for s in seeds)
    assert not np.array_equal(first, second)


def test_task_variants_run_one_registered_task_with_other_options(shared_data):
    grid = load_grid(
        fmnist_grid(
            shared_data,
            {
                "fmnist_1shot": {
                    "task": "fmnist",
                    "backbones": ["devise_lite0_minilm.imagenet"],
                    "options": {"shots": 1},
                },
                "fmnist_4shot": {
                    "task": "fmnist",
                    "backbones": ["devise_lite0_minilm.imagenet"],
                    "options": {"shots": 4},
                },
            },
        )
    )
    assert grid.tasks == ["fmnist_1shot", "fmnist_4shot"]
    assert grid.registered_task("fmnist_1shot") == "fmnist"
    settings = grid.cell_settings(grid.cells[0])
    assert settings["task"] == "fmnist_1shot" and settings["registered_task"] == "fmnist"
    assert grid.features_hash("fmnist_1shot", "devise_lite0_minilm.imagenet") != grid.features_hash(
        "fmnist_4shot", "devise_lite0_minilm.imagenet"
    )
    # A grid that names tasks by their registered name records no registered_task (old
    # grids keep their hashes).
    plain = load_grid(
        fmnist_grid(shared_data, {"fmnist": {"backbones": ["devise_lite0_minilm.imagenet"]}})
    )
    assert "registered_task" not in plain.cell_settings(plain.cells[0])


def test_unknown_task_names_say_how_to_name_a_variant(shared_data):
    backbones = ["devise_lite0_minilm.imagenet"]
    message = r"tasks\.fmnist_1shot: unknown task.*tasks\.fmnist_1shot\.task"
    with pytest.raises(ConfigError, match=message):
        load_grid(fmnist_grid(shared_data, {"fmnist_1shot": {"backbones": backbones}}))
    with pytest.raises(ConfigError, match=r"tasks\.few\.task: unknown task 'fmnis'"):
        load_grid(fmnist_grid(shared_data, {"few": {"task": "fmnis", "backbones": backbones}}))


def test_feature_extras_follow_the_grids_adapters(shared_data):
    tasks = {"fmnist": {"backbones": ["devise_lite0_minilm.imagenet"], "options": {"shots": 1}}}
    with_adapters = load_grid(
        fmnist_grid(shared_data, tasks, ["linear_probe", "clap", "tip_adapter"])
    )
    assert with_adapters.feature_extras("fmnist") == {"train_views": 20, "prototypes": True}
    plain = load_grid(fmnist_grid(shared_data, tasks, ["linear_probe", "zero_shot"]))
    assert plain.feature_extras("fmnist") == {}
    tuned = copy.deepcopy(fmnist_grid(shared_data, tasks, ["tip_adapter"]))
    tuned["hparams"] = {"tip_adapter": {"train_views": 0}}
    assert load_grid(tuned).feature_extras("fmnist") == {"prototypes": True}


def test_new_default_hyperparameters_leave_existing_cell_hashes_alone(shared_data):
    from bench.config import result_hparams

    probe = {"l2_grid": [0.1], "max_iter": 200, "search": "grid"}
    assert result_hparams("linear_probe", probe) == {"l2_grid": [0.1], "max_iter": 200}
    assert result_hparams("linear_probe", {**probe, "search": "coop"})["search"] == "coop"
    coop = {"lr": 0.002, "dor_weight": 8.0, "dor_pool_size": 5000}
    assert result_hparams("coop", coop) == {"lr": 0.002}
    assert result_hparams("coop+dor+ts", coop) == coop


def test_search_values_are_checked_per_method(shared_data):
    tasks = {"fmnist": {"backbones": ["devise_lite0_minilm.imagenet"], "options": {"shots": 1}}}
    config = fmnist_grid(shared_data, tasks, ["linear_probe", "tip_adapter"])
    config["hparams"] = {"linear_probe": {"search": True}}
    with pytest.raises(ConfigError, match="linear_probe's search True is not valid.*grid, coop"):
        load_grid(config)
    config["hparams"] = {"tip_adapter": {"search": "coop"}}
    with pytest.raises(ConfigError, match="tip_adapter's search 'coop' is not valid"):
        load_grid(config)


def test_reports_find_a_regularised_runs_own_fit_job():
    from bench.reporting import fit_job_method

    assert fit_job_method("coop+dor+ts") == "coop+dor"
    assert fit_job_method("full_ft+ts") == "full_ft"
    assert fit_job_method("retired_method+ts") == "retired_method"
