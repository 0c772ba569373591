"""Tests of the raw readers, the sampling helpers and the corruptions (bench.data)."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# The helpers sit beside this file; make them importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_data import (  # noqa: E402
    BANKING_INTENTS,
    CLINC_INTENTS,
    FMNIST_TEST_PER_CLASS,
    fmnist_images,
    make_data_tree,
    write_banking77,
    write_clinc150,
    write_fashion_mnist,
    write_idx,
    write_sentence_files,
    write_wordnet,
)

from bench.data import (  # noqa: E402
    DataCountError,
    check_count,
    corruptions,
    digits,
    fashion_mnist,
    nlp,
    resolve_options,
    sampling,
    wordnet,
)

REPO = Path(__file__).resolve().parents[1]
REAL_ROOT = Path(os.environ.get("BENCH_DATA_ROOT", REPO.parent / "shared" / "data"))
REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
REAL_WORDNET = Path("/usr/share/wordnet")


def require_real(*paths: Path) -> None:
    """Fails (or skips with BENCH_ALLOW_MISSING_DATA=1) when real data files are missing."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        message = f"real data missing: {missing}"
        if os.environ.get("BENCH_ALLOW_MISSING_DATA") == "1":
            pytest.skip(message)
        pytest.fail(message + " (set BENCH_ALLOW_MISSING_DATA=1 to skip)")


# --------------------------------------------------------------------------- helpers


def test_check_count_names_file_and_counts():
    check_count("x.txt", 3, None)
    check_count("x.txt", 3, 3)
    with pytest.raises(DataCountError, match=r"x\.txt: expected 5 lines but found 3"):
        check_count("x.txt", 3, 5, "lines")


def test_resolve_options_rejects_unknown_and_lists_valid():
    assert resolve_options("t", {"a": 2}, {"a": 1, "b": 0}) == {"a": 2, "b": 0}
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'zz'.*valid options: a, b"):
        resolve_options("t", {"zz": 1}, {"a": 1, "b": 0})


# --------------------------------------------------------------------------- sampling


def test_derive_seed_is_stable_and_key_dependent():
    a = sampling.derive_seed(0, "fmnist", "contrast", 2)
    assert a == sampling.derive_seed(0, "fmnist", "contrast", 2)
    assert a != sampling.derive_seed(1, "fmnist", "contrast", 2)
    assert a != sampling.derive_seed(0, "fmnist", "contrast", 3)
    assert 0 <= a < 2**32


def test_capped_indices():
    idx = sampling.capped_indices(100, 10, seed=3)
    assert idx.dtype == np.int64 and len(idx) == 10 and len(set(idx)) == 10
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, sampling.capped_indices(100, 10, seed=3))
    assert not np.array_equal(idx, sampling.capped_indices(100, 10, seed=4))
    np.testing.assert_array_equal(sampling.capped_indices(5, None, 0), np.arange(5))
    np.testing.assert_array_equal(sampling.capped_indices(5, 50, 0), np.arange(5))
    with pytest.raises(ValueError):
        sampling.capped_indices(5, -1, 0)


def test_stratified_indices_keeps_proportions_and_rare_classes():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 100 + [3] * 2)
    idx = sampling.stratified_indices(labels, 100, seed=0)
    counts = np.bincount(labels[idx], minlength=4)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert abs(counts[0] - 60) <= 1 and abs(counts[1] - 30) <= 1 and abs(counts[2] - 10) <= 1
    assert counts[3] >= 1  # rare class not dropped
    np.testing.assert_array_equal(idx, sampling.stratified_indices(labels, 100, seed=0))
    # Balanced data: exact balance, and ties of the remainder are not always class 0.
    balanced = np.repeat(np.arange(150), 10)
    first = [np.bincount(balanced[sampling.stratified_indices(balanced, 200, s)])[0]
             for s in range(6)]  # fmt: skip
    assert set(first) <= {1, 2} and len(set(first)) == 2
    assert len(sampling.stratified_indices(labels, None, 0)) == len(labels)


def test_stratified_split_is_a_partition():
    labels = np.repeat(np.arange(5), 37)
    parts = sampling.stratified_split(labels, (0.7, 0.1, 0.2), seed=1)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) and len(set(joined)) == len(labels)
    for part, frac in zip(parts, (0.7, 0.1, 0.2), strict=True):
        assert abs(len(part) - frac * len(labels)) <= 5
        assert set(labels[part]) == set(range(5))
    again = sampling.stratified_split(labels, (0.7, 0.1, 0.2), seed=1)
    for a, b in zip(parts, again, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        sampling.stratified_split(labels, (0.5, 0.2), seed=1)


# --------------------------------------------------------------------------- Fashion-MNIST


def test_idx_roundtrip_and_fashion_mnist(tmp_path):
    folder = write_fashion_mnist(tmp_path)
    images, labels = fashion_mnist.load_fashion_mnist(folder, "t10k")
    assert images.shape == (10 * FMNIST_TEST_PER_CLASS, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels) == set(range(10))
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(fashion_mnist.read_idx(write_idx(tmp_path / "a.gz", arr)), arr)
    assert len(fashion_mnist.CLASSNAMES) == 10 and fashion_mnist.CLASSNAMES[5] == "sandal"


def test_fashion_mnist_count_and_truncation_errors(tmp_path):
    folder = write_fashion_mnist(tmp_path)
    with pytest.raises(DataCountError, match=r"t10k-images.*expected 10000 images but found 80"):
        fashion_mnist.load_fashion_mnist(folder, "t10k", expected=10000)
    path = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataCountError, match="truncated"):
        fashion_mnist.read_idx(path)
    path.write_bytes(gzip.compress(b"\x01\x02\x03\x04" + raw[4:]))
    with pytest.raises(DataCountError, match="not an IDX file"):
        fashion_mnist.read_idx(path)
    with pytest.raises(ValueError, match="split must be one of"):
        fashion_mnist.split_files(folder, "test")


