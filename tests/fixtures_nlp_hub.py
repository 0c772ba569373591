"""Fixtures for the NLP tasks: CLINC150 variant files and in-memory hub datasets.

``write_clinc150_variants`` writes ``data_full.json``, ``data_oos_plus.json`` and
``data_small.json`` that relate to each other like the published files: OOS+ is the
full file with more out-of-scope training queries, whose item 6 differs by a typo;
small keeps fewer training queries per intent.

``hub_tables`` builds, from fixture *files*, the ``datasets.DatasetDict`` objects that
the Hugging Face hub serves for the same data, in the hub's schema (ClassLabel columns
with the hub's own name order, CLINC150 splits with the out-of-scope queries appended,
SetFit's ``label_text``, SetFit/subj's inverted labels, TREC's class order, MR split in
three). A fake ``datasets.load_dataset`` then serves them, so tests can compare what
``source: hub`` builds with what ``source: files`` builds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.data import nlp

#: Intents and queries per intent of the CLINC150 variant fixtures.
VARIANT_INTENTS = ("alarm", "balance", "book_flight", "greeting", "weather", "oil_change_how")
VARIANT_PER_INTENT = {"train": 8, "val": 2, "test": 3}
SMALL_TRAIN_PER_INTENT = 4
#: Out-of-scope queries per part; OOS+ has more training ones.
#: 100 out-of-scope training queries as published, since the hub's ``full`` is the first
#: 100 of OOS+'s.
VARIANT_OOS = {"oos_train": 100, "oos_val": 3, "oos_test": 9}
PLUS_OOS_TRAIN = 110


def _clinc_full() -> dict[str, list[list[str]]]:
    data: dict[str, list[list[str]]] = {}
    for part, per_intent in VARIANT_PER_INTENT.items():
        data[part] = [
            [f"{part} query {k} asking for {intent.replace('_', ' ')}", intent]
            for intent in VARIANT_INTENTS
            for k in range(per_intent)
        ]
    for part, count in VARIANT_OOS.items():
        data[part] = [[f"{part} unrelated question {k}", "oos"] for k in range(count)]
    return data


def write_clinc150_variants(root: Path) -> dict[str, Path]:
    """Writes the full, plus and small CLINC150 json files under ``root/nlp/clinc150``."""
    full = _clinc_full()
    full["oos_train"][6] = ["any headlines from my area", "oos"]  # OOS+ misspells this one
    plus = json.loads(json.dumps(full))
    plus["oos_train"] = full["oos_train"] + [
        [f"extra unrelated question {k}", "oos"]
        for k in range(PLUS_OOS_TRAIN - VARIANT_OOS["oos_train"])
    ]
    plus["oos_train"][6] = [full["oos_train"][6][0] + "i", "oos"]  # OOS+'s typo
    small = json.loads(json.dumps(full))
    small["train"] = [
        item for k, item in enumerate(full["train"]) if k % 8 < SMALL_TRAIN_PER_INTENT
    ]
    folder = root / "nlp" / "clinc150"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for variant, data in (("full", full), ("plus", plus), ("small", small)):
        path = folder / nlp.CLINC150_VARIANTS[variant][0]
        path.write_text(json.dumps(data), encoding="utf-8")
        paths[variant] = path
    return paths


# --------------------------------------------------------------------------- hub


def _dataset(columns: dict, features: dict):
    import datasets

    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _class_label(names):
    import datasets

    return datasets.ClassLabel(names=list(names))


def _clinc_hub(data: dict) -> object:
    import datasets

    names = sorted({i for part in data.values() for _, i in part}, reverse=True)  # not sorted
    label = _class_label(names)
    splits = {}
    for split, part in (("train", "train"), ("validation", "val"), ("test", "test")):
        rows = data[part] + data[f"oos_{part}"]
        splits[split] = _dataset(
            {"text": [t for t, _ in rows], "intent": [names.index(i) for _, i in rows]},
            {"text": datasets.Value("string"), "intent": label},
        )
    return datasets.DatasetDict(splits)


def hub_tables(folder: Path) -> dict[tuple[str, str | None], object]:
    """Hub datasets equivalent to the fixture files under ``folder`` (the NLP folder).

    Returns:
        ``(dataset id, config) -> DatasetDict``.

    """
    import datasets

    string = datasets.Value("string")
    tables: dict[tuple[str, str | None], object] = {}
    clinc = folder / nlp.CLINC150_DIR
    for config, variant in (("plus", "plus"), ("small", "small")):
        path = clinc / nlp.CLINC150_VARIANTS[variant][0]
        if path.exists():
            tables[("clinc/clinc_oos", config)] = _clinc_hub(json.loads(path.read_text()))

    banking = {}
    for name in ("train.csv", "test.csv"):
        banking[name] = nlp.read_banking77(folder / nlp.BANKING77_DIR / name)
    names = nlp.banking77_class_order(banking["train.csv"][1])
    label = _class_label(names)
    tables[("PolyAI/banking77", None)] = datasets.DatasetDict(
        {
            name.removesuffix(".csv"): _dataset(
                {"text": texts, "label": [names.index(i) for i in intents]},
                {"text": string, "label": label},
            )
            for name, (texts, intents) in banking.items()
        }
    )

    sentence = folder / nlp.SENTENCE_DIR

    def read(name):
        return nlp.read_labeled_sentences(sentence / name)

    def setfit(texts, labels, label_names):
        return _dataset(
            {
                "text": list(texts),
                "label": [int(v) for v in labels],
                "label_text": [label_names[int(v)] for v in labels],
            },
            {"text": string, "label": datasets.Value("int64"), "label_text": string},
        )

    sentiment = ("negative", "positive")
    tables[("SetFit/sst2", None)] = datasets.DatasetDict(
        {
            split: setfit(*read(name), sentiment)
            for split, name in (
                ("train", "stsa.binary.train"),
                ("validation", "stsa.binary.dev"),
                ("test", "stsa.binary.test"),
            )
        }
    )
    texts, labels = read("custrev.all")
    cut = len(texts) * 4 // 5
    tables[("SetFit/CR", None)] = datasets.DatasetDict(
        {
            "train": setfit(texts[:cut], labels[:cut], sentiment),
            "test": setfit(texts[cut:], labels[cut:], sentiment),
        }
    )
    # SetFit/subj: 0 = objective, the file's 1.
    texts, labels = read("subj.all")
    flipped = 1 - labels
    cut = len(texts) * 4 // 5
    subj_names = ("objective", "subjective")
    tables[("SetFit/subj", None)] = datasets.DatasetDict(
        {
            "train": setfit(texts[:cut], flipped[:cut], subj_names),
            "test": setfit(texts[cut:], flipped[cut:], subj_names),
        }
    )
    texts, labels = read("rt-polarity.all")
    bounds = np.linspace(0, len(texts), 4).astype(int)
    mr_label = _class_label(["neg", "pos"])
    tables[("cornell-movie-review-data/rotten_tomatoes", None)] = datasets.DatasetDict(
        {
            split: _dataset(
                {"text": texts[a:b], "label": [int(v) for v in labels[a:b]]},
                {"text": string, "label": mr_label},
            )
            for split, a, b in zip(
                ("train", "validation", "test"), bounds[:-1], bounds[1:], strict=True
            )
        }
    )
    # trec orders its coarse classes differently from the files.
    hub_order = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
    file_order = ["DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"]
    trec = {}
    for split, name in (("train", "TREC.train.all"), ("test", "TREC.test.all")):
        if (sentence / name).exists():
            texts, labels = read(name)
            trec[split] = _dataset(
                {"text": texts, "coarse_label": [hub_order.index(file_order[v]) for v in labels]},
                {"text": string, "coarse_label": _class_label(hub_order)},
            )
    tables[("CogComp/trec", None)] = datasets.DatasetDict(trec)
    return tables


def fake_load_dataset(tables: dict, calls: list | None = None):
    """A stand-in for ``datasets.load_dataset`` serving ``tables`` (records each call)."""

    def load_dataset(path, name=None, revision=None, **kwargs):
        if calls is not None:
            calls.append((path, name, revision))
        try:
            return tables[(path, name)]
        except KeyError:
            raise FileNotFoundError(f"fake hub has no dataset {path!r} config {name!r}") from None

    return load_dataset
