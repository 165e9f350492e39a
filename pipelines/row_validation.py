"""Validation of feature rows from Kafka, and the dead-letter records of rejected ones.

:func:`parse_row` turns one Kafka record into a typed row of
:mod:`pipelines.feature_rows` or raises :class:`InvalidFeatureRow` with a
stable ``reason``.

>>> row = parse_row("features-item", b"i1", b'{"item_id": "i1", "window": "1h", '
...     b'"window_start": 1700000000000, "window_end": 1700003600000, "views": 3, '
...     b'"clicks": 1, "add_to_carts": 0, "purchases": 0, "distinct_sessions": 2}',
...     FeatureTopics())
>>> row.view, row.views, row.window_end
('item_stats_1h', 3, 1700003600000)
>>> parse_row("features-item", b"i1", b'{"item_id": "i1", "window": "7d"}', FeatureTopics())
Traceback (most recent call last):
...
pipelines.row_validation.InvalidFeatureRow: missing_field: field 'window_start' is missing. features-item rows need item_id, window, window_start, window_end, views, clicks, add_to_carts, purchases, distinct_sessions
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from pipelines.feature_rows import (
    ITEM_COUNT_FIELDS,
    ITEM_FIELDS,
    ITEM_STATS_VIEWS,
    POPULAR_FIELDS,
    SESSION_COUNT_FIELDS,
    SESSION_FIELDS,
    TRANSITION_FIELDS,
    FeatureRow,
    FeatureTopics,
    ItemStatsRow,
    PopularRow,
    SessionRow,
    TransitionRow,
)
from seqrec.events import EARLIEST_EVENT_TIME_MS, EVENT_TYPES, MAX_ID_LENGTH, Reason

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class RowReason:
    """Rejection reasons of feature rows. Reasons shared with event rejections use the same strings."""

    UNPARSEABLE = Reason.UNPARSEABLE
    MISSING_FIELD = Reason.MISSING_FIELD
    WRONG_TYPE = Reason.WRONG_TYPE
    EMPTY_ID = Reason.EMPTY_ID
    ID_TOO_LONG = Reason.ID_TOO_LONG
    UNKNOWN_EVENT_TYPE = Reason.UNKNOWN_EVENT_TYPE
    TIME_TOO_EARLY = Reason.TIME_TOO_EARLY
    UNKNOWN_WINDOW = "unknown_window"
    KEY_MISMATCH = "key_mismatch"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_TOPIC = "unknown_topic"


class InvalidFeatureRow(ValueError):
    """A Kafka record that is not a valid feature row, with ``reason`` one of :class:`RowReason`."""

    def __init__(self, reason: str, message: str, field: str | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field


def _check_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidFeatureRow(
            RowReason.WRONG_TYPE,
            f"field {name!r} must be a string, got {type(value).__name__} {value!r}",
            name,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A JSON escape can encode a lone surrogate (\ud800), which has no UTF-8 form.
        raise InvalidFeatureRow(
            RowReason.INVALID_VALUE, f"field {name!r} is not valid Unicode text ({error})", name
        ) from error
    return value


def _check_id(name: str, value: Any) -> str:
    value = _check_string(name, value)
    if not value.strip():
        raise InvalidFeatureRow(RowReason.EMPTY_ID, f"field {name!r} is empty", name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidFeatureRow(
            RowReason.ID_TOO_LONG,
            f"field {name!r} has {len(value)} characters, the maximum is {MAX_ID_LENGTH}",
            name,
        )
    return value


def _check_int(name: str, value: Any, minimum: int = INT64_MIN) -> int:
    # bool is an int subclass, and true as a count is a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFeatureRow(
            RowReason.WRONG_TYPE,
            f"field {name!r} must be an integer, got {type(value).__name__} {value!r}",
            name,
        )
    if not minimum <= value <= INT64_MAX:
        raise InvalidFeatureRow(
            RowReason.INVALID_VALUE,
            f"field {name!r} is {value}, expected an Int64 value >= {minimum}",
            name,
        )
    return value


def _check_time(name: str, value: Any) -> int:
    value = _check_int(name, value)
    if value < EARLIEST_EVENT_TIME_MS:
        raise InvalidFeatureRow(
            RowReason.TIME_TOO_EARLY,
            f"field {name!r} is {value}, before 2000-01-01. "
            "Check that the Flink job writes UTC epoch milliseconds, not seconds",
            name,
        )
    return value


def _require(record: Any, fields: tuple[str, ...], topic: str) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise InvalidFeatureRow(
            RowReason.UNPARSEABLE, f"a {topic} row must be a JSON object, got {type(record).__name__}"
        )
    for name in fields:
        if record.get(name) is None:
            raise InvalidFeatureRow(
                RowReason.MISSING_FIELD,
                f"field {name!r} is missing. {topic} rows need " + ", ".join(fields),
                name,
            )
    return record


def _check_window(start_name: str, start: int, end_name: str, end: int) -> None:
    if end <= start:
        raise InvalidFeatureRow(
            RowReason.INVALID_VALUE,
            f"{end_name} {end} is not after {start_name} {start}, but a window must have a positive length",
            end_name,
        )


def _check_key(key: str | None, name: str, value: str) -> None:
    if key is not None and key != value:
        raise InvalidFeatureRow(
            RowReason.KEY_MISMATCH,
            f"the Kafka key {key!r} differs from {name} {value!r}, but the key must be the row's {name}",
            name,
        )


def parse_session_row(record: Any, key: str | None, topic: str) -> SessionRow:
    """Validate a decoded ``features-session`` value. ``key`` is the decoded Kafka key, if any."""
    record = _require(record, SESSION_FIELDS, topic)
    session_id = _check_id("session_id", record["session_id"])
    _check_key(key, "session_id", session_id)
    counts = {name: _check_int(name, record[name], minimum=0) for name in SESSION_COUNT_FIELDS}

    last_items = record["last_items"]
    if not isinstance(last_items, list):
        raise InvalidFeatureRow(
            RowReason.WRONG_TYPE,
            f"field 'last_items' must be a list of item ids, got {type(last_items).__name__}",
            "last_items",
        )
    items = tuple(_check_id("last_items", item) for item in last_items)

    first_event_time = _check_time("first_event_time", record["first_event_time"])
    last_event_time = _check_time("last_event_time", record["last_event_time"])
    if last_event_time < first_event_time:
        raise InvalidFeatureRow(
            RowReason.INVALID_VALUE,
            f"last_event_time {last_event_time} is before first_event_time {first_event_time}",
            "last_event_time",
        )

    last_event_type = _check_string("last_event_type", record["last_event_type"])
    if last_event_type not in EVENT_TYPES:
        raise InvalidFeatureRow(
            RowReason.UNKNOWN_EVENT_TYPE,
            f"last_event_type {last_event_type!r} is not one of " + ", ".join(EVENT_TYPES),
            "last_event_type",
        )

    return SessionRow(
        session_id=session_id,
        last_items=items,
        first_event_time=first_event_time,
        last_event_time=last_event_time,
        last_event_type=last_event_type,
        last_item_id=_check_id("last_item_id", record["last_item_id"]),
        **counts,
    )


def parse_item_row(record: Any, key: str | None, topic: str) -> ItemStatsRow:
    """Validate a decoded ``features-item`` value and route it by ``window`` to its feature view."""
    record = _require(record, ITEM_FIELDS, topic)
    item_id = _check_id("item_id", record["item_id"])
    _check_key(key, "item_id", item_id)
    window = record["window"]
    view = ITEM_STATS_VIEWS.get(window) if isinstance(window, str) else None
    if view is None:
        raise InvalidFeatureRow(
            RowReason.UNKNOWN_WINDOW,
            f"window {window!r} is not one of " + ", ".join(ITEM_STATS_VIEWS),
            "window",
        )
    window_start = _check_time("window_start", record["window_start"])
    window_end = _check_time("window_end", record["window_end"])
    _check_window("window_start", window_start, "window_end", window_end)
    counts = {name: _check_int(name, record[name], minimum=0) for name in ITEM_COUNT_FIELDS}
    return ItemStatsRow(item_id=item_id, view=view, window_start=window_start, window_end=window_end, **counts)


def _ranked_values(record: dict, key: str | None, key_field: str, member_field: str) -> dict[str, Any]:
    """Validate the fields that transition and popular-item rows share, keyed by ``key_field``."""
    key_value = _check_id(key_field, record[key_field])
    _check_key(key, key_field, key_value)
    window_start = _check_time("window_start", record["window_start"])
    window_end = _check_time("window_end", record["window_end"])
    _check_window("window_start", window_start, "window_end", window_end)
    return {
        key_field: key_value,
        member_field: _check_id(member_field, record[member_field]),
        "count": _check_int("count", record["count"], minimum=1),
        "rank": _check_int("rank", record["rank"], minimum=1),
        "window_start": window_start,
        "window_end": window_end,
    }


def parse_transition_row(record: Any, key: str | None, topic: str) -> TransitionRow:
    """Validate a decoded ``features-transition`` value, whose key is the previous item's id."""
    record = _require(record, TRANSITION_FIELDS, topic)
    return TransitionRow(**_ranked_values(record, key, "item_id", "next_item_id"))


