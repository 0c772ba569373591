"""The engine's speed settings change speed, not results; ``python -m bench.perf`` runs.

Covers the float16 feature cache, channels-last layout, ``torch.compile``, inference
under ``inference_mode``, the ``auto`` runtime settings, CaRot's multi-tensor EMA, and
the benchmark's tables (timings themselves are not asserted: they belong to the
benchmark's output, not to unit tests).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, make_tiny_vision_task

from bench.backbones import create_backbone
from bench.engine import Engine, seed_everything
from bench.engine.features import (
    FEATURE_STORAGE,
    FeatureSet,
    FeatureSplit,
    compute_features,
    load_features,
    save_features,
)
from bench.engine.loop import Classifier, OptimConfig, predict_logits, train_classifier
from bench.perf.report import (
    Measurement,
    compare_to_reference,
    markdown_table,
    update_docs_section,
)
from bench.perf.scoring import plain_scores, synthetic_logits
from bench.tasks.base import SplitInfo


def cpu_engine(**settings) -> Engine:
    engine = Engine.create("cpu", "fp32", threads=2)
    for key, value in settings.items():
        setattr(engine, key, value)
    engine.log_every = 10**9
    return engine


def trained(engine: Engine, backbone: str = "tiny_cnn.random"):
    """A tiny classifier trained for one epoch on the tiny task, and its test logits."""
    task = make_tiny_vision_task(n_train=64)
    seed_everything(0)
    model = Classifier(create_backbone(backbone), task.num_classes)
    summary = train_classifier(
        model, task.splits["train"], OptimConfig(epochs=1, batch_size=16, lr=1e-3), engine, 0
    )
    return summary, predict_logits(model, task.splits["test"], engine)


# --- the feature cache ------------------------------------------------------------------


def test_feature_cache_stores_float16_and_reads_float32(tmp_path):
    task = make_tiny_vision_task(n_train=32)
    engine = cpu_engine()
    features = compute_features(task, create_backbone("clip_tiny.random"), engine, train_views=2)
    path = tmp_path / "features.npz"
    save_features(path, features)
    with np.load(path) as raw:
        assert raw["train/features"].dtype == FEATURE_STORAGE == np.float16
        assert raw["train/views"].dtype == np.float16
    loaded = load_features(path)
    for name, split in features.splits.items():
        back = loaded.splits[name].features
        assert back.dtype == np.float32
        # float16 keeps 11 significant bits: relative rounding at most 2^-11.
        np.testing.assert_allclose(back, split.features, rtol=2**-11, atol=1e-6)
    np.testing.assert_allclose(
        loaded.splits["train"].views, features.splits["train"].views, rtol=2**-11, atol=1e-6
    )
    # The file holds half the float32 bytes of the features and views, plus metadata.
    float32_bytes = 4 * sum(s.features.size for s in features.splits.values())
    float32_bytes += 4 * features.splits["train"].views.size
    assert path.stat().st_size < float32_bytes / 2 + 20_000


def _one_split_cache(values: np.ndarray) -> FeatureSet:
    split = FeatureSplit(SplitInfo("test", "id"), values, np.zeros(len(values), dtype=np.int64))
    return FeatureSet(backbone="b", classnames=["a"], splits={"test": split})


def test_feature_cache_keeps_float32_where_float16_would_overflow(tmp_path):
    values = np.array([[1e5, 1.0], [0.5, -7e4]], dtype=np.float32)
    save_features(tmp_path / "f.npz", _one_split_cache(values))
    with np.load(tmp_path / "f.npz") as raw:
        assert raw["test/features"].dtype == np.float32
    np.testing.assert_array_equal(load_features(tmp_path / "f.npz").splits["test"].features, values)


def test_a_float32_cache_of_an_earlier_version_still_reads(tmp_path):
    """Caches written before the float16 storage hold float32 arrays; they load unchanged."""
    values = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    save_features(tmp_path / "f.npz", _one_split_cache(values))
    with np.load(tmp_path / "f.npz") as raw:
        arrays = dict(raw)
    arrays["test/features"] = values  # as the old writer stored it
    np.savez(tmp_path / "old.npz", **arrays)
    np.testing.assert_array_equal(
        load_features(tmp_path / "old.npz").splits["test"].features, values
    )


# --- layout, compilation, inference mode ------------------------------------------------


def test_channels_last_changes_layout_not_results():
    """cuDNN's NHWC kernels are the point on a GPU; on CPU the numbers must agree."""
    _, reference = trained(cpu_engine())
    engine = cpu_engine(channels_last=True)
    task = make_tiny_vision_task(n_train=64)
    seed_everything(0)
    model = Classifier(create_backbone("tiny_cnn.random"), task.num_classes)
    train_classifier(
        model, task.splits["train"], OptimConfig(epochs=1, batch_size=16, lr=1e-3), engine, 0
    )
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    np.testing.assert_allclose(predict_logits(model, task.splits["test"], engine), reference,
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_channels_last_leaves_transformers_alone():
    engine = cpu_engine(channels_last=True)
    model = Classifier(create_backbone("tiny_bert.random"), 3)
    before = {n: p.stride() for n, p in model.named_parameters()}
    engine.prepare_model(model)
    assert {n: p.stride() for n, p in model.named_parameters()} == before


def test_compiled_backbone_trains_and_predicts_as_the_eager_one():
    """``runtime.compile`` compiles in place: same parameters, state-dict keys and numbers."""
    summary, reference = trained(cpu_engine())
    engine = cpu_engine(compile=True)
    compiled_summary, logits = trained(engine)
    assert compiled_summary["final_epoch_loss"] == pytest.approx(
        summary["final_epoch_loss"], rel=1e-5
    )
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-5)


