"""Config stamps: dated before an output made under the current settings, after one made
under other settings (so Snakemake's mtime rule reruns exactly those)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bench.engine.features import FeatureSet, FeatureSplit, save_features
from bench.stamps import UNREADABLE, Stamped, features_record, run_json_hash, sync_stamps
from bench.tasks.base import FewShot, SplitInfo


def run_json(path, config_hash):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config_hash": config_hash}))
    os.utime(path, (1_000_000, 1_000_000))  # made long ago
    return path


def test_sync_stamps_dates_each_stamp_by_what_the_output_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results/superseded/ is relative to the working directory
    current = run_json(Path("runs/a/run.json"), "new")
    stale = run_json(Path("runs/b/run.json"), "old")
    (stale.parent / "predictions.npz").write_bytes(b"old predictions")
    damaged = run_json(Path("runs/c/run.json"), "x")
    damaged.write_text('{"config_')
    missing = Path("runs/d/run.json")
    entries = [
        Stamped(Path("stamps") / f"{name}.hash", output, "new", run_json_hash)
        for name, output in (("a", current), ("b", stale), ("c", damaged), ("d", missing))
    ]
    assert len(sync_stamps(entries, keep=False)) == 2  # a dry run keeps nothing ...
    assert not Path("results").exists()
    for entry in entries:  # ... and the real run below starts from the same state
        entry.stamp.unlink(missing_ok=True)
    reported = sync_stamps(entries)
    assert [(p.parent.name, reason) for p, reason in reported] == [
        ("b", "made under old; the grid's config hash is new"),
        ("c", "unreadable; the grid's config hash is new"),
    ]
    # Snakemake deletes a rerun job's outputs first: their files are kept, as hard links.
    kept = Path("results/superseded/old/runs/b")
    assert (kept / "predictions.npz").read_bytes() == b"old predictions"
    assert os.path.samefile(kept / "run.json", stale)
    assert (Path("results/superseded/unreadable/runs/c/run.json")).read_text() == '{"config_'
    stamp_time = {e.output.parent.name: e.stamp.stat().st_mtime for e in entries}
    assert stamp_time["a"] < current.stat().st_mtime  # up to date: no rerun
    assert stamp_time["b"] > stale.stat().st_mtime  # newer input: rerun
    assert all(e.stamp.read_text() == "new" for e in entries)
    # Idempotent: a second DAG build changes nothing and reports the same.
    before = {e.stamp: e.stamp.stat().st_mtime for e in entries}
    assert len(sync_stamps(entries)) == 2
    assert {e.stamp: e.stamp.stat().st_mtime for e in entries} == before
    # Once the stale job has rerun, its stamp is older again and nothing is reported.
    run_json(stale, "new")
    os.utime(stale, None)
    assert [p.parent.name for p, _ in sync_stamps(entries)] == ["c"]


def feature_cache(path, few_shot, seeds, config_hash="h1"):
    split = FeatureSplit(
        SplitInfo("train", "train"), np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    )
    cache = FeatureSet("tiny", ["a", "b"], {"train": split}, few_shot=few_shot)
    save_features(path, cache, config_hash=config_hash, seeds=seeds)
    return path


def test_features_record_checks_few_shot_seeds(tmp_path):
    full = feature_cache(tmp_path / "full.npz", None, [0, 1])
    few = feature_cache(tmp_path / "few.npz", FewShot(2, 1), [0, 1])
    assert features_record([0, 1, 2])(full) == "h1"  # full-data caches ignore seeds
    assert features_record([0, 1])(few) == "h1"
    assert features_record([0, 1, 2])(few) == "h1 with few-shot draws for seeds [0, 1] only"
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert features_record([0])(tmp_path / "bad.npz") == UNREADABLE
