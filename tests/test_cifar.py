"""Tests of the CIFAR / CIFAR-10.1 / CIFAR-C / SVHN readers and the cifar10 / cifar100 tasks."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_cifar import (  # noqa: E402
    CIFAR10_TEST_PER_CLASS,
    CIFAR10_TRAIN_PER_CLASS,
    CIFAR10C_CORRUPTIONS,
    CIFAR100_TEST_PER_CLASS,
    CIFAR100_TRAIN_PER_CLASS,
    CIFAR100C_CORRUPTIONS,
    CIFAR101_PER_CLASS,
    CODE_COL,
    CODE_ROW,
    MARK_CHANNEL,
    MARK_COL,
    MARK_ROW,
    SVHN_TEST_DIGITS,
    make_cifar_tree,
    to_rows,
    write_cifar10,
)

from bench.data import DataCountError, check_manifest  # noqa: E402
from bench.data import cifar as cifar_data  # noqa: E402
from bench.tasks import (  # noqa: E402
    OOD_LABEL,
    DataPaths,
    SizeLimits,
    TaskData,
    create_task,
    list_tasks,
    missing_task_files,
    task_manifest,
    task_metadata,
)
from bench.tasks.cifar import CLIP_CIFAR_TEMPLATES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: Fixture options: small copies and only the corruption files the fixture has.
FIXTURE10 = {"verify_counts": False, "corruptions": list(CIFAR10C_CORRUPTIONS)}
FIXTURE100 = {"verify_counts": False}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> DataPaths:
    return make_cifar_tree(tmp_path_factory.mktemp("cifar_tree"))


@pytest.fixture(scope="module")
def base(paths) -> Path:
    return paths.root / "cifar"


@pytest.fixture(scope="module")
def cifar10(paths) -> TaskData:
    return create_task("cifar10", paths, None, **FIXTURE10)


def keys(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def assert_marker(images: np.ndarray) -> None:
    """The fixture's single 255 pixel is where it was written, in every image."""
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert np.all(images[:, MARK_ROW, MARK_COL, MARK_CHANNEL] == 255)
    assert np.all((images == 255).sum(axis=(1, 2, 3)) == 1)


def without_code(images: np.ndarray) -> np.ndarray:
    """Images with the corruption code pixel blanked (to compare with clean ones)."""
    out = images.copy()
    out[:, CODE_ROW, CODE_COL, :] = 0
    return out


# --------------------------------------------------------------------------- readers


def test_rows_to_images_is_chw_row_major():
    rows = np.zeros((1, 3072), dtype=np.uint8)
    rows[0, 0 * 1024 + 2 * 32 + 7] = 11  # red plane, row 2, column 7
    rows[0, 1 * 1024 + 0 * 32 + 31] = 22  # green plane, row 0, column 31
    rows[0, 2 * 1024 + 31 * 32 + 0] = 33  # blue plane, row 31, column 0
    image = cifar_data.rows_to_images(rows, "x")[0]
    assert image[2, 7, 0] == 11 and image[0, 31, 1] == 22 and image[31, 0, 2] == 33
    assert image.sum() == 66
    with pytest.raises(DataCountError, match="uint8 data"):
        cifar_data.rows_to_images(np.zeros((2, 1024), np.uint8), "batch")


def test_cifar10_reader_orientation_labels_and_names(base):
    folder = base / "cifar-10-batches-py"
    train_x, train_y = cifar_data.load_cifar10(folder, "train")
    test_x, test_y = cifar_data.load_cifar10(folder, "test")
    assert_marker(train_x)
    assert_marker(test_x)
    assert train_y.dtype == np.int64 and len(train_x) == 10 * CIFAR10_TRAIN_PER_CLASS
    assert Counter(train_y.tolist()) == {c: CIFAR10_TRAIN_PER_CLASS for c in range(10)}
    assert Counter(test_y.tolist()) == {c: CIFAR10_TEST_PER_CLASS for c in range(10)}
    # Round trip: the rows written are the rows the reader turns into images.
    batch = cifar_data.unpickle_cifar(folder / "data_batch_1")
    np.testing.assert_array_equal(to_rows(train_x[: len(batch[b"data"])]), batch[b"data"])
    assert cifar_data.cifar10_classnames(folder)[:2] == ["airplane", "automobile"]
    with pytest.raises(ValueError, match="split must be one of"):
        cifar_data.load_cifar10(folder, "val")


