"""Write the Flink job's feature rows from Kafka to the Feast online store.

    python -m pipelines.feature_writer --bootstrap-servers 127.0.0.1:9092 --repo feature_repo

The writer reads ``features-session``, ``features-item`` and
``features-transition`` in one consumer group, coalesces each batch to one row
per key and feature view (see :mod:`pipelines.feature_batch`), writes the rows
with ``FeatureStore.write_to_online_store`` and then commits the offsets. A crash
between the write and the commit rewrites the same rows after the restart:
delivery is at least once, and since every row is an upsert of the latest
value, the final state is the same. Invalid records go to
``features-dead-letter`` with their reason. Kafka and Feast errors are retried
with backoff until they pass or the writer is stopped.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from datetime import timedelta
from functools import partial
from typing import Callable, TypeVar

from feast import FeatureStore
from feast.errors import FeastError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from pipelines.feast_store import check_feature_views, open_store, read_popular, read_transitions
from pipelines.feature_batch import FeatureBatch, TransitionState, frames_by_view
from pipelines.feature_rows import POPULAR_VIEW, TRANSITIONS_VIEW
from pipelines.retry import WriterStopped, retry_until_stopped
from pipelines.row_validation import InvalidFeatureRow, dead_letter_record, parse_row
from pipelines.writer_config import FeatureWriterConfig, parse_args
from pipelines.writer_counters import RateLimitedLog, WriterCounters
from seqrec import dead_letter

try:
    from redis.exceptions import RedisError
except ImportError:  # an image with only the SQLite online store
    RedisError = OSError  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)

INVALID_LOG_INTERVAL = timedelta(seconds=10)
"""Minimum time between two log lines about invalid records of the same reason."""
KAFKA_REQUEST_TIMEOUT = timedelta(seconds=30)
CLOSE_TIMEOUT = timedelta(seconds=10)

FEAST_ERRORS = (FeastError, OSError, sqlite3.Error, RedisError)
"""Errors of the online store that the writer retries, such as an unreachable Redis or a locked SQLite file."""

T = TypeVar("T")


FETCH_MAX_BYTES = 16 * 1024 * 1024
POPULAR_SCOPES_CACHED = 64
"""Popular item lists kept in memory, one per scope."""


def _ms(duration: timedelta) -> int:
    return int(duration / timedelta(milliseconds=1))


class _ForgetTransitionsOnRevoke(ConsumerRebalanceListener):
    """Drop the in-memory ranked lists when partitions move: another writer may update them now."""

    def __init__(self, *states: TransitionState):
        self._states = states

    def on_partitions_revoked(self, revoked):
        if revoked:
            logger.info("partitions revoked: %s, so ranked lists will be reread from the store", sorted(revoked))
            for state in self._states:
                state.clear()

    def on_partitions_assigned(self, assigned):
        logger.info("partitions assigned: %s", sorted(assigned))


class FeatureWriter:
    """A long-running Kafka consumer that writes feature rows to the online store, as the module docstring describes."""

    def __init__(self, config: FeatureWriterConfig, counters: WriterCounters | None = None):
        self.config = config
        self.counters = counters if counters is not None else WriterCounters()
        self._state = TransitionState(config.transition_cache_items)
        # One list per scope; the Flink job emits the scope "all" only.
        self._popular_state = TransitionState(POPULAR_SCOPES_CACHED)
        self._invalid_log = RateLimitedLog(logger, INVALID_LOG_INTERVAL)
        self._stop = threading.Event()
        self._store: FeatureStore | None = None
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    def run(self, stop_event: threading.Event) -> WriterCounters:
        """Consume and write until ``stop_event`` is set, then return the final counters.

        The batch in progress when the event is set is still written and
        committed if its calls succeed. A batch stuck in retries is abandoned
        uncommitted.
        """
        self._stop = stop_event
        config = self.config
        logger.info(
            "feature writer starting: brokers %s, topics %s, group %s, feature repo %s (%s)",
            config.bootstrap_servers, ", ".join(config.topics.inputs()), config.group_id,
            config.repo_path, config.profile,
        )
        self._store = open_store(config.repo_path, config.profile)
        check_feature_views(self._store, config.profile)
        try:
            self._consumer = self._retry(self._create_consumer, "connecting the Kafka consumer", KafkaError)
            self._producer = self._retry(self._create_producer, "connecting the dead-letter producer", KafkaError)
            self._loop()
        except WriterStopped as stopped:
            logger.info("feature writer stopped while %s, leaving the current batch uncommitted", stopped)
        except Exception:
            logger.exception("feature writer failed, leaving the offsets of the current batch uncommitted")
            raise
        finally:
            self._close()
            logger.info("feature writer stopped: %s", self.counters.summary())
        return self.counters

    def _create_consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers.split(","),
            group_id=self.config.group_id,
            client_id="feature-writer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=_ms(self.config.session_timeout),
            heartbeat_interval_ms=_ms(self.config.heartbeat_interval),
            max_poll_records=self.config.batch_max_records,
            # kafka-python 2.2.21 rejects responses over receive_message_max_bytes
            # (1 MB by default) although fetch_max_bytes allows 50 MB, and then
            # drops the connection with "Invalid frame length". Keep them equal.
            fetch_max_bytes=FETCH_MAX_BYTES,
            receive_message_max_bytes=FETCH_MAX_BYTES,
        )
        consumer.subscribe(topics=list(self.config.topics.inputs()), listener=_ForgetTransitionsOnRevoke(self._state, self._popular_state))
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
        return retry_until_stopped(action, description, retryable, self._stop, self.counters.add_retry)

    def _loop(self) -> None:
        next_summary = time.monotonic() + self.config.summary_interval.total_seconds()
        while not self._stop.is_set():
            records = self._poll_batch()
            if records:
                self._write_batch(records)
            if time.monotonic() >= next_summary:
                logger.info("feature writer: %s", self.counters.summary())
                next_summary = time.monotonic() + self.config.summary_interval.total_seconds()

    def _poll_batch(self) -> list:
        """Collect records until ``batch_max_records`` or ``batch_interval`` is reached."""
        assert self._consumer is not None
        records: list = []
        deadline = time.monotonic() + self.config.batch_interval.total_seconds()
        while len(records) < self.config.batch_max_records and not self._stop.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            polled = self._consumer.poll(
                timeout_ms=remaining_ms, max_records=self.config.batch_max_records - len(records)
            )
            for partition_records in polled.values():
                records.extend(partition_records)
        return records

    def _parse_records(self, records: list, counts: WriterCounters) -> tuple[FeatureBatch, list[tuple[bytes, bytes]]]:
        """Sort records into a batch of valid rows and a list of dead-letter (key, value) pairs."""
        batch = FeatureBatch()
        rejected: list[tuple[bytes, bytes]] = []
        for record in records:
            counts.consumed[record.topic] += 1
            try:
                batch.add(parse_row(record.topic, record.key, record.value, self.config.topics))
            except InvalidFeatureRow as error:
                counts.dead_lettered[error.reason] += 1
                self._invalid_log.warning(
                    error.reason, "rejected record %s[%d]@%d: %s",
                    record.topic, record.partition, record.offset, error,
                )
                entry = dead_letter_record(error, record.topic, record.partition, record.offset, record.key, record.value)
                rejected.append((f"{record.topic}:{record.partition}:{record.offset}".encode(), dead_letter.encode(entry)))
        counts.coalesced.update(batch.coalesced)
        return batch, rejected

    def _write_batch(self, records: list) -> None:
        """Validate, coalesce, write and commit one batch, then add its counts to the totals."""
        assert self._store is not None
        counts = WriterCounters()
        batch, rejected = self._parse_records(records, counts)

        changed_items = self._merge_transitions(batch, counts)
        changed_scopes = self._merge_popular(batch, counts)
        frames = frames_by_view(batch, changed_items, self._state, changed_scopes, self._popular_state)
        for view, frame in frames.items():
            self._retry(
                partial(self._store.write_to_online_store, view, frame),
                f"writing {len(frame)} rows to feature view {view}",
                FEAST_ERRORS,
            )
            counts.written[view] += len(frame)
        self._state.evict_overflow()
        self._popular_state.evict_overflow()

        if self.config.freshness_probe is not None and batch.sessions:
            written_ms = time.time_ns() // 1_000_000
            for row in batch.sessions.values():
                self.config.freshness_probe(row.session_id, written_ms - row.last_event_time)
        if rejected:
            self._send_dead_letters(rejected)
        self._commit(records)
        self.counters.add_batch(counts)

    def _merge_transitions(self, batch: FeatureBatch, counts: WriterCounters) -> list[str]:
        """Merge the batch's transition rows into the per-item lists and return the changed items."""
        if not batch.transitions:
            return []
        missing = self._state.missing(batch.transition_items())
        if missing:
            assert self._store is not None
            stored = self._retry(
                partial(read_transitions, self._store, missing),
                f"reading the stored transition lists of {len(missing)} items",
                FEAST_ERRORS,
            )
            for item_id, transitions in stored.items():
                self._state.seed(item_id, transitions)
        changed_items, coalesced, stale = self._state.apply(batch.transitions)
        counts.coalesced[TRANSITIONS_VIEW] += coalesced
        counts.stale[TRANSITIONS_VIEW] += stale
        return changed_items

    def _merge_popular(self, batch: FeatureBatch, counts: WriterCounters) -> list[str]:
        """Merge the batch's popular item rows into the per-scope lists and return the changed scopes."""
        if not batch.popular:
            return []
        missing = self._popular_state.missing(batch.popular_scopes())
        if missing:
            assert self._store is not None
            stored = self._retry(
                partial(read_popular, self._store, missing),
                f"reading the stored popular item lists of {len(missing)} scopes",
                FEAST_ERRORS,
            )
            for scope, popular in stored.items():
                self._popular_state.seed(scope, popular)
        changed_scopes, coalesced, stale = self._popular_state.apply(batch.popular)
        counts.coalesced[POPULAR_VIEW] += coalesced
        counts.stale[POPULAR_VIEW] += stale
        return changed_scopes

    def _send_dead_letters(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Send (key, value) pairs to the dead-letter topic, resending the failed ones until the broker stores all."""
        producer = self._producer
        assert producer is not None
        remaining = messages

        def send_remaining() -> None:
            nonlocal remaining
            topic = self.config.topics.dead_letter
            futures = [producer.send(topic, key=key, value=value) for key, value in remaining]
            producer.flush(timeout=KAFKA_REQUEST_TIMEOUT.total_seconds())
            failed = [(message, future) for message, future in zip(remaining, futures) if not future.succeeded()]
            remaining = [message for message, _ in failed]
            if failed:
                error = failed[0][1].exception
                raise error if isinstance(error, KafkaError) else KafkaError(f"{len(failed)} dead-letter sends failed")

        self._retry(send_remaining, f"sending {len(messages)} records to {self.config.topics.dead_letter}", KafkaError)

    def _commit(self, records: list) -> None:
        """Commit the offset after the last record of each partition that this writer still owns."""
        consumer = self._consumer
        assert consumer is not None
        next_offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            next_offsets[partition] = max(next_offsets.get(partition, 0), record.offset + 1)

        def commit() -> None:
            owned = consumer.assignment()
            offsets = {
                partition: OffsetAndMetadata(offset, "", -1)
                for partition, offset in next_offsets.items()
                if partition in owned
            }
            if not offsets:
                return
            try:
                consumer.commit(offsets)
            except CommitFailedError as error:
                # The group rebalanced: the rows are written, and the partition's
                # new owner reads them again from the previous commit.
                logger.warning("offset commit rejected after a rebalance, records will be read again: %s", error)

        self._retry(commit, "committing offsets", KafkaError)


def run(config: FeatureWriterConfig, stop_event: threading.Event, counters: WriterCounters | None = None) -> WriterCounters:
    """Run a :class:`FeatureWriter` until ``stop_event`` is set. Pass ``counters`` to read them while it runs."""
    return FeatureWriter(config, counters).run(stop_event)


def main(argv: list[str] | None = None) -> int:
    """Run the writer until SIGINT or SIGTERM."""
    config, log_level = parse_args(argv)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop_event = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda _signum, _frame: stop_event.set())
    run(config, stop_event)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
