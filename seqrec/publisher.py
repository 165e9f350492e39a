"""Write validated events and dead-letter records to Kafka, counting confirmed deliveries.

The producer waits for all in-sync replicas (``acks=all``) and retries transient
errors, so a count of ``delivered`` means the broker stored the record.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from kafka import KafkaProducer
from kafka.errors import KafkaError

from seqrec import dead_letter
from seqrec.events import Event, InvalidEvent

logger = logging.getLogger(__name__)

LINGER = timedelta(milliseconds=20)
REQUEST_TIMEOUT = timedelta(seconds=30)
CLOSE_TIMEOUT = timedelta(seconds=60)


@dataclass
class PublisherSettings:
    """Where and how to publish; ``bootstrap_servers`` is ``host:port[,host:port]``."""

    bootstrap_servers: str
    events_topic: str = "events"
    dead_letter_topic: str = "events-dead-letter"
    retries: int = 10
    batch_size_bytes: int = 256 * 1024
    linger: timedelta = LINGER
    compression: str | None = None


@dataclass
class DeliveryCounts:
    """Records confirmed or failed by the broker, per topic; updated from the producer's I/O thread."""

    delivered: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _ok(self, topic: str) -> None:
        with self.lock:
            self.delivered[topic] += 1

    def _failed(self, topic: str, error: Exception) -> None:
        with self.lock:
            self.failed[topic] += 1
            first = self.failed[topic] == 1
        if first:
            logger.error("delivery to %s failed: %s (later failures are counted, not logged)", topic, error)


class EventPublisher:
    """Send events keyed by session id, and dead-letter records keyed by their source."""

    def __init__(self, settings: PublisherSettings):
        self.settings = settings
        self.counts = DeliveryCounts()
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            acks="all",
            retries=settings.retries,
            linger_ms=int(settings.linger / timedelta(milliseconds=1)),
            batch_size=settings.batch_size_bytes,
            compression_type=settings.compression,
            request_timeout_ms=int(REQUEST_TIMEOUT / timedelta(milliseconds=1)),
            # Ordering per session matters to every consumer; with retries on,
            # idempotence keeps a retried batch from being written twice or reordered.
            enable_idempotence=True,
        )

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        future = self._producer.send(topic, key=key, value=value)
        future.add_callback(lambda _metadata: self.counts._ok(topic))
        future.add_errback(lambda error: self.counts._failed(topic, error))

    def send_event(self, event: Event) -> None:
        self._send(self.settings.events_topic, event.session_id.encode(), event.to_json())

    def send_dead_letter(self, error: InvalidEvent, raw: str | bytes, source: str, line: int | None = None) -> None:
        record = dead_letter.dead_letter_record(error, raw, source, line)
        key = f"{source}:{line}" if line is not None else source
        self._send(self.settings.dead_letter_topic, key.encode(), dead_letter.encode(record))

    def flush(self, timeout: timedelta = CLOSE_TIMEOUT) -> None:
        try:
            self._producer.flush(timeout=timeout.total_seconds())
        except KafkaError as error:
            logger.error("flush did not finish within %s: %s", timeout, error)

    def close(self, timeout: timedelta = CLOSE_TIMEOUT) -> None:
        """Flush what is buffered, then close the connection."""
        self.flush(timeout)
        self._producer.close(timeout=timeout.total_seconds())
