"""Shared test set-up: offline hub, small thread count, synthetic tasks."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))

from bench.tasks.base import OOD_LABEL, Split, SplitInfo, TaskData  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _vision_split(name, kind, labels, rng, family=None, severity=None, noise=30.0):
    """Images whose texture encodes the class (horizontal or vertical stripes, checker,
    solid), so a tiny CNN with global pooling learns it in seconds."""
    yy, xx = np.mgrid[0:28, 0:28]
    patterns = [
        (yy // 3) % 2 == 0,
        (xx // 3) % 2 == 0,
        ((yy // 4) + (xx // 4)) % 2 == 0,
        np.ones((28, 28), dtype=bool),
    ]
    images = rng.uniform(0, noise, (len(labels), 28, 28))
    for i, label in enumerate(labels):
        if label >= 0:
            images[i] += 180 * patterns[int(label)]
        else:  # OOD: a centred bright square, unlike any texture
            images[i, 8:20, 8:20] += 200
    return Split(
        SplitInfo(name, kind, family, severity), images.clip(0, 255).astype(np.uint8), labels
    )


def make_tiny_vision_task(n_train: int = 160, seed: int = 0) -> TaskData:
    """Four-class synthetic image task with a graded shift and an OOD split."""
    rng = np.random.default_rng(seed)

    def labels(n):
        return np.arange(n, dtype=np.int64) % 4

    splits = {
        "train": _vision_split("train", "train", labels(n_train), rng),
        "val": _vision_split("val", "val", labels(40), rng),
        "test": _vision_split("test", "id", labels(60), rng),
        "shift_noise_s1": _vision_split(
            "shift_noise_s1", "shift", labels(60), rng, "noise", 1, 90.0
        ),
        "shift_noise_s2": _vision_split(
            "shift_noise_s2", "shift", labels(60), rng, "noise", 2, 160.0
        ),
        "ood_ring": _vision_split("ood_ring", "ood", np.full(40, OOD_LABEL), rng, "ring"),
    }
    return TaskData("tiny_vision", "vision", ["tl", "tr", "bl", "br"], splits, ["a photo of a {}."])


def make_tiny_text_task(seed: int = 0) -> TaskData:
    """Two-class synthetic sentiment-like text task with a shift and an OOD split."""
    rng = np.random.default_rng(seed)
    words = {0: ["bad", "awful", "boring", "poor"], 1: ["good", "great", "fun", "superb"]}

    def texts(n, template="the movie was {} and {}"):
        labels = np.arange(n, dtype=np.int64) % 2
        return [template.format(*rng.choice(words[int(y)], 2)) for y in labels], labels

    def split(name, kind, n, family=None, template="the movie was {} and {}"):
        inputs, labels = texts(n, template)
        return Split(SplitInfo(name, kind, family), inputs, labels)

    ood_inputs = [f"what is the capital of country number {i}" for i in range(30)]
    splits = {
        "train": split("train", "train", 120),
        "val": split("val", "val", 40),
        "test": split("test", "id", 40),
        "shift_product": split("shift_product", "shift", 40, "product", "this phone is {} , {}"),
        "ood_questions": Split(
            SplitInfo("ood_questions", "ood", "questions"), ood_inputs, np.full(30, OOD_LABEL)
        ),
    }
    return TaskData("tiny_text", "text", ["negative", "positive"], splits)


def in_memory_context(task: TaskData, backbone: str, engine, seed: int = 0, **options):
    """A FitContext over an already-built task; features are computed on first use."""
    from bench.backbones import create_backbone
    from bench.engine.features import compute_features
    from bench.methods.base import FitContext

    return FitContext(
        task.name, backbone, seed, engine, lambda: task,
        lambda: create_backbone(backbone, **options),
        lambda: compute_features(task, create_backbone(backbone, **options), engine),
    )  # fmt: skip


@contextlib.contextmanager
def signal_on_call(owner, name: str, call: int, signum: int = signal.SIGTERM):
    """Within the block, ``owner.name`` sends ``signum`` to this process on its ``call``-th
    call (then runs as usual): a preemption at a chosen training step."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            signal.raise_signal(signum)
        return original(*args, **kwargs)

    setattr(owner, name, patched)
    try:
        yield
    finally:
        setattr(owner, name, original)


@pytest.fixture
def tiny_vision_task() -> TaskData:
    return make_tiny_vision_task()


@pytest.fixture
def tiny_text_task() -> TaskData:
    return make_tiny_text_task()


@pytest.fixture(scope="session")
def clip_tiny_cache(tmp_path_factory) -> tuple:
    """``(tiny vision task, its feature cache on clip_tiny.random)``, read back from the
    file: 2 augmented views, the zero-shot prototypes and a 6-word outlier pool (what
    the adapters and the prompt learners read)."""
    from fixtures_data import write_outlier_wordnet

    from bench.backbones import create_backbone
    from bench.engine import Engine
    from bench.engine.features import (
        OutlierRequest,
        compute_features,
        load_features,
        save_features,
    )

    wordnet = write_outlier_wordnet(tmp_path_factory.mktemp("wordnet"))
    task = make_tiny_vision_task()
    features = compute_features(
        task,
        create_backbone("clip_tiny.random"),
        Engine.create("cpu", "fp32", threads=2, eval_batch_size=64),
        train_views=2,
        prototypes=True,
        outliers=OutlierRequest(str(wordnet), 6, "a photo of a {}."),
    )
    path = tmp_path_factory.mktemp("cache") / "features.npz"
    save_features(path, features)
    return task, load_features(path)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; real-data tests fail (not skip) when it is absent, unless
    BENCH_ALLOW_MISSING_DATA=1."""
    if not (SHARED_DATA / "nlp").is_dir():
        if os.environ.get("BENCH_ALLOW_MISSING_DATA") == "1":
            pytest.skip(f"{SHARED_DATA} missing and BENCH_ALLOW_MISSING_DATA=1")
        pytest.fail(f"{SHARED_DATA} is missing: clone the repository beside shared/")
    return SHARED_DATA
