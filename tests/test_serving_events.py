"""SendEvent against a real Kafka broker: valid events land in the topic, invalid ones in the dead-letter topic."""

from __future__ import annotations

import json

import grpc
import pytest

from serving.config import EventSettings, ServingConfig
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from tests.kafka_helpers import create_topics, read_topic, unique_topic
from tests.serving_helpers import now_ms, running_server

pytestmark = pytest.mark.integration


def valid_event(identifier: str, **changes) -> pb.Event:
    fields = {"event_id": identifier, "session_id": "s-send", "item_id": "item-1", "event_type": "view",
              "event_time": now_ms(), "category": "shoes", "price": 9.5}
    fields.update(changes)
    return pb.Event(**{name: value for name, value in fields.items() if value is not None})


INVALID_EVENTS = [
    ({"event_id": None}, "event_id", "missing_field"),
    ({"session_id": ""}, "session_id", "empty_id"),
    ({"item_id": "x" * 129}, "item_id", "id_too_long"),
    ({"event_type": "hover"}, "event_type", "unknown_event_type"),
    ({"event_time": 946_684_799_999}, "event_time", "event_time_too_early"),
    ({"event_time": 4_102_444_800_000}, "event_time", "event_time_in_future"),
    ({"price": -1.0}, "price", "invalid_price"),
    ({"price": float("nan")}, "price", "invalid_price"),
]


@pytest.fixture
def topics(kafka_broker):
    events, dead_letter = unique_topic("events"), unique_topic("dead-letter")
    create_topics(kafka_broker.bootstrap_servers, events, dead_letter, partitions=1)
    return kafka_broker.bootstrap_servers, events, dead_letter


def test_send_event_writes_valid_and_dead_letters_invalid(topics):
    bootstrap, events_topic, dead_letter_topic = topics
    config = ServingConfig(events=EventSettings(bootstrap_servers=bootstrap, events_topic=events_topic,
                                                dead_letter_topic=dead_letter_topic))
    errors = []
    with running_server(config) as server:
        stored = [server.stub.SendEvent(pb.SendEventRequest(event=valid_event(f"e{n}")), timeout=30) for n in range(3)]
        for changes, field, reason in INVALID_EVENTS:
            with pytest.raises(grpc.RpcError) as raised:
                server.stub.SendEvent(pb.SendEventRequest(event=valid_event("bad", **changes)), timeout=30)
            errors.append((raised.value, field, reason))

    assert [response.offset for response in stored] == [0, 1, 2]
    assert all(response.topic == events_topic for response in stored)
    for error, field, reason in errors:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"event.{field}:")
        assert f"reason {reason}" in error.details()
    written = [json.loads(record.value) for record in read_topic(bootstrap, events_topic, expected=3)]
    assert [event["event_id"] for event in written] == ["e0", "e1", "e2"]
    assert written[0]["price"] == 9.5
    assert written[0]["user_id"] is None
    dead = [json.loads(record.value) for record in read_topic(bootstrap, dead_letter_topic, expected=len(INVALID_EVENTS))]
    assert [(record["field"], record["reason"]) for record in dead] == [(f, r) for _, f, r in INVALID_EVENTS]
    assert all(record["source"] == "grpc" for record in dead)


def test_send_event_without_kafka_fails_precondition():
    with running_server(ServingConfig()) as server:
        with pytest.raises(grpc.RpcError) as raised:
            server.stub.SendEvent(pb.SendEventRequest(event=valid_event("e1")), timeout=10)

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--bootstrap-servers" in raised.value.details()
