"""SendEvent's path to Kafka: validate like the replay, write valid events, dead-letter the rest."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from kafka import KafkaProducer
from kafka.errors import KafkaError

from seqrec.events import FIELD_NAMES, Event, InvalidEvent, validate_event
from seqrec.publisher import REQUEST_TIMEOUT, DeliveryCounts, EventPublisher, PublisherSettings
from serving.config import EventSettings

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "grpc"
"""``source`` of the dead-letter records that SendEvent writes."""
MAX_CONNECT_TIMEOUT = timedelta(seconds=2)
"""Maximum wait for the broker while the producer is created, cut to the call's timeout when that is shorter."""
FIRST_RETRY_DELAY = timedelta(seconds=1)
MAX_RETRY_DELAY = timedelta(seconds=30)
"""After a failed connection or send, calls fail at once for a delay that doubles per failure up to this one."""


class EventSinkUnavailable(RuntimeError):
    """Kafka is not configured, not reachable, or did not confirm the write in time."""


@dataclass(frozen=True)
class StoredEvent:
    topic: str
    partition: int
    offset: int


class ConfirmedPublisher(EventPublisher):
    """An :class:`EventPublisher` that can also wait for the broker to confirm one event.

    Its producer blocks in ``send()`` for at most ``max_block`` (kafka-python's
    ``max_block_ms``, 60 s by default) and probes the broker for at most
    ``connect_timeout`` while it is created.

    NOTE: it reaches into the publisher's producer and counters, because
    EventPublisher has no public call that returns a send's future, and it
    builds the producer itself with EventPublisher's options, because
    EventPublisher does not accept ``max_block_ms``.
    """

    def __init__(self, settings: PublisherSettings, max_block: timedelta, connect_timeout: timedelta):
        self.settings = settings
        self.counts = DeliveryCounts()
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            acks="all",
            retries=settings.retries,
            linger_ms=_milliseconds(settings.linger),
            batch_size=settings.batch_size_bytes,
            compression_type=settings.compression,
            request_timeout_ms=_milliseconds(REQUEST_TIMEOUT),
            enable_idempotence=True,
            max_block_ms=_milliseconds(max_block),
            api_version_auto_timeout_ms=_milliseconds(connect_timeout),
        )

    def send_event_confirmed(self, event: Event, timeout: timedelta) -> StoredEvent:
        """Send ``event`` and block until the broker stores it; raises KafkaError when it fails or times out."""
        topic = self.settings.events_topic
        future = self._producer.send(topic, key=event.session_id.encode(), value=event.to_json())
        metadata = future.get(timeout=timeout.total_seconds())
        self.counts._ok(topic)
        return StoredEvent(metadata.topic, metadata.partition, metadata.offset)


def _milliseconds(duration: timedelta) -> int:
    return max(int(duration / timedelta(milliseconds=1)), 1)


def event_record(message: Any) -> dict[str, Any]:
    """Return a ``seqrec.v1.Event`` as the dict that :func:`validate_event` reads; unset fields are None."""
    return {name: getattr(message, name) if message.HasField(name) else None for name in FIELD_NAMES}


