"""WordNet noun supersense classification: which lexicographer category a definition is from.

Input: the definition part of a noun synset's gloss ("a domesticated carnivorous
mammal ..."); label: the synset's lexicographer category ("animal"). It is a real
text classification problem with 10 well-populated classes that ships with Debian
(``wordnet-base``), so the text pipeline has a non-synthetic task without any download.

Splits (caps in brackets; the 70/10/20 partition and all caps use ``data_seed`` only):

* ``train`` / ``val`` / ``test`` (id): a per-category 70/10/20 partition of the ID
  synsets, capped stratified [``max_train``] / [``max_val``] / [``max_eval``];
* ``shift_examples`` (shift, family ``usage_examples``): the quoted usage-example
  sentences of the *uncapped* test-partition synsets, labelled with their synset's
  category [``max_eval``, stratified] -- same labels, different text genre (a sentence
  using the word instead of a definition of it);
* ``ood_heldout`` (ood): definitions of synsets of ``ood_categories`` [``max_eval``].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import check_bool, check_nonempty, resolve_options
from bench.data.sampling import capped_indices, derive_seed, stratified_indices, stratified_split
from bench.data.wordnet import NOUN_CATEGORIES, NOUN_SYNSET_COUNT, NounSynset, read_noun_synsets
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

NAME = "wordnet_supersense"

#: Share of each ID category's synsets in train, val and test.
FRACTIONS = (0.7, 0.1, 0.2)

DEFAULT_OPTIONS: dict[str, Any] = {
    # Ten of the largest noun categories (2,016 to 11,587 synsets each) that name
    # distinct kinds of thing. Left out: Tops (51 synsets, one per category root) and the
    # broad abstract categories attribute, cognition, state, group, whose definitions
    # blur into each other and into act / communication.
    "categories": (
        "act",
        "animal",
        "artifact",
        "body",
        "communication",
        "food",
        "location",
        "person",
        "plant",
        "substance",
    ),
    # Held out: abstract categories with no near neighbour among the ID ones (a
    # feeling, a time period, a geometric shape), 1,797 synsets in all.
    "ood_categories": ("feeling", "shape", "time"),
    "verify_counts": True,
}


def _category_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
        raise TypeError(f"task {NAME!r}: option {name!r} must be a list of category names")
    out = []
    for c in value:
        c = c.strip().removeprefix("noun.")
        if c not in NOUN_CATEGORIES:
            raise ValueError(
                f"task {NAME!r}: option {name!r} names unknown category {c!r}; "
                f"valid: {', '.join(NOUN_CATEGORIES)}"
            )
        if c not in out:
            out.append(c)
    return out


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    opts["categories"] = _category_list("categories", opts["categories"])
    opts["ood_categories"] = _category_list("ood_categories", opts["ood_categories"])
    if len(opts["categories"]) < 2:
        raise ValueError(f"task {NAME!r}: option 'categories' needs at least 2 categories")
    both = sorted(set(opts["categories"]) & set(opts["ood_categories"]))
    if both:
        raise ValueError(
            f"task {NAME!r}: categories {both} are in both 'categories' and 'ood_categories'"
        )
    return opts


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """WordNet's ``data.noun``."""
    _options(options)
    return [paths.wordnet / "data.noun"]


def manifest(paths: DataPaths, **options: Any) -> list:
    """``data.noun`` with WordNet 3.0's noun synset count (lines that are not license)."""
    from bench.data import ManifestEntry
    from bench.data.wordnet import NOUN_SYNSET_COUNT

    def synsets(path: Path) -> int:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line[:1].isdigit())

    _options(options)
    source = "WordNet 3.0 statistics (wnstats(7WN)): 82,115 noun synsets"
    return [
        ManifestEntry(
            paths.wordnet / "data.noun", "noun synsets", NOUN_SYNSET_COUNT, synsets, source
        )
    ]


