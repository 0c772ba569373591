"""CLINC150 intent classification with its out-of-scope queries (and Banking77) as OOD.

Splits (caps in brackets, sampling seeded by ``data_seed`` only):

* ``train`` / ``val`` / ``test`` (id): the in-scope parts of ``data_full.json``
  (15,000 / 3,000 / 4,500 queries, 150 intents), capped stratified
  [``max_train``] / [``max_val``] / [``max_eval``];
* ``ood_oos`` (ood, family ``oos``): the 1,000 out-of-scope test queries [``max_eval``];
* ``ood_banking77`` (ood, family ``banking77``; option ``banking77_ood``, default on):
  Banking77 test queries [``max_eval``], minus the intents in ``banking77_exclude`` and
  minus queries identical to a CLINC150 in-scope query (after case and ``?``/``.``
  normalisation).

Banking77 is a *near*-OOD set for CLINC150: CLINC150's banking and credit-card domains
cover some of the same requests. The default ``banking77_exclude`` drops the five
Banking77 intents that are the same request as a CLINC150 intent (listed in
:data:`BANKING77_OVERLAP`); looser relatives (``card_arrival`` vs
``replacement_card_duration``) stay, which is what makes the set near-OOD. With
``banking77_clinc_style`` (default on) Banking77 queries are lowercased and stripped of
``?`` and ``.`` like CLINC150's, so the two sets differ in content, not in typography.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import check_bool, check_nonempty, resolve_options
from bench.data.nlp import BANKING77_COUNTS, CLINC150_COUNTS, read_banking77, read_clinc150
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

DEFAULT_OPTIONS: dict[str, Any] = {
    "banking77_ood": True,
    "banking77_exclude": tuple(BANKING77_OVERLAP),
    # CLINC150's released text is lowercase with every '?' and '.' removed; Banking77's
    # is cased and 62% of its queries end in '?'. Without matching the style, "contains
    # a question mark" alone would flag most Banking77 queries as OOD.
    "banking77_clinc_style": True,
    "verify_counts": True,
}


def clinc_style(text: str) -> str:
    """Lowercases and drops ``?`` and ``.`` (absent from CLINC150), collapsing spaces."""
    return " ".join(re.sub(r"[?.]", " ", text.lower()).split())


def _options(options: dict[str, Any]) -> dict[str, Any]:
    opts = resolve_options(NAME, options, DEFAULT_OPTIONS)
    check_bool(NAME, "verify_counts", opts["verify_counts"])
    check_bool(NAME, "banking77_ood", opts["banking77_ood"])
    check_bool(NAME, "banking77_clinc_style", opts["banking77_clinc_style"])
    exclude = opts["banking77_exclude"]
    if isinstance(exclude, str) or not all(isinstance(c, str) for c in exclude):
        raise TypeError(f"task {NAME!r}: option 'banking77_exclude' must be a list of intents")
    opts["banking77_exclude"] = sorted(set(exclude))
    return opts


def _clinc_path(paths: DataPaths) -> Path:
    return paths.root / "nlp" / "clinc150" / "data_full.json"


def _banking_path(paths: DataPaths) -> Path:
    return paths.root / "nlp" / "banking77" / "test.csv"


def required_files(paths: DataPaths, **options: Any) -> list[Path]:
    """``data_full.json`` and, with ``banking77_ood``, Banking77's ``test.csv``."""
    opts = _options(options)
    return [_clinc_path(paths)] + ([_banking_path(paths)] if opts["banking77_ood"] else [])


@register_task(
    NAME,
    modality="text",
    description=(
        "CLINC150 intent classification (150 intents); OOD: its out-of-scope queries and "
        "Banking77 queries"
    ),
    required_files=required_files,
)
def build_clinc150(paths: DataPaths, limits: SizeLimits, **options: Any) -> TaskData:
    """Builds the task (see module docstring).

    Args:
        paths: Dataset locations (uses ``paths.root / "nlp"``).
        limits: Split size caps and the data seed.
        **options: ``banking77_ood`` (add ``ood_banking77``), ``banking77_exclude``
            (Banking77 intents left out of it), ``banking77_clinc_style`` (lowercase
            Banking77 and drop ``?`` / ``.`` like CLINC150's text), ``verify_counts``.

    Returns:
        The task with text inputs; classnames are the sorted intent names.

    """
    opts = _options(options)
    verify = opts["verify_counts"]
    seed = limits.data_seed
    parts = read_clinc150(_clinc_path(paths), CLINC150_COUNTS if verify else None)
    classnames = sorted(set(parts["train"][1]))
    index = {c: i for i, c in enumerate(classnames)}

    splits: dict[str, Split] = {}

    def add(info: SplitInfo, inputs: list[str], labels: np.ndarray, cause: str) -> None:
        check_nonempty(NAME, info.name, len(labels), cause)
        splits[info.name] = Split(info, inputs, labels.astype(np.int64))

    caps = {"train": limits.max_train, "val": limits.max_val, "test": limits.max_eval}
    kinds = {"train": "train", "val": "val", "test": "id"}
    for name in ("train", "val", "test"):
        texts, intents = parts[name]
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
    add(
        SplitInfo("ood_oos", "ood", "oos"),
        [oos[i] for i in keep],
        np.full(len(keep), OOD_LABEL, dtype=np.int64),
        "no out-of-scope test queries",
    )

    if opts["banking77_ood"]:
        texts, intents = read_banking77(
            _banking_path(paths), BANKING77_COUNTS["test.csv"] if verify else None
        )
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
    return TaskData(NAME, "text", classnames, splits, [])
