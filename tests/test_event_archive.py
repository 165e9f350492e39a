"""The event archive against a real Kafka broker, with real Parquet files."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from types import SimpleNamespace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from pipelines.event_archive import ArchiveConfig, EventArchiver, decode_record, run
from seqrec.archive import ARCHIVE_SCHEMA, ArchiveFileName, list_archive_files, partition_folder, read_archive
from seqrec.events import FIELD_NAMES, Event, InvalidEvent, Reason
from seqrec.publisher import EventPublisher, PublisherSettings
from tests.kafka_helpers import create_topics, read_topic, unique_topic

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
DAY1, DAY2, DAY3 = date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11)
START = datetime(2024, 3, 9, 12, 0, tzinfo=timezone.utc)
"""Event time of the first generated event; event k happens k * EVENT_SPACING later."""
EVENT_SPACING = timedelta(minutes=12)
LAST_MS_OF_DAY1 = int(datetime(2024, 3, 9, 23, 59, 59, 999_000, tzinfo=timezone.utc).timestamp() * 1000)
MAX_IDLE = timedelta(seconds=4)
FILE_WAIT = timedelta(seconds=30)
EXIT_WAIT = timedelta(seconds=60)

VALID_SHAPE = '{"event_id":"%s","session_id":"s-bad","item_id":"i1","event_type":"%s","event_time":%s}'
INVALID_RECORDS = [
    (b"not json", "unparseable"),
    (b'{"session_id":"s1"}', "missing_field"),
    ((VALID_SHAPE % ("bad-type", "jump", "1710000000000")).encode(), "unknown_event_type"),
    ((VALID_SHAPE % ("bad-digits", "view", "9" * 5000)).encode(), "unparseable"),
    ((VALID_SHAPE % ("\\ud800", "view", "1710000000000")).encode(), "unparseable"),
    (b'{"event_id":"big-price","session_id":"s1","item_id":"i1","event_type":"view",'
     b'"event_time":1710000000000,"price":1' + b"0" * 400 + b"}", "invalid_price"),
    (b"[" * 100_000 + b"]" * 100_000, "unparseable"),
    (None, "unparseable"),
]
"""(raw value, expected reason) pairs, where a None value is a tombstone."""
HUGE_PRICE_RECORD = INVALID_RECORDS[5][0]


def make_events(count: int) -> list[Event]:
    """Events from START on, one every EVENT_SPACING, over 12 sessions, with some optional fields unset."""
    events = []
    for k in range(count):
        event_time = START + k * EVENT_SPACING
        events.append(Event(
            event_id=f"e{k:04d}",
            session_id=f"s{k % 12}",
            item_id=f"i{k % 37}",
            event_type=("view", "click", "add_to_cart", "purchase")[k % 4],
            event_time=int(event_time.timestamp() * 1000),
            user_id=None if k % 3 == 0 else f"u{k % 12}",
            category=None if k % 5 == 0 else f"c{k % 7}",
            price=None if k % 4 == 0 else round(1.25 * k, 2),
        ))
    return events


def publish(bootstrap: str, topic: str, events: list[Event]) -> None:
    publisher = EventPublisher(PublisherSettings(bootstrap, events_topic=topic))
    for event in events:
        publisher.send_event(event)
    publisher.close()
    assert publisher.counts.delivered[topic] == len(events)


def publish_raw(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [producer.send(topic, key=f"raw-{i}".encode(), value=value) for i, value in enumerate(values)]
    producer.flush()
    producer.close()
    assert all(future.succeeded() for future in futures)


def archive_config(bootstrap: str, topic: str, root: Path, **overrides) -> ArchiveConfig:
    config = ArchiveConfig(
        bootstrap_servers=bootstrap,
        topic=topic,
        dead_letter_topic=f"{topic}-dead-letter",
        group_id=f"{topic}-archive",
        root=root,
        max_records=20,
    )
    return dataclasses.replace(config, **overrides)


def rows(frame) -> list[dict]:
    """Rows of a read_archive frame as event dicts sorted by event_id, with NaN prices as None."""
    records = []
    for record in frame.to_dict("records"):
        price = record["price"]
        record["price"] = None if isinstance(price, float) and math.isnan(price) else price
        records.append(record)
    return sorted(records, key=lambda record: record["event_id"])


def expected_rows(events: list[Event]) -> list[dict]:
    return sorted((event.to_dict() for event in events), key=lambda record: record["event_id"])


def event_day(event: Event) -> date:
    return datetime.fromtimestamp(event.event_time / 1000, tz=timezone.utc).date()


def wait_for_files(root: Path, timeout: timedelta = FILE_WAIT) -> list:
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        files = [f for f in list_archive_files(root) if not f.temporary] if root.exists() else []
        if files:
            return files
        time.sleep(0.2)
    raise AssertionError(f"no archive file appeared under {root} within {timeout}")


@pytest.mark.parametrize(("value", "reason"), INVALID_RECORDS, ids=[reason for _, reason in INVALID_RECORDS])
def test_decode_record_rejects_invalid_records(value, reason):
    with pytest.raises(InvalidEvent) as caught:
        decode_record(value)
    assert caught.value.reason == reason


def test_decode_record_turns_overflow_into_rejection(monkeypatch):
    def overflow(_value):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr("pipelines.event_archive.decode_event", overflow)
    with pytest.raises(InvalidEvent) as caught:
        decode_record(b"{}")
    assert caught.value.reason == Reason.UNPARSEABLE
    assert "OverflowError" in caught.value.message


def test_archiver_buffers_huge_price_as_rejected(tmp_path):
    archiver = EventArchiver(archive_config("127.0.0.1:1", "events", tmp_path))
    record = SimpleNamespace(topic="events", partition=2, offset=7, value=HUGE_PRICE_RECORD)

    archiver._add(record)

    buffer = archiver._buffers[2]
    assert [(source, error.reason) for source, error, _ in buffer.rejected] == [("events/2@7", Reason.INVALID_PRICE)]
    assert buffer.rejected[0][2] == HUGE_PRICE_RECORD
    assert dict(buffer.events) == {}
    assert archiver.counters.consumed == 1


@pytest.fixture(scope="module")
def archived(kafka_broker, tmp_path_factory):
    """One archive run over 301 valid events on three dates and 7 invalid records."""
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("archive")
    config = archive_config(bootstrap, topic, tmp_path_factory.mktemp("archive"), max_records=25)
    create_topics(bootstrap, topic, config.dead_letter_topic, partitions=4)

    events = make_events(300)
    events.append(Event("e-last-ms", "s1", "i1", "view", LAST_MS_OF_DAY1))
    publish(bootstrap, topic, events[:150])
    publish_raw(bootstrap, topic, [value for value, _ in INVALID_RECORDS])
    publish(bootstrap, topic, events[150:])

    counters = run(config, threading.Event(), max_idle=MAX_IDLE)
    return config, events, counters


def test_archive_contains_only_valid_events(archived):
    config, events, _ = archived

    assert rows(read_archive(config.root)) == expected_rows(events)


def test_archive_folders_match_event_dates(archived):
    config, events, _ = archived
    files = list(list_archive_files(config.root))

    folders = {path.name for path in config.root.iterdir()}
    assert folders == {partition_folder(DAY1), partition_folder(DAY2), partition_folder(DAY3)}
    assert Counter(event_day(event) for event in events) == {DAY1: 61, DAY2: 120, DAY3: 120}
    assert not [f.path for f in files if f.temporary]
    for archive_file in files:
        table = pq.read_table(archive_file.path)
        assert table.schema.equals(ARCHIVE_SCHEMA), archive_file.path
        days = {datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date() for ms in table["event_time"].to_pylist()}
        assert days == {archive_file.day}, archive_file.path


def test_archive_file_names_cover_disjoint_offsets(archived):
    config, _, _ = archived
    files = list(list_archive_files(config.root))
    folders_per_name = Counter(f.name for f in files)

    # A buffer that crosses midnight gives one file per date, under the same name.
    assert max(folders_per_name.values()) == 2
    for partition in {name.partition for name in folders_per_name}:
        ranges = sorted((n.first_offset, n.last_offset) for n in folders_per_name if n.partition == partition)
        for (_, previous_last), (next_first, _) in zip(ranges, ranges[1:]):
            assert previous_last < next_first, (partition, ranges)


def test_archive_dead_letters_invalid_records(archived, kafka_broker):
    config, _, _ = archived
    records = read_topic(kafka_broker.bootstrap_servers, config.dead_letter_topic, expected=len(INVALID_RECORDS))
    letters = [json.loads(record.value) for record in records]

    assert Counter(letter["reason"] for letter in letters) == Counter(reason for _, reason in INVALID_RECORDS)
    for record, letter in zip(records, letters):
        assert re.fullmatch(rf"{config.topic}/[0-3]@\d+", letter["source"]), letter["source"]
        assert record.key.decode() == letter["source"]
    assert "not json" in {letter["raw"] for letter in letters}


def test_archive_counters_reconcile(archived):
    config, events, counters = archived

    assert counters.consumed == len(events) + len(INVALID_RECORDS)
    assert counters.archived == len(events)
    assert counters.dead_lettered == Counter(reason for _, reason in INVALID_RECORDS)
    assert counters.released == 0
    assert counters.files_written == len(list(list_archive_files(config.root)))
    assert counters.reconciles()


def test_archive_restart_reads_nothing_new(archived):
    config, events, _ = archived
    before = sorted(f.path for f in list_archive_files(config.root))

    counters = run(config, threading.Event(), max_idle=MAX_IDLE)

    assert counters.consumed == 0
    assert sorted(f.path for f in list_archive_files(config.root)) == before
    assert rows(read_archive(config.root)) == expected_rows(events)


def test_read_archive_filters_dates(archived):
    config, events, _ = archived

    def expected(*days: date) -> list[dict]:
        return expected_rows([event for event in events if event_day(event) in days])

    assert rows(read_archive(config.root, DAY2, DAY2)) == expected(DAY2)
    assert rows(read_archive(config.root, start_date=DAY2)) == expected(DAY2, DAY3)
    assert rows(read_archive(config.root, end_date=DAY1)) == expected(DAY1)
    assert rows(read_archive(config.root, DAY1, DAY3)) == expected(DAY1, DAY2, DAY3)
    assert len(read_archive(config.root, date(2024, 3, 12))) == 0


def test_read_archive_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="start_date 2024-03-11 is after end_date 2024-03-09"):
        read_archive(tmp_path, DAY3, DAY1)
    with pytest.raises(TypeError, match="datetime.date"):
        read_archive(tmp_path, START)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_archive(tmp_path / "missing")


def test_read_archive_empty_root(tmp_path):
    frame = read_archive(tmp_path)

    assert len(frame) == 0
    assert list(frame.columns) == list(FIELD_NAMES)


class SimulatedCrash(Exception):
    """Raised in place of an offset commit, as if the process died right before it."""


def test_crash_before_commit_archives_once(kafka_broker, tmp_path, monkeypatch, caplog):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("archive-crash")
    config = archive_config(bootstrap, topic, tmp_path / "archive")
    create_topics(bootstrap, topic, config.dead_letter_topic, partitions=4)
    events = make_events(160)
    publish(bootstrap, topic, events)

    real_commit = EventArchiver._commit
    commits = []
    uncommitted_names: list[ArchiveFileName] = []

    def commit_twice_then_crash(archiver, buffers):
        if len(commits) == 2:
            uncommitted_names.extend(buffer.file_name for buffer in buffers)
            raise SimulatedCrash()
        commits.append(buffers)
        real_commit(archiver, buffers)

    monkeypatch.setattr(EventArchiver, "_commit", commit_twice_then_crash)
    with pytest.raises(SimulatedCrash):
        run(config, threading.Event(), max_idle=MAX_IDLE)
    monkeypatch.undo()

    on_disk = {f.name for f in list_archive_files(config.root)}
    assert uncommitted_names and set(uncommitted_names) <= on_disk

    # Smaller buffers after the restart give other file names, so a leftover that
    # stayed would duplicate events instead of being overwritten.
    with caplog.at_level(logging.WARNING, logger="pipelines.event_archive"):
        counters = run(dataclasses.replace(config, max_records=7), threading.Event(), max_idle=MAX_IDLE)

    deleted = [message for message in caplog.messages if message.startswith("deleting uncommitted archive file")]
    for name in uncommitted_names:
        assert any(str(name) in message for message in deleted), name
    archived_rows = rows(read_archive(config.root))
    assert len({row["event_id"] for row in archived_rows}) == len(archived_rows)
    assert archived_rows == expected_rows(events)
    assert counters.reconciles()


def test_leftover_files_deleted_on_start(kafka_broker, tmp_path, caplog):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("archive-leftover")
    config = archive_config(bootstrap, topic, tmp_path / "archive")
    create_topics(bootstrap, topic, config.dead_letter_topic, partitions=4)
    events = make_events(40)
    publish(bootstrap, topic, events)
    run(config, threading.Event(), max_idle=MAX_IDLE)

    # Copy the last file of a partition to names past its committed offset, as a
    # crash between rename and commit (or during the write) would leave them.
    last = max((f for f in list_archive_files(config.root) if not f.temporary), key=lambda f: f.name)
    beyond = ArchiveFileName(last.name.partition, last.name.last_offset + 1, last.name.last_offset + 20)
    leftover = last.path.parent / str(beyond)
    temp_leftover = last.path.parent / beyond.temp_name
    shutil.copy(last.path, leftover)
    shutil.copy(last.path, temp_leftover)
    assert rows(read_archive(config.root)) != expected_rows(events)

    with caplog.at_level(logging.WARNING, logger="pipelines.event_archive"):
        counters = run(config, threading.Event(), max_idle=MAX_IDLE)

    assert not leftover.exists()
    assert not temp_leftover.exists()
    assert last.path.exists()
    assert any(str(leftover) in message for message in caplog.messages)
    assert counters.consumed == 0
    assert rows(read_archive(config.root)) == expected_rows(events)


def test_archive_rolls_files_by_age(kafka_broker, tmp_path, caplog):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("archive-age")
    config = archive_config(
        bootstrap, topic, tmp_path / "archive",
        max_records=50_000, max_age=timedelta(seconds=1), summary_interval=timedelta(seconds=1),
    )
    create_topics(bootstrap, topic, config.dead_letter_topic, partitions=4)
    events = make_events(30)
    publish(bootstrap, topic, events)
    stop = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.update(counters=run(config, stop)))

    with caplog.at_level(logging.INFO, logger="pipelines.event_archive"):
        worker.start()
        try:
            wait_for_files(config.root)
            deadline = time.monotonic() + FILE_WAIT.total_seconds()
            while rows(read_archive(config.root)) != expected_rows(events) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)  # long enough for one summary line
            assert worker.is_alive()
        finally:
            stop.set()
            worker.join(EXIT_WAIT.total_seconds())

    assert not worker.is_alive()
    assert rows(read_archive(config.root)) == expected_rows(events)
    assert result["counters"].archived == len(events)
    assert any(message.startswith("event archiver: consumed 30") for message in caplog.messages)


def test_main_stops_on_sigterm(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("archive-cli")
    root = tmp_path / "archive"
    create_topics(bootstrap, topic, f"{topic}-dead-letter", partitions=4)
    events = make_events(30)
    publish(bootstrap, topic, events)

    process = subprocess.Popen(
        [
            sys.executable, "-m", "pipelines.event_archive",
            "--bootstrap-servers", bootstrap, "--root", str(root), "--topic", topic,
            "--dead-letter-topic", f"{topic}-dead-letter", "--group-id", f"{topic}-archive",
            "--max-age-s", "1",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_files(root)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=EXIT_WAIT.total_seconds())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, output
    assert "event archiver stopped: consumed 30, archived 30" in output
    assert rows(read_archive(root)) == expected_rows(events)
