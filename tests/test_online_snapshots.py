"""Snapshot files: atomic versioned writes, pruning, reading the newest, and the watcher."""

from __future__ import annotations

import hashlib
import logging
import math
import operator
import os
import pickle
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from online_learning.learner import LearnerConfig, PrequentialLearner
from online_learning.scoring import CandidateContext, LearnerSnapshot, default_model
from online_learning import snapshots
from online_learning.snapshots import (
    SNAPSHOT_FILE_MODE,
    SNAPSHOT_FORMAT,
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
    with pytest.raises(SnapshotError, match="no valid 'seqrec-snapshot' header"):
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


class _RaisesOnLoad:
    """Unpickles by calling ``function(*arguments)``, which raises, as a damaged but well-formed pickle can."""

    def __init__(self, function, arguments):
        self.function = function
        self.arguments = arguments

    def __reduce__(self):
        return self.function, self.arguments


def write_with_header(path, pickled: bytes) -> None:
    digest = hashlib.sha256(pickled).hexdigest()
    path.write_bytes(f"seqrec-snapshot {SNAPSHOT_FORMAT} sha256={digest}\n".encode() + pickled)


def test_snapshot_file_mode_is_0644(tmp_path):
    previous = os.umask(0o077)
    try:
        path = write_snapshot(tmp_path, make_snapshot(1))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == SNAPSHOT_FILE_MODE == 0o644


def test_load_detects_changed_byte(tmp_path):
    path = write_snapshot(tmp_path, make_snapshot(1))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="fails its SHA-256 check"):
        load_snapshot(path)


def test_load_detects_truncated_file(tmp_path):
    path = write_snapshot(tmp_path, make_snapshot(1))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SnapshotError, match="fails its SHA-256 check"):
        load_snapshot(path)


def test_load_rejects_headerless_pickle(tmp_path):
    path = snapshot_path(tmp_path, 1)
    path.write_bytes(pickle.dumps({"format": 1, "version": 1, "model": default_model()}))
    with pytest.raises(SnapshotError, match="no valid 'seqrec-snapshot' header"):
        load_snapshot(path)


@pytest.mark.parametrize(
    ("content", "error_name"),
    [
        (_RaisesOnLoad(operator.getitem, ({}, "model")), "KeyError"),
        (_RaisesOnLoad(math.exp, (1_000,)), "OverflowError"),
        (_RaisesOnLoad(int, ("not a number",)), "ValueError"),
        ({"version": 1}, "lacks the fields"),
        ([1, 2], "lacks the fields"),
    ],
    ids=["KeyError", "OverflowError", "ValueError", "missing-fields", "not-a-dict"],
)
def test_load_turns_unpickling_errors_into_snapshot_error(tmp_path, content, error_name):
    path = snapshot_path(tmp_path, 1)
    write_with_header(path, pickle.dumps(content))
    with pytest.raises(SnapshotError, match=error_name):
        load_snapshot(path)


@pytest.mark.parametrize("error", [MemoryError(), RecursionError("maximum recursion depth exceeded")])
def test_load_turns_resource_errors_into_snapshot_error(tmp_path, monkeypatch, error):
    path = write_snapshot(tmp_path, make_snapshot(1))

    def fail(_data):
        raise error

    monkeypatch.setattr(pickle, "loads", fail)
    with pytest.raises(SnapshotError, match=type(error).__name__):
        load_snapshot(path)


def test_load_turns_permission_error_into_snapshot_error(tmp_path, monkeypatch):
    path = write_snapshot(tmp_path, make_snapshot(1))

    def deny(_self):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(SnapshotError, match="cannot be read .PermissionError.*mode 644"):
        load_snapshot(path)


def test_watcher_falls_back_to_older_good_file(tmp_path):
    write_snapshot(tmp_path, make_snapshot(1))
    snapshot_path(tmp_path, 2).write_bytes(b"damaged")
    watcher = SnapshotWatcher(tmp_path, max_staleness=timedelta(milliseconds=200))
    try:
        assert watcher.wait_for_version(1, WATCH_TIMEOUT).version == 1
        watcher.poll()
        assert watcher.load_failures == 1
    finally:
        watcher.close()


def test_watcher_survives_any_load_error(tmp_path, monkeypatch, caplog):
    real_load = snapshots.load_snapshot
    bad_path = snapshot_path(tmp_path, 2)

    def load_or_fail(path):
        if path == bad_path:
            raise KeyError("model")
        return real_load(path)

    monkeypatch.setattr(snapshots, "load_snapshot", load_or_fail)
    write_snapshot(tmp_path, make_snapshot(1))
    watcher = SnapshotWatcher(tmp_path, max_staleness=timedelta(milliseconds=200))
    try:
        with caplog.at_level(logging.WARNING, logger="online_learning.snapshots"):
            assert watcher.wait_for_version(1, WATCH_TIMEOUT).version == 1
            write_snapshot(tmp_path, make_snapshot(2))
            for _ in range(3):
                watcher.poll()
            assert watcher.current.version == 1
            write_snapshot(tmp_path, make_snapshot(3))
            assert watcher.wait_for_version(3, WATCH_TIMEOUT).version == 3
        assert watcher.load_failures == 1
        assert len([message for message in caplog.messages if str(bad_path) in message]) == 1
    finally:
        watcher.close()


def test_watcher_survives_listing_error(tmp_path, monkeypatch, caplog):
    listing_fails = threading.Event()
    listing_fails.set()
    real_list = snapshots.list_versions

    def list_or_fail(root):
        if listing_fails.is_set():
            raise PermissionError(13, "Permission denied", str(root))
        return real_list(root)

    write_snapshot(tmp_path, make_snapshot(1))
    monkeypatch.setattr(snapshots, "list_versions", list_or_fail)
    with caplog.at_level(logging.WARNING, logger="online_learning.snapshots"):
        watcher = SnapshotWatcher(tmp_path, max_staleness=timedelta(milliseconds=200))
        try:
            time.sleep(0.5)  # several polls, all failing
            listing_fails.clear()
            assert watcher.wait_for_version(1, WATCH_TIMEOUT).version == 1
        finally:
            watcher.close()
    assert len([message for message in caplog.messages if "PermissionError" in message]) == 1
