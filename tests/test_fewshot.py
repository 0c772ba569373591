"""Tests of the CoOp few-shot tasks (``fewshot_*``) on fixture trees in CoOp's layouts."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_coop import (  # noqa: E402
    AIRCRAFT_VARIANTS,
    EXPECTED_CLASSNAMES,
    PER_CLASS,
    SHORT_TRAIN,
    make_coop_tree,
    write_eurosat,
    write_fgvc_aircraft,
    write_oxford_pets,
)

from bench.data import DataCountError, check_manifest  # noqa: E402
from bench.data.coop import COOP_DATASETS  # noqa: E402
from bench.data.images import ImageFiles, ImageReadError  # noqa: E402
from bench.tasks import (  # noqa: E402
    DataPaths,
    SizeLimits,
    create_task,
    list_tasks,
    missing_task_files,
    task_manifest,
    task_metadata,
)
from bench.tasks.base import FewShot  # noqa: E402

FIXTURE = {"verify_counts": False}
FIXTURE_TASKS = tuple(EXPECTED_CLASSNAMES)

#: The CoOp paper's dataset table (classes, train, val, test), typed from the paper.
PUBLISHED = {
    "fewshot_caltech101": (100, 4128, 1649, 2465),
    "fewshot_oxford_pets": (37, 2944, 736, 3669),
    "fewshot_stanford_cars": (196, 6509, 1635, 8041),
    "fewshot_flowers102": (102, 4093, 1633, 2463),
    "fewshot_food101": (101, 50500, 20200, 30300),
    "fewshot_fgvc_aircraft": (100, 3334, 3333, 3333),
    "fewshot_sun397": (397, 15880, 3970, 19850),
    "fewshot_dtd": (47, 2820, 1128, 1692),
    "fewshot_eurosat": (10, 13500, 5400, 8100),
    "fewshot_ucf101": (101, 7639, 1898, 3783),
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> DataPaths:
    return make_coop_tree(tmp_path_factory.mktemp("coop_tree"))


def build(name: str, paths: DataPaths, limits: SizeLimits | None = None, **options):
    return create_task(name, paths, limits, **{**FIXTURE, **options})


def per_class(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels, minlength=num_classes).tolist()


def expected_per_class(part: str, num_classes: int) -> list[int]:
    counts = [PER_CLASS[part]] * num_classes
    if part == "train":
        counts[-1] = SHORT_TRAIN
    return counts


# --------------------------------------------------------------------------- registry


def test_all_ten_tasks_registered_as_vision():
    assert list_tasks("fewshot_*") == sorted(PUBLISHED)
    for name in PUBLISHED:
        meta = task_metadata(name)
        assert meta["modality"] == "vision" and meta["manifest"] is not None
        assert "CoOp" in meta["description"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_required_files_and_manifest_without_data(name, tmp_path):
    paths = DataPaths(tmp_path)
    spec = COOP_DATASETS[name.removeprefix("fewshot_")]
    required = task_metadata(name)["required_files"](paths)
    folder = tmp_path / "coop" / spec.folder
    # Stanford Cars' image folder is the dataset folder itself.
    assert required and all(p == folder or folder in p.parents for p in required)
    assert missing_task_files(name, paths) == required
    entries = task_manifest(name, paths)
    assert all(e.source and e.expected for e in entries)
    assert {c.status for c in check_manifest(entries)} == {"missing"}
    other = tmp_path / "elsewhere"
    moved = task_metadata(name)["required_files"](paths, data_dir=str(other))
    assert all(p == other or other in p.parents for p in moved)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_manifest_carries_published_counts(name, tmp_path):
    classes, train, val, test = PUBLISHED[name]
    entries = task_manifest(name, DataPaths(tmp_path))
    by_what = {e.what: e.expected for e in entries}
    if name == "fewshot_fgvc_aircraft":
        assert by_what["train images"] == train and by_what["val images"] == val
        assert by_what["test images"] == test
    else:
        assert by_what["train entries"] == train and by_what["val entries"] == val
        assert by_what["test entries"] == test
    assert by_what["classes"] == classes
    assert by_what["listed images present"] == train + val + test


@pytest.mark.parametrize("name", FIXTURE_TASKS)
def test_manifest_counts_fixture_copy(name, paths):
    checks = check_manifest(task_manifest(name, paths))
    assert {c.status for c in checks} == {"wrong_count"}
    found = {c.entry.what: c.found for c in checks}
    num_classes = len(EXPECTED_CLASSNAMES[name])
    assert found["classes"] == num_classes
    total = sum(sum(expected_per_class(p, num_classes)) for p in PER_CLASS)
    assert found["listed images present"] == total


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("name", FIXTURE_TASKS)
def test_splits_classnames_and_template(name, paths):
    task = build(name, paths)
    spec = COOP_DATASETS[name.removeprefix("fewshot_")]
    assert task.classnames == EXPECTED_CLASSNAMES[name]
    assert task.templates == [spec.template] and "{}" in spec.template
    assert task.modality == "vision" and task.id_split() == "test"
    assert task.few_shot == FewShot(16, 4, 0)
    assert list(task.splits) == ["train", "val", "test"]
    for split_name, kind in (("train", "train"), ("val", "val"), ("test", "id")):
        split = task.splits[split_name]
        assert split.info.kind == kind and isinstance(split.inputs, ImageFiles)
        assert split.labels.dtype == np.int64
        assert per_class(split.labels, task.num_classes) == expected_per_class(
            split_name, task.num_classes
        )
        assert split.inputs.open(0).size == (16, 16)
    paths_of = {n: set(task.splits[n].inputs.paths) for n in ("train", "val", "test")}
    assert not paths_of["train"] & paths_of["val"] and not paths_of["val"] & paths_of["test"]


def test_split_paths_follow_each_layout(paths):
    cars = build("fewshot_stanford_cars", paths)
    assert cars.splits["train"].inputs.root == paths.root / "coop" / "stanford_cars"
    assert all(p.startswith("cars_test/") for p in cars.splits["test"].inputs.paths)
    aircraft = build("fewshot_fgvc_aircraft", paths)
    assert aircraft.splits["test"].inputs.root == paths.root / "coop/fgvc_aircraft/images"
    assert all(re.fullmatch(r"\d{7}\.jpg", p) for p in aircraft.splits["test"].inputs.paths)
    pets = build("fewshot_oxford_pets", paths)
    assert pets.splits["val"].inputs.root == paths.root / "coop/oxford_pets/images"


def test_split_file_classnames_renamed_like_coop(tmp_path):
    # A split file carrying EuroSAT's folder names gets CoOp's NEW_CNAMES names.
    write_eurosat(tmp_path / "coop" / "eurosat", raw_names=True)
    raw = json.loads((tmp_path / "coop/eurosat/split_zhou_EuroSAT.json").read_text())
    assert raw["train"][0][2] == "AnnualCrop"
    task = build("fewshot_eurosat", DataPaths(tmp_path))
    assert task.classnames == EXPECTED_CLASSNAMES["fewshot_eurosat"]
    assert task.classnames[0] == "Annual Crop Land"


def test_caps_are_stratified_and_train_pool_uncapped_with_shots(paths):
    limits = SizeLimits(max_train=5, max_val=5, max_eval=5, data_seed=3)
    task = build("fewshot_eurosat", paths, limits)
    assert len(task.splits["test"]) == 5
    assert per_class(task.splits["test"].labels, 5) == [1] * 5
    assert len(task.splits["train"]) == sum(expected_per_class("train", 5))
    assert len(task.splits["val"]) == sum(expected_per_class("val", 5))
    again = build("fewshot_eurosat", paths, limits)
    assert list(again.splits["test"].inputs.paths) == list(task.splits["test"].inputs.paths)
    full = build("fewshot_eurosat", paths, limits, shots=None)
    assert full.few_shot is None
    assert len(full.splits["train"]) == 5 and len(full.splits["val"]) == 5


# --------------------------------------------------------------------------- k-shot


@pytest.mark.parametrize("name", ["fewshot_oxford_pets", "fewshot_fgvc_aircraft"])
@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_k_shot_draw_per_seed(name, shots, paths):
    task = build(name, paths, shots=shots)
    assert task.few_shot == FewShot(shots, min(shots, 4), 0)
    num = task.num_classes
    seeded = task.for_seed(0)
    for split, available in (("train", expected_per_class("train", num)), ("val", None)):
        available = available or expected_per_class("val", num)
        limit = shots if split == "train" else min(shots, 4)
        got = per_class(seeded.splits[split].labels, num)
        assert got == [min(limit, a) for a in available]
    assert seeded.splits["test"] is task.splits["test"]
    repeat = build(name, paths, shots=shots).for_seed(0)
    assert list(repeat.splits["train"].inputs.paths) == list(seeded.splits["train"].inputs.paths)


def test_k_shot_draws_differ_across_seeds(paths):
    task = build("fewshot_eurosat", paths, shots=2)
    draws = {tuple(task.for_seed(seed).splits["train"].inputs.paths) for seed in range(4)}
    assert len(draws) == 4
    # The short class has exactly two images: every seed keeps both.
    for seed in range(4):
        labels = task.for_seed(seed).splits["train"].labels
        assert per_class(labels, 5) == [2] * 5


# --------------------------------------------------------------------------- base-to-new


@pytest.mark.parametrize("name", FIXTURE_TASKS)
def test_base_to_new_split(name, paths):
    full = build(name, paths)
    task = build(name, paths, base_to_new=True)
    names = EXPECTED_CLASSNAMES[name]
    num_base = math.ceil(len(names) / 2)
    assert task.classnames == names[:num_base]
    assert list(task.splits) == ["train", "val", "test", "test_new"]
    for split in ("train", "val", "test"):
        kept = full.splits[split].labels < num_base
        assert list(task.splits[split].inputs.paths) == list(full.splits[split].inputs.paths[kept])
        np.testing.assert_array_equal(task.splits[split].labels, full.splits[split].labels[kept])
    new = task.splits["test_new"]
    assert new.info.kind == "new" and new.info.label_map is None
    assert new.info.classnames == tuple(names[num_base:]) and new.info.open_vocabulary
    is_new = full.splits["test"].labels >= num_base
    assert list(new.inputs.paths) == list(full.splits["test"].inputs.paths[is_new])
    np.testing.assert_array_equal(new.labels, full.splits["test"].labels[is_new] - num_base)
    assert set(new.labels.tolist()) == set(range(len(names) - num_base))
    assert "test_new" in task.eval_splits() and task.id_split() == "test"


def test_base_to_new_odd_class_count_gives_base_the_ceiling(paths):
    task = build("fewshot_fgvc_aircraft", paths, base_to_new=True, shots=4)
    assert len(AIRCRAFT_VARIANTS) == 5
    assert task.classnames == list(AIRCRAFT_VARIANTS[:3])
    assert task.splits["test_new"].info.classnames == AIRCRAFT_VARIANTS[3:]
    seeded = task.for_seed(1)
    assert per_class(seeded.splits["train"].labels, 3) == [4, 4, 4]
    assert per_class(seeded.splits["val"].labels, 3) == [4, 4, 4]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("fewshot_eurosat", r"split_zhou_EuroSAT\.json: expected 13500 train entries but found 26"),
        ("fewshot_oxford_pets", r"expected 2944 train entries but found 26"),
        ("fewshot_fgvc_aircraft", r"images_variant_train\.txt: expected 3334 train entries but "),
    ],
)
def test_verify_counts_names_found_and_expected(name, pattern, paths):
    with pytest.raises(DataCountError, match=pattern):
        create_task(name, paths)


def test_class_count_checked_after_split_sizes(tmp_path):
    from dataclasses import replace

    from bench.data.coop import CoopCounts, load_coop

    write_oxford_pets(tmp_path / "coop" / "oxford_pets")
    # The fixture's split sizes, so that only the class count differs.
    spec = replace(COOP_DATASETS["oxford_pets"], counts=CoopCounts(37, 26, 25, 15))
    with pytest.raises(DataCountError, match="expected 37 classes but found 5"):
        load_coop(spec, tmp_path / "coop" / "oxford_pets")


def test_missing_split_file_is_named(tmp_path):
    folder = tmp_path / "coop" / "oxford_pets"
    write_oxford_pets(folder)
    (folder / "split_zhou_OxfordPets.json").unlink()
    with pytest.raises(FileNotFoundError, match="split_zhou_OxfordPets.json"):
        build("fewshot_oxford_pets", DataPaths(tmp_path))
    from bench.tasks.fewshot import COOP_DATASETS as specs
    from bench.tasks.fewshot import build_fewshot

    with pytest.raises(FileNotFoundError, match=r"split_zhou_OxfordPets\.json: split file does"):
        build_fewshot(specs["oxford_pets"], DataPaths(tmp_path), SizeLimits(), **FIXTURE)


def test_missing_image_folder_and_list_are_named(tmp_path):
    import shutil

    pets = tmp_path / "coop" / "oxford_pets"
    write_oxford_pets(pets)
    shutil.rmtree(pets / "images")
    with pytest.raises(FileNotFoundError, match=re.escape(str(pets / "images"))):
        build("fewshot_oxford_pets", DataPaths(tmp_path))
    aircraft = write_fgvc_aircraft(tmp_path / "coop" / "fgvc_aircraft")
    (aircraft / "images_variant_val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="images_variant_val.txt"):
        build("fewshot_fgvc_aircraft", DataPaths(tmp_path))


def test_listed_but_absent_images_are_named_and_counted(tmp_path):
    folder = tmp_path / "coop" / "eurosat"
    write_eurosat(folder)
    split = json.loads((folder / "split_zhou_EuroSAT.json").read_text())
    gone = [split["val"][1][0], split["test"][0][0]]
    for impath in gone:
        (folder / "2750" / impath).unlink()
    with pytest.raises(FileNotFoundError) as error:
        build("fewshot_eurosat", DataPaths(tmp_path))
    message = str(error.value)
    total = sum(len(v) for v in split.values())
    assert f"2 of {total} images listed in" in message
    assert str(folder / "2750" / gone[0]) in message


def test_unreadable_image_raises_image_read_error_when_decoded(tmp_path):
    folder = tmp_path / "coop" / "oxford_pets"
    write_oxford_pets(folder)
    task = build("fewshot_oxford_pets", DataPaths(tmp_path))
    inputs = task.splits["test"].inputs
    (folder / "images" / inputs.paths[2]).write_bytes(b"not a jpeg at all")
    inputs.open(1)
    with pytest.raises(ImageReadError, match=re.escape(str(inputs.path(2)))):
        inputs.open(2)


def test_malformed_or_inconsistent_split_file_is_named(tmp_path):
    folder = tmp_path / "coop" / "eurosat"
    path = write_eurosat(folder)
    split = json.loads(path.read_text())
    split["test"][0][2] = "Forest"  # label 0 is "Annual Crop Land" elsewhere
    path.write_text(json.dumps(split))
    with pytest.raises(ValueError, match="label 0 is called both"):
        build("fewshot_eurosat", DataPaths(tmp_path))
    split["test"][0] = ["AnnualCrop/x.jpg", "0", "Annual Crop Land"]
    path.write_text(json.dumps(split))
    with pytest.raises(ValueError, match=r"split_zhou_EuroSAT\.json: test entry 0"):
        build("fewshot_eurosat", DataPaths(tmp_path))


def test_options_are_validated(paths):
    with pytest.raises(
        TypeError, match="valid options: base_to_new, data_dir, ood_datasets, shots, verify"
    ):
        build("fewshot_dtd", paths, num_shots=4)
    with pytest.raises(TypeError, match="unknown option"):
        task_metadata("fewshot_dtd")["required_files"](paths, shot=4)
    with pytest.raises(ValueError, match="'shots' must be null .* 1, 2, 4, 8, 16, got 3"):
        build("fewshot_eurosat", paths, shots=3)
    with pytest.raises(ValueError, match="'shots'"):
        build("fewshot_eurosat", paths, shots=True)
    with pytest.raises(TypeError, match="'base_to_new' must be true or false"):
        build("fewshot_eurosat", paths, base_to_new="yes")
    with pytest.raises(ValueError, match="'data_dir' must be an absolute path"):
        build("fewshot_eurosat", paths, data_dir="relative/eurosat")


def test_data_dir_and_alternative_layouts(tmp_path):
    elsewhere = tmp_path / "mine" / "EuroSAT-copy"
    write_eurosat(elsewhere)
    task = build("fewshot_eurosat", DataPaths(tmp_path / "empty"), data_dir=str(elsewhere))
    assert task.splits["train"].inputs.root == elsewhere / "2750"
    # FGVC-Aircraft with the tarball's data/ folder kept.
    nested = write_fgvc_aircraft(tmp_path / "coop" / "fgvc_aircraft", nested=True)
    task = build("fewshot_fgvc_aircraft", DataPaths(tmp_path))
    assert task.splits["test"].inputs.root == nested / "images"
    assert task.classnames == list(AIRCRAFT_VARIANTS)


def test_ood_datasets_add_another_datasets_test_images_as_far_ood(paths):
    from bench.tasks import OOD_LABEL

    limits = SizeLimits(max_eval=6)
    task = build("fewshot_oxford_pets", paths, limits, ood_datasets=["stanford_cars", "eurosat"])
    for other in ("stanford_cars", "eurosat"):
        split = task.splits[f"ood_{other}"]
        assert split.info.kind == "ood" and split.info.family == other
        assert len(split) == 6 and (split.labels == OOD_LABEL).all()
        assert other in str(split.inputs.root)
    required = task_metadata("fewshot_oxford_pets")["required_files"](
        paths, **FIXTURE, ood_datasets=["eurosat"]
    )
    assert any("eurosat" in str(p) for p in required)
    # A task's own dataset is not out-of-distribution for it.
    with pytest.raises(ValueError, match="other than the task's own.*valid: caltech101"):
        build("fewshot_eurosat", paths, ood_datasets=["eurosat"])
    with pytest.raises(ValueError, match="distinct CoOp datasets"):
        build("fewshot_eurosat", paths, ood_datasets=["oxford_pets", "oxford_pets"])
    with pytest.raises(TypeError, match="'ood_datasets' must be a list"):
        build("fewshot_eurosat", paths, ood_datasets="oxford_pets")