def test_prepare_model_compiles_the_backbones_targets_once():
    engine = cpu_engine(compile=True)
    model = Classifier(create_backbone("clip_tiny.random"), 3)
    keys = list(model.state_dict())
    engine.prepare_model(model)
    engine.prepare_model(model)
    visual, text = model.backbone.compile_targets()
    assert visual._compiled_call_impl is not None and text._compiled_call_impl is not None
    assert list(model.state_dict()) == keys  # checkpoints unchanged (no _orig_mod. prefix)


def test_predictions_run_under_inference_mode():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, batch):
            seen.append(torch.is_inference_mode_enabled())
            return batch.float().flatten(1)

    backbone = create_backbone("tiny_cnn.random")
    task = make_tiny_vision_task(n_train=8)
    from bench.engine.loop import encode_split

    encode_split(Probe(), backbone, task.splits["test"], cpu_engine())
    assert seen and all(seen)


# --- runtime settings -------------------------------------------------------------------


def test_auto_runtime_on_cpu_decodes_on_the_host_without_workers():
    engine = Engine.create("cpu", "auto", data_workers="auto", decode="auto")
    assert (engine.data_workers, engine.decode, engine.channels_last) == (0, "host", False)
    assert engine.describe()["decode"] == "host"
    with pytest.raises(ValueError, match="decode must be auto, host or device"):
        Engine.create("cpu", decode="gpu")


_FAULTS_OF_REALLOCATING = """
import resource, sys, torch
from bench.engine.runtime import keep_freed_host_memory
print(keep_freed_host_memory() if sys.argv[1] == "keep" else "untouched")
def reallocate(times):
    for _ in range(times):
        block = torch.ones(16 * 2**20)  # 64 MiB, written: above glibc's largest mmap threshold
        del block
reallocate(10)  # the heap settles (its first blocks may still grow it)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
reallocate(20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults_of_reallocating(mode: str, env: dict) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", _FAULTS_OF_REALLOCATING, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=env,
    )
    allocator, faults = result.stdout.split("\n")[:2]
    return allocator, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_kept_host_memory_is_reused_instead_of_faulted_in_again():
    """A block freed and allocated again (a gradient, every step) reuses its pages."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    allocator, kept = _page_faults_of_reallocating("keep", env)
    _, default = _page_faults_of_reallocating("default", env)
    assert allocator == "glibc, freed memory kept"
    # Default: 16k faults (64 MiB of 4 KiB pages) on each of the 20 allocations; kept:
    # none once the heap has settled (measured: 0).
    assert default > 15 * 2**14 and kept < 2**14


