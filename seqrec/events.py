"""The click-stream event: one schema for the producer, the Flink DDL and serving.

An event is one user action on one item inside a session. On Kafka it is a JSON
object keyed by ``session_id``; ``event_time`` is UTC epoch milliseconds.

>>> event = validate_event({"event_id": "e1", "session_id": "s1", "item_id": "i9",
...                         "event_type": "view", "event_time": 1411462780513})
>>> event.item_id, event.event_time
('i9', 1411462780513)
>>> validate_event({"session_id": "s1"})
Traceback (most recent call last):
...
seqrec.events.InvalidEvent: missing_field: field 'event_id' is missing; every event needs event_id, session_id, item_id, event_type, event_time
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")

MAX_ID_LENGTH = 128
"""Longest accepted id, in characters: longer ids are almost always a bug upstream."""

EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_CLOCK_SKEW = timedelta(days=1)
"""How far past the wall clock an event time may lie before it is rejected."""

EARLIEST_EVENT_TIME_MS = int(EARLIEST_EVENT_TIME.timestamp() * 1000)

MAX_PRICE = sys.float_info.max
"""Largest accepted price: the largest finite 64-bit float, the range of the Flink ``DOUBLE`` column."""

_MAX_SHOWN_DIGITS = 30
"""Integers with more digits are shown in messages by their digit count, not their value."""


class Reason:
    """Rejection reasons, stable strings that metrics and dead-letter records carry."""

    UNPARSEABLE = "unparseable"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    EMPTY_ID = "empty_id"
    ID_TOO_LONG = "id_too_long"
    TIME_TOO_EARLY = "event_time_too_early"
    TIME_IN_FUTURE = "event_time_in_future"
    INVALID_PRICE = "invalid_price"


class InvalidEvent(ValueError):
    """An input record that is not a valid event; ``reason`` is one of :class:`Reason`."""

    def __init__(self, reason: str, message: str, field: str | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Field:
    """One column of the event schema, with its types in Python and Flink SQL."""

    name: str
    python_type: type
    flink_type: str
    required: bool
    description: str


FIELDS: tuple[Field, ...] = (
    Field("event_id", str, "STRING", True, "unique id of the event, used to drop duplicates"),
    Field("session_id", str, "STRING", True, "session the event belongs to; the Kafka key"),
    Field("user_id", str, "STRING", False, "logged-in user, if known"),
    Field("item_id", str, "STRING", True, "item acted on"),
    Field("event_type", str, "STRING", True, "one of " + ", ".join(EVENT_TYPES)),
    Field("event_time", int, "BIGINT", True, "when it happened, UTC epoch milliseconds"),
    Field("category", str, "STRING", False, "item category, if known"),
    Field("price", float, "DOUBLE", False, "unit price, if known"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
REQUIRED_FIELDS = tuple(f.name for f in FIELDS if f.required)
ID_FIELDS = ("event_id", "session_id", "user_id", "item_id", "category")


@dataclass(frozen=True)
class Event:
    """A validated event. Build one with :func:`validate_event`, not directly."""

    event_id: str
    session_id: str
    item_id: str
    event_type: str
    event_time: int
    user_id: str | None = None
    category: str | None = None
    price: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def _describe(value: Any) -> str:
    """Return ``repr(value)`` for a message, with huge integers replaced by their digit count.

    ``repr`` of an integer of more than 4,300 digits raises ValueError in CPython
    3.11 and later, and a message should not carry hundreds of digits anyway.
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**_MAX_SHOWN_DIGITS:
        digits = math.floor(math.log10(abs(value))) + 1
        sign = "-" if value < 0 else ""
        return f"{sign}<an integer of about {digits} digits>"
    return repr(value)