class EventSink:
    """Validate and write events; the Kafka producer is created on first use and again after a failure to connect.

    While Kafka is unreachable, only one call at a time tries to connect, without
    holding the lock, and every other call fails at once with
    :class:`EventSinkUnavailable`. After each failed connection or send, calls
    fail at once until a retry delay passes, so SendEvent never queues behind
    the broker and never takes the worker threads that Recommend needs.
    """

    def __init__(self, settings: EventSettings):
        self.settings = settings
        self._publisher: ConfirmedPublisher | None = None
        self._lock = threading.Lock()
        self._connecting = False
        self._retry_at = 0.0
        """``time.monotonic()`` value before which calls fail without trying Kafka."""
        self._retry_delay = FIRST_RETRY_DELAY
        self._last_error = ""

    def _unavailable(self, action: str) -> EventSinkUnavailable:
        return EventSinkUnavailable(
            f"Kafka at {self.settings.bootstrap_servers} is unavailable ({self._last_error}); {action}"
        )

    def _fail_fast_locked(self) -> None:
        """Raise EventSinkUnavailable while a retry delay runs; the caller holds the lock."""
        wait_s = self._retry_at - time.monotonic()
        if wait_s > 0:
            raise self._unavailable(f"the next attempt is in {wait_s:.1f} s, so retry the call later")

    def _record_failure(self, error: str) -> None:
        with self._lock:
            self._last_error = error
            self._retry_at = time.monotonic() + self._retry_delay.total_seconds()
            logger.warning("Kafka at %s unavailable: %s; retrying in %s", self.settings.bootstrap_servers, error,
                           self._retry_delay)
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)

    def _record_success(self) -> None:
        with self._lock:
            self._retry_delay = FIRST_RETRY_DELAY
            self._retry_at = 0.0

    def _get_publisher(self, timeout: timedelta) -> ConfirmedPublisher:
        if self.settings.bootstrap_servers is None:
            raise EventSinkUnavailable("SendEvent is off: start the server with a Kafka address (--bootstrap-servers)")
        with self._lock:
            if self._publisher is not None:
                return self._publisher
            self._fail_fast_locked()
            if self._connecting:
                raise EventSinkUnavailable(
                    f"connecting to Kafka at {self.settings.bootstrap_servers} is in progress; retry the call"
                )
            self._connecting = True
        publisher_settings = PublisherSettings(
            bootstrap_servers=self.settings.bootstrap_servers,
            events_topic=self.settings.events_topic,
            dead_letter_topic=self.settings.dead_letter_topic,
            linger=timedelta(milliseconds=self.settings.linger_ms),
        )
        send_timeout = timedelta(milliseconds=self.settings.send_timeout_ms)
        try:
            publisher = ConfirmedPublisher(
                publisher_settings, max_block=send_timeout, connect_timeout=min(timeout, MAX_CONNECT_TIMEOUT)
            )
        except KafkaError as error:
            self._record_failure(f"{type(error).__name__}: {error}")
            raise self._unavailable("check that the broker runs and the address is right") from error
        finally:
            with self._lock:
                self._connecting = False
        with self._lock:
            self._publisher = publisher
        self._record_success()
        logger.info("SendEvent writes to %s on %s", self.settings.events_topic, self.settings.bootstrap_servers)
        return publisher

    def send(self, record: Mapping[str, Any], timeout: timedelta) -> StoredEvent:
        """Validate ``record`` and write it within ``timeout``.

        Raises InvalidEvent (after dead-lettering the record) or EventSinkUnavailable.

        The wait for the broker is cut to ``EventSettings.send_timeout_ms``.
        NOTE: ``send()`` of an existing producer can block for up to
        ``send_timeout_ms`` while it fetches the topic's metadata, even when
        ``timeout`` is shorter. Later calls then fail at once until the retry delay passes.
        """
        publisher = self._get_publisher(timeout)
        try:
            event = validate_event(record)
        except InvalidEvent as error:
            publisher.send_dead_letter(error, json.dumps(record, separators=(",", ":")), DEAD_LETTER_SOURCE)
            raise
        with self._lock:
            self._fail_fast_locked()
        try:
            stored = publisher.send_event_confirmed(
                event, min(timeout, timedelta(milliseconds=self.settings.send_timeout_ms))
            )
        except KafkaError as error:
            logger.error("event %s of session %s not stored: %s", event.event_id, event.session_id, error)
            self._record_failure(f"{type(error).__name__}: {error}")
            raise EventSinkUnavailable(
                f"Kafka did not store event {event.event_id}: {type(error).__name__}: {error}; retry the call"
            ) from error
        self._record_success()
        return stored

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close(timedelta(seconds=5))
                self._publisher = None
