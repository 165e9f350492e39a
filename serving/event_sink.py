"""SendEvent's path to Kafka: validate like the replay, write valid events, dead-letter the rest."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from kafka.errors import KafkaError

from seqrec.events import FIELD_NAMES, Event, InvalidEvent, validate_event
from seqrec.publisher import EventPublisher, PublisherSettings
from serving.config import EventSettings

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "grpc"
"""``source`` of the dead-letter records that SendEvent writes."""


class EventSinkUnavailable(RuntimeError):
    """Kafka is not configured, not reachable, or did not confirm the write in time."""


@dataclass(frozen=True)
class StoredEvent:
    topic: str
    partition: int
    offset: int


class ConfirmedPublisher(EventPublisher):
    """An :class:`EventPublisher` that can also wait for the broker to confirm one event.

    NOTE: it reaches into the publisher's producer and counters, because
    EventPublisher has no public call that returns a send's future.
    """

    def send_event_confirmed(self, event: Event, timeout: timedelta) -> StoredEvent:
        """Send ``event`` and block until the broker stores it; raises KafkaError when it fails or times out."""
        topic = self.settings.events_topic
        future = self._producer.send(topic, key=event.session_id.encode(), value=event.to_json())
        metadata = future.get(timeout=timeout.total_seconds())
        self.counts._ok(topic)
        return StoredEvent(metadata.topic, metadata.partition, metadata.offset)


def event_record(message: Any) -> dict[str, Any]:
    """Return a ``seqrec.v1.Event`` as the dict that :func:`validate_event` reads; unset fields are None."""
    return {name: getattr(message, name) if message.HasField(name) else None for name in FIELD_NAMES}


class EventSink:
    """Validate and write events; the Kafka producer is created on first use and again after a failure to connect."""

    def __init__(self, settings: EventSettings):
        self.settings = settings
        self._publisher: ConfirmedPublisher | None = None
        self._lock = threading.Lock()

    def _get_publisher(self) -> ConfirmedPublisher:
        if self.settings.bootstrap_servers is None:
            raise EventSinkUnavailable("SendEvent is off: start the server with a Kafka address (--bootstrap-servers)")
        with self._lock:
            if self._publisher is None:
                publisher_settings = PublisherSettings(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    events_topic=self.settings.events_topic,
                    dead_letter_topic=self.settings.dead_letter_topic,
                    linger=timedelta(milliseconds=self.settings.linger_ms),
                )
                try:
                    self._publisher = ConfirmedPublisher(publisher_settings)
                except KafkaError as error:
                    raise EventSinkUnavailable(
                        f"cannot connect to Kafka at {self.settings.bootstrap_servers}: {error}; check that the "
                        "broker runs and the address is right"
                    ) from error
                logger.info("SendEvent writes to %s on %s", self.settings.events_topic, self.settings.bootstrap_servers)
            return self._publisher

    def send(self, record: Mapping[str, Any], timeout: timedelta) -> StoredEvent:
        """Validate ``record`` and write it; raises InvalidEvent (after dead-lettering it) or EventSinkUnavailable."""
        publisher = self._get_publisher()
        try:
            event = validate_event(record)
        except InvalidEvent as error:
            publisher.send_dead_letter(error, json.dumps(record, separators=(",", ":")), DEAD_LETTER_SOURCE)
            raise
        try:
            return publisher.send_event_confirmed(event, min(timeout, timedelta(milliseconds=self.settings.send_timeout_ms)))
        except KafkaError as error:
            logger.error("event %s of session %s not stored: %s", event.event_id, event.session_id, error)
            raise EventSinkUnavailable(
                f"Kafka did not store event {event.event_id}: {type(error).__name__}: {error}; retry the call"
            ) from error

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close(timedelta(seconds=5))
                self._publisher = None