def _unique_definitions(synsets: list[NounSynset], wanted: set[str]) -> list[NounSynset]:
    """Synsets of ``wanted`` categories with one synset per definition text.

    About 1% of noun synsets share their definition with another ("a variety of
    aster"). Keeping both would put the same input in train and test; if the twins
    are in different categories the input has no single correct label. So the first
    synset (file order) of each definition is kept when all twins share a category,
    and none is kept when they disagree. Empty definitions are dropped.
    """
    by_text: dict[str, list[NounSynset]] = {}
    for s in synsets:
        if s.category in wanted and s.definition:
            by_text.setdefault(s.definition.lower(), []).append(s)
    return [
        group[0] for group in by_text.values() if len({s.category for s in group}) == 1
    ]  # dicts keep insertion order, so this is file order


@register_task(
    NAME,
    modality="text",
    description=(
        "WordNet 3.0 noun definitions -> lexicographer category (10 classes); shift: usage "
        "examples of test synsets; OOD: definitions of feeling, shape and time synsets"
    ),
    required_files=required_files,
    manifest=manifest,
)
def build_wordnet_supersense(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.wordnet``).
        limits: Split size caps and the data seed.
        **options: ``categories`` (ID categories, class order = this order),
            ``ood_categories`` (held-out categories), ``verify_counts``.

    Returns:
        The task with text inputs and classnames = category names.

    """
    opts = _options(options)
    categories, ood_categories = opts["categories"], opts["ood_categories"]
    seed = limits.data_seed
    synsets = read_noun_synsets(
        paths.wordnet / "data.noun", NOUN_SYNSET_COUNT if opts["verify_counts"] else None
    )
    kept = _unique_definitions(synsets, set(categories) | set(ood_categories))
    id_synsets = [s for s in kept if s.category in categories]
    ood_synsets = [s for s in kept if s.category in ood_categories]
    index = {c: i for i, c in enumerate(categories)}
    texts = [s.definition for s in id_synsets]
    labels = np.asarray([index[s.category] for s in id_synsets], dtype=np.int64)
    missing = sorted(set(categories) - {s.category for s in id_synsets})
    if missing:
        raise ValueError(f"task {NAME!r}: no synsets of categories {missing} in data.noun")

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: list[str], split_labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(split_labels), cause)
        splits[info.name] = Split(info, inputs, split_labels.astype(np.int64))

    parts = stratified_split(labels, FRACTIONS, derive_seed(seed, NAME, "partition"))
    caps = {"train": limits.max_train, "val": limits.max_val, "test": limits.max_eval}
    kinds = {"train": "train", "val": "val", "test": "id"}
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        keep = part[stratified_indices(labels[part], caps[name], derive_seed(seed, NAME, name))]
        add(
            SplitInfo(name, kinds[name]),
            [texts[i] for i in keep],
            labels[keep],
            "too few synsets in the ID categories (or a cap of 0)",
        )

    # Usage examples of all test-partition synsets (not only the capped ones): the
    # examples are scarce (~1 in 7 synsets has one) and test synsets are never trained on.
    ex_texts: list[str] = []
    ex_labels: list[int] = []
    seen: set[str] = set()
    for i in parts[2]:
        for example in id_synsets[i].examples:
            if example.lower() not in seen:
                seen.add(example.lower())
                ex_texts.append(example)
                ex_labels.append(int(labels[i]))
    ex_y = np.asarray(ex_labels, dtype=np.int64)
    keep = stratified_indices(ex_y, limits.max_eval, derive_seed(seed, NAME, "shift_examples"))
    add(
        SplitInfo("shift_examples", "shift", "usage_examples"),
        [ex_texts[i] for i in keep],
        ex_y[keep],
        f"no test synset of categories {categories} has a usage example",
    )

    keep = capped_indices(len(ood_synsets), limits.max_eval, derive_seed(seed, NAME, "ood"))
    add(
        SplitInfo("ood_heldout", "ood", "heldout"),
        [ood_synsets[i].definition for i in keep],
        np.full(len(keep), OOD_LABEL, dtype=np.int64),
        f"no synsets of ood_categories {ood_categories} (is it empty?)",
    )
    return TaskData(NAME, "text", list(categories), splits, [])
