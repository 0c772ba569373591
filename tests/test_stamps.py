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
    # A current or new output's stamp holds the hash; a stale one's also a line of its
    # own, so its content differs from anything Snakemake recorded at an earlier run.
    stamps = {e.output.parent.name: e.stamp.read_text() for e in entries}
    assert stamps["a"] == stamps["d"] == "new"
    assert stamps["b"].startswith("new\nrerun: runs/b/run.json was made under old (")
    assert stamps["c"].startswith("new\nrerun: runs/c/run.json was made under <unreadable> (")
    # A second DAG build reports the same, keeps nothing twice, and dates stay in order.
    before = {e.output.parent.name: e.stamp.stat().st_mtime for e in entries}
    assert len(sync_stamps(entries)) == 2
    assert sorted(p.name for p in Path("results/superseded").iterdir()) == ["old", "unreadable"]
    assert before["a"] == entries[0].stamp.stat().st_mtime
    assert entries[1].stamp.stat().st_mtime > stale.stat().st_mtime
    # Once the stale job has rerun, its stamp holds the hash alone, is older again, and
    # nothing is reported.
    run_json(stale, "new")
    os.utime(stale, None)
    assert [p.parent.name for p, _ in sync_stamps(entries)] == ["c"]
    assert entries[1].stamp.read_text() == "new"
    assert entries[1].stamp.stat().st_mtime < stale.stat().st_mtime


def test_a_restored_stale_result_is_rerun_with_its_derived_results_kept(tmp_path, monkeypatch):
    """Restored over a current run, a stale run gets a stamp Snakemake has not seen."""
    monkeypatch.chdir(tmp_path)
    run = run_json(Path("runs/m/seed0/run.json"), "new")
    stamp = Path("stamps/m.hash")
    derived = (Path("runs/m+ts/seed0"), Path("runs/m/ensemble"), Path("logs/m/seed0.log"))
    entry = Stamped(stamp, run, "new", run_json_hash, derived)
    assert sync_stamps([entry]) == [] and stamp.read_text() == "new"
    recorded_by_snakemake = stamp.read_bytes()  # the content a last run recorded
    for folder in derived[:2]:
        run_json(folder / "run.json", "old")
    derived[2].parent.mkdir(parents=True)
    derived[2].write_text("$ python -m bench fit ...")
    run_json(run, "old")  # a backup of the old settings' run, restored over the new one
    assert len(sync_stamps([entry])) == 1
    assert stamp.read_bytes() != recorded_by_snakemake
    for path in (run, *(d / "run.json" for d in derived[:2]), derived[2]):
        assert os.path.samefile(Path("results/superseded/old") / path, path)


def test_superseded_sets_under_one_hash_are_never_mixed(tmp_path, monkeypatch):
    """Settings A, then B, then A again, then B again: two sets of A's files, apart."""
    monkeypatch.chdir(tmp_path)
    first = run_json(Path("runs/m/seed0/run.json"), "a")
    (first.parent / "predictions.npz").write_bytes(b"first")
    entry = Stamped(Path("stamps/m.hash"), first, "b", run_json_hash)
    sync_stamps([entry])
    for name in ("run.json", "predictions.npz"):  # the rerun under b replaces the files
        (first.parent / name).unlink()
    second = run_json(Path("runs/m/seed0/run.json"), "a")  # ... and later a run under a
    (second.parent / "predictions.npz").write_bytes(b"second")
    (second.parent / "weights.pt").write_bytes(b"second weights")
    sync_stamps([entry])
    kept_first = Path("results/superseded/a/runs/m/seed0")
    kept_second = Path("results/superseded/a.2/runs/m/seed0")
    assert (kept_first / "predictions.npz").read_bytes() == b"first"
    assert not (kept_first / "weights.pt").exists()
    assert (kept_second / "predictions.npz").read_bytes() == b"second"
    assert (kept_second / "weights.pt").read_bytes() == b"second weights"


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
