"""Snapshot files: atomic versioned writes, pruning, reading the newest, and the watcher."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from online_learning.learner import LearnerConfig, PrequentialLearner
from online_learning.scoring import CandidateContext, LearnerSnapshot, default_model
from online_learning.snapshots import (
    SnapshotError,
    SnapshotWatcher,
    list_versions,
    load_snapshot,
    read_latest,
    snapshot_path,
    write_snapshot,
)

T0_MS = 1_411_462_780_000
WATCH_TIMEOUT = timedelta(seconds=30)
CONTEXT = CandidateContext("s1", ("a", "b"), {"c": 2, "d": 1}, {"a": 3, "c": 5})


def make_snapshot(version: int) -> LearnerSnapshot:
    learner = PrequentialLearner(LearnerConfig(seed=version))
    for n in range(50 + version):
        learner.process(f"s{n % 4}", f"i{(n * 3) % 5}", T0_MS + n * 1_000)
    return learner.snapshot(version=version, created_at_ms=T0_MS + version)


def test_write_then_read_latest(tmp_path):
    first = make_snapshot(1)
    second = make_snapshot(2)
    assert write_snapshot(tmp_path, first) == tmp_path / "snapshot-000000000001.pkl"
    write_snapshot(tmp_path, second)
    loaded = read_latest(tmp_path)
    assert (loaded.version, loaded.created_at_ms, loaded.events_learned) == (2, T0_MS + 2, 52)
    assert loaded.score(CONTEXT, ["c", "d", "a"]) == second.score(CONTEXT, ["c", "d", "a"])


def test_read_latest_of_missing_directory(tmp_path):
    assert read_latest(tmp_path / "absent") is None


def test_write_keeps_newest_files(tmp_path):
    for version in range(1, 6):
        write_snapshot(tmp_path, LearnerSnapshot(default_model(), version, T0_MS, 0), keep=2)
    assert list_versions(tmp_path) == [4, 5]
    assert sorted(os.listdir(tmp_path)) == ["snapshot-000000000004.pkl", "snapshot-000000000005.pkl"]


def test_write_rejects_old_version(tmp_path):
    write_snapshot(tmp_path, LearnerSnapshot(default_model(), 3, T0_MS, 0))
    with pytest.raises(ValueError, match="not newer than version 3"):
        write_snapshot(tmp_path, LearnerSnapshot(default_model(), 3, T0_MS, 0))


def test_read_latest_falls_back_past_damaged_file(tmp_path):
    write_snapshot(tmp_path, LearnerSnapshot(default_model(), 1, T0_MS, 10))
    snapshot_path(tmp_path, 2).write_bytes(b"not a pickle")
    with pytest.raises(SnapshotError, match="cannot be unpickled"):
        load_snapshot(snapshot_path(tmp_path, 2))
    assert read_latest(tmp_path).version == 1


def test_watcher_loads_new_versions(tmp_path):
    watcher = SnapshotWatcher(tmp_path, max_staleness=timedelta(milliseconds=200))
    try:
        assert watcher.current is None
        write_snapshot(tmp_path, make_snapshot(1))
        assert watcher.wait_for_version(1, WATCH_TIMEOUT).version == 1
        write_snapshot(tmp_path, make_snapshot(2))
        current = watcher.wait_for_version(2, WATCH_TIMEOUT)
        assert current.version == 2
        assert current.events_learned == 52
    finally:
        watcher.close()


def test_watcher_keeps_current_when_newest_is_damaged(tmp_path):
    write_snapshot(tmp_path, make_snapshot(1))
    watcher = SnapshotWatcher(tmp_path, max_staleness=timedelta(milliseconds=200))
    try:
        assert watcher.wait_for_version(1, WATCH_TIMEOUT).version == 1
        snapshot_path(tmp_path, 2).write_bytes(b"damaged")
        watcher.poll()
        assert watcher.current.version == 1
        write_snapshot(tmp_path, make_snapshot(3))
        assert watcher.wait_for_version(3, WATCH_TIMEOUT).version == 3
    finally:
        watcher.close()


def test_watcher_default_staleness_is_ten_seconds(tmp_path):
    watcher = SnapshotWatcher(tmp_path)
    try:
        assert watcher.max_staleness == timedelta(seconds=10)
        assert watcher.poll_interval == timedelta(seconds=2.5)
    finally:
        watcher.close()


def test_watcher_rejects_zero_staleness(tmp_path):
    with pytest.raises(ValueError, match="max_staleness must be positive"):
        SnapshotWatcher(tmp_path, max_staleness=timedelta(0))


def test_no_temporary_files_left(tmp_path):
    write_snapshot(tmp_path, make_snapshot(1))
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