@pytest.mark.parametrize("variable", ["MALLOC_ARENA_MAX=2", "GLIBC_TUNABLES="])
def test_a_users_malloc_settings_are_left_alone(variable):
    name, value = variable.split("=")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), name: value}
    allocator, faults = _page_faults_of_reallocating("keep", env)
    assert allocator == "set by the environment" and faults > 15 * 2**14


def test_speed_settings_are_not_part_of_the_cell_hash():
    """Moving a grid to a GPU (workers, device decoding, compilation) reruns nothing."""
    import yaml
    from conftest import SHARED_DATA

    from bench.config import load_grid

    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(SHARED_DATA)
    config["method_config_dir"] = str(REPO_ROOT / "config" / "methods")
    faster = copy.deepcopy(config)
    faster.setdefault("runtime", {}).update(data_workers=6, decode="device", compile=True)
    plain, fast = load_grid(config), load_grid(faster)
    assert plain.cells and all(plain.cell_hash(c) == fast.cell_hash(c) for c in plain.cells)
    pairs = plain.task_backbones()
    assert all(plain.features_hash(*p) == fast.features_hash(*p) for p in pairs)


def test_carot_ema_update_is_the_per_parameter_formula():
    from bench.methods.carot import ema_update

    torch.manual_seed(0)
    teacher, student = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    expected = [0.9 * t.detach() + 0.1 * s.detach() for t, s in
                zip(teacher.parameters(), student.parameters(), strict=True)]  # fmt: skip
    ema_update(teacher, student, 0.9)
    for got, want in zip(teacher.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want)


# --- the benchmark's tables -------------------------------------------------------------


def test_plain_metric_pass_agrees_with_the_suite():
    """The benchmark's plain reference computes the same numbers as ``score_predictions``."""
    from bench.metrics import score_predictions

    logits, labels = synthetic_logits(3000, 40)
    suite = score_predictions(logits, labels, "logits")
    plain = plain_scores(logits, labels)
    for ours, theirs in (("cls/acc", "acc"), ("cls/nll", "nll"), ("cls/brier", "brier"),
                         ("cal/ece", "ece")):  # fmt: skip
        assert suite[ours] == pytest.approx(plain[theirs], rel=1e-4, abs=1e-6), ours


def test_rows_are_compared_with_the_fastest_plain_loop():
    rows = compare_to_reference(
        [
            Measurement("train", "engine", 300.0, "img/s"),
            Measurement("train", "plain eager", 200.0, "img/s"),
            Measurement("train", "plain compiled", 250.0, "img/s"),
            Measurement("score", "engine", 0.5, "s"),
            Measurement("score", "plain", 1.0, "s"),
            Measurement("decode", "PIL", 100.0, "img/s"),
            Measurement("decode", "nvJPEG", 400.0, "img/s"),
        ]
    )
    ratios = {(r.measure, r.implementation): r.vs_reference for r in rows}
    assert ratios[("train", "engine")] == pytest.approx(1.2)
    assert ratios[("score", "engine")] == pytest.approx(2.0)  # seconds: half the time
    assert ratios[("decode", "nvJPEG")] == pytest.approx(4.0)  # against the slowest decoder
    assert "| train | engine | 300 | img/s |" in markdown_table(rows)


def test_docs_section_of_a_device_is_replaced_and_others_kept(tmp_path):
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nIntro.\n")
    update_docs_section(docs, "gpu-a", "table A1")
    update_docs_section(docs, "cpu-2", "table C")
    update_docs_section(docs, "gpu-a", "table A2")
    text = docs.read_text()
    assert "Intro." in text and "table C" in text and "table A2" in text
    assert "table A1" not in text and text.count("perf:gpu-a:start") == 1


