"""Parser of WordNet 3.0's ``data.noun`` (one noun synset per line).

Line format (``wndb(5WN)``)::

    offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt [ptr...] | gloss

``w_cnt`` is two hexadecimal digits, ``p_cnt`` three decimal digits and each pointer
has four fields. Lines that start with two spaces are the license header. The gloss is
one or more definitions followed by quoted usage examples, e.g.
``close interaction; "they kept in daily contact"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.data import DataCountError, check_count

#: Lexicographer file names by number (``lexnames(5WN)``); nouns use 03..28.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip

#: Noun categories without the ``noun.`` prefix, in lexicographer-file order.
NOUN_CATEGORIES: tuple[str, ...] = tuple(
    n.removeprefix("noun.") for n in LEXNAMES if n.startswith("noun.")
)

# Two-digit lexicographer file number -> noun category (a dict lookup per line).
_NOUN_FILES = {
    f"{i:02d}": n.removeprefix("noun.") for i, n in enumerate(LEXNAMES) if n.startswith("noun.")
}

#: Noun synsets in WordNet 3.0's ``data.noun``.
NOUN_SYNSET_COUNT = 82115

# Usage examples start at the first double quote that follows a ';' or ':' (or opens the
# gloss). Quotes elsewhere belong to the definition, e.g. 'especially in the phrase
# "make strides"'. 20 of the 82,115 glosses deviate from this layout (an example after a
# comma or with no separator); their examples stay in the definition.
_EXAMPLES_START = re.compile(r'(?:^|[;:])\s*"')
_QUOTED = re.compile(r'"([^"]*)"')


@dataclass(frozen=True)
class NounSynset:
    """One noun synset.

    Attributes:
        offset: Byte offset in ``data.noun`` (WordNet's synset id).
        category: Lexicographer category without the ``noun.`` prefix (``animal``).
        words: Lemmas with ``_`` for spaces, in file order.
        definition: Gloss text before the usage examples, without trailing ``;``.
        examples: Quoted usage-example sentences, without the quotes.

    """

    offset: int
    category: str
    words: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Splits a gloss into its definition and its quoted usage examples.

    Args:
        gloss: Text after ``| `` on a ``data.*`` line.

    Returns:
        ``(definition, examples)``; examples are stripped and empty ones dropped.

    """
    gloss = gloss.strip()
    match = _EXAMPLES_START.search(gloss)
    if match is None:
        return gloss.rstrip("; ").strip(), ()
    definition = gloss[: match.start()].rstrip("; ").strip()
    examples = tuple(e.strip() for e in _QUOTED.findall(gloss[match.start() :]) if e.strip())
    return definition, examples


def parse_noun_line(line: str) -> NounSynset:
    """Parses one synset line of ``data.noun``.

    Raises:
        ValueError: If the line is not a noun synset line.

    """
    head, sep, gloss = line.partition(" | ")
    if not sep:
        # A synset without a gloss has no " | " (none in WordNet 3.0, but keep it legal).
        head, gloss = line.rstrip("\n"), ""
    # Split only the fixed fields and the words: the pointer list is long and unused.
    fields = head.split(" ", 4)
    if len(fields) < 5 or fields[2] != "n":
        raise ValueError(f"not a noun synset line: {line[:80]!r}")
    category = _NOUN_FILES.get(fields[1])
    if category is None:
        raise ValueError(f"bad lexicographer file number {fields[1]} in line {line[:80]!r}")
    w_cnt = int(fields[3], 16)
    words = tuple(fields[4].split(" ", 2 * w_cnt)[: 2 * w_cnt : 2])
    if len(words) != w_cnt or w_cnt == 0:
        raise ValueError(f"expected {w_cnt} words in line {line[:80]!r}")
    definition, examples = split_gloss(gloss)
    return NounSynset(
        offset=int(fields[0]),
        category=category,
        words=words,
        definition=definition,
        examples=examples,
    )


def read_noun_synsets(path: str | Path, expected: int | None = None) -> list[NounSynset]:
    """Reads every synset of a ``data.noun`` file.

    Args:
        path: The ``data.noun`` file.
        expected: Number of synsets of the complete file (:data:`NOUN_SYNSET_COUNT`);
            None skips the check.

    Returns:
        Synsets in file order.

    Raises:
        DataCountError: If a line is malformed or the count differs from ``expected``.

    """
    path = Path(path)
    synsets = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.startswith("  ") or not line.strip():
                continue  # license header
            try:
                synsets.append(parse_noun_line(line))
            except ValueError as err:
                raise DataCountError(f"{path}:{number}: {err}") from None
    check_count(path, len(synsets), expected, "noun synsets")
    return synsets


def _lemma_text(word: str) -> str:
    """A ``data.noun`` word as text: underscores to spaces, lower case, markers dropped."""
    return re.sub(r"\(.*\)$", "", word).replace("_", " ").strip().lower()


def _class_terms(classnames) -> set[str]:
    """Each class name and its parts (``t-shirt/top`` -> ``t-shirt/top``, ``t-shirt``, ``top``)."""
    terms = set()
    for name in classnames:
        text = " ".join(str(name).replace("_", " ").lower().split())
        terms.add(text)
        terms.update(p.strip() for p in re.split(r"[/,]", text) if p.strip())
    return terms


#: Outlier words are spelled with letters (WordNet also lists "0", ".22", "'hood").
_WORD = re.compile(r"[a-z][a-z' \-]*")


def outlier_nouns(synsets: list[NounSynset], classnames) -> list[str]:
    """WordNet noun lemmas unlike the task's classes: DOR's outlier vocabulary.

    Every lemma of ``synsets`` except (a) a class name or a part of one (``top`` of
    ``t-shirt/top``), (b) every synonym of those (the lemmas of any synset holding
    one), (c) lemmas that contain a class name as whole words (``hot dog`` for
    ``dog``), and (d) lemmas that are not spelled with letters (``0``, ``.22``).

    Args:
        synsets: From :func:`read_noun_synsets`.
        classnames: All class names of the task (base and new).

    Returns:
        Sorted unique lemmas as text (spaces, lower case).
    """
    terms = _class_terms(classnames)
    lemmas = {_lemma_text(w) for synset in synsets for w in synset.words}
    excluded = set(terms)
    for synset in synsets:
        words = {_lemma_text(w) for w in synset.words}
        if words & terms:
            excluded |= words
    patterns = [re.compile(rf"(?:^|\s){re.escape(t)}(?:$|\s)") for t in terms]
    return sorted(
        w
        for w in lemmas
        if _WORD.fullmatch(w) and w not in excluded and not any(p.search(w) for p in patterns)
    )
