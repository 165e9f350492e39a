"""Replay into a real Kafka broker: every row lands on exactly one topic, with exact contents."""

from __future__ import annotations

import json
import random
from collections import Counter
from decimal import Decimal

import pytest

from cli.main import main as seqrec_main
from ingest.replay import ReplaySettings, replay
from seqrec.events import Event, decode_event
from seqrec.publisher import PublisherSettings
from tests.kafka_helpers import create_topics, read_topic, unique_topic

pytestmark = pytest.mark.integration

BASE_SECONDS = Decimal("1411462780.513")  # 2014-09-23T09:39:40.513Z
SESSIONS = 100
EVENTS_PER_SESSION = 10
GOOD_ROWS = SESSIONS * EVENTS_PER_SESSION

# (reason the row must be rejected with, how many, a row of that kind)
BAD_ROWS = [
    ("unparseable", 25, lambda n: f"only-two-columns\t{n}"),
    ("unparseable", 25, lambda n: f"bad{n}\t214\t3\tnot-a-time"),
    ("empty_id", 20, lambda n: f"bad{n}\t\t3\t1411462780.000"),
    ("event_time_too_early", 15, lambda n: f"bad{n}\t214\t3\t946684799.999"),
    ("event_time_in_future", 15, lambda n: f"bad{n}\t214\t3\t4102444800.000"),
]


def write_fixture(path):
    """Write a session-rec TSV of 1,000 valid rows and 100 malformed ones, shuffled.

    Returns the expected events by event id and the expected rejections by line.
    """
    rng = random.Random(7)
    good = []
    for s in range(SESSIONS):
        for position in range(EVENTS_PER_SESSION):
            seconds = BASE_SECONDS + s * 17 + position * Decimal("3.25")
            good.append((f"sess{s}", f"item{rng.randrange(50)}", str(s % 5), seconds))
    bad = [(reason, make(n)) for reason, count, make in BAD_ROWS for n in range(count)]
    rows = [("good", row) for row in good] + [("bad", row) for row in bad]
    rng.shuffle(rows)

    lines = ["SessionId\tItemId\tCatId\tTime"]
    expected_events = {}
    expected_rejects = {}
    for kind, row in rows:
        line_number = len(lines) + 1
        if kind == "good":
            session, item, category, seconds = row
            lines.append(f"{session}\t{item}\t{category}\t{seconds}")
            event_id = f"{path.stem}:{line_number}"
            expected_events[event_id] = {
                "event_id": event_id,
                "session_id": session,
                "item_id": item,
                "event_type": "click",
                "event_time": int(seconds * 1000),
                "user_id": None,
                "category": category,
                "price": None,
            }
        else:
            reason, text = row
            lines.append(text)
            expected_rejects[line_number] = (reason, text)
    path.write_text("\n".join(lines) + "\n")
    return expected_events, expected_rejects


def check_topics(bootstrap, events_topic, dead_letter_topic, expected_events, expected_rejects):
    records = read_topic(bootstrap, events_topic, len(expected_events))
    assert len(records) == GOOD_ROWS
    events = {}
    for record in records:
        event = decode_event(record.value, now_ms=2_000_000_000_000)
        assert record.key == event.session_id.encode()
        events[event.event_id] = event.to_dict()
    assert events == expected_events

    # Every partition receives its sessions in event-time order.
    by_partition = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(json.loads(record.value)["event_time"])
    for times in by_partition.values():
        assert times == sorted(times)

    dead = read_topic(bootstrap, dead_letter_topic, len(expected_rejects))
    assert len(dead) == len(expected_rejects)
    seen = {}
    for record in dead:
        body = json.loads(record.value)
        seen[body["line"]] = (body["reason"], body["raw"])
        assert body["message"]
        assert body["source"] == "clicks.tsv"
    assert seen == expected_rejects


def test_replay_splits_good_and_bad_rows(kafka_broker, tmp_path):
    path = tmp_path / "clicks.tsv"
    expected_events, expected_rejects = write_fixture(path)
    events_topic, dead_letter_topic = unique_topic("events"), unique_topic("dead")
    create_topics(kafka_broker.bootstrap_servers, events_topic, dead_letter_topic)

    summary = replay(
        ReplaySettings(
            path=path,
            progress=False,
            publisher=PublisherSettings(
                bootstrap_servers=kafka_broker.bootstrap_servers,
                events_topic=events_topic,
                dead_letter_topic=dead_letter_topic,
            ),
        )
    )

    assert summary.read == 1100
    assert summary.valid == 1000
    assert summary.produced == 1000
    assert summary.dead_lettered == 100
    assert summary.rejected == Counter({"unparseable": 50, "empty_id": 20, "event_time_too_early": 15, "event_time_in_future": 15})
    assert summary.reconciled
    check_topics(kafka_broker.bootstrap_servers, events_topic, dead_letter_topic, expected_events, expected_rejects)


def test_replay_command_prints_summary(kafka_broker, tmp_path, capsys):
    path = tmp_path / "clicks.tsv"
    expected_events, expected_rejects = write_fixture(path)
    events_topic, dead_letter_topic = unique_topic("events"), unique_topic("dead")
    create_topics(kafka_broker.bootstrap_servers, events_topic, dead_letter_topic)

    code = seqrec_main([
        "replay", str(path), "--no-progress",
        "--bootstrap-servers", kafka_broker.bootstrap_servers,
        "--topic", events_topic, "--dead-letter-topic", dead_letter_topic,
    ])

    out = capsys.readouterr().out
    assert code == 0
    assert "read:          1100" in out
    assert "produced:      1000 of 1000 valid" in out
    assert "rejected:      100 (dead-lettered: 100)" in out
    assert "  empty_id: 20" in out
    assert "counts reconcile" in out
    check_topics(kafka_broker.bootstrap_servers, events_topic, dead_letter_topic, expected_events, expected_rejects)


def test_replay_speed_spaces_events_in_time(kafka_broker, tmp_path):
    path = tmp_path / "slow.tsv"
    # Two events 3 s apart in event time, replayed at 10x, take at least 0.3 s.
    path.write_text("SessionId\tItemId\tTime\ns\ta\t1411462780.000\ns\tb\t1411462783.000\n")
    topic, dead = unique_topic("events"), unique_topic("dead")
    create_topics(kafka_broker.bootstrap_servers, topic, dead)
    summary = replay(
        ReplaySettings(
            path=path, speed=10, progress=False,
            publisher=PublisherSettings(kafka_broker.bootstrap_servers, topic, dead),
        )
    )
    assert summary.produced == 2
    assert summary.seconds >= 0.3
    assert [r.value for r in read_topic(kafka_broker.bootstrap_servers, topic, 2)] == [
        Event("slow:2", "s", "a", "click", 1411462780000).to_json(),
        Event("slow:3", "s", "b", "click", 1411462783000).to_json(),
    ]
