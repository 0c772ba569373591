"""Tests of the four registered tasks, on fixture trees and on the real data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_data import (  # noqa: E402
    CLINC_INTENTS,
    CLINC_OOS,
    FMNIST_TEST_PER_CLASS,
    FMNIST_TRAIN_PER_CLASS,
    WORDNET_SYNSETS_PER_CATEGORY,
    make_data_tree,
)

from bench.data import DataCountError  # noqa: E402
from bench.tasks import (  # noqa: E402
    OOD_LABEL,
    DataPaths,
    SizeLimits,
    TaskData,
    create_task,
    list_tasks,
    missing_task_files,
    task_metadata,
)

TASKS = ("fmnist", "wordnet_supersense", "clinc150", "sst2")
FIXTURE = {"verify_counts": False}

REPO = Path(__file__).resolve().parents[1]
REAL_ROOT = Path(os.environ.get("BENCH_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> DataPaths:
    return make_data_tree(tmp_path_factory.mktemp("tree"))


def build(name: str, paths: DataPaths, limits: SizeLimits | None = None, **options) -> TaskData:
    return create_task(name, paths, limits, **{**FIXTURE, **options})


def assert_same_task(a: TaskData, b: TaskData) -> None:
    assert a.classnames == b.classnames and list(a.splits) == list(b.splits)
    for name in a.splits:
        sa, sb = a.splits[name], b.splits[name]
        assert sa.info == sb.info
        np.testing.assert_array_equal(sa.labels, sb.labels)
        if isinstance(sa.inputs, np.ndarray):
            np.testing.assert_array_equal(sa.inputs, sb.inputs)
        else:
            assert sa.inputs == sb.inputs, name
    if isinstance(a.context, np.ndarray):
        np.testing.assert_array_equal(a.context, b.context)
    else:
        assert a.context == b.context


def keys(split) -> set:
    """Hashable identities of a split's inputs (image bytes or text)."""
    if isinstance(split.inputs, np.ndarray):
        return {x.tobytes() for x in split.inputs}
    return set(split.inputs)