def test_cifar100_reader_fine_labels_and_names(base):
    folder = base / "cifar-100-python"
    images, labels = cifar_data.load_cifar100(folder, "train")
    assert_marker(images)
    assert Counter(labels.tolist()) == {c: CIFAR100_TRAIN_PER_CLASS for c in range(100)}
    names = cifar_data.cifar100_classnames(folder)
    assert len(names) == 100 and names[1] == "aquarium fish" and "maple tree" in names
    assert not any("_" in n for n in names)


def test_svhn_reader_orientation_and_zero_label(base):
    images, digits = cifar_data.load_svhn(base / "svhn", "test")
    assert_marker(images)
    assert len(images) == SVHN_TEST_DIGITS
    # Stored labels are 1..10 with 10 for the digit zero; the reader maps 10 to 0.
    np.testing.assert_array_equal(digits, np.arange(SVHN_TEST_DIGITS) % 10)
    import scipy.io

    stored = scipy.io.loadmat(base / "svhn" / "test_32x32.mat")["y"].ravel()
    assert 10 in stored and 0 not in stored
    assert cifar_data.count_svhn_images(base / "svhn" / "test_32x32.mat") == SVHN_TEST_DIGITS


def test_cifar101_reader(base):
    images, labels = cifar_data.load_cifar101(base / "CIFAR-10.1")
    assert_marker(images)
    assert Counter(labels.tolist()) == {c: CIFAR101_PER_CLASS for c in range(10)}


def test_corruption_severity_slicing(base):
    test_x, test_y = cifar_data.load_cifar10(base / "cifar-10-batches-py", "test")
    cifar_data.load_corruption_labels(base / "CIFAR-10-C", test_y)
    index = np.array([0, 4, 29])
    for corruption in ("fog", "speckle_noise"):
        for severity in (1, 3, 5):
            images = cifar_data.load_corrupted(
                base / "CIFAR-10-C", corruption, severity, index, len(test_y)
            )
            assert images.shape == (3, 32, 32, 3)
            assert np.all(images[:, CODE_ROW, CODE_COL, 0] == 200 + severity)
            expected_code = cifar_data.ALL_CORRUPTIONS.index(corruption)
            assert np.all(images[:, CODE_ROW, CODE_COL, 1] == expected_code)
            np.testing.assert_array_equal(without_code(images), without_code(test_x[index]))
    with pytest.raises(ValueError, match="severity must be in 1..5"):
        cifar_data.load_corrupted(base / "CIFAR-10-C", "fog", 6, index, len(test_y))


def test_corruption_labels_must_pair_with_test_set(base):
    _, test_y = cifar_data.load_cifar10(base / "cifar-10-batches-py", "test")
    with pytest.raises(DataCountError, match="labels.npy: labels are not the clean test"):
        cifar_data.load_corruption_labels(base / "CIFAR-10-C", np.roll(test_y, 1))
    with pytest.raises(DataCountError, match="expected 5 severities x 29 test images"):
        cifar_data.load_corruption_labels(base / "CIFAR-10-C", test_y[:29])


def test_unknown_corruption_lists_valid_names(base, paths):
    with pytest.raises(ValueError, match="unknown corruption 'blurr'; valid: gaussian_noise, "):
        cifar_data.corruption_file(base / "CIFAR-10-C", "blurr")
    with pytest.raises(ValueError, match=r"'corruptions' has unknown name\(s\) \['blurr'\]; "):
        create_task("cifar10", paths, corruptions=["fog", "blurr"], verify_counts=False)
    with pytest.raises(ValueError, match="valid: .*jpeg_compression, speckle_noise"):
        task_metadata("cifar10")["required_files"](paths, corruptions=["blurr"])


def test_readers_verify_published_counts(base):
    with pytest.raises(DataCountError, match="expected 50000 images in data_batch_1..data_batch_5"):
        cifar_data.load_cifar10(base / "cifar-10-batches-py", "train", 50000)
    with pytest.raises(DataCountError, match=r"test: expected 10000 images but found 100"):
        cifar_data.load_cifar100(base / "cifar-100-python", "test", 10000)
    with pytest.raises(DataCountError, match=r"v6_data.npy: expected 2000 images but found 20"):
        cifar_data.load_cifar101(base / "CIFAR-10.1", 2000)
    with pytest.raises(DataCountError, match=r"test_32x32.mat: expected 26032 images but found"):
        cifar_data.load_svhn(base / "svhn", "test", 26032)
    with pytest.raises(DataCountError, match=r"fog.npy: expected 50000 images but found 150"):
        cifar_data.load_corrupted(base / "CIFAR-10-C", "fog", 1, np.arange(3), 30, 50000)
    _, test_y = cifar_data.load_cifar10(base / "cifar-10-batches-py", "test")
    with pytest.raises(DataCountError, match=r"labels.npy: expected 50000 labels but found 150"):
        cifar_data.load_corruption_labels(base / "CIFAR-10-C", test_y, 50000)


