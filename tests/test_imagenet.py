"""Tests of the ImageNet-family readers and the ``imagenet`` task on fixture trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_imagenet import (  # noqa: E402
    BORDER,
    OBJECTNET_PER_CLASS,
    SHIFT_PER_CLASS,
    TASK_CLASSES,
    TRAIN_PER_CLASS,
    VAL_PER_CLASS,
    make_imagenet_tree,
    write_complete_placeholder_tree,
    write_image,
)

from bench.data import DataCountError  # noqa: E402
from bench.data import imagenet as data  # noqa: E402
from bench.data.images import ImageFiles, ImageReadError, ImageTransform  # noqa: E402
from bench.tasks import (  # noqa: E402
    DataPaths,
    SizeLimits,
    create_task,
    missing_task_files,
    task_manifest,
)
from bench.tasks.imagenet import SHIFTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURE = {"verify_counts": False, "val_per_class": 1}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> DataPaths:
    return make_imagenet_tree(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def task(paths):
    return create_task("imagenet", paths, **FIXTURE)


def names(indices) -> list[str]:
    all_names = data.imagenet_classnames()
    return [all_names[i] for i in indices]


# ----------------------------------------------------------------- class lists, metadata


def test_wnid_file_is_the_sorted_imagenet_list():
    wnids = data.WNIDS_FILE.read_text().split()
    assert len(wnids) == 1000 == len(set(wnids)) and wnids == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    for subset in (data.IMAGENET_R_WNIDS, data.IMAGENET_A_WNIDS):
        assert len(subset) == 200 == len(set(subset)) and set(subset) <= set(wnids)
        assert list(subset) == sorted(subset)  # ImageNet order
    # Spot checks against the published index lists (hendrycks' eval scripts).
    index = data.wnid_to_index()
    assert [index[w] for w in data.IMAGENET_R_WNIDS[:4]] == [1, 2, 4, 6]
    assert [index[w] for w in data.IMAGENET_A_WNIDS[:4]] == [6, 11, 13, 15]


def test_openclip_metadata_loads_without_importing_open_clip():
    code = (
        "import sys\n"
        "from bench.data.imagenet import imagenet_classnames, imagenet_templates\n"
        "names, templates = imagenet_classnames(), imagenet_templates()\n"
        "assert len(names) == 1000 and len(templates) == 80, (len(names), len(templates))\n"
        "assert all(t.count('{}') == 1 for t in templates)\n"
        "print(names[0], '|', templates[0], '|', 'open_clip' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "tench | a bad photo of a {}. | False"


# ------------------------------------------------------------------------------ task


def test_split_sizes_and_labels(task):
    n = len(TASK_CLASSES)
    assert task.modality == "vision" and task.classnames == names(TASK_CLASSES)
    assert len(task.templates) == 80 and task.templates[0] == "a bad photo of a {}."
    expected = {
        "train": n * (TRAIN_PER_CLASS - 1),
        "val": n,
        "test": n * VAL_PER_CLASS,
        "shift_v2": n * SHIFT_PER_CLASS,  # folder 999 is not a task class
        "shift_sketch": n * SHIFT_PER_CLASS,
        "shift_r": 2 * SHIFT_PER_CLASS,  # great white shark is not a task class
        "shift_a": 2 * SHIFT_PER_CLASS,
        "shift_objectnet": 2 * OBJECTNET_PER_CLASS,  # banana and squeegee dropped
    }
    assert {name: len(split) for name, split in task.splits.items()} == expected
    assert task.id_split() == "test" and task.few_shot is None
    for name in ("train", "val", "test", "shift_v2", "shift_sketch"):
        split = task.splits[name]
        assert isinstance(split.inputs, ImageFiles) and split.labels.dtype == np.int64
        assert split.info.label_map is None
        # Colour, hence file content, encodes the class: a folder's images keep its label.
        folders = {str(p).split("/")[0] for p in split.inputs.paths}
        assert len(folders) == n
        np.testing.assert_array_equal(np.bincount(split.labels), np.bincount(split.labels)[0])
    for name, family in (("shift_v2", "v2"), ("shift_objectnet", "objectnet")):
        assert task.splits[name].info.kind == "shift" and task.splits[name].info.family == family


def test_v2_index_folders_map_to_task_classes(task):
    split = task.splits["shift_v2"]
    folder_index = np.array([int(str(p).split("/")[0]) for p in split.inputs.paths])
    np.testing.assert_array_equal(np.asarray(TASK_CLASSES)[split.labels], folder_index)


def test_r_and_a_are_scored_over_their_classes(task):
    r, a = task.splits["shift_r"].info, task.splits["shift_a"].info
    # Task classes are (tench, goldfish, stingray, analog clock, digital clock).
    assert r.label_map == ((1,), (2,)) and r.classnames == tuple(names([1, 6]))
    assert a.label_map == ((2,), (4,)) and a.classnames == tuple(names([6, 530]))
    wnids = data.imagenet_wnids()
    for name, info in (("shift_r", r), ("shift_a", a)):
        split = task.splits[name]
        folders = [str(p).split("/")[0] for p in split.inputs.paths]
        task_class = [info.label_map[y][0] for y in split.labels]
        assert [wnids[TASK_CLASSES[c]] for c in task_class] == folders


def test_objectnet_mapping_pools_imagenet_classes(task):
    info = task.splits["shift_objectnet"].info
    assert info.classnames == ("Alarm clock", "Fish")  # sorted by folder
    assert info.label_map == ((3, 4), (0, 1))  # many-to-one into task indices
    split = task.splits["shift_objectnet"]
    assert split.inputs.crop_border == BORDER
    folders = np.array([str(p).split("/")[0] for p in split.inputs.paths])
    np.testing.assert_array_equal(folders == "fish", split.labels == 1)
    raw = split.inputs.open(0)
    with __import__("PIL").Image.open(split.inputs.path(0)) as original:
        assert raw.size == (original.width - 2 * BORDER, original.height - 2 * BORDER)
    pixels = np.asarray(raw)
    assert not np.all(pixels[0, 0] == (255, 0, 0)), "the red border must be cropped"


def test_objectnet_mapping_reader(paths):
    mapping = data.read_objectnet_mapping(paths.root / "objectnet-1.0" / "mappings")
    assert mapping.folders == ("alarm_clock", "banana", "fish")
    assert mapping.imagenet_indices == ((409, 530), (954,), (0, 1))
    assert data.count_objectnet_overlap(paths.root / "objectnet-1.0" / "images") == 9


def test_val_holdout_is_disjoint_and_deterministic(paths, task):
    train, val = set(task.splits["train"].inputs.paths), set(task.splits["val"].inputs.paths)
    assert not train & val and len(train | val) == len(TASK_CLASSES) * TRAIN_PER_CLASS
    np.testing.assert_array_equal(np.bincount(task.splits["val"].labels), [1] * 5)
    again = create_task("imagenet", paths, shifts=[], **FIXTURE)
    assert list(again.splits) == ["train", "val", "test"]
    assert set(again.splits["val"].inputs.paths) == val
    other = [
        set(create_task("imagenet", paths, SizeLimits(data_seed=s), shifts=[], **FIXTURE)
            .splits["val"].inputs.paths)
        for s in (1, 2, 3)
    ]  # fmt: skip
    assert any(v != val for v in other)


def test_caps_are_stratified(paths):
    limits = SizeLimits(max_train=10, max_val=5, max_eval=5)
    capped = create_task("imagenet", paths, limits, shifts=["r"], **FIXTURE)
    sizes = {name: len(split) for name, split in capped.splits.items()}
    assert sizes == {"train": 10, "val": 5, "test": 5, "shift_r": 4}
    np.testing.assert_array_equal(np.bincount(capped.splits["train"].labels), [2] * 5)


def test_shots_drawn_per_seed(paths):
    task = create_task("imagenet", paths, shots=2, shifts=["v2"], **FIXTURE)
    assert task.few_shot.shots == 2 and task.few_shot.val_shots == 2
    draws = []
    for seed in (0, 1, 2, 3):
        seeded = task.for_seed(seed)
        train = seeded.splits["train"]
        np.testing.assert_array_equal(np.bincount(train.labels), [2] * 5)
        assert len(seeded.splits["val"]) == 5  # one held-out image per class
        assert len(seeded.splits["test"]) == len(task.splits["test"])
        draws.append(tuple(train.inputs.paths))
    assert draws[0] == tuple(task.for_seed(0).splits["train"].inputs.paths)
    assert len(set(draws)) > 1
    eight = create_task("imagenet", paths, shots=8, shifts=[], **FIXTURE)
    assert eight.few_shot.val_shots == 4


def test_base_to_new_splits_classes_and_drops_shifts(paths):
    full = create_task("imagenet", paths, **FIXTURE)
    task = create_task("imagenet", paths, base_to_new=True, shots=1, **FIXTURE)
    num_base = -(-len(TASK_CLASSES) // 2)  # ceil: the base half gets the odd class
    assert task.classnames == full.classnames[:num_base]
    assert set(task.splits) == {"train", "val", "test", "test_new"}
    new = task.splits["test_new"]
    assert new.info.kind == "new" and new.info.open_vocabulary
    assert list(new.info.classnames) == full.classnames[num_base:]
    assert set(new.labels) == set(range(len(TASK_CLASSES) - num_base))
    assert set(task.splits["test"].labels) == set(range(num_base))
    full_test = full.splits["test"]
    assert len(task.splits["test"]) + len(new) == len(full_test)
    seeded = task.for_seed(0)
    assert set(seeded.splits["train"].labels) == set(range(num_base))


def test_transform_decodes_a_batch(task):
    batch = ImageTransform(32)(task.splits["train"].inputs.subset(np.arange(4)))
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.uint8
    onet = ImageTransform(32, train=True)(task.splits["shift_objectnet"].inputs)
    assert onet.shape == (2 * OBJECTNET_PER_CLASS, 32, 32, 3)


def test_unreadable_image_names_the_file(tmp_path):
    good = write_image(tmp_path / "n01440764" / "good.JPEG", (10, 20, 30), 0)
    truncated = tmp_path / "n01440764" / "truncated.JPEG"
    truncated.write_bytes(good.read_bytes()[:40])
    garbage = tmp_path / "n01440764" / "garbage.JPEG"
    garbage.write_bytes(b"not a jpeg at all" * 10)
    files = ImageFiles(tmp_path, ["n01440764/good.JPEG", "n01440764/truncated.JPEG",
                                  "n01440764/garbage.JPEG"])  # fmt: skip
    assert files.open(0).size == (20, 16)
    for i, path in ((1, truncated), (2, garbage)):
        with pytest.raises(ImageReadError, match=str(path)):
            files.open(i)


# --------------------------------------------------------------- verification, options


def test_verify_counts_reports_found_and_expected(paths):
    with pytest.raises(DataCountError, match=r"expected 1000 class folders .* found 5"):
        create_task("imagenet", paths, shifts=[])
    r_root = paths.root / "imagenet-r"
    with pytest.raises(DataCountError, match=r"expected 200 class folders .* found 3"):
        data.read_wnid_folders(r_root, 30000, data.IMAGENET_R_WNIDS, "ImageNet-R")
    with pytest.raises(DataCountError, match=r"expected 30000 ImageNet-R images but found 6"):
        data.read_wnid_folders(r_root, 30000, None, "ImageNet-R")
    v2 = paths.root / "imagenetv2-matched-frequency-format-val"
    with pytest.raises(DataCountError, match=r"expected 1000 class folders .* found 6"):
        data.read_imagenet_v2(v2, 10000)
    with pytest.raises(DataCountError, match=r"expected 313 ObjectNet class folders but found 4"):
        data.read_objectnet(paths.root / "objectnet-1.0", verify_counts=True)


def test_bad_folders_are_named(tmp_path, paths):
    write_image(tmp_path / "v2" / "n01440764" / "a.jpeg", (1, 2, 3), 0)
    with pytest.raises(DataCountError, match="not class indices"):
        data.read_imagenet_v2(tmp_path / "v2")
    write_image(tmp_path / "r" / "cats" / "a.jpg", (1, 2, 3), 0)
    with pytest.raises(DataCountError, match="cats.*not ImageNet-1k wnids"):
        data.read_wnid_folders(tmp_path / "r")


def test_missing_shift_folder_is_named(tmp_path, paths):
    with pytest.raises(FileNotFoundError, match="imagenet-a"):
        create_task("imagenet", paths, a_dir=str(tmp_path / "imagenet-a"), **FIXTURE)
    missing = missing_task_files("imagenet", DataPaths(root=tmp_path), shifts=["objectnet"])
    assert tmp_path / "objectnet-1.0" / "mappings" / "imagenet_to_label_2012_v2" in missing
    assert tmp_path / "imagenet-a" not in missing


def test_required_files_follow_the_shifts(paths):
    files = missing_task_files("imagenet", paths, shifts=["r"], **FIXTURE)
    assert files == []
    from bench.tasks import task_metadata

    required = task_metadata("imagenet")["required_files"](paths, shifts=["v2", "sketch"])
    assert required == [
        paths.root / "imagenet" / "train",
        paths.root / "imagenet" / "val",
        paths.root / "imagenetv2-matched-frequency-format-val",
        paths.root / "imagenet-sketch" / "sketch",
    ]


@pytest.mark.parametrize(
    "options, error",
    [
        ({"shift": ["r"]}, TypeError),
        ({"shifts": ["c"]}, ValueError),
        ({"shifts": "r"}, TypeError),
        ({"shots": 0}, TypeError),
        ({"shots": True}, TypeError),
        ({"val_per_class": -1}, TypeError),
        ({"verify_counts": "no"}, TypeError),
    ],
)
def test_bad_options_are_rejected(paths, options, error):
    with pytest.raises(error, match="imagenet"):
        missing_task_files("imagenet", paths, **options)


def test_manifest_lists_published_counts(tmp_path):
    entries = task_manifest("imagenet", DataPaths(root=tmp_path))
    counts = {(e.path.relative_to(tmp_path).as_posix(), e.what): e.expected for e in entries}
    assert counts[("imagenet/train", "images")] == 1_281_167
    assert counts[("imagenet/train", "class folders")] == 1000
    assert counts[("imagenet/val", "images")] == 50_000
    assert counts[("imagenetv2-matched-frequency-format-val", "images")] == 10_000
    assert counts[("imagenet-sketch/sketch", "images")] == 50_889
    assert (
        counts[("imagenet-r", "images")] == 30_000
        and counts[("imagenet-r", "class folders")] == 200
    )
    assert (
        counts[("imagenet-a", "images")] == 7_500 and counts[("imagenet-a", "class folders")] == 200
    )
    assert counts[("objectnet-1.0/images", "images")] == 50_273
    assert counts[("objectnet-1.0/images", "class folders")] == 313
    assert counts[("objectnet-1.0/images", "images in the 113 ImageNet-overlap classes")] == 18_574
    assert all(e.source for e in entries)
    only_a = task_manifest("imagenet", DataPaths(root=tmp_path), shifts=["a"])
    assert {e.path.name for e in only_a} == {"train", "val", "imagenet-a"}


def test_manifest_counts_a_fixture_copy(paths):
    from bench.data import check_manifest

    checks = {
        (c.entry.path.relative_to(paths.root).as_posix(), c.entry.what): c
        for c in check_manifest(task_manifest("imagenet", paths))
    }
    assert checks[("imagenet/train", "images")].found == 5 * TRAIN_PER_CLASS
    assert checks[("imagenet/train", "images")].status == "wrong_count"
    onet = checks[("objectnet-1.0/images", "images in the 113 ImageNet-overlap classes")]
    assert onet.found == 9
    assert checks[("objectnet-1.0/mappings/objectnet_to_imagenet_1k.json", "file")].status == "ok"


def test_shift_names_and_json_round_trip(task):
    assert [SHIFTS[s][0] for s in SHIFTS] == [n for n in task.splits if n.startswith("shift_")]
    info = task.splits["shift_objectnet"].info
    again = type(info)(**json.loads(json.dumps(info.__dict__)))
    assert again == info


def test_complete_copy_passes_verification(tmp_path, monkeypatch):
    paths = write_complete_placeholder_tree(tmp_path, per_class=2)
    for name, count in (
        ("IMAGENET_TRAIN_IMAGES", 2000),
        ("IMAGENET_VAL_IMAGES", 1000),
        ("IMAGENET_V2_IMAGES", 1000),
        ("IMAGENET_SKETCH_IMAGES", 1000),
        ("IMAGENET_R_IMAGES", 200),
        ("IMAGENET_A_IMAGES", 200),
        ("OBJECTNET_OVERLAP_IMAGES", 113),
    ):
        monkeypatch.setattr(data, name, count)
    task = create_task("imagenet", paths, val_per_class=1)
    assert task.num_classes == 1000 and task.classnames == data.imagenet_classnames()
    sizes = {name: len(split) for name, split in task.splits.items()}
    assert sizes == {
        "train": 1000, "val": 1000, "test": 1000, "shift_v2": 1000, "shift_sketch": 1000,
        "shift_r": 200, "shift_a": 200, "shift_objectnet": 113,
    }  # fmt: skip
    r = task.splits["shift_r"].info
    assert len(r.label_map) == 200 and r.label_map[:3] == ((1,), (2,), (4,))
    onet = task.splits["shift_objectnet"].info
    assert len(onet.label_map) == 113 and onet.label_map[0] == (0, 113)
    v2 = task.splits["shift_v2"]  # folders sort as strings ("0", "1", "10", ...)
    assert [int(str(p).split("/")[0]) for p in v2.inputs.paths] == v2.labels.tolist()
    np.testing.assert_array_equal(np.sort(v2.labels), np.arange(1000))
    # One R folder too many: the published class list no longer matches.
    (paths.root / "imagenet-r" / "n01440764").mkdir()
    with pytest.raises(DataCountError, match=r"imagenet-r: expected 200 class folders .* 201"):
        create_task("imagenet", paths, val_per_class=1, shifts=["r"])
