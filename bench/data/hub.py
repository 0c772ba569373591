"""The NLP datasets from the Hugging Face hub (task option ``source: hub``).

For users with internet and no local copy. Each loader returns exactly what its file
reader in :mod:`bench.data.nlp` returns for the published files, so the tasks share
their code after reading and check the same counts (``verify_counts``).

Hub datasets used (all Parquet or JSON repositories, loadable by ``datasets`` >= 4,
which no longer runs loading scripts; should a repository still be script-only, the
loader retries its ``refs/convert/parquet`` branch, the hub's automatic Parquet copy):

========================  ===========================================  =====================
files                     hub dataset (config / splits)                columns
========================  ===========================================  =====================
CLINC150 ``data_*.json``  ``clinc/clinc_oos`` (``plus`` / ``small`` /  ``text``, ``intent``
                          ``imbalanced``; train / validation / test)   (ClassLabel, 151
                                                                       names incl. ``oos``)
Banking77 ``*.csv``       ``PolyAI/banking77`` (train / test)          ``text``, ``label``
                                                                       (ClassLabel, 77)
``stsa.binary.*``         ``SetFit/sst2`` (train / validation / test)  ``text``, ``label``,
                                                                       ``label_text``
``rt-polarity.all``       ``cornell-movie-review-data/rotten_tomatoes``  ``text``, ``label``
                          (train + validation + test)                  (neg / pos)
``custrev.all``           ``SetFit/CR`` (train + test)                 as SetFit/sst2
``subj.all``              ``SetFit/subj`` (train + test)               ``label_text``
                                                                       objective / subjective
``TREC.{train,test}.all`` ``CogComp/trec`` (train / test)              ``text``,
                                                                       ``coarse_label``
========================  ===========================================  =====================

Facts used by the conversion (checked against the files in ``shared/data`` where a
copy exists):

* ``clinc_oos`` yields each split as the in-scope part followed by the out-of-scope
  part of the json file (``j[split] + j["oos_" + split]`` in the original loading
  script of huggingface/datasets), so splitting on intent ``oos`` restores the parts.
* The hub has no ``data_full.json``. Its in-scope parts and ``oos_val`` / ``oos_test``
  are identical to ``data_oos_plus.json``'s, and its 100 ``oos_train`` queries are the
  first 100 of OOS+'s 250 except item 6, which OOS+ spells ``any headlines from my
  areai`` (counted in the real files); :func:`full_from_plus` applies exactly that.
* Label conventions differ from the sentence files: SetFit/subj has 0 = objective
  (the files: 1), ``trec`` orders its coarse classes DESC, ENTY, ABBR, HUM, NUM, LOC
  (the files: DESC, ENTY, ABBR, HUM, LOC, NUM); labels are mapped by name.
* MR, CR and Subj come in several hub splits that together hold the file's sentences
  but in another order, so capped splits (``max_eval``) draw other examples than with
  ``source: files``; uncapped splits hold the same sentences.
* The CLINC150 Wikipedia sentences are not on the hub; ``context: wiki`` needs
  ``all_wiki_sents.txt`` on disk even with ``source: hub``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.data import check_count
from bench.data.nlp import clinc150_parts

#: Hub dataset of CLINC150 and the config of each variant (``full`` is derived from ``plus``).
CLINC150_HUB = "clinc/clinc_oos"
CLINC150_HUB_CONFIGS = {
    "full": "plus",
    "plus": "plus",
    "small": "small",
    "imbalanced": "imbalanced",
}
#: Hub split -> CLINC150 json part of its in-scope queries.
CLINC150_HUB_SPLITS = {"train": "train", "validation": "val", "test": "test"}
OOS_INTENT = "oos"

#: ``data_full.json``'s out-of-scope training queries: the first 100 of OOS+'s 250, with
#: OOS+'s one differing item (index -> data_full.json's text).
FULL_OOS_TRAIN = 100
FULL_OOS_TRAIN_FIXES = {6: "any headlines from my area"}

BANKING77_HUB = "PolyAI/banking77"

#: Coarse TREC class -> label in ``TREC.*.all`` (read from examples of the files).
TREC_FILE_LABELS = {"DESC": 0, "ENTY": 1, "ABBR": 2, "HUM": 3, "LOC": 4, "NUM": 5}
#: Sentiment class name -> label in the sentence files (0 = negative, 1 = positive).
SENTIMENT_FILE_LABELS = {"negative": 0, "positive": 1, "neg": 0, "pos": 1}
#: Subj class name -> label in ``subj.all`` (1 = objective).
SUBJ_FILE_LABELS = {"objective": 1, "subjective": 0}

_OFFLINE_VALUES = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class SentenceHub:
    """Where the hub keeps one sentence file's examples.

    Attributes:
        dataset: Hub dataset id.
        splits: Hub splits concatenated, in this order, into the file's examples.
        label_column: Column holding the class (names read from ``label_text`` or the
            column's ClassLabel names).
        file_labels: Class name -> label of the sentence file.
    """

    dataset: str
    splits: tuple[str, ...]
    label_column: str
    file_labels: Mapping[str, int]


#: Sentence file -> its hub copy.
SENTENCE_HUB: dict[str, SentenceHub] = {
    "stsa.binary.train": SentenceHub("SetFit/sst2", ("train",), "label", SENTIMENT_FILE_LABELS),
    "stsa.binary.dev": SentenceHub("SetFit/sst2", ("validation",), "label", SENTIMENT_FILE_LABELS),
    "stsa.binary.test": SentenceHub("SetFit/sst2", ("test",), "label", SENTIMENT_FILE_LABELS),
    "rt-polarity.all": SentenceHub(
        "cornell-movie-review-data/rotten_tomatoes",
        ("train", "validation", "test"),
        "label",
        SENTIMENT_FILE_LABELS,
    ),
    "custrev.all": SentenceHub("SetFit/CR", ("train", "test"), "label", SENTIMENT_FILE_LABELS),
    "subj.all": SentenceHub("SetFit/subj", ("train", "test"), "label", SUBJ_FILE_LABELS),
    "TREC.train.all": SentenceHub("CogComp/trec", ("train",), "coarse_label", TREC_FILE_LABELS),
    "TREC.test.all": SentenceHub("CogComp/trec", ("test",), "coarse_label", TREC_FILE_LABELS),
}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` forbids downloads."""
    return any(
        os.environ.get(name, "").strip().lower() in _OFFLINE_VALUES
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def check_online(task: str) -> None:
    """Fails early, naming the fix, when the hub is switched off for this process.

    Raises:
        RuntimeError: If ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set.

    """
    if hub_offline():
        raise RuntimeError(
            f"task {task!r}: option source: hub downloads from the Hugging Face hub, but "
            "HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set; unset it on a machine with "
            "internet, or use source: files with the datasets under the data root "
            "(see docs/tasks_nlp.md)"
        )


def load_hub(dataset: str, config: str | None = None):
    """``datasets.load_dataset(dataset, config)`` with a Parquet fallback.

    Args:
        dataset: Hub dataset id.
        config: Config name, or None for the default.

    Returns:
        The ``DatasetDict`` of all splits.

    Raises:
        RuntimeError: If the dataset cannot be loaded (names the dataset and the fix).

    """
    import datasets  # heavy (pyarrow, pandas): only when the hub is actually used

    try:
        try:
            return datasets.load_dataset(dataset, config)
        except RuntimeError as error:
            # datasets >= 4 refuses loading scripts; the hub keeps an automatic Parquet
            # conversion of script datasets on this branch.
            if "scripts are no longer supported" not in str(error):
                raise
            return datasets.load_dataset(dataset, config, revision="refs/convert/parquet")
    except Exception as error:
        raise RuntimeError(
            f"could not load hub dataset {dataset!r}"
            + (f" (config {config!r})" if config else "")
            + f": {error}; check the internet connection and the dataset id, or use "
            "source: files with a local copy (see docs/tasks_nlp.md)"
        ) from error


def class_names(split, column: str) -> list[str]:
    """The class name of every row: a ClassLabel column's names, else the values as text."""
    feature = split.features[column]
    values = split[column]
    if hasattr(feature, "int2str"):
        return [str(name) for name in feature.int2str(list(values))]
    return [str(value) for value in values]


def clinc150_from_hub(dataset_dict) -> dict[str, list[list[str]]]:
    """Turns ``clinc_oos`` splits back into the json file's six parts.

    Args:
        dataset_dict: Splits ``train``, ``validation``, ``test`` with columns ``text``
            and ``intent``.

    Returns:
        ``{part: [[text, intent], ...]}`` as in the json file.

    """
    data: dict[str, list[list[str]]] = {}
    for split, part in CLINC150_HUB_SPLITS.items():
        data_split = dataset_dict[split]
        rows = list(zip(data_split["text"], class_names(data_split, "intent"), strict=True))
        data[part] = [[text, intent] for text, intent in rows if intent != OOS_INTENT]
        data[f"oos_{part}"] = [[text, intent] for text, intent in rows if intent == OOS_INTENT]
    return data


def full_from_plus(data: Mapping[str, list]) -> dict[str, list]:
    """``data_full.json``'s parts from ``data_oos_plus.json``'s (see module docstring)."""
    full = {part: list(items) for part, items in data.items()}
    oos_train = [list(item) for item in data["oos_train"][:FULL_OOS_TRAIN]]
    for index, text in FULL_OOS_TRAIN_FIXES.items():
        if index < len(oos_train):
            oos_train[index][0] = text
    full["oos_train"] = oos_train
    return full


def load_clinc150(
    variant: str, expected: Mapping[str, int] | None = None
) -> dict[str, tuple[list[str], list[str]]]:
    """A CLINC150 variant from the hub, as :func:`bench.data.nlp.read_clinc150` returns it."""
    config = CLINC150_HUB_CONFIGS[variant]
    data = clinc150_from_hub(load_hub(CLINC150_HUB, config))
    if variant == "full":
        data = full_from_plus(data)
    return clinc150_parts(data, f"hub dataset {CLINC150_HUB} ({config})", expected)


def load_banking77(name: str, expected: int | None = None) -> tuple[list[str], list[str]]:
    """Banking77 ``train.csv`` / ``test.csv`` from the hub, as ``read_banking77`` returns it."""
    split = name.removesuffix(".csv")
    data = load_hub(BANKING77_HUB)[split]
    texts = [str(t).strip() for t in data["text"]]
    intents = [c.strip() for c in class_names(data, "label")]
    check_count(f"hub dataset {BANKING77_HUB} ({split})", len(texts), expected, "queries")
    return texts, intents


def load_sentences(name: str, expected: int | None = None) -> tuple[list[str], np.ndarray]:
    """A sentence file from the hub, as ``read_labeled_sentences`` returns it.

    Raises:
        ValueError: For a file without a hub copy (``mpqa.all``), or a hub class name
            that the file's labels do not know.

    """
    if name not in SENTENCE_HUB:
        raise ValueError(
            f"sentence file {name!r} has no hub copy here (hub copies: "
            f"{', '.join(sorted(SENTENCE_HUB))}); use source: files"
        )
    spec = SENTENCE_HUB[name]
    dataset_dict = load_hub(spec.dataset)
    texts: list[str] = []
    labels: list[int] = []
    for split in spec.splits:
        data = dataset_dict[split]
        column = spec.label_column
        if column not in data.column_names and column == "coarse_label":
            column = "label-coarse"  # the column's name before the Parquet conversion
        if "label_text" in data.column_names:
            names = [str(n) for n in data["label_text"]]
        elif hasattr(data.features[column], "int2str"):
            names = class_names(data, column)
        else:
            raise ValueError(
                f"hub dataset {spec.dataset} ({split}): column {column!r} has no class names, "
                "so its labels cannot be matched to the sentence file's"
            )
        unknown = sorted(set(names) - set(spec.file_labels))
        if unknown:
            raise ValueError(
                f"hub dataset {spec.dataset} ({split}): unknown class name(s) {unknown}; "
                f"expected {sorted(spec.file_labels)}"
            )
        texts += [str(t).strip() for t in data["text"]]
        labels += [spec.file_labels[n] for n in names]
    where = f"hub dataset {spec.dataset} ({' + '.join(spec.splits)})"
    check_count(where, len(texts), expected, "sentences")
    return texts, np.asarray(labels, dtype=np.int64)


__all__ = [
    "BANKING77_HUB",
    "CLINC150_HUB",
    "SENTENCE_HUB",
    "check_online",
    "clinc150_from_hub",
    "full_from_plus",
    "hub_offline",
    "load_banking77",
    "load_clinc150",
    "load_hub",
    "load_sentences",
]