def check_contract(task: TaskData) -> None:
    assert task.id_split() == "test"
    assert {"train", "val"} <= set(task.splits)
    assert task.splits["train"].info.kind == "train" and task.splits["val"].info.kind == "val"
    for name, split in task.splits.items():
        assert split.info.name == name and len(split) > 0
        assert split.labels.dtype == np.int64
        if split.info.kind == "ood":
            assert np.all(split.labels == OOD_LABEL) and split.info.family
        else:
            assert split.labels.min() >= 0 and split.labels.max() < task.num_classes
        if split.info.kind == "shift":
            assert split.info.family
        if task.modality == "vision":
            assert split.inputs.dtype == np.uint8 and split.inputs.shape[1:] == (28, 28)
        else:
            assert all(isinstance(t, str) and t for t in split.inputs)
    train, val, test = (keys(task.splits[n]) for n in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test


# --------------------------------------------------------------------------- registry


def test_tasks_registered_with_metadata():
    assert set(TASKS) <= set(list_tasks())
    for name in TASKS:
        meta = task_metadata(name)
        assert meta["modality"] in ("vision", "text") and meta["description"]


def test_registry_import_is_light():
    # The workflow lists tasks while Snakemake parses; that must not pull in heavy libraries.
    code = (
        "import sys; from bench.tasks import list_tasks; list_tasks(); "
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy.ndimage') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_required_files_do_not_load(tmp_path):
    empty = DataPaths(root=tmp_path, fashion_mnist=tmp_path / "f", wordnet=tmp_path / "w")
    for name in TASKS:
        missing = missing_task_files(name, empty)
        assert missing and all(not p.exists() for p in missing)
        with pytest.raises(FileNotFoundError, match=name):
            create_task(name, empty)
    files = task_metadata("clinc150")["required_files"]
    assert len(files(empty, banking77_ood=False, context=None)) == 1
    assert len(files(empty, context=None)) == 2


@pytest.mark.parametrize("name", TASKS)
def test_unknown_option_names_valid_ones(name, paths):
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'colour'.*verify_counts"):
        build(name, paths, colour="red")
    with pytest.raises(TypeError, match="verify_counts"):
        create_task(name, paths, verify_counts="no")


@pytest.mark.parametrize("name", TASKS)
def test_manifest_check_catches_fixture_sized_copy(name, paths):
    with pytest.raises(DataCountError, match="expected"):
        create_task(name, paths)


@pytest.mark.parametrize("name", TASKS)
def test_contract_determinism_and_seed(name, paths):
    limits = SizeLimits(max_train=20, max_val=8, max_eval=12, data_seed=0)
    task = build(name, paths, limits)
    check_contract(task)
    assert_same_task(task, build(name, paths, limits))
    assert len(task.splits["train"]) == 20 and len(task.splits["val"]) <= 8
    assert all(len(s) <= 12 for s in task.splits.values() if s.info.kind in ("id", "shift", "ood"))
    other = build(name, paths, SizeLimits(max_train=20, max_val=8, max_eval=12, data_seed=1))
    assert keys(other.splits["train"]) != keys(task.splits["train"])


@pytest.mark.parametrize("name", TASKS)
def test_empty_split_error_names_task_and_split(name, paths):
    with pytest.raises(ValueError, match=rf"task '{name}': split 'train' is empty"):
        build(name, paths, SizeLimits(max_train=0))


# --------------------------------------------------------------------------- fmnist


def test_fmnist_uncapped_sizes_and_shifts(paths):
    task = build("fmnist", paths)
    check_contract(task)
    assert task.classnames == [
        "t-shirt/top", "trouser", "pullover", "dress", "coat", "shirt", "sneaker", "ankle boot"
    ]  # fmt: skip
    assert task.templates and all("{}" in t for t in task.templates)
    sizes = {n: len(s) for n, s in task.splits.items()}
    assert sizes["train"] + sizes["val"] == 8 * FMNIST_TRAIN_PER_CLASS
    assert sizes["val"] == 8 * round(0.1 * FMNIST_TRAIN_PER_CLASS)
    assert sizes["test"] == 8 * FMNIST_TEST_PER_CLASS
    assert sizes["ood_heldout"] == 2 * FMNIST_TEST_PER_CLASS and sizes["ood_digits"] == 1797
    shifts = [s for s in task.splits.values() if s.info.kind == "shift"]
    assert len(shifts) == 12
    assert {(s.info.family, s.info.severity) for s in shifts} == {
        (f, k)
        for f in ("gaussian_noise", "gaussian_blur", "contrast", "rotation")
        for k in (1, 2, 3)
    }
    test = task.splits["test"]
    for s in shifts:
        assert s.info.name == f"shift_{s.info.family}_s{s.info.severity}"
        np.testing.assert_array_equal(s.labels, test.labels)
        assert not np.array_equal(s.inputs, test.inputs)


def test_fmnist_ood_classes_option(paths):
    task = build("fmnist", paths, SizeLimits(max_eval=10), ood_classes=["Shirt", "trouser"])
    assert "shirt" not in task.classnames and len(task.classnames) == 8
    assert task.classnames[:2] == ["t-shirt/top", "pullover"]
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['hat'\]; valid: t-shirt/top"):
        build("fmnist", paths, ood_classes=["hat"])
    with pytest.raises(ValueError, match="split 'ood_heldout' is empty"):
        build("fmnist", paths, ood_classes=[])
    with pytest.raises(TypeError, match="list of class names"):
        build("fmnist", paths, ood_classes="bag")


def test_fmnist_cap_is_stratified(paths):
    task = build("fmnist", paths, SizeLimits(max_train=40, max_val=8, max_eval=16))
    assert np.all(np.bincount(task.splits["train"].labels, minlength=8) == 5)
    assert np.all(np.bincount(task.splits["test"].labels, minlength=8) == 2)


# --------------------------------------------------------------------------- wordnet


def test_wordnet_splits(paths):
    task = build("wordnet_supersense", paths)
    check_contract(task)
    assert task.classnames[:3] == ["act", "animal", "artifact"] and task.num_classes == 10
    n = WORDNET_SYNSETS_PER_CATEGORY
    sizes = {k: len(s) for k, s in task.splits.items()}
    # animal: 20 synsets + 1 in-category duplicate (dropped) + 1 cross-category twin (dropped).
    assert sizes["train"] + sizes["val"] + sizes["test"] == 10 * n
    assert (sizes["train"], sizes["val"], sizes["test"]) == (10 * 14, 10 * 2, 10 * 4)
    assert sizes["ood_heldout"] == 3 * n
    texts = [t for s in task.splits.values() for t in s.inputs]
    assert "an ambiguous shared definition" not in texts
    assert all('"' not in t and not t.endswith(";") for t in task.splits["train"].inputs)
    # Usage examples come from test synsets only, with their synset's label.
    test_ids = {t.split()[2] + t.split()[-2] for t in task.splits["test"].inputs}
    examples = task.splits["shift_examples"]
    for text, label in zip(examples.inputs, examples.labels, strict=True):
        number, category = text.split()[-4], text.split()[-1]
        assert task.classnames[label] == category and number + category in test_ids
    ood_words = {t.split()[-2] for t in task.splits["ood_heldout"].inputs}
    assert ood_words == {"feeling", "shape", "time"}


def test_wordnet_options(paths):
    task = build(
        "wordnet_supersense", paths, categories=["noun.plant", "animal"], ood_categories=["food"]
    )
    assert task.classnames == ["plant", "animal"]
    with pytest.raises(ValueError, match=r"unknown category 'mood'; valid: Tops, act"):
        build("wordnet_supersense", paths, categories=["animal", "mood"])
    with pytest.raises(ValueError, match=r"in both"):
        build("wordnet_supersense", paths, ood_categories=["animal"])
    with pytest.raises(ValueError, match="split 'ood_heldout' is empty"):
        build("wordnet_supersense", paths, ood_categories=["motive"])


# --------------------------------------------------------------------------- clinc150


def test_clinc150_splits(paths):
    task = build("clinc150", paths)
    check_contract(task)
    assert task.classnames == sorted(CLINC_INTENTS)
    assert len(task.splits["ood_oos"]) == CLINC_OOS["oos_test"]
    banking = task.splits["ood_banking77"].inputs
    # card_arrival and top_up_failed stay, 5 intents and 1 in-scope duplicate are dropped.
    assert len(banking) == 2 * 3 + 1 and "test query 0 asking for balance" not in banking
    assert not any("exchange_rate" in t for t in banking)
    assert "where is my card it has not arrived, sadly" in banking  # CLINC150's style
    raw = build("clinc150", paths, banking77_clinc_style=False).splits["ood_banking77"].inputs
    assert "Where is my card? It has\nnot arrived, sadly." in raw
    task = build("clinc150", paths, banking77_ood=False)
    assert "ood_banking77" not in task.splits
    task = build("clinc150", paths, banking77_exclude=[])
    assert len(task.splits["ood_banking77"]) == 7 * 3 + 1
    with pytest.raises(ValueError, match=r"unknown Banking77 intent\(s\) \['nope'\]"):
        build("clinc150", paths, banking77_exclude=["nope"])


# --------------------------------------------------------------------------- sst2


def test_sst2_splits_and_overlap_removal(paths):
    task = build("sst2", paths)
    check_contract(task)
    assert task.classnames == ["negative", "positive"]
    mr = task.splits["shift_mr"].inputs
    assert len(mr) == 13 and not any("wonderful" in t or "predictable" in t for t in mr)
    assert "a mess \u2026 really clich\u00e9d ." in mr
    assert len(task.splits["shift_cr"]) == 10 and len(task.splits["ood_trec"]) == 9
    assert "what is question number 0 ?" in task.splits["ood_trec"].inputs
    cased = build("sst2", paths, lowercase_trec=False).splits["ood_trec"].inputs
    assert "What is question number 0 ?" in cased
    subj = task.splits["ood_subj"].inputs
    assert len(subj) == 5 and all(int(t.split()[2]) % 2 == 1 for t in subj)  # objective only
    kept = build("sst2", paths, remove_sst_overlap=False)
    assert len(kept.splits["shift_mr"]) == 15 and len(kept.splits["ood_subj"]) == 6


# --------------------------------------------------------------------------- real data

REAL_CAPS = SizeLimits(max_train=2000, max_val=500, max_eval=1000, data_seed=0)
REAL_SIZES = {
    "fmnist": {"train": 2000, "val": 500, "test": 1000, "ood_heldout": 1000, "ood_digits": 1000},
    "wordnet_supersense": {"train": 2000, "val": 500, "test": 1000, "shift_examples": 1000,
                           "ood_heldout": 1000},
    "clinc150": {"train": 2000, "val": 500, "test": 1000, "ood_oos": 1000, "ood_banking77": 1000},
    "sst2": {"train": 2000, "val": 500, "test": 1000, "shift_mr": 1000, "shift_cr": 1000,
             "ood_trec": 500, "ood_subj": 1000},
}  # fmt: skip


def real_paths(name: str) -> DataPaths:
    paths = DataPaths(root=REAL_ROOT)
    missing = missing_task_files(name, paths)
    if missing:
        message = f"real data for {name} missing: {missing}"
        if os.environ.get("BENCH_ALLOW_MISSING_DATA") == "1":
            pytest.skip(message)
        pytest.fail(message + " (set BENCH_ALLOW_MISSING_DATA=1 to skip)")
    return paths


@pytest.mark.real_data
@pytest.mark.parametrize("name", TASKS)
def test_real_task_with_caps(name):
    paths = real_paths(name)
    start = time.perf_counter()
    task = create_task(name, paths, REAL_CAPS)  # verify_counts on: real manifests checked
    assert time.perf_counter() - start < 20
    check_contract(task)
    sizes = {n: len(s) for n, s in task.splits.items()}
    for split, size in REAL_SIZES[name].items():
        assert sizes[split] == size, (split, sizes)
    if name == "fmnist":
        assert sum(s.info.kind == "shift" for s in task.splits.values()) == 12
        again = create_task(name, paths, REAL_CAPS)
        for split in ("shift_gaussian_noise_s3", "shift_rotation_s2", "ood_digits"):
            assert again.splits[split].inputs.tobytes() == task.splits[split].inputs.tobytes()
    if name == "clinc150":
        assert task.num_classes == 150 and len(np.unique(task.splits["train"].labels)) == 150
    if name == "wordnet_supersense":
        assert len(np.unique(task.splits["shift_examples"].labels)) == 10


@pytest.mark.real_data
def test_real_sst2_uncapped_overlap_filter():
    task = create_task("sst2", real_paths("sst2"))
    sizes = {n: len(s) for n, s in task.splits.items()}
    assert (sizes["train"], sizes["val"], sizes["test"]) == (6920, 872, 1821)
    assert sizes["shift_cr"] == 3775 and sizes["ood_trec"] == 500
    assert 1900 <= sizes["shift_mr"] <= 2100 and 4990 <= sizes["ood_subj"] <= 5000
    assert not set(task.splits["shift_mr"].inputs) & set(task.splits["train"].inputs)
