"""CLINC150 intent classification with its out-of-scope queries (and Banking77) as OOD.

Splits (caps in brackets, sampling seeded by ``data_seed`` only):

* ``train`` / ``val`` / ``test`` (id): the in-scope parts of the chosen variant's json
  file (``variant``: ``full`` 15,000 / 3,000 / 4,500 queries of 150 intents, ``small``
  7,500 / 3,000 / 4,500, ``plus`` as ``full``), capped stratified [``max_train``] /
  [``max_val``] / [``max_eval``];
* ``ood_oos`` (ood, family ``oos``): the 1,000 out-of-scope test queries [``max_eval``];
* ``ood_banking77`` (ood, family ``banking77``; option ``banking77_ood``, default on):
  Banking77 test queries [``max_eval``], minus the intents in ``banking77_exclude`` and
  minus queries identical to a CLINC150 in-scope query (after :func:`clinc_style`).

Variants (Larson et al., 2019, Sec. 3; counts in :data:`CLINC150_VARIANTS`): ``small``
has 50 instead of 100 training queries per intent; ``plus`` ("OOS+") has 250 instead of
100 out-of-scope *training* queries and is otherwise identical to ``full`` (checked on
the files), so it only changes the task together with ``oos_train``; ``imbalanced``
(25, 50, 75 or 100 training queries per intent) is supported but not in ``shared/data``.

``oos_train`` (default off) is the paper's "oos-train" setting: the out-of-scope
training and validation queries become a 151st class ``oos`` (last class name), added
to ``train`` and ``val``. Out-of-scope test queries are then a classification target,
not OOD, so ``ood_oos`` is replaced by ``shift_oos`` (kind shift, family ``oos``, every
label ``oos``): its accuracy is the paper's out-of-scope recall, and ``test`` accuracy
(in-scope queries, 151-way prediction) its in-scope accuracy. ``ood_banking77`` stays an
OOD split scored by uncertainty; a model that answers ``oos`` confidently for it scores
badly there, so compare its OOD metrics only between runs with the same setting.

Banking77 is a *near*-OOD set for CLINC150: CLINC150's banking and credit-card domains
cover some of the same requests. The default ``banking77_exclude`` drops the five
Banking77 intents that are the same request as a CLINC150 intent (listed in
:data:`BANKING77_OVERLAP`); looser relatives (``card_arrival`` vs
``replacement_card_duration``) stay, which is what makes the set near-OOD. With
``banking77_clinc_style`` (default on) Banking77 queries are lowercased and stripped of
``?`` and ``.`` like CLINC150's, so the two sets differ in content, not in typography.

Every text task also has the options of :data:`bench.data.nlp.TEXT_OPTIONS`: ``source``
(``files`` or ``hub``, see :mod:`bench.data.hub`), ``data_dir`` (the NLP data folder,
default ``<data root>/nlp``), ``context`` (``wiki``: the 14,750 CLINC150 Wikipedia
sentences as :attr:`TaskData.context`, or null) and ``max_context`` (a seeded cap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.data import ManifestEntry, check_bool, check_nonempty, resolve_options
from bench.data.nlp import (
    BANKING77_COUNTS,
    BANKING77_DIR,
    CLINC150_PARTS,
    CLINC150_VARIANTS,
    TEXT_OPTIONS,
    TextSource,
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
from bench.data.sampling import capped_indices, derive_seed, stratified_indices
from bench.tasks import DataPaths, SizeLimits, register_task
from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData

NAME = "clinc150"

#: Banking77 intent -> the CLINC150 intent that asks for the same thing.
BANKING77_OVERLAP: dict[str, str] = {
    "exchange_rate": "exchange_rate",
    "lost_or_stolen_card": "report_lost_card",
    "declined_card_payment": "card_declined",
    "change_pin": "pin_change",
    "card_about_to_expire": "expiration_date",
}

#: Name of the out-of-scope class with ``oos_train``.
OOS_CLASS = "oos"

DEFAULT_OPTIONS: dict[str, Any] = {
    "variant": "full",
    "oos_train": False,
    "banking77_ood": True,
    "banking77_exclude": tuple(BANKING77_OVERLAP),
    # CLINC150's released text is lowercase with every '?' and '.' removed; Banking77's
    # is cased and 62% of its test queries end in '?' (63% of all its queries contain
    # one). Without matching the style, "contains a question mark" alone would flag most
    # Banking77 queries as OOD.
    "banking77_clinc_style": True,
    "verify_counts": True,
    **TEXT_OPTIONS,
}

SOURCE_NOTE = "oos-eval README; Larson et al. (2019), Sec. 3"

__all__ = ["BANKING77_OVERLAP", "DEFAULT_OPTIONS", "NAME", "OOS_CLASS", "clinc_style"]


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    check_bool(NAME, "oos_train", opts["oos_train"])
    check_bool(NAME, "banking77_ood", opts["banking77_ood"])
    check_bool(NAME, "banking77_clinc_style", opts["banking77_clinc_style"])
    check_text_options(NAME, opts)
    if opts["variant"] not in CLINC150_VARIANTS:
        raise ValueError(
            f"task {NAME!r}: unknown variant {opts['variant']!r}; valid: "
            f"{', '.join(CLINC150_VARIANTS)}"
        )
    exclude = opts["banking77_exclude"]
    if not isinstance(exclude, list | tuple) or not all(isinstance(c, str) for c in exclude):
        raise TypeError(
            f"task {NAME!r}: option 'banking77_exclude' must be a list of intents ([] for "
            f"none), got {exclude!r}"
        )
    opts["banking77_exclude"] = sorted(set(exclude))
    return opts


def _folder(paths: DataPaths, opts: dict[str, Any]) -> Path:
    return text_folder(paths.root, opts["data_dir"])


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """The files the task reads (cheap: no loading).

    The variant's json file, Banking77's ``test.csv`` (with ``banking77_ood``) and the
    context file; with ``source: hub`` only the context file (the hub has no copy).
    """
    opts = _options(options)
    folder = _folder(paths, opts)
    files = []
    if opts["source"] == "files":
        files.append(clinc150_file(folder, opts["variant"]))
        if opts["banking77_ood"]:
            files.append(folder / BANKING77_DIR / "test.csv")
    return files + context_files(folder, opts)


def manifest(paths: DataPaths, **options: Any) -> list[ManifestEntry]:
    """Published counts of every file the task reads with these options."""
    opts = _options(options)
    folder = _folder(paths, opts)
    entries = []
    if opts["source"] == "files":
        path = clinc150_file(folder, opts["variant"])
        counts = CLINC150_VARIANTS[opts["variant"]][1]
        entries += [
            ManifestEntry(path, f"{part!r} queries", counts[part], clinc150_part_counter(part),
                          SOURCE_NOTE)
            for part in CLINC150_PARTS
        ]  # fmt: skip
        if opts["banking77_ood"]:
            entries.append(
                ManifestEntry(
                    folder / BANKING77_DIR / "test.csv",
                    "queries",
                    BANKING77_COUNTS["test.csv"],
                    count_csv_rows,
                    "Casanueva et al. (2020), Table 1",
                )
            )
    return entries + context_manifest(folder, opts)


@register_task(
    NAME,
    modality="text",
    description=(
        "CLINC150 intent classification (150 intents); OOD: its out-of-scope queries and "
        "Banking77 queries"
    ),
    required_files=required_files,
    manifest=manifest,
    has_context=has_context,
)
def build_clinc150(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "nlp"`` unless ``data_dir``).
        limits: Split size caps and the data seed.
        **options: ``variant`` (``full``, ``plus``, ``small``, ``imbalanced``),
            ``oos_train`` (train on the out-of-scope queries as class ``oos``),
            ``banking77_ood`` (add ``ood_banking77``), ``banking77_exclude`` (Banking77
            intents left out of it), ``banking77_clinc_style`` (lowercase Banking77 and
            drop ``?`` / ``.`` like CLINC150's text), ``verify_counts``, ``source``,
            ``data_dir``, ``context``, ``max_context``.

    Returns:
        The task with text inputs; classnames are the sorted intent names (then ``oos``
        with ``oos_train``); ``context`` holds the context sentences or None.

    """
    opts = _options(options)
    seed = limits.data_seed
    source = TextSource(NAME, _folder(paths, opts), opts["source"], opts["verify_counts"])
    parts = source.clinc150(opts["variant"])
    classnames = sorted(set(parts["train"][1]))
    if opts["oos_train"]:
        classnames.append(OOS_CLASS)
    index = {c: i for i, c in enumerate(classnames)}

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: list[str], labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(labels), cause)
        splits[info.name] = Split(info, inputs, labels.astype(np.int64))

    caps = {"train": limits.max_train, "val": limits.max_val, "test": limits.max_eval}
    kinds = {"train": "train", "val": "val", "test": "id"}
    for name in ("train", "val", "test"):
        texts, intents = parts[name]
        if opts["oos_train"] and name != "test":
            # The paper's oos-train setting: out-of-scope queries are one more class.
            texts = texts + parts[f"oos_{name}"][0]
            intents = intents + [OOS_CLASS] * len(parts[f"oos_{name}"][0])
        unknown = sorted(set(intents) - set(index))
        if unknown:
            raise ValueError(
                f"task {NAME!r}: split {name!r} has intents missing from train: {unknown[:5]}"
            )
        labels = np.asarray([index[i] for i in intents], dtype=np.int64)
        keep = stratified_indices(labels, caps[name], derive_seed(seed, NAME, name))
        add(
            SplitInfo(name, kinds[name]),
            [texts[i] for i in keep],
            labels[keep],
            f"no in-scope queries in part {name!r} (or a cap of 0)",
        )

    oos = parts["oos_test"][0]
    keep = capped_indices(len(oos), limits.max_eval, derive_seed(seed, NAME, "ood_oos"))
    if opts["oos_train"]:
        add(
            SplitInfo("shift_oos", "shift", "oos"),
            [oos[i] for i in keep],
            np.full(len(keep), index[OOS_CLASS], dtype=np.int64),
            "no out-of-scope test queries",
        )
    else:
        add(
            SplitInfo("ood_oos", "ood", "oos"),
            [oos[i] for i in keep],
            np.full(len(keep), OOD_LABEL, dtype=np.int64),
            "no out-of-scope test queries",
        )

    if opts["banking77_ood"]:
        texts, intents = source.banking77("test.csv")
        excluded = set(opts["banking77_exclude"])
        if excluded - set(intents):
            raise ValueError(
                f"task {NAME!r}: option 'banking77_exclude' names unknown Banking77 intent(s) "
                f"{sorted(excluded - set(intents))}; valid: {', '.join(sorted(set(intents)))}"
            )
        # A query that is verbatim a CLINC150 in-scope query ("i broke my card") is not
        # OOD whatever dataset it came from; 4 of Banking77's test queries are.
        in_scope = {clinc_style(t) for part in ("train", "val", "test") for t in parts[part][0]}
        pool = [
            t
            for t, i in zip(texts, intents, strict=True)
            if i not in excluded and clinc_style(t) not in in_scope
        ]
        if opts["banking77_clinc_style"]:
            pool = [clinc_style(t) for t in pool]
        keep = capped_indices(len(pool), limits.max_eval, derive_seed(seed, NAME, "banking77"))
        add(
            SplitInfo("ood_banking77", "ood", "banking77"),
            [pool[i] for i in keep],
            np.full(len(keep), OOD_LABEL, dtype=np.int64),
            f"no Banking77 test queries left after excluding {sorted(excluded)}",
        )
    context = source.context(opts["context"], opts["max_context"], seed)
    return TaskData(NAME, "text", classnames, splits, [], context=context)
