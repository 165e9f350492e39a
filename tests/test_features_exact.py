"""Events -> Flink feature job -> feature writer -> Feast equals an independent pandas computation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipelines.feast_store import DEFAULT_PROFILE
from pipelines.feature_rows import FeatureTopics
from seqrec.events import validate_event
from seqrec.publisher import EventPublisher, PublisherSettings
from tests import feature_reference as reference
from tests.flink_helpers import run_features_job
from tests.kafka_helpers import create_topics, read_topic, unique_topic
from tests.test_feature_repo import copy_feature_repo, run_feast
from tests.test_feature_writer import WriterSetup, consumed, online, running_writer, wait_until

pytestmark = pytest.mark.integration

T0 = 1_709_287_200_000  # 2024-03-01T10:00:00Z, on a 5-minute boundary
SECOND = 1000
OUT_OF_ORDERNESS = timedelta(seconds=2)
SESSION_GAP = timedelta(minutes=30)
LAST_ITEMS = 3
TOP_K = 2
WINDOWS = {"1h": reference.Window(3_600_000, 300_000), "24h": reference.Window(86_400_000, 300_000)}
TRANSITION_WINDOW = reference.Window(86_400_000, 300_000)
POPULAR_WINDOW = reference.Window(3_600_000, 300_000)
POPULAR_TOP_K = 3

# (event_id, session, item, type, seconds after T0), in the order they reach Kafka.
ARRIVALS = [
    ("a1", "A", "i1", "view", 0),
    ("a2", "A", "i2", "click", 10),
    ("a4", "A", "i3", "view", 25),
    ("a3", "A", "i2", "add_to_cart", 24),  # 1 s out of order, within the 2 s bound
    ("a2", "A", "i2", "click", 10),  # duplicate event id
    ("b1", "B", "i1", "view", 30),
    ("b2", "B", "i3", "click", 40),
    ("b0", "B", "i9", "view", 20),  # behind the watermark (38 s): late
    ("c1", "C", "i4", "view", 50),
    ("c2", "C", "i5", "view", 60),
    ("c3", "C", "i4", "purchase", 1960),  # 31 min later: a new session segment
    ("a5", "A", "i1", "view", 1965),  # also a new segment of A
    ("d1", "D", "i1", "view", 1970),
    ("d2", "D", "i2", "click", 1975),
    ("d3", "D", "i1", "view", 1980),
    ("d4", "D", "i3", "add_to_cart", 1985),
    ("d5", "D", "i6", "purchase", 1990),
    ("e1", "E", "i7", "view", 100),  # far behind: late
    ("d3", "D", "i1", "view", 1980),  # duplicate event id
    ("d6", "D", "i2", "view", 1989),  # 1 s out of order
    ("f1", "F", "i2", "view", 1991),
    ("f2", "F", "i1", "click", 1992),
    ("f3", "F", "i2", "view", 1993),
    ("f4", "F", "i6", "view", 1994),
]

SESSION_FEATURES = (
    "event_count", "distinct_items", "last_items", "first_event_time", "last_event_time", "duration_ms",
    "view_count", "click_count", "add_to_cart_count", "purchase_count", "last_event_type", "last_item_id",
)
ITEM_FEATURES = ("views", "clicks", "add_to_carts", "purchases", "distinct_sessions", "window_end")
TRANSITION_FEATURES = ("next_item_ids", "next_item_counts", "window_end")
POPULAR_FEATURES = ("item_ids", "counts", "window_end")


def arrival_events() -> list[dict]:
    return [
        {"event_id": e, "session_id": s, "item_id": i, "event_type": t, "event_time": T0 + offset * SECOND}
        for e, s, i, t, offset in ARRIVALS
    ]


def produce_in_order(bootstrap: str, topic: str, events: list[dict]) -> None:
    publisher = EventPublisher(PublisherSettings(bootstrap, topic, unique_topic("unused-dead")))
    try:
        for event in events:
            publisher.send_event(validate_event(event))
            publisher.flush()  # one partition and one send at a time keep arrival order exact
    finally:
        publisher.close()
    assert publisher.counts.delivered[topic] == len(events)


def job_arguments(events_topic: str, prefix: str, group: str) -> list[str]:
    return [
        "--events-topic", events_topic, "--topic-prefix", prefix, "--group-id", group,
        "--startup-mode", "earliest-offset", "--bounded", "--wait",
        "--watermark-emit", "on-event", "--out-of-orderness-ms", str(OUT_OF_ORDERNESS // timedelta(milliseconds=1)),
        "--last-items", str(LAST_ITEMS), "--top-k", str(TOP_K), "--checkpoint-interval-s", "1",
        "--popular-top-k", str(POPULAR_TOP_K),
    ]


def write_features_to_feast(bootstrap: str, repo, prefix: str) -> WriterSetup:
    """Run the feature writer over the job's output topics until it has consumed all of them."""
    topics = FeatureTopics(
        session=f"{prefix}features-session",
        item=f"{prefix}features-item",
        transition=f"{prefix}features-transition",
        dead_letter=unique_topic("features-dead-letter"),
        popular=f"{prefix}features-popular",
    )
    create_topics(bootstrap, topics.dead_letter)
    setup = WriterSetup(bootstrap, repo, DEFAULT_PROFILE, topics, unique_topic("writer"))
    total = sum(len(read_topic(bootstrap, topic, 0, timedelta(seconds=3))) for topic in topics.inputs())
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) >= total, f"the writer consumed {total} feature rows")
    snapshot = counters.snapshot()
    assert sum(snapshot.dead_lettered.values()) == 0
    assert snapshot.reconciles()
    return setup