def parse_popular_row(record: Any, key: str | None, topic: str) -> PopularRow:
    """Validate a decoded ``features-popular`` value, whose key is the scope."""
    record = _require(record, POPULAR_FIELDS, topic)
    return PopularRow(**_ranked_values(record, key, "scope", "item_id"))


def parse_row(topic: str, key: bytes | None, value: bytes | None, topics: FeatureTopics) -> FeatureRow:
    """Decode one Kafka record of a feature topic and validate it.

    Raises :class:`InvalidFeatureRow` naming the first fault. A key that is not
    UTF-8 is rejected as ``unparseable``, and a missing key is accepted.
    """
    try:
        decoded_key = None if key is None else key.decode("utf-8")
        record = json.loads(value if value is not None else b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidFeatureRow(
            RowReason.UNPARSEABLE,
            f"the record is not UTF-8 JSON ({error}). The Flink job must write one JSON object per record",
        ) from error
    if topic == topics.session:
        return parse_session_row(record, decoded_key, topic)
    if topic == topics.item:
        return parse_item_row(record, decoded_key, topic)
    if topic == topics.transition:
        return parse_transition_row(record, decoded_key, topic)
    if topic == topics.popular:
        return parse_popular_row(record, decoded_key, topic)
    raise InvalidFeatureRow(
        RowReason.UNKNOWN_TOPIC,
        f"topic {topic!r} is not one of " + ", ".join(topics.inputs()),
    )


def dead_letter_record(
    error: InvalidFeatureRow,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
) -> dict[str, Any]:
    """Describe a rejected Kafka record so that it can be inspected, fixed and replayed.

    The fields are those of ``seqrec.dead_letter`` records (``source`` is the
    topic and ``line`` is unused), plus the record's partition, offset and key.
    """

    def text(raw: bytes | None) -> str | None:
        return None if raw is None else raw.decode("utf-8", errors="backslashreplace")

    return {
        "reason": error.reason,
        "message": error.message,
        "field": error.field,
        "source": topic,
        "line": None,
        "partition": partition,
        "offset": offset,
        "key": text(key),
        "raw": text(value),
        "rejected_at": time.time_ns() // 1_000_000,
    }
