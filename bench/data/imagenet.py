"""ImageNet-1k and its distribution-shift test sets: class lists, metadata and readers.

On-disk layouts (the ones the WiSE-FT, model-soups and CoOp instructions produce; each
folder is overridable by a task option, see :mod:`bench.tasks.imagenet`):

* ImageNet-1k (ILSVRC-2012): ``imagenet/train/<wnid>/*.JPEG`` (1,281,167 images) and
  ``imagenet/val/<wnid>/*.JPEG`` (50,000, 50 per class). The official validation tar is
  flat; the usual ``valprep.sh`` step moves each image into its wnid folder.
* ImageNet-V2 matched-frequency (Recht et al., 2019):
  ``imagenetv2-matched-frequency-format-val/<class index>/*.jpeg``, 10,000 images, 10 per
  class. Folder names are class indices ``0..999``, not wnids.
* ImageNet-R (Hendrycks et al., 2021) and ImageNet-A (Hendrycks et al., 2021):
  ``imagenet-r/<wnid>/*`` (30,000 images) and ``imagenet-a/<wnid>/*`` (7,500), 200 wnid
  folders each (the tars also hold a ``README.txt``). Their class lists are
  :data:`IMAGENET_R_WNIDS` and :data:`IMAGENET_A_WNIDS`.
* ImageNet-Sketch (Wang et al., 2019): ``imagenet-sketch/sketch/<wnid>/*`` (50,889
  images, 1000 classes; the paper's "50 per class" is nominal, some classes have fewer
  sketches and the archive holds 50,889).
* ObjectNet 1.0 (Barbu et al., 2019): ``objectnet-1.0/images/<folder>/*.png`` (50,273
  images in 313 folders) with ``objectnet-1.0/mappings/`` holding four files that ship
  in the official zip: ``folder_to_objectnet_label.json`` (``{folder: ObjectNet label}``),
  ``objectnet_to_imagenet_1k.json`` (``{ObjectNet label: "ImageNet label; ImageNet
  label"}``, 113 entries), ``imagenet_to_label_2012_v2`` (1000 lines, one ImageNet label
  per line, in the ILSVRC-2012 *devkit* order, kit fox first) and
  ``pytorch_to_imagenet_2012_id.json`` (``{class index: line of that file}``). The 113
  ObjectNet classes that overlap ImageNet map to 125 ImageNet classes (several
  ImageNet classes pool into one ObjectNet class, e.g. "Alarm clock" = analog clock +
  digital clock) and hold 18,574 images. ObjectNet images carry a thin red border;
  :data:`OBJECTNET_BORDER` pixels are cropped from every edge before any transform.

Class order everywhere is the standard sorted-wnid index order (``imagenet_wnids.txt``
beside this module; ``n01440764`` = tench is class 0). The CLIP class names and the 80
OpenAI prompt templates come from the installed ``open_clip`` package
(:func:`openai_imagenet_metadata`), loaded without importing ``open_clip`` itself.

Sources of the constants:

* 1000 wnids: the standard ILSVRC-2012 synset list (identical to timm's
  ``timm/data/_info/imagenet_synsets.txt`` and to ``all_wnids`` in
  ``hendrycks/imagenet-r/eval.py``); sorted, 1000 unique ids.
* ImageNet-R / -A wnids: ``imagenet_r_wnids`` in ``hendrycks/imagenet-r/eval.py`` and the
  ``thousand_k_to_200`` map in ``hendrycks/natural-adv-examples/eval.py`` (both checked
  equal to timm's ``imagenet_r_synsets.txt`` / ``imagenet_a_synsets.txt``).
* Counts: ImageNet train / val from the ILSVRC-2012 release (Russakovsky et al., 2015);
  V2 10,000 from Recht et al. (2019) and the ``imagenetv2-matched-frequency`` archive;
  R 30,000 from the ``hendrycks/imagenet-r`` README; A 7,500 from the
  ``hendrycks/natural-adv-examples`` README; Sketch 50,889 images in the released archive
  (EasyRobust's benchmark documentation); ObjectNet 50,273 images / 313 folders in
  ``objectnet-1.0.zip`` and 18,574 images in the 113 overlapping classes (counted by
  users of the official zip, locuslab/FLYP issue #7).
* ObjectNet border: the ObjectNet license says images carry a 1-pixel red border; the
  official evaluation template (``abarbu/objectnet-template-pytorch``,
  ``objectnet_pytorch_dataloader.py``) and WiSE-FT / model soups crop 2 pixels from each
  edge, which this module follows so the numbers stay comparable.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data import DataCountError, check_count
from bench.data.images import IMAGE_EXTENSIONS, ImageFiles, count_images, scan_class_folders

#: The 1000 ImageNet-1k wnids, one per line, in class-index order.
WNIDS_FILE = Path(__file__).with_name("imagenet_wnids.txt")

#: Images per folder of the complete published copies (see the module docstring).
IMAGENET_TRAIN_IMAGES = 1_281_167
IMAGENET_VAL_IMAGES = 50_000
IMAGENET_V2_IMAGES = 10_000
IMAGENET_R_IMAGES = 30_000
IMAGENET_A_IMAGES = 7_500
IMAGENET_SKETCH_IMAGES = 50_889
OBJECTNET_IMAGES = 50_273
OBJECTNET_FOLDERS = 313
OBJECTNET_OVERLAP_IMAGES = 18_574
OBJECTNET_OVERLAP_CLASSES = 113

#: Pixels cropped from every edge of an ObjectNet image (its red border).
OBJECTNET_BORDER = 2

#: Where each count comes from (printed by ``python -m bench data check``).
SOURCES = {
    "imagenet": "ILSVRC-2012 release (Russakovsky et al., IJCV 2015)",
    "v2": "ImageNet-V2 matched-frequency, Recht et al. (ICML 2019): 10 images per class",
    "r": "hendrycks/imagenet-r README: 200 classes, 30,000 images",
    "a": "hendrycks/natural-adv-examples README: 200 classes, 7,500 images",
    "sketch": "ImageNet-Sketch archive (Wang et al., NeurIPS 2019); EasyRobust docs: 50,889",
    "objectnet": "objectnet-1.0.zip: 50,273 images in 313 folders (Barbu et al., NeurIPS 2019)",
    "objectnet_overlap": "113 ImageNet-overlap classes, 18,574 images (locuslab/FLYP issue #7)",
}

#: The ObjectNet mapping files read from ``objectnet-1.0/mappings``.
OBJECTNET_MAPPING_FILES = (
    "folder_to_objectnet_label.json",
    "objectnet_to_imagenet_1k.json",
    "imagenet_to_label_2012_v2",
    "pytorch_to_imagenet_2012_id.json",
)

_IMAGENET_R_TEXT = """
n01443537 n01484850 n01494475 n01498041 n01514859 n01518878 n01531178 n01534433
n01614925 n01616318 n01630670 n01632777 n01644373 n01677366 n01694178 n01748264
n01770393 n01774750 n01784675 n01806143 n01820546 n01833805 n01843383 n01847000
n01855672 n01860187 n01882714 n01910747 n01944390 n01983481 n01986214 n02007558
n02009912 n02051845 n02056570 n02066245 n02071294 n02077923 n02085620 n02086240
n02088094 n02088238 n02088364 n02088466 n02091032 n02091134 n02092339 n02094433
n02096585 n02097298 n02098286 n02099601 n02099712 n02102318 n02106030 n02106166
n02106550 n02106662 n02108089 n02108915 n02109525 n02110185 n02110341 n02110958
n02112018 n02112137 n02113023 n02113624 n02113799 n02114367 n02117135 n02119022
n02123045 n02128385 n02128757 n02129165 n02129604 n02130308 n02134084 n02138441
n02165456 n02190166 n02206856 n02219486 n02226429 n02233338 n02236044 n02268443
n02279972 n02317335 n02325366 n02346627 n02356798 n02363005 n02364673 n02391049
n02395406 n02398521 n02410509 n02423022 n02437616 n02445715 n02447366 n02480495
n02480855 n02481823 n02483362 n02486410 n02510455 n02526121 n02607072 n02655020
n02672831 n02701002 n02749479 n02769748 n02793495 n02797295 n02802426 n02808440
n02814860 n02823750 n02841315 n02843684 n02883205 n02906734 n02909870 n02939185
n02948072 n02950826 n02951358 n02966193 n02980441 n02992529 n03124170 n03272010
n03345487 n03372029 n03424325 n03452741 n03467068 n03481172 n03494278 n03495258
n03498962 n03594945 n03602883 n03630383 n03649909 n03676483 n03710193 n03773504
n03775071 n03888257 n03930630 n03947888 n04086273 n04118538 n04133789 n04141076
n04146614 n04147183 n04192698 n04254680 n04266014 n04275548 n04310018 n04325704
n04347754 n04389033 n04409515 n04465501 n04487394 n04522168 n04536866 n04552348
n04591713 n07614500 n07693725 n07695742 n07697313 n07697537 n07714571 n07714990
n07718472 n07720875 n07734744 n07742313 n07745940 n07749582 n07753275 n07753592
n07768694 n07873807 n07880968 n07920052 n09472597 n09835506 n10565667 n12267677
"""

_IMAGENET_A_TEXT = """
n01498041 n01531178 n01534433 n01558993 n01580077 n01614925 n01616318 n01631663
n01641577 n01669191 n01677366 n01687978 n01694178 n01698640 n01735189 n01770081
n01770393 n01774750 n01784675 n01819313 n01820546 n01833805 n01843383 n01847000
n01855672 n01882714 n01910747 n01914609 n01924916 n01944390 n01985128 n01986214
n02007558 n02009912 n02037110 n02051845 n02077923 n02085620 n02099601 n02106550
n02106662 n02110958 n02119022 n02123394 n02127052 n02129165 n02133161 n02137549
n02165456 n02174001 n02177972 n02190166 n02206856 n02219486 n02226429 n02231487
n02233338 n02236044 n02259212 n02268443 n02279972 n02280649 n02281787 n02317335
n02325366 n02346627 n02356798 n02361337 n02410509 n02445715 n02454379 n02486410
n02492035 n02504458 n02655020 n02669723 n02672831 n02676566 n02690373 n02701002
n02730930 n02777292 n02782093 n02787622 n02793495 n02797295 n02802426 n02814860
n02815834 n02837789 n02879718 n02883205 n02895154 n02906734 n02948072 n02951358
n02980441 n02992211 n02999410 n03014705 n03026506 n03124043 n03125729 n03187595
n03196217 n03223299 n03250847 n03255030 n03291819 n03325584 n03355925 n03384352
n03388043 n03417042 n03443371 n03444034 n03445924 n03452741 n03483316 n03584829
n03590841 n03594945 n03617480 n03666591 n03670208 n03717622 n03720891 n03721384
n03724870 n03775071 n03788195 n03804744 n03837869 n03840681 n03854065 n03888257
n03891332 n03935335 n03982430 n04019541 n04033901 n04039381 n04067472 n04086273
n04099969 n04118538 n04131690 n04133789 n04141076 n04146614 n04147183 n04179913
n04208210 n04235860 n04252077 n04252225 n04254120 n04270147 n04275548 n04310018
n04317175 n04344873 n04347754 n04355338 n04366367 n04376876 n04389033 n04399382
n04442312 n04456115 n04482393 n04507155 n04509417 n04532670 n04540053 n04554684
n04562935 n04591713 n04606251 n07583066 n07695742 n07697313 n07697537 n07714990
n07718472 n07720875 n07734744 n07749582 n07753592 n07760859 n07768694 n07831146
n09229709 n09246464 n09472597 n09835506 n11879895 n12057211 n12144580 n12267677
"""
#: ImageNet-R's 200 wnids in ImageNet class order.
IMAGENET_R_WNIDS: tuple[str, ...] = tuple(_IMAGENET_R_TEXT.split())
#: ImageNet-A's 200 wnids in ImageNet class order.
IMAGENET_A_WNIDS: tuple[str, ...] = tuple(_IMAGENET_A_TEXT.split())


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (checked sorted and unique)."""
    wnids = tuple(WNIDS_FILE.read_text(encoding="utf-8").split())
    if len(wnids) != 1000 or len(set(wnids)) != 1000 or list(wnids) != sorted(wnids):
        raise DataCountError(
            f"{WNIDS_FILE}: expected 1000 sorted unique wnids, found {len(wnids)} "
            f"({len(set(wnids))} unique); reinstall the package"
        )
    return wnids