def test_bench_perf_smoke_run_writes_the_csv_and_the_docs_table(tmp_path):
    docs = tmp_path / "performance.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.perf", "--preset", "smoke", "--device", "cpu",
         "--out-dir", str(tmp_path / "perf"), "--docs", str(docs)],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (csv_path,) = (tmp_path / "perf").glob("cpu-*.csv")
    rows = list(csv.DictReader(csv_path.open()))
    measured = {(r["measure"], r["implementation"].split(",")[0]) for r in rows}
    for measure in ("train_flyp", "train_carot", "train_text", "encode_images"):
        assert (measure, "engine") in measured and (measure, "plain eager") in measured
    assert ("extract_jpeg", "plain loader") in measured
    assert {r["implementation"].split(",")[0] for r in rows if r["measure"] == "extract_jpeg"} >= {
        "engine"
    }
    assert any(r["measure"] == "decode_jpeg" and "host ceiling" in r["implementation"]
               for r in rows)  # fmt: skip
    assert all(float(r["value"]) > 0 and r["torch"] == torch.__version__ for r in rows)
    assert all(r["vs_reference"] for r in rows)
    text = docs.read_text()
    assert "python -m bench.perf --preset smoke" in text and "| train_flyp | engine |" in text
    json.dumps(rows)  # plain strings throughout


