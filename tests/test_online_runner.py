"""The learner process without a broker: bad records are counted and skipped, Kafka outages are retried."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from online_learning.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from online_learning.config import LearnerRunConfig
from online_learning.learner import PrequentialLearner
from online_learning.runner import LearnerRunner
from seqrec.events import Reason
from stack.process import free_port

T0_MS = 1_411_462_780_000
STOP_AFTER_S = 2.0


def valid(n: int, session: str = "s1") -> bytes:
    return json.dumps({
        "event_id": f"e{n}", "session_id": session, "item_id": f"i{n % 3}",
        "event_type": "view", "event_time": T0_MS + n * 1_000,
    }).encode()


BAD_RECORDS = [
    (None, Reason.UNPARSEABLE),
    (b"\xff\xfe", Reason.UNPARSEABLE),
    (b"[1, 2]", Reason.UNPARSEABLE),
    (b"1" * 5_000, Reason.UNPARSEABLE),          # longer than CPython's integer digit limit
    (b"[" * 100_000 + b"]" * 100_000, Reason.UNPARSEABLE),   # nesting too deep to parse
    (json.dumps({"session_id": "s1"}).encode(), Reason.MISSING_FIELD),
    (json.dumps({"event_id": "e", "session_id": "s", "item_id": 5, "event_type": "view",
                 "event_time": T0_MS}).encode(), Reason.WRONG_TYPE),
    (json.dumps({"event_id": "e", "session_id": "", "item_id": "i", "event_type": "view",
                 "event_time": T0_MS}).encode(), Reason.EMPTY_ID),
    (json.dumps({"event_id": "e", "session_id": "s", "item_id": "i", "event_type": "view",
                 "event_time": 1_411_462_780}).encode(), Reason.TIME_TOO_EARLY),
]


def make_runner(tmp_path, **overrides) -> LearnerRunner:
    config = LearnerRunConfig(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        checkpoint_dir=tmp_path / "checkpoint",
        snapshot_dir=tmp_path / "snapshots",
        **overrides,
    )
    return LearnerRunner(config)


def test_invalid_records_are_counted_and_skipped(tmp_path):
    runner = make_runner(tmp_path)
    offset = 0
    for n in range(3):
        runner._consume(0, offset, valid(n))
        offset += 1
    for value, _ in BAD_RECORDS:
        runner._consume(0, offset, value)
        offset += 1
    runner._consume(0, offset, valid(3))

    checkpoint = runner.checkpoint
    expected = {}
    for _, reason in BAD_RECORDS:
        expected[reason] = expected.get(reason, 0) + 1
    assert checkpoint.invalid_by_reason == expected
    assert checkpoint.learner.counters.events_learned == 4
    assert checkpoint.offsets == {0: offset + 1}
    assert checkpoint.records_consumed == 4 + len(BAD_RECORDS)
    registry = runner.metrics.registry
    assert registry.get_sample_value("seqrec_learner_invalid_events_total", {"reason": Reason.UNPARSEABLE}) == 5
    assert registry.get_sample_value("seqrec_learner_events_total") == 4


def test_unreachable_broker_is_retried_until_stopped(tmp_path, caplog):
    runner = make_runner(tmp_path)
    timer = threading.Timer(STOP_AFTER_S, runner.stop_event.set)
    timer.start()
    with caplog.at_level(logging.WARNING, logger="online_learning.runner"):
        summary = runner.run()
    timer.join()
    assert summary.records_this_run == 0
    assert any("connecting to Kafka failed (attempt 1)" in message for message in caplog.messages)


def test_checkpoint_round_trip(tmp_path):
    learner = PrequentialLearner()
    learner.process("s1", "a", T0_MS)
    learner.process("s1", "b", T0_MS + 1_000)
    save_checkpoint(tmp_path, Checkpoint("events", learner, {0: 2, 3: 7}, {Reason.UNPARSEABLE: 1}, 4))
    loaded = load_checkpoint(tmp_path, "events")
    assert loaded.offsets == {0: 2, 3: 7}
    assert loaded.invalid_by_reason == {Reason.UNPARSEABLE: 1}
    assert loaded.snapshot_version == 4
    assert loaded.records_consumed == 3
    assert loaded.learner.state.context("s1").recent_items == ("a", "b")


def test_checkpoint_of_other_topic_is_rejected(tmp_path):
    save_checkpoint(tmp_path, Checkpoint("events", PrequentialLearner()))
    with pytest.raises(CheckpointError, match="belongs to topic 'events', not 'other'"):
        load_checkpoint(tmp_path, "other")


def test_damaged_checkpoint_is_rejected(tmp_path):
    (tmp_path / "learner-checkpoint.pkl").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be unpickled"):
        load_checkpoint(tmp_path, "events")


def test_config_rejects_zero_interval():
    with pytest.raises(ValueError, match="checkpoint_interval_events must be at least 1"):
        LearnerRunConfig(checkpoint_interval_events=0)
