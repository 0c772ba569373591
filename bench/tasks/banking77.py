"""Banking77 intent classification; OOD: CLINC150 out-of-scope queries and held-out intents.

Banking77 (Casanueva et al., 2020): 13,083 online-banking queries of 77 fine-grained
intents, ``train.csv`` 10,003 / ``test.csv`` 3,080 (Table 1 of the paper; 35 to 187
training and 40 test queries per intent, counted in the files).

Splits (caps in brackets, sampling seeded by ``data_seed`` only):

* ``train`` (train): ``train.csv`` minus the ``val`` partition [``max_train``];
* ``val`` (val): a stratified 10% of ``train.csv`` per intent (1,000 queries with the
  published file; Banking77 has no validation set, and 10% of train is also what the
  open-intent-classification literature holds out, e.g. Zhang et al., 2021, ADB)
  [``max_val``]. The partition is drawn over all 77 intents before any are held out, so
  it does not depend on ``heldout_intents``;
* ``test`` (id): ``test.csv`` [``max_eval``];
* ``ood_clinc_oos`` (ood, family ``clinc_oos``; option ``clinc_oos_ood``, default on):
  CLINC150's 1,000 out-of-scope test queries (identical in every CLINC150 variant)
  minus the 2 that are verbatim Banking77 queries after :func:`clinc_style`
  (``i need to update my address``, ``can i deposit a check``) [``max_eval``];
* ``ood_heldout`` (ood, family ``heldout``; only with ``heldout_intents`` > 0): the test
  queries of ``heldout_intents`` intents drawn at random (seeded by ``data_seed``),
  which are removed from ``train``, ``val`` and ``test`` [``max_eval``]. This is the
  open intent classification protocol (Shu et al., 2017; Zhang et al., 2021: known
  intent ratios 25 / 50 / 75% are ``heldout_intents`` 58 / 38 / 19).

Classes: the raw intent names (as ``clinc150`` keeps CLINC150's), alphabetical ignoring
case, which is the order of the hub's label ids (``PolyAI/banking77``); the two odd names
``Refund_not_showing_up`` and ``reverted_card_payment?`` stay as published. With held-out
intents the remaining ones keep that order.

Style (option ``clinc_style``, default on): CLINC150's text is lowercase and has no
``?`` or ``.``; Banking77's is cased and 63% of its queries contain ``?``. Left as is,
case and punctuation alone would separate ``ood_clinc_oos`` from the in-distribution
queries. Case and punctuation cannot be put back into CLINC150's text, so every
Banking77 text of the task (train, val, test, ``ood_heldout``) is mapped into CLINC150's
style instead (lowercase, ``?`` / ``.`` replaced by spaces), the same transform the
``clinc150`` task applies to its ``ood_banking77`` split. This changes the in-distribution
text from the published one; ``clinc_style: false`` keeps it (and the shortcut).

Also the options of every text task (:data:`bench.data.nlp.TEXT_OPTIONS`): ``source``,
``data_dir``, ``context`` and ``max_context`` (see ``clinc150``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import ManifestEntry, check_bool, check_nonempty, resolve_options
from bench.data.nlp import (
    BANKING77_COUNTS,
    BANKING77_DIR,
    CLINC150_COUNTS,
    TEXT_OPTIONS,
    TextSource,
    banking77_class_order,
    check_text_options,
    clinc150_file,
    clinc150_part_counter,
    clinc_style,
    context_files,
    context_manifest,
    count_csv_rows,
    has_context,
    text_folder,
)
from bench.data.sampling import capped_indices, derive_seed, stratified_indices, stratified_split
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

NAME = "banking77"

#: Fraction of each intent's training queries held out as ``val``.
VAL_FRACTION = 0.1

#: Intents of Banking77 (Casanueva et al., 2020).
NUM_INTENTS = 77

#: Fewest known intents left by ``heldout_intents`` (a classifier needs two classes).
MIN_KNOWN_INTENTS = 2

DEFAULT_OPTIONS: dict[str, Any] = {
    "clinc_oos_ood": True,
    "heldout_intents": 0,
    "clinc_style": True,
    "verify_counts": True,
    **TEXT_OPTIONS,
}

BANKING77_SOURCE = "Casanueva et al. (2020), Table 1"


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    check_bool(NAME, "clinc_oos_ood", opts["clinc_oos_ood"])
    check_bool(NAME, "clinc_style", opts["clinc_style"])
    check_text_options(NAME, opts)
    held = opts["heldout_intents"]
    if isinstance(held, bool) or not isinstance(held, int):
        raise TypeError(f"task {NAME!r}: option 'heldout_intents' must be an integer, got {held!r}")
    # Checked here too (not only at build), so a bad value stops the DAG.
    if not 0 <= held <= NUM_INTENTS - MIN_KNOWN_INTENTS:
        raise ValueError(
            f"task {NAME!r}: option 'heldout_intents' must be in "
            f"0..{NUM_INTENTS - MIN_KNOWN_INTENTS} (at least {MIN_KNOWN_INTENTS} of the "
            f"{NUM_INTENTS} intents stay known), got {held}"
        )
    if not opts["clinc_oos_ood"] and held == 0:
        raise ValueError(
            f"task {NAME!r} would have no OOD split: set clinc_oos_ood: true or heldout_intents > 0"
        )
    return opts


def _folder(paths: DataPaths, opts: dict[str, Any]) -> Path:
    return text_folder(paths.root, opts["data_dir"])


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """The files the task reads (cheap: no loading).

    Banking77's ``train.csv`` and ``test.csv``, CLINC150's ``data_full.json`` (with
    ``clinc_oos_ood``) and the context file; with ``source: hub`` only the context file.
    """
    opts = _options(options)
    folder = _folder(paths, opts)
    files = []
    if opts["source"] == "files":
        files = [folder / BANKING77_DIR / name for name in BANKING77_COUNTS]
        if opts["clinc_oos_ood"]:
            files.append(clinc150_file(folder, "full"))
    return files + context_files(folder, opts)


def manifest(paths: DataPaths, **options: Any) -> list[ManifestEntry]:
    """Published counts of every file the task reads with these options."""
    opts = _options(options)
    folder = _folder(paths, opts)
    entries = []
    if opts["source"] == "files":
        entries = [
            ManifestEntry(
                folder / BANKING77_DIR / name, "queries", count, count_csv_rows, BANKING77_SOURCE
            )
            for name, count in BANKING77_COUNTS.items()
        ]
        if opts["clinc_oos_ood"]:
            entries.append(
                ManifestEntry(
                    clinc150_file(folder, "full"),
                    "'oos_test' queries",
                    CLINC150_COUNTS["oos_test"],
                    clinc150_part_counter("oos_test"),
                    "oos-eval README",
                )
            )
    return entries + context_manifest(folder, opts)


def heldout_choice(classnames: list[str], count: int, seed: int) -> list[str]:
    """The ``count`` intents held out for ``data_seed`` ``seed``, in class order."""
    if count > len(classnames) - MIN_KNOWN_INTENTS:
        raise ValueError(
            f"task {NAME!r}: option 'heldout_intents' must leave at least "
            f"{MIN_KNOWN_INTENTS} of the {len(classnames)} intents, got {count}"
        )
    rng = np.random.default_rng(derive_seed(seed, NAME, "heldout_intents"))
    chosen = set(rng.choice(len(classnames), size=count, replace=False).tolist())
    return [name for i, name in enumerate(classnames) if i in chosen]


@register_task(
    NAME,
    modality="text",
    description=(
        "Banking77 intent classification (77 intents); OOD: CLINC150 out-of-scope queries "
        "and optionally held-out intents"
    ),
    required_files=required_files,
    manifest=manifest,
    has_context=has_context,
)
def build_banking77(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "nlp"`` unless ``data_dir``).
        limits: Split size caps and the data seed.
        **options: ``clinc_oos_ood`` (add ``ood_clinc_oos``), ``heldout_intents`` (number
            of intents held out as ``ood_heldout``), ``clinc_style`` (lowercase and drop
            ``?`` / ``.`` like CLINC150), ``verify_counts``, ``source``, ``data_dir``,
            ``context``, ``max_context``.

    Returns:
        The task with text inputs; classnames are the known intents in label order;
        ``context`` holds the context sentences or None.

    """
    opts = _options(options)
    seed = limits.data_seed
    source = TextSource(NAME, _folder(paths, opts), opts["source"], opts["verify_counts"])
    train_texts, train_intents = source.banking77("train.csv")
    test_texts, test_intents = source.banking77("test.csv")
    unknown = sorted(set(test_intents) - set(train_intents))
    if unknown:
        raise ValueError(f"task {NAME!r}: test.csv has intents missing from train.csv: {unknown}")
    all_intents = banking77_class_order(train_intents)
    heldout = set(heldout_choice(all_intents, opts["heldout_intents"], seed))
    classnames = [c for c in all_intents if c not in heldout]
    index = {c: i for i, c in enumerate(classnames)}
    style = clinc_style if opts["clinc_style"] else str

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: list[str], labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(labels), cause)
        splits[info.name] = Split(info, inputs, labels.astype(np.int64))

    def add_labelled(
        name: str, kind: str, texts: list[str], intents: list[str], pool: np.ndarray, cap
    ) -> None:
        pool = np.asarray([i for i in pool if intents[i] not in heldout], dtype=np.int64)
        labels = np.asarray([index[intents[i]] for i in pool], dtype=np.int64)
        keep = stratified_indices(labels, cap, derive_seed(seed, NAME, name))
        add(
            SplitInfo(name, kind),
            [style(texts[i]) for i in pool[keep]],
            labels[keep],
            f"no queries of the known intents (or a cap of 0) in {name!r}",
        )

    # Partition over all 77 intents so that val does not depend on heldout_intents.
    all_index = {c: i for i, c in enumerate(all_intents)}
    train_pool, val_pool = stratified_split(
        np.asarray([all_index[c] for c in train_intents]),
        (1 - VAL_FRACTION, VAL_FRACTION),
        derive_seed(seed, NAME, "val_partition"),
    )
    add_labelled("train", "train", train_texts, train_intents, train_pool, limits.max_train)
    add_labelled("val", "val", train_texts, train_intents, val_pool, limits.max_val)
    add_labelled(
        "test", "id", test_texts, test_intents, np.arange(len(test_texts)), limits.max_eval
    )

    if opts["clinc_oos_ood"]:
        oos = source.clinc150("full")["oos_test"][0]
        # A CLINC150 query that is verbatim a Banking77 query is in-distribution here.
        banking = {clinc_style(t) for t in train_texts + test_texts}
        pool = [t for t in oos if clinc_style(t) not in banking]
        keep = capped_indices(len(pool), limits.max_eval, derive_seed(seed, NAME, "clinc_oos"))
        add(
            SplitInfo("ood_clinc_oos", "ood", "clinc_oos"),
            [pool[i] for i in keep],
            np.full(len(keep), OOD_LABEL, dtype=np.int64),
            "no CLINC150 out-of-scope test queries left",
        )

    if heldout:
        pool = [i for i, c in enumerate(test_intents) if c in heldout]
        keep = capped_indices(len(pool), limits.max_eval, derive_seed(seed, NAME, "ood_heldout"))
        add(
            SplitInfo("ood_heldout", "ood", "heldout"),
            [style(test_texts[pool[i]]) for i in keep],
            np.full(len(keep), OOD_LABEL, dtype=np.int64),
            f"no test queries of the held-out intents {sorted(heldout)}",
        )
    context = source.context(opts["context"], opts["max_context"], seed)
    return TaskData(NAME, "text", classnames, splits, [], context=context)
