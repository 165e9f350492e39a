"""The learner process without a broker: bad records are counted and skipped, Kafka outages are retried."""

from __future__ import annotations

import json
import logging
import math
import operator
import pickle
import threading
from pathlib import Path

import pytest

from cli.main import main as cli_main
from online_learning.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from online_learning.config import LearnerRunConfig
from online_learning.learner import PrequentialLearner
from online_learning.records import decode_record
from online_learning.runner import LearnerRunner
from seqrec.events import InvalidEvent, Reason
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
    (valid(9)[:-1] + b', "price": 1' + b"0" * 400 + b"}", Reason.INVALID_PRICE),   # beyond the float range
    (valid(9).replace(str(T0_MS + 9_000).encode(), b"1" + b"0" * 400), Reason.TIME_IN_FUTURE),
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


@pytest.mark.parametrize(("value", "reason"), BAD_RECORDS, ids=[str(n) for n in range(len(BAD_RECORDS))])
def test_decode_record_rejects_bad_records(value, reason):
    with pytest.raises(InvalidEvent) as caught:
        decode_record(value)
    assert caught.value.reason == reason


def test_decode_record_turns_overflow_into_rejection(monkeypatch):
    def overflow(_value):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr("online_learning.records.decode_event", overflow)
    with pytest.raises(InvalidEvent) as caught:
        decode_record(b"{}")
    assert caught.value.reason == Reason.UNPARSEABLE
    assert "OverflowError" in caught.value.message


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


class _RaisesOnLoad:
    """Unpickles by calling ``function(*arguments)``, which raises, as a damaged but well-formed pickle can."""

    def __init__(self, function, arguments):
        self.function = function
        self.arguments = arguments

    def __reduce__(self):
        return self.function, self.arguments


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_RaisesOnLoad(operator.getitem, ({}, "checkpoint")), "KeyError"),
        (_RaisesOnLoad(math.exp, (1_000,)), "OverflowError"),
        (_RaisesOnLoad(int, ("not a number",)), "ValueError"),
        ({"format": 1, "checkpoint": [1, 2]}, "contains list, not a learner checkpoint"),
        ({"format": 1}, "contains NoneType, not a learner checkpoint"),
    ],
    ids=["KeyError", "OverflowError", "ValueError", "wrong-type", "no-checkpoint"],
)
def test_damaged_checkpoint_raises_checkpoint_error(tmp_path, content, expected):
    (tmp_path / "learner-checkpoint.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(tmp_path, "events")


@pytest.mark.parametrize("error", [MemoryError(), RecursionError("maximum recursion depth exceeded")])
def test_checkpoint_resource_errors_raise_checkpoint_error(tmp_path, monkeypatch, error):
    save_checkpoint(tmp_path, Checkpoint("events", PrequentialLearner()))

    def fail(_data):
        raise error

    monkeypatch.setattr(pickle, "loads", fail)
    with pytest.raises(CheckpointError, match=type(error).__name__):
        load_checkpoint(tmp_path, "events")


def test_unreadable_checkpoint_raises_checkpoint_error(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, Checkpoint("events", PrequentialLearner()))

    def deny(_self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(CheckpointError, match="cannot be read .PermissionError"):
        load_checkpoint(tmp_path, "events")


def test_learn_command_reports_damaged_checkpoint_in_one_line(tmp_path, capsys):
    checkpoint_dir = tmp_path / "checkpoint"
    checkpoint_dir.mkdir()
    (checkpoint_dir / "learner-checkpoint.pkl").write_bytes(pickle.dumps(_RaisesOnLoad(math.exp, (1_000,))))
    argv = [
        "learn", "--bootstrap-servers", f"127.0.0.1:{free_port()}",
        "--checkpoint-dir", str(checkpoint_dir), "--snapshot-dir", str(tmp_path / "snapshots"),
    ]
    with pytest.raises(SystemExit) as caught:
        cli_main(argv)
    message = str(caught.value.code)
    assert message.startswith("seqrec learn: error: checkpoint ")
    assert "OverflowError" in message
    assert "move it away" in message
    assert "\n" not in message
    assert "Traceback" not in capsys.readouterr().err


def test_config_rejects_zero_interval():
    with pytest.raises(ValueError, match="checkpoint_interval_events must be at least 1"):
        LearnerRunConfig(checkpoint_interval_events=0)
