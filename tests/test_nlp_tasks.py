"""Tests of the NLP tasks' variants, context text, Banking77 task and hub fallback.

Fixture trees are written in the datasets' real layouts (``fixtures_data`` and
``fixtures_nlp_hub``); the real-data tests read ``../shared/data/nlp`` and are skipped,
with the reason, where it is absent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_data import (  # noqa: E402
    BANKING_INTENTS,
    WIKI_SENTENCES,
    make_data_tree,
    write_banking77,
)
from fixtures_nlp_hub import (  # noqa: E402
    PLUS_OOS_TRAIN,
    SMALL_TRAIN_PER_INTENT,
    VARIANT_INTENTS,
    VARIANT_OOS,
    VARIANT_PER_INTENT,
    fake_load_dataset,
    hub_tables,
    write_clinc150_variants,
)
from test_tasks import assert_same_task, build  # noqa: E402

from bench.data import DataCountError, check_manifest, nlp  # noqa: E402
from bench.data import hub as hub_module  # noqa: E402
from bench.data.sampling import capped_indices, derive_seed  # noqa: E402
from bench.tasks import (  # noqa: E402
    OOD_LABEL,
    DataPaths,
    SizeLimits,
    create_task,
    missing_task_files,
    task_manifest,
    task_metadata,
)

NLP_TASKS = ("clinc150", "banking77", "sst2")
BANKING_PER_INTENT = 10

REPO = Path(__file__).resolve().parents[1]
REAL_ROOT = Path(os.environ.get("BENCH_DATA_ROOT", REPO.parent / "shared" / "data"))
REAL_NLP = REAL_ROOT / "nlp"


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> DataPaths:
    """The shared fixture tree, CLINC150 variants and a Banking77 with 10 queries per intent."""
    paths = make_data_tree(tmp_path_factory.mktemp("nlp"))
    write_clinc150_variants(paths.root)
    write_banking77(paths.root, per_intent=BANKING_PER_INTENT)
    return paths


def require_real(*files: Path) -> None:
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        pytest.skip(f"real NLP data not found (set BENCH_DATA_ROOT): missing {missing}")


# --------------------------------------------------------------------------- clinc150


def test_clinc150_variants_on_fixtures(paths):
    full = build("clinc150", paths)
    n_intents = len(VARIANT_INTENTS)
    assert len(full.splits["train"]) == n_intents * VARIANT_PER_INTENT["train"]
    small = build("clinc150", paths, variant="small")
    assert len(small.splits["train"]) == n_intents * SMALL_TRAIN_PER_INTENT
    assert small.splits["test"].inputs == full.splits["test"].inputs
    # Without oos_train, OOS+ builds the same task as full: only oos_train differs.
    plus = build("clinc150", paths, variant="plus")
    assert {n: s.inputs for n, s in plus.splits.items()} == {
        n: s.inputs for n, s in full.splits.items()
    }


def test_clinc150_oos_train_makes_oos_a_class(paths):
    task = build("clinc150", paths, variant="plus", oos_train=True)
    assert task.classnames[-1] == "oos" and task.num_classes == len(VARIANT_INTENTS) + 1
    oos = task.num_classes - 1
    assert (task.splits["train"].labels == oos).sum() == PLUS_OOS_TRAIN
    assert (task.splits["val"].labels == oos).sum() == VARIANT_OOS["oos_val"]
    assert not (task.splits["test"].labels == oos).any()  # in-scope accuracy, as in the paper
    assert "ood_oos" not in task.splits
    shift = task.splits["shift_oos"]
    assert shift.info.kind == "shift" and shift.info.family == "oos"
    assert len(shift) == VARIANT_OOS["oos_test"] and (shift.labels == oos).all()
    assert task.splits["ood_banking77"].info.kind == "ood"


def test_clinc150_variant_errors(paths):
    with pytest.raises(ValueError, match=r"unknown variant 'medium'; valid: full, plus, small"):
        build("clinc150", paths, variant="medium")
    with pytest.raises(FileNotFoundError, match=r"data_imbalanced\.json"):
        build("clinc150", paths, variant="imbalanced")
    with pytest.raises(TypeError, match="'oos_train' must be true or false"):
        build("clinc150", paths, oos_train="yes")
    # verify_counts checks the chosen variant's published counts.
    with pytest.raises(DataCountError, match=r"data_small\.json: expected 7500 'train' queries"):
        create_task("clinc150", paths, variant="small")
    with pytest.raises(DataCountError, match=r"expected 250 'oos_train' queries but found 110"):
        nlp.read_clinc150(nlp.clinc150_file(paths.root / "nlp", "plus"), {"oos_train": 250})
    files = task_metadata("clinc150")["required_files"]
    assert files(paths, variant="small", banking77_ood=False, context=None) == [
        paths.root / "nlp" / "clinc150" / "data_small.json"
    ]


def test_full_from_plus_restores_full_on_fixtures(paths):
    folder = paths.root / "nlp" / "clinc150"
    full = json.loads((folder / "data_full.json").read_text())
    plus = json.loads((folder / "data_oos_plus.json").read_text())
    assert hub_module.full_from_plus(plus) == full


# --------------------------------------------------------------------------- context


def test_context_option(paths, tmp_path):
    task = build("clinc150", paths)
    assert task.context == WIKI_SENTENCES  # every line, repeats kept, file order
    capped = build("clinc150", paths, SizeLimits(data_seed=3), max_context=5)
    keep = capped_indices(len(WIKI_SENTENCES), 5, derive_seed(3, "clinc150", "context"))
    assert capped.context == [WIKI_SENTENCES[i] for i in keep] and len(keep) == 5
    again = build("clinc150", paths, SizeLimits(data_seed=3), max_context=5)
    assert again.context == capped.context
    for name in NLP_TASKS:
        assert build(name, paths, context=None).context is None
        assert build(name, paths, max_context=3).context is not None
        files = task_metadata(name)["required_files"]
        wiki = paths.root / "nlp" / "clinc150" / "all_wiki_sents.txt"
        assert wiki in files(paths) and wiki not in files(paths, context=None)
        with pytest.raises(ValueError, match=r"'context' must be one of wiki or null"):
            build(name, paths, context="books")
        with pytest.raises(TypeError, match="'max_context' must be a positive integer"):
            build(name, paths, max_context=0)
        with pytest.raises(ValueError, match=r"'source' must be one of files, hub"):
            build(name, paths, source="web")
    with pytest.raises(DataCountError, match=r"expected 14750 sentences but found 12"):
        nlp.read_wiki_sentences(paths.root / "nlp" / "clinc150" / "all_wiki_sents.txt", 14750)


def test_data_dir_overrides_nlp_folder(paths, tmp_path):
    empty = DataPaths(root=tmp_path / "nowhere")
    task = build("sst2", empty, data_dir=str(paths.root / "nlp"), context=None)
    assert len(task.splits["test"]) == 10
    missing = missing_task_files("banking77", empty, data_dir=str(tmp_path / "elsewhere"))
    assert missing[0] == tmp_path / "elsewhere" / "banking77" / "train.csv"
    with pytest.raises(FileNotFoundError, match="banking77"):
        create_task("banking77", empty)
    with pytest.raises(ValueError, match="'data_dir' must be an absolute path"):
        missing_task_files("clinc150", empty, data_dir="data/nlp")


# --------------------------------------------------------------------------- banking77


def test_banking77_on_fixtures(paths):
    task = build("banking77", paths)
    assert task.classnames == sorted(BANKING_INTENTS) and task.id_split() == "test"
    sizes = {n: len(s) for n, s in task.splits.items()}
    rows = len(BANKING_INTENTS) * BANKING_PER_INTENT + 2  # + the two special rows
    assert sizes["train"] + sizes["val"] == rows and sizes["test"] == rows
    assert sizes["val"] == len(BANKING_INTENTS)  # 10% of 10 (or 11) per intent
    train, val, test = (set(task.splits[n].inputs) for n in ("train", "val", "test"))
    assert not train & val
    # CLINC150 style everywhere: no case, no '?' or '.'.
    texts = [t for s in task.splits.values() for t in s.inputs]
    assert all(t == t.lower() and "?" not in t and "." not in t for t in texts)
    assert "where is my card it has not arrived, sadly" in train | val | test
    raw = build("banking77", paths, clinc_style=False)
    assert any("?" in t for t in raw.splits["test"].inputs)
    ood = task.splits["ood_clinc_oos"]
    assert ood.info.family == "clinc_oos" and (ood.labels == OOD_LABEL).all()
    assert len(ood) == VARIANT_OOS["oos_test"]


def test_banking77_drops_clinc_queries_that_are_banking_queries(paths, tmp_path):
    root = tmp_path / "data"
    write_banking77(root, per_intent=BANKING_PER_INTENT)
    nlp_dir = root / "nlp" / "clinc150"
    data = {part: [] for part in nlp.CLINC150_PARTS}
    data["oos_test"] = [
        ["what time is it in tokyo", "oos"],
        ["Test query 0 asking for balance", "oos"],
    ]
    nlp_dir.mkdir(parents=True, exist_ok=True)
    (nlp_dir / "data_full.json").write_text(json.dumps(data))
    task = build("banking77", DataPaths(root=root), context=None)
    assert task.splits["ood_clinc_oos"].inputs == ["what time is it in tokyo"]


def banking_intent_of(paths: DataPaths) -> dict[str, str]:
    """Fixture Banking77 text (in CLINC150 style) -> its intent."""
    out = {}
    for name in ("train.csv", "test.csv"):
        texts, intents = nlp.read_banking77(paths.root / "nlp" / "banking77" / name)
        out.update({nlp.clinc_style(t): i for t, i in zip(texts, intents, strict=True)})
    return out


def test_banking77_heldout_intents(paths):
    task = build("banking77", paths, heldout_intents=3)
    assert len(task.classnames) == len(BANKING_INTENTS) - 3
    heldout = set(BANKING_INTENTS) - set(task.classnames)
    intent_of = banking_intent_of(paths)
    # Held-out intents' queries are in no id split; their test queries are the OOD split.
    for name in ("train", "val", "test"):
        assert not {intent_of[t] for t in task.splits[name].inputs} & heldout
    ood = task.splits["ood_heldout"]
    assert ood.info.kind == "ood" and ood.info.family == "heldout"
    assert {intent_of[t] for t in ood.inputs} == heldout
    test_intents = nlp.read_banking77(paths.root / "nlp" / "banking77" / "test.csv")[1]
    assert len(ood) == sum(i in heldout for i in test_intents)
    full = build("banking77", paths)
    assert set(task.splits["val"].inputs) <= set(full.splits["val"].inputs)  # same partition
    # The held-out intents are a seeded draw: some data seed picks another set.
    draws = {
        tuple(build("banking77", paths, SizeLimits(data_seed=s), heldout_intents=3).classnames)
        for s in range(4)
    }
    assert len(draws) > 1
    with pytest.raises(ValueError, match="must leave at least 2 of the 7 intents"):
        build("banking77", paths, heldout_intents=6)
    with pytest.raises((TypeError, ValueError), match="'heldout_intents' must be"):
        build("banking77", paths, heldout_intents=-1)
    with pytest.raises(ValueError, match="no OOD split"):
        build("banking77", paths, clinc_oos_ood=False)
    assert (
        "ood_clinc_oos"
        not in build("banking77", paths, clinc_oos_ood=False, heldout_intents=1).splits
    )


def test_banking77_counts_and_options(paths):
    with pytest.raises(DataCountError, match=r"train\.csv: expected 10003 queries but found 72"):
        create_task("banking77", paths)
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'colour'.*heldout_intents"):
        build("banking77", paths, colour="red")


# --------------------------------------------------------------------------- hub


@pytest.fixture
def hub(monkeypatch, paths):
    """Serves the fixture files as hub datasets; returns the list of load calls."""
    import datasets

    calls: list = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    tables = hub_tables(paths.root / "nlp")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(tables, calls))
    return calls


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("clinc150", {}),
        ("clinc150", {"variant": "small"}),
        ("clinc150", {"variant": "plus", "oos_train": True}),
        ("clinc150", {"oos_train": True}),  # full derived from OOS+ (typo undone)
        ("banking77", {"heldout_intents": 2}),
        ("sst2", {}),
    ],
)
def test_hub_source_builds_the_same_task(hub, paths, name, options):
    limits = SizeLimits(max_train=30, max_eval=8, data_seed=2)
    files = build(name, paths, limits, **options)
    from_hub = build(name, paths, limits, source="hub", **options)
    assert_same_task(files, from_hub)
    assert hub and all(revision is None for _, _, revision in hub)


def test_hub_readers_match_file_readers(hub, paths):
    folder = paths.root / "nlp"
    for variant in ("full", "plus", "small"):
        expected = nlp.read_clinc150(nlp.clinc150_file(folder, variant))
        assert hub_module.load_clinc150(variant) == expected
    for name in ("train.csv", "test.csv"):
        assert hub_module.load_banking77(name) == nlp.read_banking77(folder / "banking77" / name)
    for name in ("stsa.binary.dev", "custrev.all", "subj.all", "TREC.test.all", "rt-polarity.all"):
        texts, labels = hub_module.load_sentences(name)
        file_texts, file_labels = nlp.read_labeled_sentences(folder / "sentence" / name)
        assert texts == file_texts
        np.testing.assert_array_equal(labels, file_labels)
    with pytest.raises(DataCountError, match=r"hub dataset SetFit/CR \(train \+ test\): expected"):
        hub_module.load_sentences("custrev.all", nlp.SENTENCE_COUNTS["custrev.all"])
    with pytest.raises(ValueError, match="'mpqa.all' has no hub copy"):
        hub_module.load_sentences("mpqa.all")


def test_hub_required_files_and_offline_error(paths, monkeypatch):
    for name in NLP_TASKS:
        files = task_metadata(name)["required_files"]
        assert files(paths, source="hub", context=None) == []
        assert files(paths, source="hub") == [
            paths.root / "nlp" / "clinc150" / "all_wiki_sents.txt"
        ]
        assert [e.what for e in task_manifest(name, paths, source="hub")] == ["sentences"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"HF_HUB_OFFLINE.*source: files"):
        build("banking77", paths, source="hub")


def test_hub_falls_back_to_parquet_branch(monkeypatch):
    import datasets

    calls = []

    def script_only(path, name=None, revision=None, **kwargs):
        calls.append(revision)
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found banking77.py")
        return "parquet copy"

    monkeypatch.setattr(datasets, "load_dataset", script_only)
    assert hub_module.load_hub("PolyAI/banking77") == "parquet copy"
    assert calls == [None, "refs/convert/parquet"]

    def broken(path, name=None, revision=None, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(RuntimeError, match=r"could not load hub dataset 'SetFit/CR'.*no route"):
        hub_module.load_hub("SetFit/CR")


# --------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_clinc150_variant_counts():
    folder = REAL_NLP / "clinc150"
    require_real(*(folder / f for f, _ in list(nlp.CLINC150_VARIANTS.values())[:3]))
    parts = {}
    for variant in ("full", "plus", "small"):
        path, counts = nlp.clinc150_file(REAL_NLP, variant), nlp.CLINC150_VARIANTS[variant][1]
        parts[variant] = nlp.read_clinc150(path, counts)  # raises on any wrong count
        per_intent = np.unique(parts[variant]["train"][1], return_counts=True)[1]
        assert len(per_intent) == 150 and set(per_intent) == {100 if variant != "small" else 50}
    # What the hub conversion relies on: full = OOS+ with 100 oos_train (one typo undone).
    plus_json = json.loads((folder / "data_oos_plus.json").read_text())
    full_json = json.loads((folder / "data_full.json").read_text())
    assert hub_module.full_from_plus(plus_json) == {k: full_json[k] for k in plus_json}
    task = create_task("clinc150", DataPaths(root=REAL_ROOT), variant="plus", oos_train=True)
    assert task.num_classes == 151 and len(task.splits["train"]) == 15250
    assert len(task.splits["val"]) == 3100 and len(task.splits["shift_oos"]) == 1000


@pytest.mark.real_data
def test_real_banking77_task():
    require_real(REAL_NLP / "banking77" / "train.csv", REAL_NLP / "clinc150" / "data_full.json")
    paths = DataPaths(root=REAL_ROOT)
    task = create_task("banking77", paths, heldout_intents=19)
    categories = json.loads((REAL_NLP / "banking77" / "categories.json").read_text())
    official = sorted(categories, key=str.lower)  # the hub's label ids
    assert [c for c in official if c in task.classnames] == task.classnames
    assert len(task.classnames) == 58
    full = create_task("banking77", paths, context=None)
    sizes = {n: len(s) for n, s in full.splits.items()}
    assert sizes == {"train": 9003, "val": 1000, "test": 3080, "ood_clinc_oos": 998}
    assert full.classnames == official and full.context is None
    id_texts = {t for n in ("train", "val", "test") for t in full.splits[n].inputs}
    assert not set(full.splits["ood_clinc_oos"].inputs) & id_texts
    # Held-out intents: none of their queries in an id split, all 40 test queries per
    # intent in ood_heldout.
    assert len(task.splits["ood_heldout"]) == 19 * 40
    heldout = set(categories) - set(task.classnames)
    test_texts, test_intents = nlp.read_banking77(REAL_NLP / "banking77" / "test.csv")
    heldout_test = {
        nlp.clinc_style(t) for t, i in zip(test_texts, test_intents, strict=True) if i in heldout
    }
    assert heldout_test == set(task.splits["ood_heldout"].inputs)
    assert not heldout_test & set(task.splits["test"].inputs)
    assert len(task.context) == nlp.WIKI_COUNT


@pytest.mark.real_data
def test_real_context_and_manifests():
    wiki = REAL_NLP / "clinc150" / "all_wiki_sents.txt"
    require_real(wiki, REAL_NLP / "sentence" / "stsa.binary.train", REAL_NLP / "banking77")
    sentences = nlp.read_wiki_sentences(wiki, nlp.WIKI_COUNT)
    assert len(set(sentences)) == 14209  # repeats are kept
    paths = DataPaths(root=REAL_ROOT)
    for name, options in (
        ("clinc150", {"variant": "small"}),
        ("clinc150", {"variant": "plus"}),
        ("banking77", {}),
        ("sst2", {}),
    ):
        checks = check_manifest(task_manifest(name, paths, **options))
        assert checks and all(c.status == "ok" for c in checks), [c.describe() for c in checks]
    task = create_task("sst2", paths, SizeLimits(max_eval=50), max_context=1000)
    assert len(task.context) == 1000 and set(task.context) <= set(sentences)
