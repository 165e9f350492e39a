"""The long-running learner process: consume ``events``, learn, checkpoint, publish snapshots.

The consumer (:mod:`online_learning.merged_consumer`) has no consumer group.
It reads every partition from the offsets of the learner's own checkpoint,
because the offsets must be saved in the same file as the model to learn each
event exactly once (see :mod:`online_learning.checkpoint`). Run one learner
per checkpoint directory. Records of all partitions are merged into
event-time order before learning. Invalid records are counted by
reason and skipped, because the producer has already sent them to the
dead-letter topic. Kafka errors are logged and retried with exponential
backoff until the stop event is set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, TypeVar

from kafka.errors import KafkaError

from online_learning.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from online_learning.config import LearnerRunConfig
from online_learning.learner import PrequentialLearner
from online_learning.merged_consumer import MergedConsumer
from online_learning.monitoring import LearnerMetrics
from online_learning.partition_merge import MergedRecord
from online_learning.records import decode_merged
from online_learning.snapshots import list_versions, write_snapshot

logger = logging.getLogger(__name__)

RETRY_BACKOFF_INITIAL = timedelta(milliseconds=200)
RETRY_BACKOFF_MAX = timedelta(seconds=10)

T = TypeVar("T")


class LearnerStopped(Exception):
    """The stop event was set while a Kafka call was being retried."""


@dataclass(frozen=True)
class RunSummary:
    """Totals when :meth:`LearnerRunner.run` returns. ``records_this_run`` excludes records before a restart."""

    checkpoint: Checkpoint
    records_this_run: int
    seconds_this_run: float


class LearnerRunner:
    """Runner of a :class:`PrequentialLearner` on a Kafka topic, as the module docstring describes."""

    def __init__(self, config: LearnerRunConfig, stop_event: threading.Event | None = None):
        self.config = config
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.metrics = LearnerMetrics(config.learner.cutoff)
        self.checkpoint = self._restore()
        self._source: MergedConsumer | None = None
        self._records_since_checkpoint = 0
        self._snapshot_events = -1
        """``events_learned`` at the last snapshot this process wrote."""
        self._logged_events = self.checkpoint.learner.counters.events_learned
        self._logged_at = time.monotonic()

    def _restore(self) -> Checkpoint:
        config = self.config
        checkpoint = load_checkpoint(config.checkpoint_dir, config.topic)
        if checkpoint is None:
            logger.info("no checkpoint in %s: learning topic %s from the earliest offsets", config.checkpoint_dir, config.topic)
            return Checkpoint(topic=config.topic, learner=PrequentialLearner(config.learner))
        if checkpoint.learner.config != config.learner:
            logger.warning(
                "the checkpoint's learner settings differ from the options given; the checkpoint's settings are kept: %s",
                checkpoint.learner.config,
            )
        logger.info(
            "resuming from checkpoint in %s: %d events learned, offsets %s",
            config.checkpoint_dir, checkpoint.learner.counters.events_learned, checkpoint.offsets,
        )
        return checkpoint

    def run(self) -> RunSummary:
        """Consume and learn until stopped, idle for ``max_idle_s`` or past ``max_records``; then checkpoint."""
        config = self.config
        logger.info(
            "learner starting: brokers %s, topic %s, checkpoint every %d records or %.1f s, snapshots every %.1f s into %s",
            config.bootstrap_servers, config.topic, config.checkpoint_interval_events, config.checkpoint_interval_s,
            config.snapshot_interval_s, config.snapshot_dir,
        )
        self.metrics.serve(config.metrics_port)
        started = time.monotonic()
        start_records = self.checkpoint.records_consumed
        try:
            self._source = self._retry(
                lambda: MergedConsumer(self.config, self.checkpoint.offsets), "connecting to Kafka"
            )
            self._loop()
        except LearnerStopped as stopped:
            logger.info("learner stopped while %s", stopped)
        except BaseException:
            # The state may be half-updated by the failed record, so it is not saved: a
            # restart goes on from the last checkpoint.
            logger.exception("learner failed; the next start resumes from the last checkpoint")
            self._close()
            raise
        self._publish_snapshot()
        self._save(force=True)
        self._close()
        elapsed = time.monotonic() - started
        summary = RunSummary(self.checkpoint, self.checkpoint.records_consumed - start_records, elapsed)
        logger.info("learner stopped after %.1f s: %s", elapsed, self._progress_text())
        return summary

    def _close(self) -> None:
        if self._source is not None:
            self._source.close()
        self.metrics.close()

    def _retry(self, action: Callable[[], T], description: str) -> T:
        backoff = RETRY_BACKOFF_INITIAL
        attempt = 1
        while True:
            if self.stop_event.is_set():
                raise LearnerStopped(description)
            try:
                return action()
            except KafkaError as error:
                logger.warning(
                    "%s failed (attempt %d): %s: %s; retrying in %.1f s",
                    description, attempt, type(error).__name__, error, backoff.total_seconds(),
                )
            if self.stop_event.wait(backoff.total_seconds()):
                raise LearnerStopped(description)
            backoff = min(backoff * 2, RETRY_BACKOFF_MAX)
            attempt += 1

    def _loop(self) -> None:
        config = self.config
        source = self._source
        assert source is not None
        now = time.monotonic()
        last_record = now
        next_checkpoint = now + config.checkpoint_interval_s
        next_snapshot = now + config.snapshot_interval_s
        next_log = now + config.log_interval_s
        while not self.stop_event.is_set():
            if self._reached_max_records():
                logger.info("consumed %d records, the maximum requested", self.checkpoint.records_consumed)
                return
            try:
                received = source.poll(config.poll_timeout_ms)
            except KafkaError as error:
                logger.warning("polling %s failed: %s: %s; retrying", config.topic, type(error).__name__, error)
                if self.stop_event.wait(RETRY_BACKOFF_INITIAL.total_seconds()):
                    return
                continue
            now = time.monotonic()
            if received:
                last_record = now
            for merged in source.release():
                self._process(merged)
                if self._records_since_checkpoint >= config.checkpoint_interval_events:
                    self._save()
                    next_checkpoint = time.monotonic() + config.checkpoint_interval_s
                if self._reached_max_records():
                    return
            now = time.monotonic()
            if self._records_since_checkpoint and now >= next_checkpoint:
                self._save()
                next_checkpoint = now + config.checkpoint_interval_s
            if now >= next_snapshot:
                self._publish_snapshot()
                next_snapshot = now + config.snapshot_interval_s
            if now >= next_log:
                self._log_progress()
                next_log = now + config.log_interval_s
            if config.max_idle_s is not None and now - last_record >= config.max_idle_s:
                logger.info("no records for %.1f s, stopping", config.max_idle_s)
                return

    def _reached_max_records(self) -> bool:
        limit = self.config.max_records
        return limit is not None and self.checkpoint.records_consumed >= limit

    def _consume(self, partition: int, offset: int, value: bytes | None) -> None:
        """Decode and process one record at once, without the merge."""
        self._process(decode_merged(partition, offset, value))

    def _process(self, record: MergedRecord) -> None:
        checkpoint = self.checkpoint
        checkpoint.offsets[record.partition] = record.offset + 1
        self._records_since_checkpoint += 1
        event = record.event
        if event is None:
            error = record.error
            assert error is not None, "a record without an event carries its error"
            checkpoint.invalid_by_reason[error.reason] = checkpoint.invalid_by_reason.get(error.reason, 0) + 1
            self.metrics.invalid_events.labels(reason=error.reason).inc()
            logger.debug("skipping invalid record at partition %d offset %d: %s", record.partition, record.offset, error)
            return
        outcome = checkpoint.learner.process(event.session_id, event.item_id, event.event_time)
        metrics = self.metrics
        metrics.events.inc()
        if outcome.unknown_item:
            metrics.unknown_items.inc()
        if outcome.drift_detected:
            metrics.drift_events.inc()
            logger.info(
                "ADWIN detected a change in the prequential hit rate after %d scored events (session %s)",
                checkpoint.learner.counters.events_scored, event.session_id,
            )

    def _save(self, force: bool = False) -> None:
        if self._records_since_checkpoint == 0 and not force:
            return
        save_checkpoint(self.config.checkpoint_dir, self.checkpoint)
        self._records_since_checkpoint = 0
        logger.debug("checkpoint saved: offsets %s", self.checkpoint.offsets)

    def _publish_snapshot(self) -> None:
        learner = self.checkpoint.learner
        events_learned = learner.counters.events_learned
        if events_learned == 0 or events_learned == self._snapshot_events:
            return
        # A snapshot written after the last checkpoint may exist on disk, so the next
        # version continues from the newest file, not from the checkpoint.
        version = max([self.checkpoint.snapshot_version, *list_versions(self.config.snapshot_dir)]) + 1
        created_at_ms = time.time_ns() // 1_000_000
        write_snapshot(self.config.snapshot_dir, learner.snapshot(version, created_at_ms), keep=self.config.snapshot_keep)
        self.checkpoint.snapshot_version = version
        self._snapshot_events = events_learned
        self.metrics.snapshot_version.set(version)
        self._update_quality_gauges()

    def _update_quality_gauges(self) -> None:
        learner = self.checkpoint.learner
        self.metrics.recall.set(learner.recall.get())
        self.metrics.mrr.set(learner.mrr.get())

    def _log_progress(self) -> None:
        lag = None if self._source is None else self._source.lag(self.checkpoint.offsets)
        if lag is not None:
            self.metrics.consumer_lag.set(lag)
        self._update_quality_gauges()
        now = time.monotonic()
        events_learned = self.checkpoint.learner.counters.events_learned
        rate = (events_learned - self._logged_events) / max(now - self._logged_at, 1e-9)
        self._logged_events, self._logged_at = events_learned, now
        logger.info(
            "%s, %.0f events/s since the last report, consumer lag %s",
            self._progress_text(), rate, "unknown" if lag is None else lag,
        )

    def _progress_text(self) -> str:
        checkpoint = self.checkpoint
        learner = checkpoint.learner
        counters = learner.counters
        cutoff = learner.config.cutoff
        return (
            f"{counters.events_learned} events learned, {counters.events_scored} scored, "
            f"Recall@{cutoff} {learner.recall.get():.4f}, MRR@{cutoff} {learner.mrr.get():.4f}, "
            f"unknown items {counters.unknown_items}, drift events {counters.drift_events}, "
            f"invalid records {dict(sorted(checkpoint.invalid_by_reason.items()))}, "
            f"snapshot version {checkpoint.snapshot_version}"
        )
