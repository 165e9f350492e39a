"""Archive every valid event from Kafka to Parquet files, partitioned by UTC event date.

    python -m pipelines.event_archive --bootstrap-servers 127.0.0.1:9092 --root data/archive

Flink 2.2 has no Parquet format on Maven Central, so this Kafka consumer
writes the offline archive that the nightly training reads. The layout is
described in :mod:`seqrec.archive`. The archiver buffers records per Kafka
partition and rolls a buffer into files when it contains ``max_records``
records, when it is ``max_age`` old, and on shutdown.

Each valid event is archived once. A flush writes the buffer's files (one per
event date, named by partition and offset range), renames them into place,
sends the invalid records to the dead-letter topic and only then commits the
offset after the buffer's last record. When this consumer is assigned a
partition, it deletes every file of that partition whose first offset is at or
after the committed offset. Such files were written but never committed, so
without the deletion their events would be archived a second time. Dead-letter
records are delivered at least once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from pipelines.archive_settings import (
    MAX_AGE,
    POLL_TIMEOUT,
    SUMMARY_INTERVAL,
    SESSION_TIMEOUT,
    HEARTBEAT_INTERVAL,
    RETRY_BACKOFF_INITIAL,
    RETRY_BACKOFF_MAX,
    INVALID_LOG_INTERVAL,
    KAFKA_REQUEST_TIMEOUT,
    CLOSE_TIMEOUT,
    ArchiveConfig,
    ArchiveCounters,
)
from pipelines.writer_counters import RateLimitedLog
from seqrec import dead_letter
from seqrec.archive import ArchiveFileName, event_date, list_archive_files, write_archive_file
from seqrec.events import Event, InvalidEvent, Reason, decode_event

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ArchiverStopped(Exception):
    """The stop event was set while a call was being retried."""


class _CommitRejected(Exception):
    """The group coordinator rejected the commit because this consumer no longer owns the partitions."""


@dataclass
class _PartitionBuffer:
    """Records of one partition read since its last flush, as a contiguous offset range."""

    partition: int
    first_offset: int
    last_offset: int
    started: float
    """``time.monotonic()`` when the first record arrived."""
    events: dict[date, list[Event]] = field(default_factory=lambda: defaultdict(list))
    rejected: list[tuple[str, InvalidEvent, bytes]] = field(default_factory=list)
    """(source, error, raw value) of each invalid record."""

    @property
    def size(self) -> int:
        return self.last_offset - self.first_offset + 1

    @property
    def file_name(self) -> ArchiveFileName:
        return ArchiveFileName(self.partition, self.first_offset, self.last_offset)


def _ms(duration: timedelta) -> int:
    return int(duration / timedelta(milliseconds=1))


def decode_record(value: bytes | None) -> Event:
    """Decode and validate a Kafka message value, raising :class:`InvalidEvent` for any bad input.

    Besides the checks of :func:`seqrec.events.decode_event`, this rejects
    tombstones, JSON that Python's parser rejects with errors other than
    ``JSONDecodeError`` (integers over CPython's default 4,300 digits, nesting too deep to
    parse), any OverflowError from a number out of range, and strings that
    cannot be stored as UTF-8 (lone surrogates).
    """
    if value is None:
        raise InvalidEvent(Reason.UNPARSEABLE, "message has no value (a tombstone), but an event needs a JSON object")
    try:
        event = decode_event(value)
    except InvalidEvent:
        raise
    except (ValueError, RecursionError, OverflowError) as error:
        raise InvalidEvent(
            Reason.UNPARSEABLE, f"message cannot be decoded as an event ({type(error).__name__}: {error})"
        ) from error
    for name, text in event.to_dict().items():
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise InvalidEvent(
                    Reason.UNPARSEABLE, f"field {name!r} is not valid UTF-8 ({error}); send UTF-8 text", name
                ) from error
    return event


class _TrackAssignments(ConsumerRebalanceListener):
    def __init__(self, archiver: EventArchiver):
        self._archiver = archiver

    def on_partitions_revoked(self, revoked):
        self._archiver._on_revoked(revoked)

    def on_partitions_assigned(self, assigned):
        self._archiver._on_assigned(assigned)


class EventArchiver:
    """A long-running consumer that writes the event archive, as the module docstring describes."""

    def __init__(self, config: ArchiveConfig, counters: ArchiveCounters | None = None):
        self.config = config
        self.counters = counters if counters is not None else ArchiveCounters()
        self._invalid_log = RateLimitedLog(logger, INVALID_LOG_INTERVAL)
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._buffers: dict[int, _PartitionBuffer] = {}
        self._needs_cleanup: set[int] = set()
        """Partitions assigned since the last leftover cleanup."""
        self._last_activity = time.monotonic()

    def run(self, stop_event: threading.Event, max_idle: timedelta | None = None) -> ArchiveCounters:
        """Archive until ``stop_event`` is set or no record arrives for ``max_idle``, then return the counters.

        On either, all buffers are written and committed. Partitions assigned
        count as activity, so ``max_idle`` covers the group join. A flush whose
        calls are still failing when the event is set is abandoned uncommitted,
        and its files are deleted on the next start.
        """
        self._stop = stop_event
        config = self.config
        logger.info(
            "event archiver starting: brokers %s, topic %s, group %s, root %s, max %d records or %s per file",
            config.bootstrap_servers, config.topic, config.group_id, config.root, config.max_records, config.max_age,
        )
        try:
            self._consumer = self._retry(self._create_consumer, "connecting the consumer", KafkaError)
            self._producer = self._retry(self._create_producer, "connecting the dead-letter producer", KafkaError)
            self._loop(max_idle)
            self._flush(list(self._buffers))
        except ArchiverStopped as stopped:
            logger.info("event archiver stopped while %s; uncommitted files are deleted on the next start", stopped)
        except Exception:
            logger.exception("event archiver failed, and the buffered records stay uncommitted")
            raise
        finally:
            self._release(list(self._buffers.values()), "the archiver is stopping")
            self._buffers.clear()
            self._close()
            logger.info("event archiver stopped: %s", self.counters.summary())
        return self.counters

    def _create_consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers.split(","),
            group_id=self.config.group_id,
            client_id="event-archive",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=_ms(self.config.session_timeout),
            heartbeat_interval_ms=_ms(self.config.heartbeat_interval),
        )
        consumer.subscribe(topics=[self.config.topic], listener=_TrackAssignments(self))
        return consumer

    def _create_producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers.split(","),
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=_ms(KAFKA_REQUEST_TIMEOUT),
        )

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=CLOSE_TIMEOUT.total_seconds())

    def _retry(self, action: Callable[[], T], description: str, retryable) -> T:
        """Call ``action`` until it returns, backing off after each ``retryable`` error.

        Raises :class:`ArchiverStopped` once the stop event is set during the retries.
        """
        backoff = RETRY_BACKOFF_INITIAL
        attempt = 1
        while True:
            try:
                return action()
            except retryable as error:
                self.counters.add_retry()
                logger.warning(
                    "%s failed (attempt %d): %s: %s; retrying in %.1f s",
                    description, attempt, type(error).__name__, error, backoff.total_seconds(),
                )
            if self._stop.wait(backoff.total_seconds()):
                raise ArchiverStopped(description)
            backoff = min(backoff * 2, RETRY_BACKOFF_MAX)
            attempt += 1

    def _on_revoked(self, revoked) -> None:
        """Drop the buffers of revoked partitions, because the next owner reads them again from the commit."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.config.topic}
        logger.info("partitions revoked: %s", sorted(partitions))
        self._needs_cleanup -= partitions
        dropped = [self._buffers.pop(partition) for partition in partitions if partition in self._buffers]
        self._release(dropped, "the partition was revoked")

    def _on_assigned(self, assigned) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == self.config.topic}
        logger.info("partitions assigned: %s", sorted(partitions))
        self._needs_cleanup |= partitions
        self._last_activity = time.monotonic()

    def _loop(self, max_idle: timedelta | None) -> None:
        assert self._consumer is not None
        config = self.config
        poll_timeout_ms = _ms(min(POLL_TIMEOUT, config.max_age))
        next_summary = time.monotonic() + config.summary_interval.total_seconds()
        self._last_activity = time.monotonic()
        while not self._stop.is_set():
            polled = self._retry(
                partial(self._consumer.poll, timeout_ms=poll_timeout_ms), f"polling {config.topic}", KafkaError
            )
            # Leftovers go before any record of the same poll can reach a file.
            self._delete_leftovers()
            for records in polled.values():
                for record in records:
                    self._add(record)
                self._last_activity = time.monotonic()
            self._flush_aged()

            now = time.monotonic()
            if now >= next_summary:
                logger.info("event archiver: %s", self.counters.summary())
                next_summary = now + config.summary_interval.total_seconds()
            if max_idle is not None and now - self._last_activity >= max_idle.total_seconds():
                logger.info("no records for %s, stopping", max_idle)
                break

    def _delete_leftovers(self) -> None:
        """Delete the files of newly assigned partitions at or after the offset where reading resumes."""
        if not self._needs_cleanup:
            return
        partitions = sorted(self._needs_cleanup)
        resume = self._retry(
            partial(self._resume_offsets, partitions), f"reading the committed offsets of {partitions}", KafkaError
        )
        self._retry(partial(self._delete_uncommitted_files, resume), "deleting uncommitted archive files", OSError)
        self._needs_cleanup.clear()

    def _delete_uncommitted_files(self, resume: dict[int, int]) -> None:
        """Delete the files whose records will be read again, given the resume offset per partition."""
        for archive_file in list_archive_files(self.config.root):
            name = archive_file.name
            if name.partition not in resume:
                continue
            resume_offset = resume[name.partition]
            if archive_file.temporary or name.first_offset >= resume_offset:
                logger.warning(
                    "deleting uncommitted archive file %s (partition %d resumes at offset %d): "
                    "the archiver stopped between writing it and committing its offsets",
                    archive_file.path, name.partition, resume_offset,
                )
                archive_file.path.unlink(missing_ok=True)
            elif name.last_offset >= resume_offset:
                logger.warning(
                    "archive file %s overlaps the resume offset %d: offsets %d to %d will be archived twice",
                    archive_file.path, resume_offset, resume_offset, name.last_offset,
                )

    def _resume_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Return the offset each partition resumes from, which is the committed one or else the log start."""
        assert self._consumer is not None
        timeout_ms = _ms(KAFKA_REQUEST_TIMEOUT)
        resume: dict[int, int] = {}
        uncommitted: list[TopicPartition] = []
        for partition in partitions:
            tp = TopicPartition(self.config.topic, partition)
            committed = self._consumer.committed(tp, timeout_ms=timeout_ms)
            if committed is None:
                uncommitted.append(tp)
            else:
                resume[partition] = committed
        if uncommitted:
            # With no commit, auto_offset_reset="earliest" resumes at the log start.
            # Files before it hold records that Kafka has already deleted, so they stay.
            for tp, offset in self._consumer.beginning_offsets(uncommitted).items():
                resume[tp.partition] = offset
        return resume

    def _add(self, record) -> None:
        """Buffer one record, and flush its partition when the buffer is full."""
        self.counters.add_consumed()
        buffer = self._buffers.get(record.partition)
        if buffer is None:
            buffer = _PartitionBuffer(record.partition, record.offset, record.offset, time.monotonic())
            self._buffers[record.partition] = buffer
        buffer.last_offset = record.offset
        try:
            event = decode_record(record.value)
        except InvalidEvent as error:
            source = f"{record.topic}/{record.partition}@{record.offset}"
            buffer.rejected.append((source, error, record.value or b""))
            self._invalid_log.warning(error.reason, "rejected record %s: %s", source, error)
        else:
            buffer.events[event_date(event.event_time)].append(event)
        if buffer.size >= self.config.max_records:
            self._flush([record.partition])

    def _flush_aged(self) -> None:
        oldest_start = time.monotonic() - self.config.max_age.total_seconds()
        self._flush([partition for partition, buffer in self._buffers.items() if buffer.started <= oldest_start])

    def _flush(self, partitions: list[int]) -> None:
        """Write, dead-letter and commit the buffers of ``partitions``, and count them once committed."""
        buffers = [self._buffers.pop(partition) for partition in partitions if partition in self._buffers]
        if not buffers:
            return
        written = []
        try:
            for buffer in buffers:
                written.extend(self._write_files(buffer))
            rejected = [entry for buffer in buffers for entry in buffer.rejected]
            if rejected:
                self._send_dead_letters(rejected)
            self._commit(buffers)
        except _CommitRejected as error:
            # NOTE: the partition's new owner may already have run its leftover
            # cleanup, so a crash before these deletions leaves duplicate files.
            # Only a group with more than one archiver can reach this branch.
            logger.warning(
                "offset commit rejected (%s), deleting the %d files just written: %s",
                error, len(written), [str(path) for path in written],
            )
            for path in written:
                path.unlink(missing_ok=True)
            self._rewind(buffers)
            self._release(buffers, "the offset commit was rejected")
            return
        except ArchiverStopped:
            self._release(buffers, "the archiver stopped before the offset commit")
            raise
        self.counters.add_flush(
            archived=sum(len(events) for buffer in buffers for events in buffer.events.values()),
            dead_lettered=[error.reason for buffer in buffers for _, error, _ in buffer.rejected],
            files_written=len(written),
        )

    def _write_files(self, buffer: _PartitionBuffer) -> list[Path]:
        """Write one file per event date of the buffer and return their paths."""
        paths = []
        for day in sorted(buffer.events):
            write = partial(write_archive_file, self.config.root, day, buffer.file_name, buffer.events[day])
            paths.append(self._retry(write, f"writing {buffer.file_name} for {day}", OSError))
        return paths

    def _send_dead_letters(self, rejected: list[tuple[str, InvalidEvent, bytes]]) -> None:
        """Send the invalid records to the dead-letter topic, resending the failed ones until all are stored."""
        producer = self._producer
        assert producer is not None
        remaining = [
            (source.encode(), dead_letter.encode(dead_letter.dead_letter_record(error, raw, source)))
            for source, error, raw in rejected
        ]

        def send_remaining() -> None:
            nonlocal remaining
            topic = self.config.dead_letter_topic
            futures = [producer.send(topic, key=key, value=value) for key, value in remaining]
            producer.flush(timeout=KAFKA_REQUEST_TIMEOUT.total_seconds())
            failed = [(message, future) for message, future in zip(remaining, futures) if not future.succeeded()]
            remaining = [message for message, _ in failed]
            if failed:
                error = failed[0][1].exception
                raise error if isinstance(error, KafkaError) else KafkaError(f"{len(failed)} dead-letter sends failed")

        self._retry(send_remaining, f"sending {len(rejected)} records to {self.config.dead_letter_topic}", KafkaError)

    def _commit(self, buffers: list[_PartitionBuffer]) -> None:
        """Commit the offset after each buffer's last record, or raise :class:`_CommitRejected` if not owned."""
        consumer = self._consumer
        assert consumer is not None
        offsets = {
            TopicPartition(self.config.topic, buffer.partition): OffsetAndMetadata(buffer.last_offset + 1, "", -1)
            for buffer in buffers
        }

        def commit() -> None:
            try:
                consumer.commit(offsets, timeout_ms=_ms(KAFKA_REQUEST_TIMEOUT))
            except (CommitFailedError, RebalanceInProgressError) as error:
                # Both mean that the group has moved on and the commit did not happen.
                # Other errors, such as a timeout, leave the outcome open, so they are retried.
                raise _CommitRejected(f"{type(error).__name__}: {error}") from error

        next_offsets = sorted((tp.partition, offset.offset) for tp, offset in offsets.items())
        self._retry(commit, f"committing (partition, offset) pairs {next_offsets}", KafkaError)

    def _rewind(self, buffers: list[_PartitionBuffer]) -> None:
        """Seek back to the first buffered offset of partitions still assigned, to read them again."""
        assert self._consumer is not None
        for buffer in buffers:
            try:
                self._consumer.seek(TopicPartition(self.config.topic, buffer.partition), buffer.first_offset)
            except IllegalStateError:
                pass  # no longer assigned, so the next owner starts from the committed offset

    def _release(self, buffers: list[_PartitionBuffer], reason: str) -> None:
        """Count buffered records that were not committed and that Kafka delivers again later."""
        for buffer in buffers:
            logger.info(
                "dropping %d uncommitted records of partition %d (offsets %d to %d) because %s; Kafka delivers them again",
                buffer.size, buffer.partition, buffer.first_offset, buffer.last_offset, reason,
            )
            self.counters.add_released(buffer.size)