def test_damaged_files_are_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:5000])
    with pytest.raises(DataCountError, match="data_batch_3: cannot be read as a CIFAR"):
        cifar_data.load_cifar10(folder, "train")
    # A pickle referring to anything but numpy's array machinery is refused, not run.
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": OrderedDict(), b"labels": []}, handle)
    with pytest.raises(DataCountError, match="refusing to load global collections.OrderedDict"):
        cifar_data.load_cifar10(folder, "test")
    npy = tmp_path / "fog.npy"
    np.save(npy, np.zeros((10, 32, 32, 3), np.uint8))
    npy.write_bytes(npy.read_bytes()[:4000])
    with pytest.raises(DataCountError, match="fog.npy: cannot be read as a .npy array"):
        cifar_data.load_corrupted(tmp_path, "fog", 1, np.arange(2), 2)
    mat = tmp_path / "test_32x32.mat"
    mat.write_bytes(b"not a matlab file" * 20)
    with pytest.raises(DataCountError, match="test_32x32.mat: cannot be read as a MATLAB"):
        cifar_data.load_svhn(tmp_path, "test")


# --------------------------------------------------------------------------- tasks


def test_tasks_registered_and_import_is_light():
    assert {"cifar10", "cifar100"} <= set(list_tasks())
    for name in ("cifar10", "cifar100"):
        meta = task_metadata(name)
        assert meta["modality"] == "vision" and meta["description"]
    code = (
        "import sys; import bench.tasks.cifar; "
        "print(sorted(m for m in ('torch', 'scipy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_cifar10_splits_uncapped(cifar10):
    task = cifar10
    assert task.classnames == list(cifar_data.CIFAR10_CLASSNAMES)
    corruption_splits = [f"shift_{c}_s{s}" for c in CIFAR10C_CORRUPTIONS for s in range(1, 6)]
    assert list(task.splits) == [
        "train", "val", "test", "shift_cifar101", *corruption_splits, "ood_svhn", "ood_cifar100"
    ]  # fmt: skip
    sizes = {name: len(split) for name, split in task.splits.items()}
    assert sizes["train"] == 9 * 10 and sizes["val"] == 1 * 10
    assert sizes["test"] == 10 * CIFAR10_TEST_PER_CLASS
    assert sizes["shift_cifar101"] == 10 * CIFAR101_PER_CLASS
    assert sizes["ood_svhn"] == SVHN_TEST_DIGITS and sizes["ood_cifar100"] == 100
    assert task.id_split() == "test" and task.context is None
    for name, split in task.splits.items():
        assert_marker(split.inputs)
        assert split.labels.dtype == np.int64
        info = split.info
        if info.kind == "ood":
            assert np.all(split.labels == OOD_LABEL) and info.family == name[4:]
        else:
            assert 0 <= split.labels.min() and split.labels.max() < 10
    info = task.splits["shift_fog_s4"].info
    assert (info.kind, info.family, info.severity) == ("shift", "fog", 4)
    assert task.splits["shift_cifar101"].info.family == "cifar10_1"
    assert task.templates == list(CLIP_CIFAR_TEMPLATES) and len(task.templates) == 18
    assert all(t.count("{}") == 1 for t in task.templates)


def test_corruption_splits_are_the_test_images_corrupted(paths):
    limits = SizeLimits(max_eval=7, data_seed=3)
    task = create_task("cifar10", paths, limits, **FIXTURE10)
    test = task.splits["test"]
    for corruption in CIFAR10C_CORRUPTIONS:
        for severity in range(1, 6):
            split = task.splits[f"shift_{corruption}_s{severity}"]
            np.testing.assert_array_equal(split.labels, test.labels)
            np.testing.assert_array_equal(without_code(split.inputs), without_code(test.inputs))
            assert np.all(split.inputs[:, CODE_ROW, CODE_COL, 0] == 200 + severity)


def test_train_val_holdout_disjoint_deterministic_stratified(paths, base, cifar10):
    all_train, _ = cifar_data.load_cifar10(base / "cifar-10-batches-py", "train")
    train, val = cifar10.splits["train"], cifar10.splits["val"]
    assert not keys(train.inputs) & keys(val.inputs)
    assert keys(train.inputs) | keys(val.inputs) == keys(all_train)
    assert Counter(val.labels.tolist()) == {c: 1 for c in range(10)}  # 10% of 10 per class
    assert not keys(val.inputs) & keys(cifar10.splits["test"].inputs)
    again = create_task("cifar10", paths, None, **FIXTURE10)
    np.testing.assert_array_equal(again.splits["val"].inputs, val.inputs)
    other = create_task("cifar10", paths, SizeLimits(data_seed=1), **FIXTURE10)
    assert keys(other.splits["val"].inputs) != keys(val.inputs)
    # The val pool does not depend on the train cap.
    capped = create_task("cifar10", paths, SizeLimits(max_train=20), **FIXTURE10)
    np.testing.assert_array_equal(capped.splits["val"].inputs, val.inputs)
    assert Counter(capped.splits["train"].labels.tolist()) == {c: 2 for c in range(10)}


def test_caps_apply_to_every_eval_split(paths):
    limits = SizeLimits(max_train=20, max_val=5, max_eval=8, data_seed=0)
    task = create_task("cifar10", paths, limits, **FIXTURE10)
    assert len(task.splits["train"]) == 20 and len(task.splits["val"]) == 5
    for split in task.splits.values():
        if split.info.kind in ("id", "shift", "ood"):
            assert len(split) == 8, split.info.name


def test_options_choose_splits_and_files(paths, tmp_path):
    task = create_task("cifar10", paths, None, shifts=["cifar10_1"], ood=["svhn"], **FIXTURE10)
    assert list(task.splits) == ["train", "val", "test", "shift_cifar101", "ood_svhn"]
    severities = create_task(
        "cifar10", paths, None, shifts=["cifar10_c"], ood=[], severities=[5, 2], **FIXTURE10
    )
    assert [n for n in severities.splits if n.startswith("shift_fog")] == [
        "shift_fog_s2",
        "shift_fog_s5",
    ]
    # Default corruptions: the 12 standard ones the fixture lacks are the missing files.
    missing = missing_task_files("cifar10", paths)
    assert sorted(p.name for p in missing) == sorted(
        f"{c}.npy" for c in cifar_data.STANDARD_CORRUPTIONS if c not in CIFAR10C_CORRUPTIONS
    )
    # A copy with CIFAR-10 only: unchosen sources are not required, chosen ones are named.
    shutil.copytree(paths.root / "cifar" / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    bare = {"data_dir": str(tmp_path), "verify_counts": False}
    only_id = create_task("cifar10", paths, None, shifts=[], ood=[], **bare)
    assert list(only_id.splits) == ["train", "val", "test"]
    with pytest.raises(FileNotFoundError, match=r"svhn/test_32x32.mat"):
        create_task("cifar10", paths, None, shifts=[], ood=["svhn"], **bare)
    with pytest.raises(FileNotFoundError, match=r"cifar10.1_v6_data.npy"):
        create_task("cifar10", paths, None, shifts=["cifar10_1"], ood=[], **bare)


def test_option_validation(paths):
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'colour'.*verify_counts"):
        create_task("cifar10", paths, colour="red")
    with pytest.raises(TypeError, match="verify_counts"):
        create_task("cifar100", paths, verify_counts="no")
    with pytest.raises(ValueError, match="'shifts' has unknown name.*valid: cifar100_c"):
        create_task("cifar100", paths, shifts=["cifar10_1"])
    with pytest.raises(ValueError, match="'ood' has unknown name.*valid: svhn, cifar100"):
        create_task("cifar10", paths, ood=["mnist"])
    with pytest.raises(TypeError, match="'ood' must be a list"):
        create_task("cifar10", paths, ood="svhn")
    with pytest.raises(ValueError, match="'severities' must be a list of integers in 1..5"):
        create_task("cifar10", paths, severities=[0, 1])
    with pytest.raises(ValueError, match="needs non-empty 'corruptions'"):
        create_task("cifar10", paths, corruptions=[])
    with pytest.raises(ValueError, match="'context' must be null or one of cifar100_train"):
        create_task("cifar10", paths, context="svhn_train")
    with pytest.raises(ValueError, match="'data_dir' must be an absolute path"):
        create_task("cifar10", paths, data_dir="relative/cifar")


def test_verify_counts_true_fails_with_found_and_expected(paths):
    with pytest.raises(DataCountError, match="expected 50000 images .* but found 100"):
        create_task("cifar10", paths, corruptions=list(CIFAR10C_CORRUPTIONS))
    with pytest.raises(DataCountError, match="train: expected 50000 images but found 1000"):
        create_task("cifar100", paths)


def test_manifest_has_published_counts(paths):
    entries = task_manifest("cifar10", paths, corruptions=list(CIFAR10C_CORRUPTIONS))
    required = task_metadata("cifar10")["required_files"](
        paths, corruptions=list(CIFAR10C_CORRUPTIONS)
    )
    assert [e.path for e in entries] == required
    expected = {f"{e.path.parent.name}/{e.path.name}": e.expected for e in entries}
    assert expected == {
        **{f"cifar-10-batches-py/data_batch_{i}": 10000 for i in range(1, 6)},
        "cifar-10-batches-py/test_batch": 10000,
        "cifar-10-batches-py/batches.meta": None,
        "CIFAR-10.1/cifar10.1_v6_data.npy": 2000,
        "CIFAR-10.1/cifar10.1_v6_labels.npy": 2000,
        "CIFAR-10-C/labels.npy": 50000,
        **{f"CIFAR-10-C/{c}.npy": 50000 for c in CIFAR10C_CORRUPTIONS},
        "svhn/test_32x32.mat": 26032,
        "cifar-100-python/test": 10000,
    }
    assert all(e.source for e in entries if e.expected is not None)
    checks = {f"{c.entry.path.parent.name}/{c.entry.path.name}": c for c in check_manifest(entries)}
    assert checks["cifar-10-batches-py/batches.meta"].status == "ok"
    assert checks["svhn/test_32x32.mat"].found == SVHN_TEST_DIGITS
    assert checks["CIFAR-10-C/fog.npy"].found == 150
    assert checks["cifar-10-batches-py/data_batch_1"].found == 20
    assert all(c.status == "wrong_count" for c in checks.values() if c.entry.expected)
    names100 = {
        e.path.name: e.expected for e in task_manifest("cifar100", paths, context="cifar10_train")
    }
    assert names100["train"] == 50000 and names100["test"] == 10000
    assert names100["test_batch"] == 10000 and names100["data_batch_5"] == 10000


def test_cifar100_task(paths):
    task = create_task("cifar100", paths, None, **FIXTURE100)
    assert list(task.splits) == ["train", "val", "test", "ood_svhn", "ood_cifar10"]
    assert task.num_classes == 100 and task.classnames[1] == "aquarium fish"
    assert len(task.splits["train"]) == 900 and len(task.splits["val"]) == 100
    assert len(task.splits["test"]) == 100 * CIFAR100_TEST_PER_CLASS
    assert len(task.splits["ood_cifar10"]) == 10 * CIFAR10_TEST_PER_CLASS
    assert np.all(task.splits["ood_cifar10"].labels == OOD_LABEL)
    assert task.templates == list(CLIP_CIFAR_TEMPLATES)
    shifted = create_task(
        "cifar100",
        paths,
        SizeLimits(max_eval=20),
        shifts=["cifar100_c"],
        corruptions=list(CIFAR100C_CORRUPTIONS),
        severities=[3],
        **FIXTURE100,
    )
    split = shifted.splits["shift_contrast_s3"]
    assert (split.info.family, split.info.severity) == ("contrast", 3)
    np.testing.assert_array_equal(split.labels, shifted.splits["test"].labels)
    clean = shifted.splits["test"].inputs
    np.testing.assert_array_equal(without_code(split.inputs), without_code(clean))


def test_context_option(paths):
    task = create_task("cifar10", paths, None, context="cifar100_train", **FIXTURE10)
    assert task.context.dtype == np.uint8 and task.context.shape == (1000, 32, 32, 3)
    capped = create_task(
        "cifar10", paths, SizeLimits(max_train=30), context="cifar100_train", **FIXTURE10
    )
    assert capped.context.shape == (30, 32, 32, 3)
    assert keys(capped.context) <= keys(task.context)
    again = create_task(
        "cifar10", paths, SizeLimits(max_train=30), context="cifar100_train", **FIXTURE10
    )
    np.testing.assert_array_equal(again.context, capped.context)
    other = create_task("cifar100", paths, None, context="cifar10_train", **FIXTURE100)
    assert other.context.shape == (10 * CIFAR10_TRAIN_PER_CLASS, 32, 32, 3)