def _check_id(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(
            Reason.WRONG_TYPE,
            f"field {name!r} must be a string, got {type(value).__name__} {_describe(value)}",
            name,
        )
    if not value.strip():
        raise InvalidEvent(Reason.EMPTY_ID, f"field {name!r} is empty", name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(
            Reason.ID_TOO_LONG,
            f"field {name!r} has {len(value)} characters, the maximum is {MAX_ID_LENGTH}",
            name,
        )
    return value


def _check_event_time(value: Any, now_ms: int) -> int:
    # bool is an int subclass, and True as a timestamp is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(
            Reason.WRONG_TYPE,
            f"field 'event_time' must be an integer of UTC epoch milliseconds, "
            f"got {type(value).__name__} {_describe(value)}",
            "event_time",
        )
    # Python integers are unbounded, so these comparisons also hold for values
    # far outside the 64-bit range of the Flink BIGINT column.
    if value < EARLIEST_EVENT_TIME_MS:
        raise InvalidEvent(
            Reason.TIME_TOO_EARLY,
            f"event_time {_describe(value)} is before {EARLIEST_EVENT_TIME.isoformat()}; "
            "check that it is in milliseconds, not seconds",
            "event_time",
        )
    latest = now_ms + int(MAX_CLOCK_SKEW / timedelta(milliseconds=1))
    if value > latest:
        raise InvalidEvent(
            Reason.TIME_IN_FUTURE,
            f"event_time {_describe(value)} is more than {MAX_CLOCK_SKEW} past the current time "
            f"{now_ms}; check the producer's clock and the time unit",
            "event_time",
        )
    return value


def _check_price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent(
            Reason.WRONG_TYPE,
            f"field 'price' must be a number, got {type(value).__name__} {_describe(value)}",
            "price",
        )
    try:
        price = float(value)
    except OverflowError:
        # An integer beyond the float range, such as 10**400 in the JSON, is rejected below.
        price = math.inf
    if not math.isfinite(price) or price < 0:
        raise InvalidEvent(
            Reason.INVALID_PRICE,
            f"price {_describe(value)} is outside the valid range 0 to {MAX_PRICE:g}; "
            "send the unit price as a finite, non-negative number",
            "price",
        )
    return price


def validate_event(record: Mapping[str, Any], now_ms: int | None = None) -> Event:
    """Check a decoded record against the schema and return it as an :class:`Event`.

    Optional fields may be absent or None. Unknown fields are ignored. ``now_ms``
    (UTC epoch milliseconds, default the wall clock) bounds how late an event
    time may be. Raises :class:`InvalidEvent` naming the first field at fault.
    """
    if not isinstance(record, Mapping):
        raise InvalidEvent(
            Reason.UNPARSEABLE,
            f"an event must be a JSON object, got {type(record).__name__}",
        )
    for name in REQUIRED_FIELDS:
        if record.get(name) is None:
            raise InvalidEvent(
                Reason.MISSING_FIELD,
                f"field {name!r} is missing; every event needs " + ", ".join(REQUIRED_FIELDS),
                name,
            )
    ids = {}
    for name in ID_FIELDS:
        value = record.get(name)
        if value is not None or name in REQUIRED_FIELDS:
            ids[name] = _check_id(name, value)
    event_type = record["event_type"]
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(
            Reason.UNKNOWN_EVENT_TYPE,
            f"event_type {event_type!r} is not one of " + ", ".join(EVENT_TYPES),
            "event_type",
        )
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    event_time = _check_event_time(record["event_time"], now_ms)
    price = record.get("price")
    return Event(
        event_id=ids["event_id"],
        session_id=ids["session_id"],
        item_id=ids["item_id"],
        event_type=event_type,
        event_time=event_time,
        user_id=ids.get("user_id"),
        category=ids.get("category"),
        price=None if price is None else _check_price(price),
    )


def decode_event(payload: bytes, now_ms: int | None = None) -> Event:
    """Decode a Kafka message value (UTF-8 JSON) and validate it."""
    try:
        record = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(
            Reason.UNPARSEABLE,
            f"message is not UTF-8 JSON ({error}); producers must send one JSON object per message",
        ) from error
    return validate_event(record, now_ms)


def flink_columns() -> str:
    """Return the schema as a Flink SQL column list, for ``CREATE TABLE`` statements."""
    return ",\n".join(f"`{f.name}` {f.flink_type}" for f in FIELDS)