@functools.cache
def wnid_to_index() -> dict[str, int]:
    """Maps each wnid to its ImageNet class index."""
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


def _template_string(template) -> str:
    # open_clip stores templates as one-argument lambdas (older releases: format strings);
    # calling a lambda with "{}" turns it into a format string.
    text = template("{}") if callable(template) else str(template)
    if text.count("{}") != 1:
        raise ValueError(f"prompt template {text!r} must hold exactly one '{{}}'")
    return text


@functools.cache
def openai_imagenet_metadata() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """CLIP's ImageNet class names and prompt templates from the installed open_clip.

    ``open_clip/zero_shot_metadata.py`` has no imports of its own, so it is executed
    as a standalone module: importing the ``open_clip`` package would pull in torch and
    cost seconds in processes that only build tasks.

    Returns:
        ``(classnames, openai_templates, simple_templates)``: the 1000 class names of the
        CLIP paper in class-index order, its 80 ImageNet templates and open_clip's 7
        "simple" templates, as ``{}`` format strings.

    Raises:
        ImportError: If open_clip is not installed.
        ValueError: If the file does not hold 1000 names and 80 templates.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the ImageNet class names and templates come from open_clip: "
            "pip install open_clip_torch"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "zero_shot_metadata.py"
    module_spec = importlib.util.spec_from_file_location("_bench_open_clip_metadata", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    names = tuple(str(n) for n in module.IMAGENET_CLASSNAMES)
    openai = tuple(_template_string(t) for t in module.OPENAI_IMAGENET_TEMPLATES)
    simple = tuple(_template_string(t) for t in module.SIMPLE_IMAGENET_TEMPLATES)
    if len(names) != 1000 or len(openai) != 80:
        raise ValueError(
            f"{path}: expected 1000 ImageNet class names and 80 templates, found "
            f"{len(names)} and {len(openai)}; install a matching open_clip_torch"
        )
    return names, openai, simple


def imagenet_classnames() -> list[str]:
    """The 1000 CLIP-paper ImageNet class names in class-index order."""
    return list(openai_imagenet_metadata()[0])


def imagenet_templates() -> list[str]:
    """The 80 OpenAI ImageNet prompt templates with ``{}`` for the class name."""
    return list(openai_imagenet_metadata()[1])


@dataclass(frozen=True)
class ImageSet:
    """Images of a dataset folder with their ImageNet class indices.

    Attributes:
        files: The images (lazy).
        labels: ``int64 [N]`` ImageNet-1k class index of each image (for ObjectNet: the
            index of the image's ObjectNet class in :class:`ObjectNetMapping`).
    """

    files: ImageFiles
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _describe_difference(found: Sequence[str], expected: Sequence[str]) -> str:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
    if extra:
        parts.append(f"unexpected {len(extra)} (e.g. {', '.join(extra[:3])})")
    return "; ".join(parts)


def check_class_folders(
    root: Path, found: Sequence[str], expected: Sequence[str] | None, what: str
) -> None:
    """Raises :class:`DataCountError` unless the class folders are exactly ``expected``.

    Args:
        root: Folder that was scanned (named in the message).
        found: Class folder names found.
        expected: Class folder names of the complete copy; None skips the check.
        what: Dataset name for the message.
    """
    if expected is None or set(found) == set(expected):
        return
    raise DataCountError(
        f"{root}: expected {len(expected)} class folders ({what}) but found {len(found)}: "
        f"{_describe_difference(found, expected)}; the copy looks incomplete or is a "
        "different dataset, re-download it (or pass verify_counts=False for a "
        "deliberately trimmed copy)"
    )


def read_wnid_folders(
    root: str | os.PathLike,
    expected_images: int | None = None,
    expected_wnids: Sequence[str] | None = None,
    what: str = "ImageNet",
) -> ImageSet:
    """Reads a ``<root>/<wnid>/<image>`` tree (ImageNet, -R, -A, -Sketch).

    Args:
        root: Folder with one sub-folder per wnid; other files (``README.txt``) are ignored.
        expected_images: Images in the complete copy; None skips the check.
        expected_wnids: Wnid folders of the complete copy; None skips the check.
        what: Dataset name for messages.

    Returns:
        The images with their ImageNet class indices.

    Raises:
        FileNotFoundError: If ``root`` does not exist.
        DataCountError: If a folder is not an ImageNet-1k wnid, or the folders or image
            count differ from the expected ones.
    """
    root = Path(root)
    classes, paths, path_classes = scan_class_folders(root)
    if not classes and count_images(root):
        raise DataCountError(
            f"{root}: images lie directly in the folder, not in one sub-folder per wnid; "
            "ImageNet's validation images must be sorted into wnid folders first (e.g. with "
            "the valprep.sh script from the PyTorch ImageNet example)"
        )
    index = wnid_to_index()
    unknown = [c for c in classes if c not in index]
    if unknown:
        raise DataCountError(
            f"{root}: folder(s) {', '.join(unknown[:3])} are not ImageNet-1k wnids; "
            f"{what} needs one folder per wnid (n01440764, ...)"
        )
    check_class_folders(root, classes, expected_wnids, what)
    check_count(root, len(paths), expected_images, f"{what} images")
    labels = np.fromiter((index[c] for c in path_classes), dtype=np.int64, count=len(paths))
    return ImageSet(ImageFiles(root, paths), labels)


def read_imagenet_v2(root: str | os.PathLike, expected_images: int | None = None) -> ImageSet:
    """Reads ImageNet-V2's ``<root>/<class index>/<image>`` tree.

    Args:
        root: ``imagenetv2-matched-frequency-format-val`` (folders ``0`` .. ``999``).
        expected_images: Images in the complete copy (10,000); None skips both this and
            the check that all 1000 folders are present.

    Returns:
        The images with their class indices (the folder names).

    Raises:
        DataCountError: If a folder name is not an integer in ``0..999`` or counts differ.
    """
    root = Path(root)
    classes, paths, path_classes = scan_class_folders(root)
    bad = [c for c in classes if not (c.isdigit() and 0 <= int(c) < 1000)]
    if bad:
        raise DataCountError(
            f"{root}: folder(s) {', '.join(bad[:3])} are not class indices 0..999; "
            "ImageNet-V2 folders are named by class index, not wnid"
        )
    if expected_images is not None:
        check_class_folders(root, classes, [str(i) for i in range(1000)], "ImageNet-V2")
    check_count(root, len(paths), expected_images, "ImageNet-V2 images")
    labels = np.asarray([int(c) for c in path_classes], dtype=np.int64)
    return ImageSet(ImageFiles(root, paths), labels)


@dataclass(frozen=True)
class ObjectNetMapping:
    """ObjectNet's classes that overlap ImageNet-1k, from the dataset's mapping files.

    Attributes:
        folders: Image folder of each ObjectNet class, sorted.
        names: ObjectNet label of each class (e.g. ``"Alarm clock"``).
        imagenet_indices: ImageNet class indices pooled into each ObjectNet class.
    """

    folders: tuple[str, ...]
    names: tuple[str, ...]
    imagenet_indices: tuple[tuple[int, ...], ...]


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataCountError(f"{path}: cannot read ObjectNet mapping ({error})") from error
    if not isinstance(data, dict):
        raise DataCountError(f"{path}: expected a JSON object")
    return data


def read_objectnet_mapping(mappings: str | os.PathLike) -> ObjectNetMapping:
    """Reads the ObjectNet -> ImageNet class mapping shipped in ``objectnet-1.0/mappings``.

    ``imagenet_to_label_2012_v2`` lists ImageNet labels in the devkit order, so a label's
    class index is found through ``pytorch_to_imagenet_2012_id.json`` (class index ->
    line). Labels are matched exactly (``objectnet_to_imagenet_1k.json`` separates
    several ImageNet labels with ``"; "``); a label that two lines share ("crane") is
    rejected rather than guessed.

    Args:
        mappings: The ``mappings`` folder.

    Returns:
        The overlapping classes, sorted by folder name.

    Raises:
        DataCountError: If a file is malformed or names a label the others lack.
    """
    mappings = Path(mappings)
    folder_to_label = _load_json(mappings / "folder_to_objectnet_label.json")
    objectnet_to_imagenet = _load_json(mappings / "objectnet_to_imagenet_1k.json")
    index_to_line = _load_json(mappings / "pytorch_to_imagenet_2012_id.json")
    label_file = mappings / "imagenet_to_label_2012_v2"
    lines = [line.strip() for line in label_file.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    line_numbers = sorted(int(v) for v in index_to_line.values())
    if len(lines) != 1000 or line_numbers != list(range(1000)):
        raise DataCountError(
            f"{label_file} / pytorch_to_imagenet_2012_id.json: expected 1000 labels and a "
            f"1000-entry map onto their lines, found {len(lines)} and {len(index_to_line)}"
        )
    label_to_indices: dict[str, list[int]] = {}
    for class_index, line in index_to_line.items():
        label_to_indices.setdefault(lines[int(line)], []).append(int(class_index))
    label_to_folder = {label: folder for folder, label in folder_to_label.items()}
    if len(label_to_folder) != len(folder_to_label):
        shared = sorted(
            {v for v in folder_to_label.values() if list(folder_to_label.values()).count(v) > 1}
        )
        raise DataCountError(
            f"{mappings / 'folder_to_objectnet_label.json'}: several folders share the label(s) "
            f"{shared[:3]}; the published file maps each folder to its own label, re-download it"
        )
    entries = []
    for name, imagenet_labels in objectnet_to_imagenet.items():
        if name not in label_to_folder:
            raise DataCountError(
                f"{mappings / 'objectnet_to_imagenet_1k.json'}: ObjectNet label {name!r} "
                "has no folder in folder_to_objectnet_label.json"
            )
        indices = []
        for label in str(imagenet_labels).split("; "):
            found = label_to_indices.get(label.strip(), [])
            if len(found) != 1:
                raise DataCountError(
                    f"{label_file}: ImageNet label {label!r} (ObjectNet {name!r}) matches "
                    f"{len(found)} lines, expected exactly one"
                )
            indices.append(found[0])
        entries.append((label_to_folder[name], name, tuple(sorted(indices))))
    entries.sort()
    return ObjectNetMapping(
        tuple(e[0] for e in entries), tuple(e[1] for e in entries), tuple(e[2] for e in entries)
    )


def count_objectnet_overlap(images: str | os.PathLike) -> int:
    """Images in ObjectNet's ImageNet-overlap folders (reads ``../mappings``; no decoding)."""
    images = Path(images)
    mapping = read_objectnet_mapping(images.parent / "mappings")
    suffixes = tuple(e.lower() for e in IMAGE_EXTENSIONS)
    total = 0
    for folder in mapping.folders:
        if (images / folder).is_dir():
            total += sum(
                1 for e in os.scandir(images / folder) if e.name.lower().endswith(suffixes)
            )
    return total


def read_objectnet(
    root: str | os.PathLike, verify_counts: bool = True
) -> tuple[ImageSet, ObjectNetMapping]:
    """Reads the ObjectNet images of the classes that overlap ImageNet.

    Args:
        root: ``objectnet-1.0`` (holding ``images/`` and ``mappings/``).
        verify_counts: Check 313 folders, 113 overlapping classes and 18,574 images.

    Returns:
        The images (border cropped on decoding; labels index ``mapping.folders``) and
        the mapping.

    Raises:
        DataCountError: If the mapping is malformed or counts differ.
    """
    root = Path(root)
    mapping = read_objectnet_mapping(root / "mappings")
    images = root / "images"
    classes, paths, path_classes = scan_class_folders(images)
    if verify_counts:
        check_count(images, len(classes), OBJECTNET_FOLDERS, "ObjectNet class folders")
        check_count(
            root / "mappings" / "objectnet_to_imagenet_1k.json",
            len(mapping.folders),
            OBJECTNET_OVERLAP_CLASSES,
            "ObjectNet classes mapped to ImageNet",
        )
    position = {folder: k for k, folder in enumerate(mapping.folders)}
    keep = [i for i, c in enumerate(path_classes) if c in position]
    if verify_counts:
        check_count(images, len(keep), OBJECTNET_OVERLAP_IMAGES, "images in overlap classes")
    labels = np.asarray([position[path_classes[i]] for i in keep], dtype=np.int64)
    files = ImageFiles(images, [paths[i] for i in keep], crop_border=OBJECTNET_BORDER)
    return ImageSet(files, labels), mapping


def count_class_folders(root: str | os.PathLike) -> int:
    """Sub-folders of ``root`` (class folders of an ImageFolder tree)."""
    return sum(1 for entry in os.scandir(root) if entry.is_dir())


__all__ = [
    "IMAGENET_A_WNIDS",
    "IMAGENET_R_WNIDS",
    "ImageSet",
    "OBJECTNET_BORDER",
    "ObjectNetMapping",
    "check_class_folders",
    "count_class_folders",
    "count_objectnet_overlap",
    "imagenet_classnames",
    "imagenet_templates",
    "imagenet_wnids",
    "openai_imagenet_metadata",
    "read_imagenet_v2",
    "read_objectnet",
    "read_objectnet_mapping",
    "read_wnid_folders",
    "wnid_to_index",
]
