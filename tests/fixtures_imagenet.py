"""Writers of tiny ImageNet-family trees in the real on-disk layouts.

Every tree uses a few real wnids so the class lists, the ImageNet-R / -A subsets and
the ObjectNet mapping behave as on the real data:

* task classes (ImageNet indices 0, 1, 6, 409, 530): tench, goldfish, stingray, analog
  clock, digital clock. ImageNet-R holds 1 and 6 of them, ImageNet-A 6 and 530;
* ImageNet-R also gets great white shark (2), a published R class absent from train;
* ImageNet-V2 gets folder ``999``, a class absent from train;
* ObjectNet: ``alarm_clock`` -> analog + digital clock (many-to-one), ``fish`` -> tench +
  goldfish (a fake class, same format), ``banana`` -> banana (954, absent from train, so
  dropped) and ``squeegee`` (no ImageNet counterpart). The mapping files have the real
  formats, including the devkit-ordered label file reached through
  ``pytorch_to_imagenet_2012_id.json``.

Images are 12-24 px JPEGs (PNGs with a 2-pixel red border for ObjectNet) whose colour
encodes the class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.data.imagenet import imagenet_wnids
from bench.tasks import DataPaths

#: ImageNet class indices present in the fixture's ImageNet train.
TASK_CLASSES = (0, 1, 6, 409, 530)
#: Images per class in each folder.
TRAIN_PER_CLASS = 6
VAL_PER_CLASS = 3
SHIFT_PER_CLASS = 2
#: Extra ImageNet-R class (published R wnid, absent from train) and extra V2 folder.
R_EXTRA = 2
V2_EXTRA = 999
#: ObjectNet folders: folder -> (ObjectNet label, ImageNet labels or None).
OBJECTNET_FOLDERS = {
    "alarm_clock": ("Alarm clock", ["analog clock", "digital clock"]),
    "banana": ("Banana", ["banana"]),
    "fish": ("Fish", ["tench, Tinca tinca", "goldfish, Carassius auratus"]),
    "squeegee": ("Squeegee", None),
}
#: ImageNet labels (as in ``imagenet_to_label_2012_v2``) of the classes the mapping uses.
IMAGENET_LABELS = {
    0: "tench, Tinca tinca",
    1: "goldfish, Carassius auratus",
    409: "analog clock",
    530: "digital clock",
    954: "banana",
}
OBJECTNET_PER_CLASS = 3
#: Border width of the ObjectNet fixture images.
BORDER = 2


def write_image(path: Path, colour: tuple[int, int, int], seed: int, size: int = 16) -> Path:
    """Writes a small noisy image of roughly ``colour`` (format from the suffix)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour) + rng.integers(-20, 20, (size, size + 4, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def _colour(index: int) -> tuple[int, int, int]:
    return (40 + index * 37 % 180, 200 - index * 53 % 160, 60 + index * 11 % 150)


def write_class_tree(
    root: Path, classes: dict[str, int], per_class: int, suffix: str, seed: int
) -> Path:
    """Writes ``root/<folder>/<folder>_<k><suffix>`` for each folder -> ImageNet index."""
    for folder, index in classes.items():
        for k in range(per_class):
            write_image(root / folder / f"{folder}_{k}{suffix}", _colour(index), seed + k)
        seed += per_class
    return root


def write_imagenet(root: Path) -> Path:
    """``imagenet/{train,val}/<wnid>/*.JPEG`` for :data:`TASK_CLASSES`."""
    wnids = imagenet_wnids()
    classes = {wnids[i]: i for i in TASK_CLASSES}
    write_class_tree(root / "imagenet" / "train", classes, TRAIN_PER_CLASS, ".JPEG", 0)
    write_class_tree(root / "imagenet" / "val", classes, VAL_PER_CLASS, ".JPEG", 1000)
    return root / "imagenet"


def write_imagenet_v2(root: Path) -> Path:
    """``imagenetv2-matched-frequency-format-val/<index>/*.jpeg``, plus folder 999."""
    folder = root / "imagenetv2-matched-frequency-format-val"
    classes = {str(i): i for i in (*TASK_CLASSES, V2_EXTRA)}
    return write_class_tree(folder, classes, SHIFT_PER_CLASS, ".jpeg", 2000)


def write_imagenet_sketch(root: Path) -> Path:
    """``imagenet-sketch/sketch/<wnid>/*.JPEG``."""
    wnids = imagenet_wnids()
    classes = {wnids[i]: i for i in TASK_CLASSES}
    return write_class_tree(
        root / "imagenet-sketch" / "sketch", classes, SHIFT_PER_CLASS, ".JPEG", 3000
    )


def write_imagenet_r(root: Path) -> Path:
    """``imagenet-r/<wnid>/*.jpg`` for the R classes among the fixture's, a README.txt."""
    wnids = imagenet_wnids()
    classes = {wnids[i]: i for i in (1, 6, R_EXTRA)}
    folder = write_class_tree(root / "imagenet-r", classes, SHIFT_PER_CLASS, ".jpg", 4000)
    (folder / "README.txt").write_text("ImageNet-R fixture\n", encoding="utf-8")
    return folder


def write_imagenet_a(root: Path) -> Path:
    """``imagenet-a/<wnid>/*.jpg`` for the A classes among the fixture's, a README.txt."""
    wnids = imagenet_wnids()
    classes = {wnids[i]: i for i in (6, 530)}
    folder = write_class_tree(root / "imagenet-a", classes, SHIFT_PER_CLASS, ".jpg", 5000)
    (folder / "README.txt").write_text("ImageNet-A fixture\n", encoding="utf-8")
    return folder


def write_objectnet(root: Path, seed: int = 6000) -> Path:
    """``objectnet-1.0/images/<folder>/*.png`` (red-bordered) and the four mapping files."""
    from PIL import Image

    base = root / "objectnet-1.0"
    for n, folder in enumerate(OBJECTNET_FOLDERS):
        for k in range(OBJECTNET_PER_CLASS):
            path = write_image(base / "images" / folder / f"{k:03d}{folder}.png", _colour(n), seed)
            with Image.open(path) as image:
                framed = np.asarray(image.convert("RGB")).copy()
            framed[:BORDER], framed[-BORDER:] = (255, 0, 0), (255, 0, 0)
            framed[:, :BORDER], framed[:, -BORDER:] = (255, 0, 0), (255, 0, 0)
            Image.fromarray(framed).save(path)
            seed += 1
    mappings = base / "mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    folder_to_label = {folder: label for folder, (label, _) in OBJECTNET_FOLDERS.items()}
    objectnet_to_imagenet = {
        label: "; ".join(names) for label, names in OBJECTNET_FOLDERS.values() if names
    }
    # The label file is in a devkit-like order (a fixed permutation of the class index),
    # so a reader that took line numbers for class indices would mislabel every class.
    line_of = np.random.default_rng(7).permutation(1000)
    lines = [""] * 1000
    for index in range(1000):
        lines[line_of[index]] = IMAGENET_LABELS.get(index, f"imagenet class {index}")
    # Two lines share a label, as "crane" does in the real file; nothing maps to it.
    lines[line_of[3]] = lines[line_of[4]] = "crane"
    (mappings / "folder_to_objectnet_label.json").write_text(json.dumps(folder_to_label, indent=2))
    (mappings / "objectnet_to_imagenet_1k.json").write_text(
        json.dumps(objectnet_to_imagenet, indent=2)
    )
    (mappings / "imagenet_to_label_2012_v2").write_text("\n".join(lines) + "\n")
    (mappings / "pytorch_to_imagenet_2012_id.json").write_text(
        json.dumps({str(i): int(line_of[i]) for i in range(1000)}, indent=2)
    )
    return base


def make_imagenet_tree(tmp: Path) -> DataPaths:
    """Writes every ImageNet-family fixture under ``tmp/data``; returns the paths."""
    root = tmp / "data"
    write_imagenet(root)
    write_imagenet_v2(root)
    write_imagenet_sketch(root)
    write_imagenet_r(root)
    write_imagenet_a(root)
    write_objectnet(root)
    return DataPaths(root=root)


def write_complete_placeholder_tree(tmp: Path, per_class: int = 2) -> DataPaths:
    """Every class folder of every dataset, with empty placeholder image files.

    Nothing decodes images while a task is built, so empty ``.JPEG`` files are enough
    to exercise the ``verify_counts=True`` path (class-folder sets, the ObjectNet
    mapping of 113 classes) with the image counts patched to this tree's.
    """
    from bench.data.imagenet import IMAGENET_A_WNIDS, IMAGENET_R_WNIDS

    root = tmp / "data"
    wnids = imagenet_wnids()

    def touch(folder: Path, names, count: int, suffix: str) -> None:
        for name in names:
            (folder / name).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                (folder / name / f"{name}_{k}{suffix}").touch()

    touch(root / "imagenet" / "train", wnids, per_class, ".JPEG")
    touch(root / "imagenet" / "val", wnids, 1, ".JPEG")
    touch(root / "imagenetv2-matched-frequency-format-val", map(str, range(1000)), 1, ".jpeg")
    touch(root / "imagenet-sketch" / "sketch", wnids, 1, ".JPEG")
    touch(root / "imagenet-r", IMAGENET_R_WNIDS, 1, ".jpg")
    touch(root / "imagenet-a", IMAGENET_A_WNIDS, 1, ".jpg")
    # ObjectNet: 313 folders, the first 113 mapped one-to-one onto ImageNet classes
    # 0..112 except the first, which pools classes 0 and 113.
    base = root / "objectnet-1.0"
    folders = [f"object_{k:03d}" for k in range(313)]
    touch(base / "images", folders, 1, ".png")
    mappings = base / "mappings"
    mappings.mkdir(parents=True)
    labels = [f"imagenet class {i}" for i in range(1000)]
    mapped = {f"Object {k}": labels[k] for k in range(113)}
    mapped["Object 0"] += "; " + labels[113]
    (mappings / "folder_to_objectnet_label.json").write_text(
        json.dumps({folder: f"Object {k}" for k, folder in enumerate(folders)})
    )
    (mappings / "objectnet_to_imagenet_1k.json").write_text(json.dumps(mapped))
    (mappings / "imagenet_to_label_2012_v2").write_text("\n".join(labels) + "\n")
    (mappings / "pytorch_to_imagenet_2012_id.json").write_text(
        json.dumps({str(i): i for i in range(1000)})
    )
    return DataPaths(root=root)
