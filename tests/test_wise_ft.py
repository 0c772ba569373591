"""WiSE-FT: the interpolation itself, its endpoints (α = 0 is the zero-shot model, α = 1
the fine-tuned one), the α chosen on validation, full_ft's zero-shot head start, and the
grid checks that reject what cannot be interpolated."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_methods import make_context

from bench.config import ConfigError, load_grid
from bench.engine import seed_everything
from bench.methods import create_method, prediction_modifiers, split_method_name, weights_stem
from bench.methods.wise_ft import (
    CURVE_METRICS,
    WiseSettings,
    interpolate_state,
    load_finetuned_weights,
    run_wise_ft,
    write_curve,
)

TINY = {"epochs": 2, "batch_size": 16, "lr": 3e-4, "warmup_fraction": 0.1}


def test_interpolate_state_mixes_floats_and_keeps_the_fine_tuned_integer_buffers():
    start = {"w": torch.zeros(2, 3), "h": torch.ones(2, dtype=torch.float16), "n": torch.tensor(0)}
    end = {
        "w": torch.full((2, 3), 4.0),
        "h": torch.full((2,), 3.0, dtype=torch.float16),
        "n": torch.tensor(7),
    }
    half = interpolate_state(start, end, 0.25)
    torch.testing.assert_close(half["w"], torch.full((2, 3), 1.0))
    assert half["h"].dtype == torch.float16 and float(half["h"][0]) == pytest.approx(1.5)
    assert int(half["n"]) == 7
    torch.testing.assert_close(interpolate_state(start, end, 0.0)["w"], start["w"])
    torch.testing.assert_close(interpolate_state(start, end, 1.0)["w"], end["w"])
    with pytest.raises(ValueError, match="different keys"):
        interpolate_state(start, {"w": end["w"]}, 0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        interpolate_state(start, {**end, "w": torch.zeros(3, 2)}, 0.5)


def test_settings_and_method_names():
    assert WiseSettings().alphas == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    with pytest.raises(ValueError, match="select_by"):
        WiseSettings(select_by="ece")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        WiseSettings(alphas=[1.5])
    assert split_method_name("flyp+wise+ts") == ("flyp", ["wise", "ts"])
    assert weights_stem("flyp+wise+ts") == "flyp+wise" and weights_stem("full_ft+ts") == "full_ft"
    assert prediction_modifiers("flyp+wise+ts") == ["ts"]
    with pytest.raises(ValueError, match="right after the method"):
        split_method_name("flyp+ts+wise")
    with pytest.raises(ValueError, match="valid methods: carot, flyp, full_ft"):
        split_method_name("linear_probe+wise")


def _fit_with_weights(name, task, tmp_path, **hparams):
    seed_everything(0)
    ctx = make_context(task, "clip_tiny.random")
    ctx.weights_path = str(tmp_path / f"{name}.pt")
    predictions = create_method(name, **{**TINY, **hparams}).run(ctx)
    return predictions, ctx.weights_path


def _wise(task, weights, **settings):
    ctx = make_context(task, "clip_tiny.random")
    return run_wise_ft(ctx, weights, WiseSettings(**settings))


def test_flyp_wise_endpoints_are_the_zero_shot_and_the_fine_tuned_models(
    tiny_vision_task, tmp_path
):
    fine_tuned, weights = _fit_with_weights("flyp", tiny_vision_task, tmp_path)
    assert set(load_finetuned_weights(weights)) >= {"backbone", "head", "templates"}
    zero_shot = create_method("zero_shot").run(make_context(tiny_vision_task, "clip_tiny.random"))
    for alpha, reference in ((0.0, zero_shot), (1.0, fine_tuned)):
        predictions, rows, summary = _wise(tiny_vision_task, weights, alphas=[alpha])
        assert summary["alpha"] == alpha
        assert set(predictions) == set(reference)
        for split in reference:
            np.testing.assert_allclose(
                predictions[split].values, reference[split].values, rtol=1e-4, atol=1e-4
            )
    # In between, the prediction is neither endpoint.
    middle, _, _ = _wise(tiny_vision_task, weights, alphas=[0.5])
    assert not np.allclose(middle["test"].values, fine_tuned["test"].values, atol=1e-3)
    assert not np.allclose(middle["test"].values, zero_shot["test"].values, atol=1e-3)


def test_alpha_is_chosen_on_validation_and_the_curve_covers_every_split(tiny_vision_task, tmp_path):
    _, weights = _fit_with_weights("flyp", tiny_vision_task, tmp_path, epochs=5)
    alphas = [0.0, 0.5, 1.0]
    predictions, rows, summary = _wise(tiny_vision_task, weights, alphas=alphas)
    val_acc = {float(a): v for a, v in summary["val_acc"].items()}
    best = max(val_acc.values())
    assert summary["alpha"] == min(a for a, v in val_acc.items() if v == best)  # ties: smaller
    scored = {
        s for s in tiny_vision_task.eval_splits() if tiny_vision_task.splits[s].info.kind != "ood"
    }
    assert len(rows) == len(alphas) * len(scored) * len(CURVE_METRICS)
    assert {r["split"] for r in rows} == scored
    chosen = [r for r in rows if r["selected"]]
    assert {r["alpha"] for r in chosen} == {summary["alpha"]}
    test_acc = next(r["value"] for r in chosen if r["split"] == "test" and r["metric"] == "cls/acc")
    assert test_acc == pytest.approx(
        float((predictions["test"].values.argmax(-1) == predictions["test"].labels).mean())
    )
    # Without the curve only validation is scored at every alpha.
    _, short_rows, short = _wise(tiny_vision_task, weights, alphas=alphas, curve=False)
    assert short["alpha"] == summary["alpha"] and {r["split"] for r in short_rows} == {"val"}
    write_curve(tmp_path / "curve.csv", rows)
    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert lines[0] == "alpha,split,kind,metric,value,selected" and len(lines) == len(rows) + 1


def test_full_ft_zero_shot_head_starts_at_the_zero_shot_model(tiny_vision_task, tmp_path):
    """Before any step, full_ft with head_init zero_shot predicts what zero_shot does; its
    WiSE-FT at alpha 0 is exactly the zero-shot model and at 1 the fine-tuned one."""
    zero_shot = create_method("zero_shot").run(make_context(tiny_vision_task, "clip_tiny.random"))
    untrained, _ = _fit_with_weights(
        "full_ft", tiny_vision_task, tmp_path, head_init="zero_shot", lr=0.0, head_lr=0.0
    )
    np.testing.assert_allclose(
        untrained["test"].values, zero_shot["test"].values, rtol=1e-4, atol=1e-4
    )
    fine_tuned, weights = _fit_with_weights(
        "full_ft", tiny_vision_task, tmp_path, head_init="zero_shot"
    )
    assert load_finetuned_weights(weights)["head"]["weight"].shape[0] == 4
    at_one, _, _ = _wise(tiny_vision_task, weights, alphas=[1.0])
    at_zero, _, _ = _wise(tiny_vision_task, weights, alphas=[0.0])
    for split in fine_tuned:
        np.testing.assert_allclose(at_one[split].values, fine_tuned[split].values, atol=1e-4)
        np.testing.assert_allclose(at_zero[split].values, zero_shot[split].values, atol=1e-4)


def test_a_head_trained_on_raw_features_is_refused(tiny_vision_task, tmp_path):
    _, weights = _fit_with_weights("full_ft", tiny_vision_task, tmp_path, epochs=1)
    with pytest.raises(ValueError, match="head_init: zero_shot"):
        _wise(tiny_vision_task, weights, alphas=[0.5])
    (tmp_path / "other.pt").write_bytes(b"")
    torch.save({"format": 0}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fine-tuned-weights file"):
        load_finetuned_weights(tmp_path / "other.pt")


def _vl_config(methods, **full_ft):
    return {
        "data": {"root": "../shared/data"},
        "seeds": [0],
        "methods": methods,
        "hparams": {"full_ft": full_ft} if full_ft else {},
        "tasks": {"fmnist": {"backbones": ["devise_lite0_minilm.imagenet"]}},
    }


@pytest.mark.parametrize(
    "config, message",
    [
        (_vl_config(["full_ft", "full_ft+wise"]), "full_ft's head_init is 'random'"),
        (_vl_config(["flyp", "flyp+ts+wise"]), "right after the method"),
        (_vl_config(["linear_probe+wise"]), "valid methods: carot, flyp, full_ft"),
    ],
)
def test_grid_rejects_what_wise_cannot_interpolate(config, message, shared_data):
    config = {**copy.deepcopy(config), "data": {"root": str(shared_data)}}
    with pytest.raises(ConfigError, match=message):
        load_grid(config)


def test_grid_rejects_wise_and_zero_shot_heads_without_a_text_tower(shared_data):
    text = {
        "data": {"root": str(shared_data)},
        "seeds": [0],
        "tasks": {"sst2": {"backbones": ["tiny_bert.random"]}},
    }
    with pytest.raises(ConfigError, match="needs a vision-language backbone"):
        load_grid(
            {
                **text,
                "methods": ["full_ft+wise"],
                "hparams": {"full_ft": {"head_init": "zero_shot"}},
            }
        )
    with pytest.raises(ConfigError, match="head_init 'zero_shot' needs a vision-language"):
        load_grid(
            {**text, "methods": ["full_ft"], "hparams": {"full_ft": {"head_init": "zero_shot"}}}
        )
    config = _vl_config(["full_ft", "full_ft+wise"], head_init="zero_shot")
    grid = load_grid({**config, "data": {"root": str(shared_data)}})
    assert grid.keeps_weights("full_ft") and not grid.keeps_weights("flyp")
    wise_settings = grid.cell_settings(grid.cells[1])
    assert wise_settings["wise_ft"]["select_by"] == "accuracy"
    assert "wise_ft" not in grid.cell_settings(grid.cells[0])


def _curve(alpha_values, selected):
    """A run's wise_curve rows: val, id and two shift splits at each alpha."""
    rows = []
    for alpha, (val, test, shift_a, shift_b) in alpha_values.items():
        for split, kind, acc in (
            ("val", "val", val), ("test", "id", test), ("shift_a", "shift", shift_a),
            ("shift_b", "shift", shift_b),
        ):  # fmt: skip
            rows.append({"alpha": alpha, "split": split, "kind": kind, "metric": "cls/acc",
                         "value": acc, "selected": alpha == selected})  # fmt: skip
            rows.append({"alpha": alpha, "split": split, "kind": kind, "metric": "cls/nll",
                         "value": 1.0 - acc, "selected": alpha == selected})  # fmt: skip
    return rows


