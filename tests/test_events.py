"""Validation of the event schema: each rejection reason, and the accepted shapes."""

import json
import sys

import pytest

from seqrec.events import (
    EVENT_TYPES,
    MAX_ID_LENGTH,
    Event,
    InvalidEvent,
    Reason,
    decode_event,
    flink_columns,
    validate_event,
)

NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DAY_MS = 24 * 60 * 60 * 1000
JAN_1_2000_MS = 946_684_800_000


def good(**changes):
    record = {
        "event_id": "e-1",
        "session_id": "s-1",
        "item_id": "i-1",
        "event_type": "view",
        "event_time": NOW_MS - 5,
    }
    record.update(changes)
    return record


def reason_of(record) -> str:
    with pytest.raises(InvalidEvent) as caught:
        validate_event(record, now_ms=NOW_MS)
    return caught.value.reason


def test_minimal_event_is_accepted():
    event = validate_event(good(), now_ms=NOW_MS)
    assert event == Event("e-1", "s-1", "i-1", "view", NOW_MS - 5)
    assert event.user_id is None and event.category is None and event.price is None


def test_optional_fields_are_kept():
    event = validate_event(good(user_id="u", category="7", price=3), now_ms=NOW_MS)
    assert (event.user_id, event.category, event.price) == ("u", "7", 3.0)
    assert isinstance(event.price, float)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_is_accepted(event_type):
    assert validate_event(good(event_type=event_type), now_ms=NOW_MS).event_type == event_type


@pytest.mark.parametrize("name", ["event_id", "session_id", "item_id", "event_type", "event_time"])
def test_missing_required_field(name):
    record = good()
    del record[name]
    with pytest.raises(InvalidEvent) as caught:
        validate_event(record, now_ms=NOW_MS)
    assert caught.value.reason == Reason.MISSING_FIELD
    assert caught.value.field == name
    assert repr(name) in str(caught.value)


def test_null_required_field_counts_as_missing():
    assert reason_of(good(item_id=None)) == Reason.MISSING_FIELD


@pytest.mark.parametrize(
    "changes",
    [
        {"session_id": 17},
        {"item_id": ["a"]},
        {"user_id": 5},
        {"event_time": "1700000000000"},
        {"event_time": 1.7e12},
        {"event_time": True},
        {"price": "9.99"},
    ],
)
def test_mistyped_field(changes):
    assert reason_of(good(**changes)) == Reason.WRONG_TYPE


def test_unknown_event_type_names_the_choices():
    with pytest.raises(InvalidEvent) as caught:
        validate_event(good(event_type="remove_from_cart"), now_ms=NOW_MS)
    assert caught.value.reason == Reason.UNKNOWN_EVENT_TYPE
    assert "'remove_from_cart'" in caught.value.message
    assert "add_to_cart" in caught.value.message


@pytest.mark.parametrize("name", ["event_id", "session_id", "item_id", "user_id", "category"])
def test_blank_id_is_rejected(name):
    assert reason_of(good(**{name: "  "})) == Reason.EMPTY_ID


def test_id_length_limit_is_inclusive():
    assert validate_event(good(item_id="x" * MAX_ID_LENGTH), now_ms=NOW_MS).item_id == "x" * MAX_ID_LENGTH
    assert reason_of(good(item_id="x" * (MAX_ID_LENGTH + 1))) == Reason.ID_TOO_LONG


def test_event_time_bounds():
    assert validate_event(good(event_time=JAN_1_2000_MS), now_ms=NOW_MS).event_time == JAN_1_2000_MS
    assert reason_of(good(event_time=JAN_1_2000_MS - 1)) == Reason.TIME_TOO_EARLY
    assert validate_event(good(event_time=NOW_MS + DAY_MS), now_ms=NOW_MS).event_time == NOW_MS + DAY_MS
    assert reason_of(good(event_time=NOW_MS + DAY_MS + 1)) == Reason.TIME_IN_FUTURE


