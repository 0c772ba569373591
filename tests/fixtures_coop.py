"""Writers of small CoOp few-shot dataset trees in the real on-disk layouts.

Each writer creates what CoOp's ``DATASETS.md`` describes under
``<root>/coop/<CoOp folder>``: tiny JPEGs (16 px) at the paths the real datasets use,
and a real-format split file (``split_zhou_<Name>.json``) or, for FGVC-Aircraft, the
dataset's ``variants.txt`` and ``images_variant_{train,val,test}.txt``. The counts are
far below the published ones, so tasks built on these trees need
``verify_counts=False``.

Per-class image counts are uneven on purpose: the last class of every fixture has
only :data:`SHORT_TRAIN` training images, fewer than the usual shots, to test that a
k-shot draw keeps ``min(shots, available)`` images of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.tasks import DataPaths

#: Images per class and split (the last class has SHORT_TRAIN training images).
PER_CLASS = {"train": 6, "val": 5, "test": 3}
SHORT_TRAIN = 2

#: EuroSAT fixture classes: raw folder name -> CoOp class name (its NEW_CNAMES).
EUROSAT_CLASSES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "SeaLake": "Sea or Lake",
}
#: Oxford Pets fixture classes: image file prefix -> split-file class name (5: odd).
PETS_CLASSES = {
    "Abyssinian": "abyssinian",
    "american_bulldog": "american_bulldog",
    "Bengal": "bengal",
    "great_pyrenees": "great_pyrenees",
    "yorkshire_terrier": "yorkshire_terrier",
}
#: Stanford Cars fixture class names (the split file puts the year first).
CARS_CLASSES = (
    "2012 AM General Hummer SUV",
    "2012 Acura RL Sedan",
    "2007 BMW X5 SUV",
    "2012 Tesla Model S Sedan",
)
#: FGVC-Aircraft fixture variants (lines of variants.txt; names with spaces and '/').
AIRCRAFT_VARIANTS = ("707-320", "A300B4", "Cessna 172", "F-16A/B", "Tu-154")

#: Task -> (class names the task must report, number of classes).
EXPECTED_CLASSNAMES = {
    "fewshot_eurosat": list(EUROSAT_CLASSES.values()),
    "fewshot_oxford_pets": [n.replace("_", " ") for n in PETS_CLASSES.values()],
    "fewshot_stanford_cars": list(CARS_CLASSES),
    "fewshot_fgvc_aircraft": list(AIRCRAFT_VARIANTS),
}


def write_jpeg(path: Path, seed: int, size: int = 16) -> None:
    """A tiny random-colour JPEG (distinct content per seed)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=80)


def _counts(label: int, num_classes: int) -> dict[str, int]:
    counts = dict(PER_CLASS)
    if label == num_classes - 1:
        counts["train"] = SHORT_TRAIN
    return counts


def write_zhou_split(path: Path, split: dict[str, list[list]]) -> Path:
    """Writes a split json as CoOp does (``{"train": [[impath, label, name], ...], ...}``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=4), encoding="utf-8")
    return path


def write_eurosat(folder: Path, raw_names: bool = False) -> Path:
    """``eurosat/2750/<Class>/<Class>_<n>.jpg`` and ``split_zhou_EuroSAT.json``.

    Args:
        folder: The ``eurosat`` folder.
        raw_names: Write the folder names (``AnnualCrop``) as class names instead of
            CoOp's (``Annual Crop Land``), as a split regenerated without
            ``NEW_CNAMES`` would.
    """
    split: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    number = 1
    for label, (raw, name) in enumerate(EUROSAT_CLASSES.items()):
        for part, count in _counts(label, len(EUROSAT_CLASSES)).items():
            for _ in range(count):
                impath = f"{raw}/{raw}_{number}.jpg"
                write_jpeg(folder / "2750" / impath, seed=number)
                split[part].append([impath, label, raw if raw_names else name])
                number += 1
    return write_zhou_split(folder / "split_zhou_EuroSAT.json", split)


def write_oxford_pets(folder: Path) -> Path:
    """``oxford_pets/images/<Breed>_<n>.jpg`` and ``split_zhou_OxfordPets.json``."""
    split: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    for label, (prefix, name) in enumerate(PETS_CLASSES.items()):
        number = 1
        for part, count in _counts(label, len(PETS_CLASSES)).items():
            for _ in range(count):
                impath = f"{prefix}_{number}.jpg"
                write_jpeg(folder / "images" / impath, seed=100 * label + number)
                split[part].append([impath, label, name])
                number += 1
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    return write_zhou_split(folder / "split_zhou_OxfordPets.json", split)


def write_stanford_cars(folder: Path) -> Path:
    """``stanford_cars/cars_{train,test}/<nnnnn>.jpg`` and ``split_zhou_StanfordCars.json``.

    As in the real file, train and val images come from ``cars_train`` and test images
    from ``cars_test``, with paths relative to ``stanford_cars/``.
    """
    split: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    numbers = {"cars_train": 1, "cars_test": 1}
    for label, name in enumerate(CARS_CLASSES):
        for part, count in _counts(label, len(CARS_CLASSES)).items():
            sub = "cars_test" if part == "test" else "cars_train"
            for _ in range(count):
                impath = f"{sub}/{numbers[sub]:05d}.jpg"
                write_jpeg(folder / impath, seed=1000 + numbers[sub] + (sub == "cars_test") * 500)
                split[part].append([impath, label, name])
                numbers[sub] += 1
    return write_zhou_split(folder / "split_zhou_StanfordCars.json", split)


def write_fgvc_aircraft(folder: Path, nested: bool = False) -> Path:
    """``fgvc_aircraft/images/<id>.jpg``, ``variants.txt`` and ``images_variant_*.txt``.

    Args:
        folder: The ``fgvc_aircraft`` folder.
        nested: Put everything under ``fgvc_aircraft/data/`` (the tarball's folder
            kept instead of renamed).

    Returns:
        The folder holding the text files.
    """
    base = folder / "data" if nested else folder
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    image_id = 1000000
    for label, variant in enumerate(AIRCRAFT_VARIANTS):
        for part, count in _counts(label, len(AIRCRAFT_VARIANTS)).items():
            for _ in range(count):
                write_jpeg(base / "images" / f"{image_id:07d}.jpg", seed=image_id)
                lines[part].append(f"{image_id:07d} {variant}")
                image_id += 1
    base.mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("\n".join(AIRCRAFT_VARIANTS) + "\n", encoding="utf-8")
    for part, rows in lines.items():
        (base / f"images_variant_{part}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return base


def make_coop_tree(root: Path) -> DataPaths:
    """Writes the EuroSAT, Oxford Pets, Stanford Cars and FGVC-Aircraft fixtures."""
    coop = root / "coop"
    write_eurosat(coop / "eurosat")
    write_oxford_pets(coop / "oxford_pets")
    write_stanford_cars(coop / "stanford_cars")
    write_fgvc_aircraft(coop / "fgvc_aircraft")
    return DataPaths(root)
