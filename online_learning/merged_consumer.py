"""A Kafka consumer of every partition of one topic, releasing its records in event-time order.

It joins no consumer group: it assigns itself all partitions and starts at the
offsets it is given, which are the learner's checkpointed offsets. Decoded
records wait in a :class:`~online_learning.partition_merge.PartitionMerger`
until the merge can release them.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Iterator, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from online_learning.config import LearnerRunConfig
from online_learning.partition_merge import MergedRecord, PartitionMerger
from online_learning.records import TopicNotFound, decode_merged

logger = logging.getLogger(__name__)

CONSUMER_CLIENT_ID = "seqrec-learner"
FETCH_MAX_BYTES = 16 * 1024 * 1024
END_OFFSETS_REQUEST_INTERVAL = timedelta(seconds=1)


class MergedConsumer:
    """Consumer of ``config.topic`` that starts each partition at ``start_offsets``, or at its earliest offset.

    Raises ``KafkaError`` when the broker cannot be reached, and
    :class:`~online_learning.records.TopicNotFound` when the topic has no
    partitions, so that the caller can retry.
    """

    def __init__(self, config: LearnerRunConfig, start_offsets: Mapping[int, int]):
        self.config = config
        consumer = KafkaConsumer(
            bootstrap_servers=config.bootstrap_servers.split(","),
            client_id=CONSUMER_CLIENT_ID,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=config.max_poll_records,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            # kafka-python 2.2.21 drops the connection ("Invalid frame length") when a
            # fetch response exceeds receive_message_max_bytes, 1 MB by default, while
            # fetch_max_bytes allows 50 MB. Keep the two equal.
            fetch_max_bytes=FETCH_MAX_BYTES,
            receive_message_max_bytes=FETCH_MAX_BYTES,
        )
        try:
            partitions = consumer.partitions_for_topic(config.topic)
            if not partitions:
                raise TopicNotFound(f"topic {config.topic!r} has no partitions yet; create it or start the producer")
            self._assigned = [TopicPartition(config.topic, partition) for partition in sorted(partitions)]
            # Per partition, the offset after the last record fetched.
            self._fetched = self._seek(consumer, start_offsets)
        except KafkaError:
            consumer.close()
            raise
        self._consumer = consumer
        self._end_offsets: dict[int, int] = {}
        self._next_end_offsets_request = 0.0
        self._merger = PartitionMerger(tp.partition for tp in self._assigned)
        logger.info("assigned partitions %s of %s, starting at offsets %s", sorted(partitions), config.topic, self._fetched)

    def _seek(self, consumer: KafkaConsumer, start_offsets: Mapping[int, int]) -> dict[int, int]:
        """Assign all partitions and seek each to its start offset; return the offsets."""
        consumer.assign(self._assigned)
        for tp in self._assigned:
            offset = start_offsets.get(tp.partition)
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        # position() resolves the earliest offsets, which gives the merge each partition's first offset.
        return {tp.partition: consumer.position(tp) for tp in self._assigned}

    def poll(self, timeout_ms: int) -> bool:
        """Fetch records into the merge queues; return whether any arrived. Raises ``KafkaError``."""
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        for tp, records in batches.items():
            for record in records:
                self._merger.add(decode_merged(tp.partition, record.offset, record.value))
            self._fetched[tp.partition] = records[-1].offset + 1
        self._refresh_end_offsets()
        self._pause_full_partitions()
        return bool(batches)

    def release(self) -> Iterator[MergedRecord]:
        """Yield the queued records that the merge can release now, in event-time order."""
        return self._merger.release(self._has_more)

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def lag(self, processed_offsets: Mapping[int, int]) -> int | None:
        """Return the records after ``processed_offsets`` over all partitions; None when the broker did not respond."""
        try:
            ends = self._consumer.end_offsets(self._assigned)
        except KafkaError as error:
            logger.warning("reading the end offsets of %s failed: %s: %s", self.config.topic, type(error).__name__, error)
            return None
        return sum(max(0, end - processed_offsets.get(tp.partition, 0)) for tp, end in ends.items())

    def _has_more(self, partition: int) -> bool:
        """Return whether Kafka contains records of ``partition`` that were not fetched yet, True while unknown."""
        end = self._end_offsets.get(partition)
        return end is None or self._fetched.get(partition, 0) < end

    def _refresh_end_offsets(self) -> None:
        """Update the end offsets from the last fetch responses, asking the broker only for unknown ones."""
        consumer = self._consumer
        unknown = []
        for tp in self._assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                unknown.append(tp)
            else:
                self._end_offsets[tp.partition] = highwater
        now = time.monotonic()
        if not unknown or now < self._next_end_offsets_request:
            return
        self._next_end_offsets_request = now + END_OFFSETS_REQUEST_INTERVAL.total_seconds()
        try:
            ends = consumer.end_offsets(unknown)
        except KafkaError as error:
            logger.warning("reading the end offsets of %s failed: %s: %s", self.config.topic, type(error).__name__, error)
            return
        for tp, end in ends.items():
            self._end_offsets[tp.partition] = end

    def _pause_full_partitions(self) -> None:
        """Pause fetching partitions far ahead in event time, so the merge queues stay bounded."""
        limit = self.config.max_queued_per_partition
        consumer = self._consumer
        paused = consumer.paused()
        for tp in self._assigned:
            queued = self._merger.queued(tp.partition)
            if queued >= limit and tp not in paused:
                consumer.pause(tp)
            elif queued < limit // 2 and tp in paused:
                consumer.resume(tp)