def test_event_time_in_seconds_gets_a_hint():
    with pytest.raises(InvalidEvent) as caught:
        validate_event(good(event_time=NOW_MS // 1000), now_ms=NOW_MS)
    assert caught.value.reason == Reason.TIME_TOO_EARLY
    assert "milliseconds" in caught.value.message


@pytest.mark.parametrize("price", [-0.01, float("nan"), float("inf")])
def test_invalid_price(price):
    assert reason_of(good(price=price)) == Reason.INVALID_PRICE


@pytest.mark.parametrize(
    "price", [10**400, -(10**400), 2 * 10**308, 10**5_000], ids=["1e400", "-1e400", "2e308", "1e5000"]
)
def test_price_beyond_float_range_is_invalid(price):
    with pytest.raises(InvalidEvent) as caught:
        validate_event(good(price=price), now_ms=NOW_MS)
    assert caught.value.reason == Reason.INVALID_PRICE
    assert caught.value.field == "price"
    assert "valid range 0 to 1.79769e+308" in caught.value.message
    assert "finite, non-negative number" in caught.value.message
    assert len(caught.value.message) < 200


def test_largest_float_price_is_accepted():
    assert validate_event(good(price=10**308), now_ms=NOW_MS).price == 1e308
    assert validate_event(good(price=sys.float_info.max), now_ms=NOW_MS).price == sys.float_info.max


@pytest.mark.parametrize(
    "payload_price", [b"1" + b"0" * 400, b"-1" + b"0" * 400, b"1e400", b"-1e400", b"Infinity", b"NaN"]
)
def test_decode_rejects_price_that_overflows(payload_price):
    payload = json.dumps(good()).encode()[:-1] + b', "price": ' + payload_price + b"}"
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload, now_ms=NOW_MS)
    assert caught.value.reason == Reason.INVALID_PRICE


@pytest.mark.parametrize(
    ("event_time", "reason"),
    [
        (10**400, Reason.TIME_IN_FUTURE),
        (-(10**400), Reason.TIME_TOO_EARLY),
        (10**5_000, Reason.TIME_IN_FUTURE),
        (2**63, Reason.TIME_IN_FUTURE),
        (1e400, Reason.WRONG_TYPE),
        (float("nan"), Reason.WRONG_TYPE),
    ],
    ids=["1e400", "-1e400", "1e5000", "2**63", "float-1e400", "nan"],
)
def test_event_time_beyond_64_bits_is_rejected(event_time, reason):
    with pytest.raises(InvalidEvent) as caught:
        validate_event(good(event_time=event_time), now_ms=NOW_MS)
    assert caught.value.reason == reason
    assert caught.value.field == "event_time"
    assert len(caught.value.message) < 300


def test_decode_rejects_event_time_that_overflows():
    for event_time in (b"1" + b"0" * 400, b"1e400"):
        payload = json.dumps(good()).encode().replace(str(NOW_MS - 5).encode(), event_time)
        with pytest.raises(InvalidEvent) as caught:
            decode_event(payload, now_ms=NOW_MS)
        assert caught.value.field == "event_time"


def test_huge_integer_id_is_wrong_type():
    with pytest.raises(InvalidEvent) as caught:
        validate_event(good(item_id=10**5_000), now_ms=NOW_MS)
    assert caught.value.reason == Reason.WRONG_TYPE
    assert "about 5001 digits" in caught.value.message


def test_decode_round_trip():
    event = validate_event(good(price=1.5, category="c"), now_ms=NOW_MS)
    assert decode_event(event.to_json(), now_ms=NOW_MS) == event
    assert json.loads(event.to_json())["event_time"] == NOW_MS - 5


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1, 2]"])
def test_decode_rejects_non_objects(payload):
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload, now_ms=NOW_MS)
    assert caught.value.reason == Reason.UNPARSEABLE


def test_flink_columns_follow_the_schema():
    assert flink_columns().splitlines() == [
        "`event_id` STRING,",
        "`session_id` STRING,",
        "`user_id` STRING,",
        "`item_id` STRING,",
        "`event_type` STRING,",
        "`event_time` BIGINT,",
        "`category` STRING,",
        "`price` DOUBLE",
    ]
