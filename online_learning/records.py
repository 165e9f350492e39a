"""Decoding of Kafka records into events, with every kind of bad input turned into a rejection reason."""

from __future__ import annotations

from kafka.errors import KafkaError

from online_learning.partition_merge import MergedRecord
from seqrec.events import Event, InvalidEvent, Reason, decode_event


class TopicNotFound(KafkaError):
    """The topic has no partitions on the broker yet; the learner retries like after other Kafka errors."""

    retriable = True


def decode_record(value: bytes | None) -> Event:
    """Decode and validate one Kafka message value; every kind of bad input raises :class:`InvalidEvent`."""
    if value is None:
        raise InvalidEvent(Reason.UNPARSEABLE, "message has no value (a tombstone), but an event needs a JSON object")
    try:
        return decode_event(value)
    except InvalidEvent:
        raise
    except (ValueError, RecursionError, OverflowError) as error:
        # Python's JSON parser raises the first two beyond JSONDecodeError, e.g. for
        # integers of more than 4,300 digits or nesting too deep. OverflowError is
        # caught too, so that a number out of float range that validation misses
        # costs one record, not a crash loop on the same offset.
        raise InvalidEvent(
            Reason.UNPARSEABLE, f"message cannot be decoded as an event ({type(error).__name__}: {error})"
        ) from error


def decode_merged(partition: int, offset: int, value: bytes | None) -> MergedRecord:
    """Decode one record for the partition merge; an invalid record carries its error instead of an event."""
    try:
        event = decode_record(value)
    except InvalidEvent as error:
        return MergedRecord(partition, offset, None, None, error)
    return MergedRecord(partition, offset, event.event_time, event)