# --------------------------------------------------------------------------- digits


def test_digits_28():
    images, labels = digits.load_digits_28()
    assert images.shape == (digits.DIGITS_COUNT, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert set(labels) == set(range(10))
    # Dark background like Fashion-MNIST: the corners are black.
    assert images[:, 0, 0].mean() < 20
    with pytest.raises(DataCountError):
        digits.load_digits_28(expected=5)


def test_bundled_digits_match_sklearn_api():
    from sklearn.datasets import load_digits

    raw, labels = digits.load_digits_8x8()
    bunch = load_digits()
    np.testing.assert_array_equal(raw, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


# --------------------------------------------------------------------------- corruptions


@pytest.fixture(scope="module")
def clean_images():
    return fmnist_images(np.arange(40) % 10, seed=5)


@pytest.mark.parametrize("name", corruptions.CORRUPTIONS)
def test_corruption_deterministic_and_increasing(name, clean_images):
    before = clean_images.copy()
    distortions = []
    for severity in (1, 2, 3):
        out = corruptions.corrupt(clean_images, name, severity, seed=11)
        assert out.shape == clean_images.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, corruptions.corrupt(clean_images, name, severity, 11))
        distortions.append(np.abs(out.astype(float) - clean_images).mean())
    np.testing.assert_array_equal(clean_images, before)  # input untouched
    assert 0 < distortions[0] < distortions[1] < distortions[2]


def test_corruption_seed_matters_for_random_ones(clean_images):
    for name in ("gaussian_noise", "rotation"):
        a = corruptions.corrupt(clean_images, name, 2, seed=1)
        b = corruptions.corrupt(clean_images, name, 2, seed=2)
        assert not np.array_equal(a, b)


def test_corruption_colour_and_errors(clean_images):
    rgb = np.repeat(clean_images[..., None], 3, axis=-1)
    for name in corruptions.CORRUPTIONS:
        out = corruptions.corrupt(rgb, name, 2, seed=0)
        assert out.shape == rgb.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corruptions.corrupt(clean_images, "fog", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        corruptions.corrupt(clean_images, "contrast", 4, 0)
    with pytest.raises(ValueError, match="uint8"):
        corruptions.corrupt(clean_images.astype(np.float32), "contrast", 1, 0)


# --------------------------------------------------------------------------- WordNet


def test_split_gloss_cases():
    d, e = wordnet.split_gloss('close interaction; "they kept in daily contact"; "in touch"')
    assert d == "close interaction" and e == ("they kept in daily contact", "in touch")
    d, e = wordnet.split_gloss(
        'significant progress (especially in the phrase "make strides"); "they made strides"'
    )
    assert d == 'significant progress (especially in the phrase "make strides")'
    assert e == ("they made strides",)
    d, e = wordnet.split_gloss('a complete extent or range: "a gamut of emotions"')
    assert d == "a complete extent or range" and e == ("a gamut of emotions",)
    assert wordnet.split_gloss("a mutual action; interacting  ") == (
        "a mutual action; interacting",
        (),
    )


def test_parse_noun_line_real_format():
    line = (
        "00039297 04 n 02 contact 2 touch 0 005 @ 00039021 n 0000 + 00743362 v 0104 "
        "~ 00039545 n 0000 ~ 00039740 n 0000 ~ 00039990 n 0000 | close interaction; "
        '"they kept in daily contact"  \n'
    )
    s = wordnet.parse_noun_line(line)
    assert s.offset == 39297 and s.category == "act" and s.words == ("contact", "touch")
    assert s.definition == "close interaction" and s.examples == ("they kept in daily contact",)
    with pytest.raises(ValueError, match="lexicographer"):
        wordnet.parse_noun_line(line.replace(" 04 n ", " 31 n "))


def test_read_noun_synsets_fixture(tmp_path):
    path = write_wordnet(tmp_path)
    synsets = wordnet.read_noun_synsets(path)
    assert len(synsets) == 14 * 20 + 3  # header skipped
    assert {s.category for s in synsets} >= {"animal", "time", "state"}
    with pytest.raises(DataCountError, match="expected 82115 noun synsets but found 283"):
        wordnet.read_noun_synsets(path, expected=wordnet.NOUN_SYNSET_COUNT)
    assert wordnet.NOUN_CATEGORIES[0] == "Tops" and len(wordnet.NOUN_CATEGORIES) == 26


# --------------------------------------------------------------------------- NLP readers


def test_read_labeled_sentences_encodings(tmp_path):
    folder = write_sentence_files(tmp_path)
    texts, labels = nlp.read_labeled_sentences(folder / "rt-polarity.all")
    assert labels.dtype == np.int64 and len(texts) == len(labels) == 15
    assert texts[-1] == "a mess \u2026 really clich\u00e9d ."  # \x85 did not split the line
    with pytest.raises(
        DataCountError, match=r"rt-polarity\.all: expected 10662 sentences but found 15"
    ):
        nlp.read_labeled_sentences(folder / "rt-polarity.all", expected=10662)
    (folder / "bad").write_text("positive great film\n")
    with pytest.raises(DataCountError, match="integer label"):
        nlp.read_labeled_sentences(folder / "bad")


def test_read_clinc150_and_banking77(tmp_path):
    path = write_clinc150(tmp_path)
    parts = nlp.read_clinc150(path)
    assert len(parts["train"][0]) == 6 * len(CLINC_INTENTS)
    assert set(parts["oos_test"][1]) == {"oos"}
    with pytest.raises(DataCountError, match="expected 15000 'train' queries but found 30"):
        nlp.read_clinc150(path, expected=nlp.CLINC150_COUNTS)
    folder = write_banking77(tmp_path)
    texts, _ = nlp.read_banking77(folder / "test.csv")
    assert len(texts) == 3 * len(BANKING_INTENTS) + 2
    assert "Where is my card? It has\nnot arrived, sadly." in texts
    with pytest.raises(DataCountError, match="expected 3080 queries"):
        nlp.read_banking77(folder / "test.csv", expected=nlp.BANKING77_COUNTS["test.csv"])


def test_overlap_mask_ignores_tokenisation():
    reference = ["it 's a wonderful , moving film that earns every one of its long minutes ."]
    texts = [
        "it's a wonderful, moving film that earns every one of its long minutes.",
        "prologue . it 's a wonderful , moving film that earns every one of its long",
        "a different sentence entirely .",
        "short",
    ]
    np.testing.assert_array_equal(nlp.overlap_mask(texts, reference), [True, True, False, False])


# --------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_fashion_mnist_counts():
    require_real(*fashion_mnist.split_files(REAL_FMNIST, "t10k"))
    images, labels = fashion_mnist.load_fashion_mnist(REAL_FMNIST, "t10k", expected=10000)
    assert images.shape == (10000, 28, 28) and np.all(np.bincount(labels) == 1000)


@pytest.mark.real_data
def test_real_wordnet_counts():
    require_real(REAL_WORDNET / "data.noun")
    synsets = wordnet.read_noun_synsets(REAL_WORDNET / "data.noun", wordnet.NOUN_SYNSET_COUNT)
    by_offset = {s.offset: s for s in synsets}
    contact = by_offset[39297]
    assert contact.category == "act" and contact.definition == "close interaction"
    assert contact.examples[0] == "they kept in daily contact"


@pytest.mark.real_data
def test_real_nlp_counts_and_label_polarity():
    folder = REAL_ROOT / "nlp" / "sentence"
    require_real(*(folder / n for n in nlp.SENTENCE_COUNTS), REAL_ROOT / "nlp" / "clinc150")
    data = {n: nlp.read_labeled_sentences(folder / n, c) for n, c in nlp.SENTENCE_COUNTS.items()}
    # Polarity: 1 = positive, 0 = negative in SST-2, MR and CR (examples read by hand).
    known = {
        "stsa.binary.test": [("this is one of polanski 's best films .", 1),
                             ("no movement , no yuks , not much of anything .", 0)],
        "rt-polarity.all": [("simplistic , silly and tedious .", 0)],
        "custrev.all": [("many of our disney movies do n 't play on this dvd player .", 0),
                        ("it practically plays almost everything you give it .", 1)],
    }  # fmt: skip
    for name, pairs in known.items():
        lookup = dict(zip(data[name][0], data[name][1].tolist(), strict=True))
        for text, label in pairs:
            assert lookup[text] == label, (name, text)
    nlp.read_clinc150(REAL_ROOT / "nlp" / "clinc150" / "data_full.json", nlp.CLINC150_COUNTS)
    for name, count in nlp.BANKING77_COUNTS.items():
        nlp.read_banking77(REAL_ROOT / "nlp" / "banking77" / name, count)


def test_fixture_tree_is_complete(tmp_path):
    paths = make_data_tree(tmp_path)
    assert (paths.wordnet / "data.noun").exists()
    assert (paths.root / "nlp" / "sentence" / "subj.all").exists()