def run(
    config: ArchiveConfig,
    stop_event: threading.Event,
    max_idle: timedelta | None = None,
    counters: ArchiveCounters | None = None,
) -> ArchiveCounters:
    """Run an :class:`EventArchiver`. Pass ``counters`` to read them while it runs."""
    return EventArchiver(config, counters).run(stop_event, max_idle)


def parse_args(argv: list[str] | None) -> tuple[ArchiveConfig, timedelta | None, str]:
    defaults = ArchiveConfig()

    parser = argparse.ArgumentParser(description="Archive valid events from Kafka to Parquet, partitioned by event date.")
    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers, help="Kafka brokers, host:port[,host:port]")
    parser.add_argument("--root", type=Path, default=defaults.root, help="archive folder (default: %(default)s)")
    parser.add_argument("--topic", default=defaults.topic, help="topic to archive (default: %(default)s)")
    parser.add_argument(
        "--dead-letter-topic", default=defaults.dead_letter_topic,
        help="topic for invalid records with their rejection reason (default: %(default)s)",
    )
    parser.add_argument("--group-id", default=defaults.group_id, help="Kafka consumer group (default: %(default)s)")
    parser.add_argument(
        "--max-records", type=int, default=defaults.max_records,
        help="records per partition buffer before a file is written (default: %(default)s)",
    )
    parser.add_argument(
        "--max-age-s", type=float, default=defaults.max_age.total_seconds(),
        help="seconds after a buffer's first record at which it is written (default: %(default)s)",
    )
    parser.add_argument(
        "--max-idle-s", type=float, default=None,
        help="stop after this many seconds without records, e.g. for a backfill (default: run until stopped)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    args = parser.parse_args(argv)

    config = ArchiveConfig(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        dead_letter_topic=args.dead_letter_topic,
        group_id=args.group_id,
        root=args.root,
        max_records=args.max_records,
        max_age=timedelta(seconds=args.max_age_s),
    )
    max_idle = None if args.max_idle_s is None else timedelta(seconds=args.max_idle_s)
    return config, max_idle, args.log_level


def main(argv: list[str] | None = None) -> int:
    """Run the archiver until SIGINT or SIGTERM (or ``--max-idle-s``), then write and commit what is buffered."""
    config, max_idle, log_level = parse_args(argv)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop_event = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda _signum, _frame: stop_event.set())
    run(config, stop_event, max_idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
