"""Zero-shot, linear-probe, FLYP, CaRot and the few-shot adapters (CLAP, BayesAdapter,
CLIP-Adapter, Tip-Adapter(-F)) on a vision-language backbone, 2 seeds, end to end through
Snakemake: ImageNet with its shifts (file-backed images, class-subset
scoring) and a CoOp dataset in base-to-new mode, on fixture trees in the real layouts.
(The offline DeViSE-style backbone's zero-shot head is checked on real data in
test_real_weights.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from fixtures_coop import write_eurosat
from fixtures_data import write_outlier_wordnet
from fixtures_imagenet import make_imagenet_tree
from test_workflow import snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def vl_config(root: Path) -> dict:
    return {
        "data": {"root": str(root), "wordnet": str(write_outlier_wordnet(root / "wordnet"))},
        "method_config_dir": str(REPO_ROOT / "config" / "methods"),
        # Two seeds show what seeds change (shots, probes) and what they do not (zero-shot);
        # each further seed adds ~70 jobs and ~2 minutes on two cores.
        "seeds": [0, 1],
        "methods": [
            "zero_shot",
            "zero_shot+ts",
            "linear_probe",
            "flyp",
            "carot",
            "flyp+wise",
            "flyp+wise+ts",
            "carot+wise",
            "clap",
            "bayes_adapter",
            "clip_adapter",
            "tip_adapter",
            "tip_adapter_f",
            "coop",
            "coop+dor",
            "coop+dor+ts",
            "kgcoop+dor",
        ],  # fmt: skip
        "wise_ft": {"alphas": [0.0, 0.5, 1.0]},
        "ensembles": [],
        "reference_method": "zero_shot",
        # A few contrastive steps on the fixtures; the teacher updates every 2 steps.
        "hparams": {
            "flyp": {"epochs": 2, "batch_size": 8, "lr": 1.0e-4},
            "carot": {"epochs": 2, "batch_size": 8, "lr": 1.0e-4, "ema_every": 2},
            # A few prompt-tuning epochs and a 6-word outlier pool from the WordNet fixture.
            "coop": {"epochs": 3, "dor_pool_size": 6},
            "kgcoop": {"epochs": 3, "dor_pool_size": 6},
        },
        "runtime": {"device": "cpu", "data_workers": 1},
        "tasks": {
            "imagenet": {
                "backbones": ["clip_tiny.random"],
                "options": {
                    "verify_counts": False,
                    "val_per_class": 1,
                    "shifts": ["v2", "r", "objectnet"],
                    "ood_datasets": ["eurosat"],
                },
                "hparams": {"*": {"train_views": 2}},
            },
            "fewshot_eurosat": {
                "backbones": ["clip_tiny.random"],
                "options": {"verify_counts": False, "shots": 2, "base_to_new": True},
                "hparams": {"*": {"train_views": 2}},
            },
        },
    }


def test_zero_shot_and_linear_probe_run_end_to_end(tmp_path):
    paths = make_imagenet_tree(tmp_path)
    write_eurosat(paths.root / "coop" / "eurosat")
    config = vl_config(paths.root)
    snakemake(tmp_path, write_config(tmp_path / "vl.yaml", config), "--cores", "2")
    runs = tmp_path / "results" / "runs"

    def metrics(task, backbone, method, seed=0):
        path = runs / task / backbone / method / f"seed{seed}" / "metrics.json"
        return json.loads(path.read_text())["splits"]

    for backbone in ("clip_tiny.random",):
        zero_shot = metrics("imagenet", backbone, "zero_shot")
        assert {"test", "shift_v2", "shift_r", "shift_objectnet"} <= set(zero_shot)
        # Zero-shot has no training: every seed gives the same predictions.
        assert zero_shot == metrics("imagenet", backbone, "zero_shot", seed=1)
        for split in ("test", "shift_r", "shift_objectnet"):
            assert 0.0 <= zero_shot[split]["metrics"]["cls/acc"] <= 1.0
        probe = metrics("imagenet", backbone, "linear_probe")
        assert probe["shift_r"]["n"] == zero_shot["shift_r"]["n"]

    # ImageNet-R and ObjectNet predictions cover all task classes; scoring restricts them.
    with np.load(
        runs / "imagenet" / "clip_tiny.random" / "zero_shot" / "seed0" / "predictions.npz"
    ) as npz:
        splits = json.loads(str(npz["__splits__"]))
        assert npz["shift_r/logits"].shape[1] == len(json.loads(str(npz["__classnames__"])))
        assert splits["shift_r"]["label_map"] and splits["shift_objectnet"]["label_map"]
        assert npz["shift_r/labels"].max() < len(splits["shift_r"]["label_map"])

    # Base-to-new: only the open-vocabulary method predicts the new classes.
    zero_shot = metrics("fewshot_eurosat", "clip_tiny.random", "zero_shot")
    probe = metrics("fewshot_eurosat", "clip_tiny.random", "linear_probe")
    assert zero_shot["test_new"]["kind"] == "new" and "test_new" not in probe
    assert "test_new" in metrics("fewshot_eurosat", "clip_tiny.random", "zero_shot+ts")
    # FLYP and CaRot fine-tune the text tower too, so they also name the new classes.
    for method in ("flyp", "carot"):
        tuned = metrics("fewshot_eurosat", "clip_tiny.random", method)
        assert "test_new" in tuned and tuned["test"]["metrics"]["cal/ece_carot"] >= 0
        assert "shift_objectnet" in metrics("imagenet", "clip_tiny.random", method)
    # WiSE-FT: alpha 0 is the zero-shot model, so its curve row equals zero_shot's score;
    # the chosen alpha's run is scored, +ts follows it, and the per-alpha table is built.
    wise_run = runs / "imagenet" / "clip_tiny.random" / "flyp+wise" / "seed0"
    curve = pd.read_csv(wise_run / "wise_curve.csv")
    at_zero = curve[(curve.alpha == 0.0) & (curve.split == "test") & (curve.metric == "cls/acc")]
    assert at_zero.value.item() == pytest.approx(
        metrics("imagenet", "clip_tiny.random", "zero_shot")["test"]["metrics"]["cls/acc"]
    )
    chosen = json.loads((wise_run / "run.json").read_text())["fit_summary"]["alpha"]
    assert set(curve[curve.selected].alpha) == {chosen}
    assert (runs / "imagenet" / "clip_tiny.random" / "flyp" / "seed0" / "weights.pt").is_file()
    assert "test_new" in metrics("fewshot_eurosat", "clip_tiny.random", "flyp+wise+ts")
    table = (tmp_path / "results" / "leaderboard" / "wise_ft.md").read_text()
    assert "## imagenet · clip_tiny.random · carot+wise" in table
    assert (tmp_path / "paper_figures" / "imagenet" / "clip_tiny.random" / "wise_ft.png").is_file()
    # The adapters read the feature cache (2 augmented views, the zero-shot prototypes):
    # closed-vocabulary, scored on every other split, BayesAdapter with MC samples.
    with np.load(
        tmp_path / "results" / "features" / "fewshot_eurosat" / "clip_tiny.random" / "features.npz"
    ) as cache:
        assert cache["train/views"].shape[0] == 2 and "__prototypes__" in cache
    for method in ("clap", "bayes_adapter", "clip_adapter", "tip_adapter", "tip_adapter_f"):
        for seed in (0, 1):
            adapted = metrics("fewshot_eurosat", "clip_tiny.random", method, seed)
            assert "test_new" not in adapted and "sc/aurc" in adapted["test"]["metrics"]
            on_imagenet = metrics("imagenet", "clip_tiny.random", method, seed)
            assert "shift_objectnet" in on_imagenet and "ood_eurosat" in on_imagenet
            assert "ood/auroc_msp" in on_imagenet["ood_eurosat"]["metrics"]
    bayes = runs / "fewshot_eurosat" / "clip_tiny.random" / "bayes_adapter" / "seed0"
    with np.load(bayes / "predictions.npz") as npz:
        assert npz["test/logprobs"].shape[0] == 10
    # CoOp (+DOR) learns a context that names the new classes too; DOR's pool is cached.
    with np.load(
        tmp_path / "results" / "features" / "fewshot_eurosat" / "clip_tiny.random" / "features.npz"
    ) as cache:
        assert len(json.loads(str(cache["__outliers__"]))) == 6
    for method in ("coop", "coop+dor", "coop+dor+ts", "kgcoop+dor"):
        assert "test_new" in metrics("fewshot_eurosat", "clip_tiny.random", method)
    dor_run = runs / "fewshot_eurosat" / "clip_tiny.random" / "coop+dor" / "seed0" / "run.json"
    assert json.loads(dor_run.read_text())["fit_summary"]["regularizers"] == ["dor"]
    # Seeds draw different shots: the linear probes differ.
    assert probe != metrics("fewshot_eurosat", "clip_tiny.random", "linear_probe", seed=1)

    board = pd.read_csv(tmp_path / "results" / "leaderboard" / "leaderboard.csv")
    eurosat = board[board.task == "fewshot_eurosat"].set_index("method")
    base, new = eurosat.loc["zero_shot", "id_acc_mean"], eurosat.loc["zero_shot", "new_acc_mean"]
    if base + new > 0:
        assert eurosat.loc["zero_shot", "base_new_hm_mean"] == pytest.approx(
            2 * base * new / (base + new)
        )
    assert np.isnan(eurosat.loc["linear_probe", "base_new_hm_mean"])
    overview = (tmp_path / "results" / "leaderboard" / "leaderboard.md").read_text()
    eurosat_md, imagenet_md = (
        overview.split("### fewshot_eurosat · clip_tiny.random")[1].split("###")[0],
        overview.split("### imagenet · clip_tiny.random")[1].split("###")[0],
    )
    assert "base/new HM" in eurosat_md and "base/new HM" not in imagenet_md
    # The shift table of the ImageNet literature and the base-to-new table.
    shift = tmp_path / "results" / "leaderboard" / "shift" / "imagenet__clip_tiny.random__acc.md"
    assert "| method | n | ID ↑ | V2 ↑ |" in shift.read_text()
    assert (
        "fewshot_eurosat · clip_tiny.random"
        in (tmp_path / "results" / "leaderboard" / "base_to_new.md").read_text()
    )