def test_smoke_run_records_nothing_unless_told_where(tmp_path):
    """Tiny models' figures must not replace a device's record in results/perf."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.perf", "--preset", "smoke", "--device", "cpu",
         "--only", "metrics"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| score_metrics | engine" in result.stdout
    assert "smoke run: nothing recorded" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_grid_cost_of_the_imagenet_shift_grid_is_images_over_rates():
    from bench.config import load_grid_file
    from bench.perf.cost import IMAGENET_SPLIT_IMAGES, Rates, cost_table, grid_cost

    grid = load_grid_file(REPO_ROOT / "config" / "paper" / "imagenet_shifts.yaml", check_data=False)
    rates = Rates(train_flyp=2000.0, train_carot=1500.0, extract_jpeg=5000.0, source="test")
    costs = {c.kind.split()[0] + " " + c.kind.split()[1]: c for c in grid_cost(grid, rates)}
    evaluation = sum(n for s, n in IMAGENET_SPLIT_IMAGES.items() if s != "train")
    train = IMAGENET_SPLIT_IMAGES["train"]
    # 3 seeds x (10 epochs of ImageNet at the CaRot rate + one pass over the eval splits)
    expected = 3 * (10 * train / 1500.0 + evaluation / 5000.0) / 3600
    assert costs["fit carot"].gpu_hours == pytest.approx(expected)
    assert costs["fit flyp"].gpu_hours == pytest.approx(
        3 * (10 * train / 2000.0 + evaluation / 5000.0) / 3600
    )
    assert costs["features imagenet/clip_vit_b16.openai"].images_per_job == train + evaluation
    # WiSE-FT of full_ft, flyp and carot: 11 alphas over the evaluation splits, 3 seeds.
    wise = next(c for k, c in costs.items() if k.startswith("wise_ft"))
    assert (wise.jobs, wise.images_per_job) == (9, 11 * evaluation)
    assert "fit linear_probe" not in costs  # cached features: no GPU
    assert "**total**" in cost_table(list(costs.values()), rates)


def test_cost_rates_come_from_the_engine_rows_of_a_perf_csv(tmp_path):
    from bench.perf.cost import rates_from_csv
    from bench.perf.report import write_csv

    rows = [
        Measurement("train_flyp", "engine", 900.0, "img/s"),
        Measurement("train_flyp", "engine compiled", 1200.0, "img/s"),
        Measurement("train_flyp", "plain compiled", 1000.0, "img/s"),
        Measurement("train_carot", "engine", 800.0, "img/s"),
        Measurement("extract_jpeg", "engine, decode device, 7 workers", 7000.0, "img/s"),
        Measurement("extract_jpeg", "plain loader, PIL, 7 workers", 2000.0, "img/s"),
    ]
    write_csv([({"device": "GPU"}, row) for row in rows], tmp_path / "gpu.csv")
    rates = rates_from_csv(tmp_path / "gpu.csv")
    assert (rates.train_flyp, rates.train_carot, rates.extract_jpeg) == (1200.0, 800.0, 7000.0)
    write_csv([({"device": "GPU"}, row) for row in rows[:2]], tmp_path / "partial.csv")
    with pytest.raises(ValueError, match="train_carot, extract_jpeg.*--only train_clip,inference"):
        rates_from_csv(tmp_path / "partial.csv")


def test_caption_tokens_come_from_a_device_table_equal_to_per_step_tokenisation():
    """FLYP / CaRot index a token table instead of tokenising (and syncing) every step."""
    from bench.methods.flyp import CaptionSampler

    backbone = create_backbone("clip_tiny.random")
    classnames, templates = ["cat", "dog", "sea otter"], ["a photo of a {}.", "a {} drawing."]
    table_path, string_path = (CaptionSampler(classnames, templates, seed=3) for _ in range(2))
    for _ in range(3):
        labels = torch.tensor([2, 0, 1, 1, 2])
        expected = backbone.tokenize(string_path(labels))
        torch.testing.assert_close(
            table_path.tokens(labels, backbone, torch.device("cpu")), expected
        )
    assert table_path._table.shape[:2] == (3, 2)


def test_caption_tokens_of_a_padding_tokenizer_take_the_per_step_path():
    from bench.methods.flyp import CaptionSampler

    backbone = create_backbone("tiny_bert.random")

    class TextTower:  # a vision-language model whose tokenizer pads to the batch's longest
        def tokenize(self, texts):
            return backbone.prepare(texts)["input_ids"]

    sampler = CaptionSampler(["cat", "sea otter"], ["a {}.", "a photo of a big {}."], seed=0)
    tokens = sampler.tokens(torch.tensor([0, 1]), TextTower(), torch.device("cpu"))
    assert sampler._fixed_length is False and sampler._table is None and tokens.shape[0] == 2


def test_flop_count_sees_attention_projections_in_inference_mode():
    """The fused MHA fast path hides its projections from the counter; counting turns it off."""
    from bench.perf.hardware import count_flops

    attention = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    x = torch.randn(2, 10, 32)
    training = count_flops(lambda: attention(x, x, x, need_weights=False))
    attention.eval()
    with torch.inference_mode():
        inference = count_flops(lambda: attention(x, x, x, need_weights=False))
    # QKV (3 x 32 x 32) and output (32 x 32) projections of 20 tokens, 2 FLOPs per MAC.
    assert inference == training >= 2 * 20 * 4 * 32 * 32
    assert torch.backends.mha.get_fastpath_enabled()


def test_a_partial_rerun_replaces_its_measures_and_keeps_the_others(tmp_path):
    """``--only`` on a device with a short limit per command: its other figures stay."""
    from bench.perf.report import merge_measures, read_csv, write_csv

    first = [
        ({"date": "2026-12-01"}, Measurement("train_flyp", "engine", 100.0, "img/s", 256)),
        ({"date": "2026-12-01"}, Measurement("extract_jpeg", "engine", 50.0, "img/s")),
        ({"date": "2026-12-01"}, Measurement("score_metrics", "engine", 0.3, "s")),
    ]
    write_csv(first, tmp_path / "gpu.csv")
    again = [({"date": "2026-12-02"}, Measurement("extract_jpeg", "engine", 70.0, "img/s"))]
    merged = merge_measures(read_csv(tmp_path / "gpu.csv"), again)
    assert [(c["date"], r.measure, r.value) for c, r in merged] == [
        ("2026-12-01", "train_flyp", 100.0),
        ("2026-12-02", "extract_jpeg", 70.0),
        ("2026-12-01", "score_metrics", 0.3),
    ]
    assert merged[0][1].batch_size == 256 and merged[0][1].mfu is None
    # Another machine under the same file name (any 2-core CPU): its figures go.
    ours = {"date": "2026-12-02", "device": "Intel Xeon (2 cores)"}
    theirs = {"date": "2026-12-01", "device": "AMD EPYC (2 cores)"}
    earlier = [
        (theirs, Measurement("train_flyp", "engine", 1.0, "img/s")),
        (theirs, Measurement("score_metrics", "engine", 0.3, "s")),
        (ours, Measurement("decode_jpeg", "engine", 200.0, "img/s")),
    ]
    new = [(ours, Measurement("score_metrics", "engine", 0.2, "s"))]
    merged = merge_measures(earlier, new)
    assert [(c["device"], r.measure) for c, r in merged] == [
        ("Intel Xeon (2 cores)", "decode_jpeg"),
        ("Intel Xeon (2 cores)", "score_metrics"),
    ]
