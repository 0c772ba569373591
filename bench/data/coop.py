"""Readers of the ten non-ImageNet CoOp few-shot datasets in CoOp's on-disk layout.

CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022) and
CoCoOp (CVPR 2022) fix one train / val / test split per dataset. Nine of them ship it
as a ``split_zhou_<Name>.json`` file next to the images (downloads listed in CoOp's
``DATASETS.md``); FGVC-Aircraft uses the dataset's own ``images_variant_*.txt`` lists.

Formats (facts from CoOp's ``datasets/*.py`` and ``DATASETS.md``):

* ``split_zhou_<Name>.json``: ``{"train": [[impath, label, classname], ...], "val":
  [...], "test": [...]}``; ``impath`` is relative to the dataset's image folder
  (``stanford_cars/`` itself for StanfordCars: ``cars_train/00001.jpg``), ``label`` is
  the 0-based class index and ``classname`` its name.
* FGVC-Aircraft (``fgvc_aircraft/`` is the tarball's ``data/`` folder renamed):
  ``variants.txt`` lists the 100 variant names, one a line, in label order;
  ``images_variant_{train,val,test}.txt`` hold ``<image id> <variant name>`` lines
  (names may contain spaces) and the image is ``images/<image id>.jpg``.

Class names. With the split file present CoOp renames nothing at read time: the
renames were applied once, when the split files were generated (EuroSAT's and
Caltech101's ``NEW_CNAMES``, Flowers' ``cat_to_name.json``, UCF101's CamelCase ->
``Apply_Eye_Makeup``, StanfordCars' year moved to the front, SUN397's reversed path
words), so the names in the file are CoOp's. The one read-time transform is in the
prompt builders (``trainers/zsclip.py``, ``trainers/coop.py``): ``_`` becomes a space
("american_bulldog" -> "american bulldog"). This module does the same, and also maps
the raw folder names of EuroSAT and Caltech101 through CoOp's ``NEW_CNAMES`` (a no-op
on the published files) so a split file regenerated from the folders gets the same
names. FGVC-Aircraft names are the lines of ``variants.txt`` as they are.

Counts (classes / train / val / test) are those of the CoOp paper's dataset table
(IJCV 2022, appendix), cross-checked against the OSTB repository README's copy of
it; see :data:`COOP_DATASETS`. Images are never decoded here: the readers return
relative paths, which :class:`bench.data.images.ImageFiles` decodes lazily.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data import ManifestEntry, check_count, count_lines

#: Split names of every CoOp split file, in file order.
COOP_SPLITS = ("train", "val", "test")

#: Where the download instructions are (named in error messages).
DOWNLOAD_HINT = "see docs/tasks_fewshot.md (CoOp's DATASETS.md) for the download"

#: One split-file entry: image path relative to the image folder, label, class name.
Entry = tuple[str, int, str]


@dataclass(frozen=True)
class CoopCounts:
    """Size of a complete copy of one CoOp dataset.

    Attributes:
        classes: Number of classes.
        train: Entries of the ``train`` split.
        val: Entries of the ``val`` split.
        test: Entries of the ``test`` split.
    """

    classes: int
    train: int
    val: int
    test: int

    def of(self, split: str) -> int:
        """Entries of ``split`` (``train``, ``val`` or ``test``)."""
        return getattr(self, split)


@dataclass(frozen=True)
class CoopDataset:
    """Static description of one CoOp dataset (one row of :data:`COOP_DATASETS`).

    Attributes:
        name: Snake-case key; the task is ``fewshot_<name>``.
        title: CoOp's dataset class name (``cfg.DATASET.NAME``), e.g. ``OxfordPets``.
        folder: CoOp's folder under ``$DATA`` (``caltech-101``, ``oxford_pets``, ...).
        image_dirs: Image folder relative to ``folder``; the first is CoOp's layout,
            later ones are accepted alternatives (used only when the first is absent).
        split_file: Name of the split json in ``folder``; None for FGVC-Aircraft,
            whose splits are the dataset's text lists.
        template: CoOp's hand-crafted prompt (``CUSTOM_TEMPLATES`` in
            ``trainers/zsclip.py``) with ``{}`` for the class name.
        counts: Published sizes.
        renames: Raw folder name -> CoOp class name (``NEW_CNAMES``) where CoOp has one.
        list_dirs: FGVC-Aircraft only: folders (relative to ``folder``) that may hold
            ``variants.txt`` and the split lists, CoOp's layout first.
    """

    name: str
    title: str
    folder: str
    image_dirs: tuple[str, ...]
    split_file: str | None
    template: str
    counts: CoopCounts
    renames: Mapping[str, str] = field(default_factory=dict)
    list_dirs: tuple[str, ...] = ()


#: CoOp's classname maps, applied when its split files were made from the folders
#: (``datasets/eurosat.py`` and ``datasets/caltech101.py``, ``NEW_CNAMES``).
EUROSAT_NEW_CNAMES: dict[str, str] = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}
CALTECH101_NEW_CNAMES: dict[str, str] = {
    "airplanes": "airplane",
    "Faces": "face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
}

#: Source of the counts below.
COUNTS_SOURCE = (
    "CoOp paper dataset table (Zhou et al., IJCV 2022, appendix); same numbers in the "
    "OSTB repository README"
)

#: The ten datasets. Folders, image folders and split files: CoOp's ``DATASETS.md``
#: and ``datasets/*.py``; templates: ``CUSTOM_TEMPLATES`` in ``trainers/zsclip.py``;
#: counts: :data:`COUNTS_SOURCE` (each equals the split-file sizes, e.g. Food101's
#: 50,500 / 20,200 / 30,300 = 50% / 20% / 30% of its 101,000 images).
COOP_DATASETS: dict[str, CoopDataset] = {
    spec.name: spec
    for spec in (
        CoopDataset(
            "caltech101", "Caltech101", "caltech-101", ("101_ObjectCategories",),
            "split_zhou_Caltech101.json", "a photo of a {}.",
            CoopCounts(100, 4128, 1649, 2465), CALTECH101_NEW_CNAMES,
        ),
        CoopDataset(
            "oxford_pets", "OxfordPets", "oxford_pets", ("images",),
            "split_zhou_OxfordPets.json", "a photo of a {}, a type of pet.",
            CoopCounts(37, 2944, 736, 3669),
        ),
        CoopDataset(
            # The split paths start with cars_train/ or cars_test/.
            "stanford_cars", "StanfordCars", "stanford_cars", ("",),
            "split_zhou_StanfordCars.json", "a photo of a {}.",
            CoopCounts(196, 6509, 1635, 8041),
        ),
        CoopDataset(
            "flowers102", "OxfordFlowers", "oxford_flowers", ("jpg",),
            "split_zhou_OxfordFlowers.json", "a photo of a {}, a type of flower.",
            CoopCounts(102, 4093, 1633, 2463),
        ),
        CoopDataset(
            "food101", "Food101", "food-101", ("images",),
            "split_zhou_Food101.json", "a photo of {}, a type of food.",
            CoopCounts(101, 50500, 20200, 30300),
        ),
        CoopDataset(
            # CoOp: keep the tarball's data/ and rename it fgvc_aircraft/; a copy that
            # still has data/ inside is accepted too.
            "fgvc_aircraft", "FGVCAircraft", "fgvc_aircraft", ("images",),
            None, "a photo of a {}, a type of aircraft.",
            CoopCounts(100, 3334, 3333, 3333), list_dirs=("", "data"),
        ),
        CoopDataset(
            "sun397", "SUN397", "sun397", ("SUN397",),
            "split_zhou_SUN397.json", "a photo of a {}.",
            CoopCounts(397, 15880, 3970, 19850),
        ),
        CoopDataset(
            # dtd-r1.0.1.tar.gz unpacks to dtd/images; extracting it inside dtd/ gives
            # dtd/dtd/images, accepted as well.
            "dtd", "DescribableTextures", "dtd", ("images", "dtd/images"),
            "split_zhou_DescribableTextures.json", "{} texture.",
            CoopCounts(47, 2820, 1128, 1692),
        ),
        CoopDataset(
            "eurosat", "EuroSAT", "eurosat", ("2750",),
            "split_zhou_EuroSAT.json", "a centered satellite photo of {}.",
            CoopCounts(10, 13500, 5400, 8100), EUROSAT_NEW_CNAMES,
        ),
        CoopDataset(
            "ucf101", "UCF101", "ucf101", ("UCF-101-midframes",),
            "split_zhou_UCF101.json", "a photo of a person doing {}.",
            CoopCounts(101, 7639, 1898, 3783),
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class CoopLayout:
    """Where one copy of a dataset keeps its files.

    Attributes:
        image_dir: Folder the split paths are relative to.
        split_file: The split json (None for FGVC-Aircraft).
        list_dir: FGVC-Aircraft's folder of ``variants.txt`` and split lists, else None.
    """

    image_dir: Path
    split_file: Path | None
    list_dir: Path | None

    def fgvc_files(self) -> list[Path]:
        """``variants.txt`` and the three split lists (FGVC-Aircraft)."""
        assert self.list_dir is not None
        return [self.list_dir / "variants.txt"] + [
            self.list_dir / f"images_variant_{split}.txt" for split in COOP_SPLITS
        ]

    def required_files(self) -> list[Path]:
        """Files and folders that must exist (no reading)."""
        files = self.fgvc_files() if self.list_dir is not None else [self.split_file]
        return [*files, self.image_dir]


def resolve_layout(spec: CoopDataset, folder: str | os.PathLike) -> CoopLayout:
    """Finds the split file / lists and image folder of a copy (existence checks only).

    Args:
        spec: The dataset.
        folder: The dataset folder (``<data root>/coop/<spec.folder>`` by default).

    Returns:
        The layout; when no alternative exists it is CoOp's, so errors name CoOp's paths.
    """
    folder = Path(folder)
    if spec.split_file is None:
        lists = [folder / d for d in spec.list_dirs]
        list_dir = next((d for d in lists if (d / "variants.txt").is_file()), lists[0])
        return CoopLayout(list_dir / spec.image_dirs[0], None, list_dir)
    images = [folder / d for d in spec.image_dirs]
    image_dir = next((d for d in images if d.is_dir()), images[0])
    return CoopLayout(image_dir, folder / spec.split_file, None)


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} does not exist; {DOWNLOAD_HINT}")


def read_zhou_split(path: str | os.PathLike) -> dict[str, list[Entry]]:
    """Reads a CoOp ``split_zhou_<Name>.json``.

    Args:
        path: The split file.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` of ``(impath, label,
        classname)`` entries in file order.

    Raises:
        FileNotFoundError: If the file is missing (names it).
        ValueError: If it is not valid json or an entry is malformed (names the
            file, the split and the entry index).
    """
    path = Path(path)
    _require(path, "split file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a valid split json ({error}); re-download it") from error
    if not isinstance(data, dict) or not set(COOP_SPLITS) <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: needs the keys train, val and test, found {found}")
    splits: dict[str, list[Entry]] = {}
    for split in COOP_SPLITS:
        entries = []
        for index, item in enumerate(data[split]):
            valid = (
                isinstance(item, list | tuple)
                and len(item) == 3
                and isinstance(item[0], str)
                and isinstance(item[1], int)
                and not isinstance(item[1], bool)
                and item[1] >= 0
                and isinstance(item[2], str)
            )
            if not valid:
                raise ValueError(
                    f"{path}: {split} entry {index} is {item!r}; expected "
                    "[relative image path, label >= 0, class name]"
                )
            entries.append((item[0], item[1], item[2]))
        splits[split] = entries
    return splits


def read_fgvc_aircraft(list_dir: str | os.PathLike) -> dict[str, list[Entry]]:
    """Reads FGVC-Aircraft's ``variants.txt`` and ``images_variant_{split}.txt``.

    Args:
        list_dir: The folder holding the text files (CoOp's ``fgvc_aircraft/``).

    Returns:
        Entries as :func:`read_zhou_split` returns them; the label of a variant is its
        line index in ``variants.txt`` and the image path ``<image id>.jpg``.

    Raises:
        FileNotFoundError: If a list is missing (names it).
        ValueError: If a line names a variant not in ``variants.txt`` (names the file
            and the line).
    """
    list_dir = Path(list_dir)
    variants_file = list_dir / "variants.txt"
    _require(variants_file, "FGVC-Aircraft variant list")
    variants = [line.strip() for line in variants_file.read_text(encoding="utf-8").splitlines()]
    variants = [v for v in variants if v]
    label_of = {name: label for label, name in enumerate(variants)}
    splits: dict[str, list[Entry]] = {}
    for split in COOP_SPLITS:
        path = list_dir / f"images_variant_{split}.txt"
        _require(path, f"FGVC-Aircraft {split} list")
        entries = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, variant = line.strip().partition(" ")
            if variant not in label_of:
                raise ValueError(
                    f"{path}: line {number} names variant {variant!r}, which is not in "
                    f"{variants_file}"
                )
            entries.append((f"{image_id}.jpg", label_of[variant], variant))
        splits[split] = entries
    return splits


def coop_classname(raw: str, renames: Mapping[str, str]) -> str:
    """CoOp's class name as it enters a prompt: ``renames`` applied, ``_`` -> space."""
    return renames.get(raw, raw).replace("_", " ")


@dataclass
class CoopData:
    """One CoOp dataset as read from disk.

    Attributes:
        image_dir: Folder the paths are relative to.
        classnames: Class names (prompt-ready), index = label.
        paths: Split -> relative image paths (numpy string array), file order.
        labels: Split -> ``int64`` labels.
    """

    image_dir: Path
    classnames: list[str]
    paths: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def _classnames(entries: dict[str, list[Entry]], spec: CoopDataset, source: Path) -> list[str]:
    """Label-indexed class names; every label must have one name and none may be skipped."""
    name_of: dict[int, str] = {}
    for split, items in entries.items():
        for impath, label, raw in items:
            name = coop_classname(raw, spec.renames)
            if name_of.setdefault(label, name) != name:
                raise ValueError(
                    f"{source}: label {label} is called both {name_of[label]!r} and "
                    f"{name!r} ({split} entry {impath!r}); the split file is inconsistent"
                )
    missing = sorted(set(range(max(name_of, default=-1) + 1)) - set(name_of))
    if missing:
        raise ValueError(
            f"{source}: labels must be 0..{max(name_of)} without gaps, but "
            f"{len(missing)} are unused (first: {missing[0]})"
        )
    return [name_of[label] for label in range(len(name_of))]


def check_images_exist(image_dir: Path, paths: list[str], source: Path) -> None:
    """Raises FileNotFoundError naming the first missing image and how many are missing."""
    root = str(image_dir)
    missing = [p for p in paths if not os.path.isfile(os.path.join(root, p))]
    if missing:
        raise FileNotFoundError(
            f"{image_dir}: {len(missing)} of {len(paths)} images listed in {source} are "
            f"missing, first: {image_dir / missing[0]}; the image folder is incomplete or "
            f"laid out differently ({DOWNLOAD_HINT})"
        )


def load_coop(spec: CoopDataset, folder: str | os.PathLike, verify_counts: bool = True) -> CoopData:
    """Reads one dataset's splits and checks them against the files on disk.

    Args:
        spec: The dataset.
        folder: Its folder (``<data root>/coop/<spec.folder>`` by default).
        verify_counts: Compare split sizes and class count with ``spec.counts``.

    Returns:
        The splits with prompt-ready class names.

    Raises:
        FileNotFoundError: If the split file / lists, the image folder or any listed
            image is missing (names the path; for images also how many are missing).
        bench.data.DataCountError: If ``verify_counts`` and a count differs (names the
            file, the expected and the found count).
        ValueError: If the split file is malformed.
    """
    layout = resolve_layout(spec, folder)
    if layout.list_dir is not None:
        entries = read_fgvc_aircraft(layout.list_dir)
        source = layout.list_dir
    else:
        entries = read_zhou_split(layout.split_file)
        source = layout.split_file
    _require(layout.image_dir, "image folder")
    classnames = _classnames(entries, spec, source)
    if verify_counts:
        for split in COOP_SPLITS:
            where = source if layout.list_dir is None else source / f"images_variant_{split}.txt"
            check_count(where, len(entries[split]), spec.counts.of(split), f"{split} entries")
        check_count(source, len(classnames), spec.counts.classes, "classes")
    check_images_exist(
        layout.image_dir, [e[0] for split in COOP_SPLITS for e in entries[split]], source
    )
    return CoopData(
        layout.image_dir,
        classnames,
        {s: np.asarray([e[0] for e in entries[s]], dtype=str) for s in COOP_SPLITS},
        {s: np.asarray([e[1] for e in entries[s]], dtype=np.int64) for s in COOP_SPLITS},
    )


# --------------------------------------------------------------------------- manifests


@functools.lru_cache(maxsize=16)
def _cached_entries(path: str, mtime_ns: int) -> dict[str, list[Entry]]:
    # One parse per file version for the several manifest entries that count it.
    del mtime_ns
    return read_zhou_split(path)


def _split_entries(path: Path) -> dict[str, list[Entry]]:
    return _cached_entries(str(path), path.stat().st_mtime_ns)


def coop_manifest(spec: CoopDataset, folder: str | os.PathLike) -> list[ManifestEntry]:
    """What a complete copy holds: split sizes, classes and the listed images on disk.

    Counting never decodes an image: split files are parsed, FGVC lists are counted by
    line, and listed images are checked with ``os.path.isfile``.

    Args:
        spec: The dataset.
        folder: Its folder.

    Returns:
        Manifest entries with the published counts and their source.
    """
    layout = resolve_layout(spec, folder)
    counts = spec.counts
    total = counts.train + counts.val + counts.test
    if layout.list_dir is not None:
        variants, *lists = layout.fgvc_files()
        entries = [ManifestEntry(variants, "classes", counts.classes, count_lines, COUNTS_SOURCE)]
        entries += [
            ManifestEntry(path, f"{split} images", counts.of(split), count_lines, COUNTS_SOURCE)
            for split, path in zip(COOP_SPLITS, lists, strict=True)
        ]

        def present(image_dir: Path) -> int:
            if not all(path.is_file() for path in (variants, *lists)):
                return 0
            return _count_present(image_dir, read_fgvc_aircraft(layout.list_dir))

        return [
            *entries,
            ManifestEntry(layout.image_dir, "listed images present", total, present, COUNTS_SOURCE),
        ]

    split_file = layout.split_file

    def split_size(split: str):
        return lambda path: len(_split_entries(path)[split])

    def class_count(path: Path) -> int:
        return len({label for items in _split_entries(path).values() for _, label, _ in items})

    def present(image_dir: Path) -> int:
        if not split_file.is_file():
            return 0
        return _count_present(image_dir, _split_entries(split_file))

    return [
        *(
            ManifestEntry(
                split_file, f"{split} entries", counts.of(split), split_size(split), COUNTS_SOURCE
            )
            for split in COOP_SPLITS
        ),
        ManifestEntry(split_file, "classes", counts.classes, class_count, COUNTS_SOURCE),
        ManifestEntry(layout.image_dir, "listed images present", total, present, COUNTS_SOURCE),
    ]


def _count_present(image_dir: Path, entries: dict[str, list[Entry]]) -> int:
    root = str(image_dir)
    return sum(
        os.path.isfile(os.path.join(root, impath))
        for items in entries.values()
        for impath, _, _ in items
    )


__all__ = [
    "CALTECH101_NEW_CNAMES",
    "COOP_DATASETS",
    "COOP_SPLITS",
    "COUNTS_SOURCE",
    "EUROSAT_NEW_CNAMES",
    "CoopCounts",
    "CoopData",
    "CoopDataset",
    "CoopLayout",
    "check_images_exist",
    "coop_classname",
    "coop_manifest",
    "load_coop",
    "read_fgvc_aircraft",
    "read_zhou_split",
    "resolve_layout",
]
