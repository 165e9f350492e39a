"""Read a topic back from a real broker, without a consumer group (no join delay)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

POLL_TIMEOUT = timedelta(seconds=30)


def create_topics(bootstrap: str, *names: str, partitions: int = 4) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
    finally:
        admin.close()


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str, expected: int, timeout: timedelta = POLL_TIMEOUT) -> list:
    """Return every record of ``topic``, waiting until ``expected`` arrived or ``timeout`` passed.

    After ``expected`` records it keeps polling briefly, so that extra records show up too.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + timeout.total_seconds()
        extra_deadline = None
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for part_records in batch.values():
                records.extend(part_records)
            if len(records) >= expected:
                extra_deadline = extra_deadline or time.monotonic() + 1.0
                if time.monotonic() >= extra_deadline:
                    break
        return records
    finally:
        consumer.close()