def test_wise_table_averages_shift_splits_then_seeds(tmp_path):
    from bench.reporting.wise import read_curves, render_markdown, summarise_curves

    runs = []
    for seed, (values, selected) in enumerate(
        [
            ({0.0: (0.5, 0.6, 0.4, 0.2), 1.0: (0.7, 0.8, 0.3, 0.1)}, 1.0),
            ({0.0: (0.5, 0.6, 0.4, 0.2), 1.0: (0.5, 0.6, 0.5, 0.3)}, 0.0),
        ]
    ):
        run = tmp_path / "runs" / "imagenet" / "clip_tiny.random" / "flyp+wise" / f"seed{seed}"
        run.mkdir(parents=True)
        write_curve(run / "wise_curve.csv", _curve(values, selected))
        runs.append(run)
    curves = read_curves(runs)
    assert set(curves["seed"]) == {"0", "1"} and set(curves["method"]) == {"flyp+wise"}
    summary = summarise_curves(curves).set_index("alpha")
    # alpha 1: shift per run (0.3+0.1)/2 = 0.2 and (0.5+0.3)/2 = 0.4 -> mean 0.3.
    assert summary.loc[1.0, "shift_acc_mean"] == pytest.approx(0.3)
    assert summary.loc[1.0, "shift_acc_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert summary.loc[1.0, "id_acc_mean"] == pytest.approx(0.7)
    assert summary.loc[0.0, "chosen"] == 1 and summary.loc[1.0, "chosen"] == 1
    text = render_markdown(summary.reset_index())
    assert "## imagenet · clip_tiny.random · flyp+wise" in text
    assert "| 1 | 60.0 ± 14.1 | 70.0 ± 14.1 | 30.0 ± 14.1 |" in text
    assert "| 0.300 ± 0.141 | 1/2 |" in text  # NLL in nats, not percent


def test_no_wise_runs_give_an_empty_table():
    from bench.reporting.wise import read_curves, render_markdown, summarise_curves

    summary = summarise_curves(read_curves([]))
    assert summary.empty
    assert "No `<method>+wise` run in this grid." in render_markdown(summary)


def test_a_wise_run_that_only_ts_follows_is_still_in_the_grid(shared_data):
    from bench.config import Cell

    config = _vl_config(["flyp+wise+ts"])
    grid = load_grid({**config, "data": {"root": str(shared_data)}})
    backbone = "devise_lite0_minilm.imagenet"
    assert grid.runs(Cell("fmnist", backbone, "flyp+wise", 0))
    assert grid.runs(Cell("fmnist", backbone, "flyp", 0))
    assert grid.keeps_weights("flyp")
    assert not grid.runs(Cell("fmnist", backbone, "carot+wise", 0))