def assert_online_matches_reference(setup: WriterSetup, events: list[dict]) -> list[str]:
    """Compare the online store with the pandas reference key by key; return the late event ids."""
    on_time, late = reference.split_late(events, OUT_OF_ORDERNESS)
    store = setup.store()

    expected_sessions = reference.session_features(on_time, SESSION_GAP, LAST_ITEMS)
    actual_sessions = online(store, "session_features", SESSION_FEATURES, "session_id", sorted(expected_sessions))
    for session_id, expected in expected_sessions.items():
        assert actual_sessions[session_id] == expected, f"session {session_id}"

    for name, window in WINDOWS.items():
        expected_items = reference.item_stats(on_time, window)
        actual_items = online(store, f"item_stats_{name}", ITEM_FEATURES, "item_id", sorted(expected_items))
        for item_id, expected in expected_items.items():
            assert actual_items[item_id] == expected, f"item {item_id}, window {name}"

    expected_transitions = reference.transitions(on_time, SESSION_GAP, TRANSITION_WINDOW, TOP_K)
    actual_transitions = online(store, "item_transitions", TRANSITION_FEATURES, "item_id", sorted(expected_transitions))
    for item_id, expected in expected_transitions.items():
        assert actual_transitions[item_id] == expected, f"transitions of {item_id}"

    expected_popular = reference.popular_items(on_time, POPULAR_WINDOW, POPULAR_TOP_K)
    assert online(store, "popular_items", POPULAR_FEATURES, "scope", ["all"]) == expected_popular
    return late


def test_features_equal_pandas_reference(flink_cluster, tmp_path):
    bootstrap = flink_cluster.bootstrap_servers
    events_topic = unique_topic("events")
    create_topics(bootstrap, events_topic, partitions=1)
    events = arrival_events()
    produce_in_order(bootstrap, events_topic, events)
    prefix = unique_topic("exact") + "-"

    run_features_job(flink_cluster, *job_arguments(events_topic, prefix, unique_topic("flink")))

    repo = copy_feature_repo(tmp_path / "feature_repo")
    run_feast(repo, "apply")
    setup = write_features_to_feast(bootstrap, repo, prefix)
    late = assert_online_matches_reference(setup, events)

    assert late == ["b0", "e1"]
    late_records = read_topic(bootstrap, f"{prefix}events-late", len(late))
    assert sorted(json.loads(r.value)["event_id"] for r in late_records) == late
    # One session row per on-time unique event.
    session_rows = read_topic(bootstrap, f"{prefix}features-session", 0, timedelta(seconds=3))
    assert len(session_rows) == len(reference.split_late(events, OUT_OF_ORDERNESS)[0])
