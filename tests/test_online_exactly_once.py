"""``seqrec learn`` against a real broker: SIGKILL between checkpoints, restart, and every event learned exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from online_learning.checkpoint import load_checkpoint
from online_learning.learner import LearnerConfig, PrequentialLearner
from online_learning.snapshots import read_latest
from seqrec.events import Reason
from stack.process import free_port
from tests.kafka_helpers import create_topics, unique_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SEQREC = Path(sys.executable).with_name("seqrec")
T0_MS = 1_411_462_780_000
EVENT_SPACING_MS = 1_000
FIRST_PHASE_RECORDS = 1_000
SECOND_PHASE_RECORDS = 700
CHECKPOINT_INTERVAL_EVENTS = 64
INVALID_EVERY = 97
"""Every 97th record is invalid, cycling through the kinds below."""
INVALID_RECORDS = (
    (b"not json at all", Reason.UNPARSEABLE),
    (json.dumps({"session_id": "s1", "item_id": "i1"}).encode(), Reason.MISSING_FIELD),
    (None, Reason.UNPARSEABLE),
    (json.dumps({"event_id": "e", "session_id": "s", "item_id": "i", "event_type": "hover",
                 "event_time": T0_MS}).encode(), Reason.UNKNOWN_EVENT_TYPE),
)
METRICS_TIMEOUT_S = 120
EXIT_TIMEOUT_S = 180
POLL_INTERVAL_S = 0.2


def record(n: int) -> tuple[bytes | None, str | None, tuple[str, str, int] | None]:
    """Return record ``n`` as (value, invalid reason, (session, item, event time) if valid)."""
    if n % INVALID_EVERY == INVALID_EVERY - 1:
        value, reason = INVALID_RECORDS[(n // INVALID_EVERY) % len(INVALID_RECORDS)]
        return value, reason, None
    session = f"s{n // 6}"
    item = f"i{(n * 7 + n // 6) % 37}"
    event_time = T0_MS + n * EVENT_SPACING_MS
    event = {"event_id": f"e{n}", "session_id": session, "item_id": item, "event_type": "view", "event_time": event_time}
    return json.dumps(event).encode(), None, (session, item, event_time)


def produce(bootstrap: str, topic: str, numbers: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for n in numbers:
            value, _, _ = record(n)
            producer.send(topic, key=f"k{n}".encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def start_learner(bootstrap: str, topic: str, tmp_path: Path, metrics_port: int, *extra: str) -> subprocess.Popen:
    command = [
        str(SEQREC), "learn",
        "--bootstrap-servers", bootstrap,
        "--topic", topic,
        "--checkpoint-dir", str(tmp_path / "checkpoint"),
        "--snapshot-dir", str(tmp_path / "snapshots"),
        "--checkpoint-interval-events", str(CHECKPOINT_INTERVAL_EVENTS),
        "--checkpoint-interval-s", "3600",
        "--snapshot-interval-s", "0.5",
        "--log-interval-s", "1",
        "--metrics-port", str(metrics_port),
        *extra,
    ]
    log = open(tmp_path / f"learner-{metrics_port}.log", "wb")
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def scrape_records(port: int) -> int | None:
    """Return valid plus invalid records this process consumed, from its Prometheus endpoint; None if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith(("seqrec_learner_events_total ", "seqrec_learner_invalid_events_total{")):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def wait_for_records(process: subprocess.Popen, port: int, expected: int) -> None:
    deadline = time.monotonic() + METRICS_TIMEOUT_S
    consumed = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"learner exited early with code {process.returncode}"
        consumed = scrape_records(port)
        if consumed == expected:
            return
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"learner consumed {consumed} records, expected {expected} within {METRICS_TIMEOUT_S} s")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def reference_learner(total: int) -> tuple[PrequentialLearner, Counter]:
    learner = PrequentialLearner(LearnerConfig())
    invalid = Counter()
    for n in range(total):
        _, reason, event = record(n)
        if event is None:
            invalid[reason] += 1
        else:
            learner.process(*event)
    return learner, invalid


@pytest.mark.parametrize("partitions", [1, 3])
def test_kill_and_restart_learns_each_event_once(kafka_broker, tmp_path, partitions):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("learn-events")
    # Event times grow with the record number and every record is in Kafka before the
    # learner reads it, so the event-time merge of the partitions learns the events
    # in record order, as the reference learner does.
    create_topics(bootstrap, topic, partitions=partitions)
    total = FIRST_PHASE_RECORDS + SECOND_PHASE_RECORDS
    produce(bootstrap, topic, range(FIRST_PHASE_RECORDS))

    first_port = free_port()
    first = start_learner(bootstrap, topic, tmp_path, first_port)
    try:
        wait_for_records(first, first_port, FIRST_PHASE_RECORDS)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL

    # The records after the last checkpoint were learned, then lost with the process.
    killed_at = load_checkpoint(tmp_path / "checkpoint", topic)
    checkpointed = FIRST_PHASE_RECORDS // CHECKPOINT_INTERVAL_EVENTS * CHECKPOINT_INTERVAL_EVENTS
    assert checkpointed < FIRST_PHASE_RECORDS
    assert killed_at.records_consumed == checkpointed
    assert sum(killed_at.offsets.values()) == checkpointed

    produce(bootstrap, topic, range(FIRST_PHASE_RECORDS, total))
    second_port = free_port()
    second = start_learner(bootstrap, topic, tmp_path, second_port, "--max-idle-s", "3")
    assert second.wait(timeout=EXIT_TIMEOUT_S) == 0

    final = load_checkpoint(tmp_path / "checkpoint", topic)
    expected, expected_invalid = reference_learner(total)
    assert sum(final.offsets.values()) == total
    assert final.offsets == end_offsets(bootstrap, topic)
    assert final.records_consumed == total
    assert final.learner.counters == expected.counters
    assert final.invalid_by_reason == dict(expected_invalid)
    assert final.learner.model.weights == expected.model.weights
    assert final.learner.model.intercept == expected.model.intercept
    assert final.learner.recall.get() == expected.recall.get()
    assert final.learner.mrr.get() == expected.mrr.get()

    snapshot = read_latest(tmp_path / "snapshots")
    assert snapshot.events_learned == expected.counters.events_learned
    assert snapshot.version == final.snapshot_version
