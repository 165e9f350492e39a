"""The feature writer against a real Kafka broker and a real Feast online store (SQLite, and Redis once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from feast import FeatureStore
from kafka import KafkaAdminClient, KafkaProducer

from pipelines.feast_store import DEFAULT_PROFILE, REDIS_PROFILE, open_store
from pipelines.feature_batch import FeatureBatch, StoredTransitions, TransitionState
from pipelines.feature_rows import FeatureTopics, ItemStatsRow, SessionRow, TransitionRow
from pipelines.feature_writer import FeatureWriter, FeatureWriterConfig
from pipelines.row_validation import InvalidFeatureRow, parse_row
from pipelines.writer_counters import WriterCounters
from stack import redis as redis_server
from tests.conftest import stack_config
from tests.kafka_helpers import create_topics, read_topic, unique_topic
from tests.test_feature_repo import copy_feature_repo, run_feast

pytestmark = pytest.mark.integration

WAIT_TIMEOUT = timedelta(seconds=60)
STOP_TIMEOUT = timedelta(seconds=30)
# Long enough that rows produced before the writer starts land in one batch.
TEST_BATCH_INTERVAL = timedelta(seconds=1)

T0 = 1_733_300_000_000  # 2024-12-04T08:13:20Z, UTC epoch ms
SECOND = 1_000
HOUR = 3_600_000
DAY = 24 * HOUR

SESSION_FEATURES = (
    "event_count", "distinct_items", "last_items", "first_event_time", "last_event_time", "duration_ms",
    "view_count", "click_count", "add_to_cart_count", "purchase_count", "last_event_type", "last_item_id",
)
ITEM_STATS_FEATURES = ("views", "clicks", "add_to_carts", "purchases", "distinct_sessions", "window_end")
TRANSITION_FEATURES = ("next_item_ids", "next_item_counts", "window_end")


# Rows as the Flink job writes them.


def session_row(session_id: str, items: list[str], event_types: list[str], first: int, last: int) -> dict:
    return {
        "session_id": session_id,
        "event_count": len(items),
        "distinct_items": len(set(items)),
        "last_items": items,
        "first_event_time": first,
        "last_event_time": last,
        "duration_ms": last - first,
        "view_count": event_types.count("view"),
        "click_count": event_types.count("click"),
        "add_to_cart_count": event_types.count("add_to_cart"),
        "purchase_count": event_types.count("purchase"),
        "last_event_type": event_types[-1],
        "last_item_id": items[-1],
    }


def item_row(item_id: str, window: str, window_end: int, views: int, clicks: int = 0, sessions: int = 1) -> dict:
    length = HOUR if window == "1h" else DAY
    return {
        "item_id": item_id,
        "window": window,
        "window_start": window_end - length,
        "window_end": window_end,
        "views": views,
        "clicks": clicks,
        "add_to_carts": 0,
        "purchases": 0,
        "distinct_sessions": sessions,
    }


def transition_row(item_id: str, next_item_id: str, count: int, rank: int, window_end: int) -> dict:
    return {
        "item_id": item_id,
        "next_item_id": next_item_id,
        "count": count,
        "rank": rank,
        "window_start": window_end - DAY,
        "window_end": window_end,
    }


# Kafka, Feast and writer helpers.


@dataclass
class WriterSetup:
    """A feature repo copy after `feast apply`, fresh topics and a fresh consumer group."""

    bootstrap: str
    repo: Path
    profile: str
    topics: FeatureTopics
    group_id: str

    def config(self, **overrides) -> FeatureWriterConfig:
        settings = dict(
            bootstrap_servers=self.bootstrap,
            repo_path=self.repo,
            profile=self.profile,
            topics=self.topics,
            group_id=self.group_id,
            batch_interval=TEST_BATCH_INTERVAL,
        )
        settings.update(overrides)
        return FeatureWriterConfig(**settings)

    def store(self) -> FeatureStore:
        return open_store(self.repo, self.profile)


def make_setup(bootstrap: str, repo: Path, profile: str) -> WriterSetup:
    topics = FeatureTopics(
        session=unique_topic("features-session"),
        item=unique_topic("features-item"),
        transition=unique_topic("features-transition"),
        dead_letter=unique_topic("features-dead-letter"),
        popular=unique_topic("features-popular"),
    )
    create_topics(bootstrap, *topics.inputs(), topics.dead_letter)
    return WriterSetup(bootstrap, repo, profile, topics, f"feature-writer-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def sqlite_setup(kafka_broker, tmp_path) -> WriterSetup:
    repo = copy_feature_repo(tmp_path / "feature_repo")
    run_feast(repo, "apply")
    return make_setup(kafka_broker.bootstrap_servers, repo, DEFAULT_PROFILE)


def produce(bootstrap: str, topic: str, rows: list[tuple[str | None, dict | bytes]]) -> None:
    """Send (key, value) pairs in order, a dict value as JSON and bytes as they are."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in rows:
            payload = value if isinstance(value, bytes) else json.dumps(value).encode()
            producer.send(topic, key=None if key is None else key.encode(), value=payload)
        producer.flush()
    finally:
        producer.close()


def wait_until(condition, description: str, timeout: timedelta = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout.total_seconds()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} waiting until {description}")
        time.sleep(0.05)


def consumed(counters: WriterCounters) -> int:
    return sum(counters.snapshot().consumed.values())


@contextmanager
def running_writer(config: FeatureWriterConfig):
    """Run a writer in a thread, stop it on exit and re-raise what it raised."""
    counters = WriterCounters()
    stop_event = threading.Event()
    failures: list[BaseException] = []

    def target() -> None:
        try:
            FeatureWriter(config, counters).run(stop_event)
        except BaseException as error:  # handed to the test thread below
            failures.append(error)

    thread = threading.Thread(target=target, name="feature-writer", daemon=True)
    thread.start()
    try:
        yield counters
    finally:
        stop_event.set()
        thread.join(STOP_TIMEOUT.total_seconds())
    assert not thread.is_alive(), f"the writer did not stop within {STOP_TIMEOUT}"
    if failures:
        raise failures[0]


def online(store: FeatureStore, view: str, features: tuple[str, ...], key: str, ids: list[str]) -> dict[str, dict]:
    """Read ``features`` of ``view`` for each id and return {id: {feature: value}}."""
    values = store.get_online_features(
        features=[f"{view}:{name}" for name in features],
        entity_rows=[{key: entity_id} for entity_id in ids],
    ).to_dict()
    return {entity_id: {name: values[name][position] for name in features} for position, entity_id in enumerate(ids)}


def expected_features(row: dict, features: tuple[str, ...]) -> dict:
    return {name: row[name] for name in features}


# Tests of the coalescing logic alone, without Kafka.


def test_transition_state_merges_and_replaces():
    state = TransitionState(max_items=10)
    part_one = [TransitionRow("a", "c", 3, 2, 0, T0), TransitionRow("a", "b", 5, 1, 0, T0)]
    part_two = [TransitionRow("a", "d", 1, 3, 0, T0)]
    newer = [TransitionRow("a", "x", 9, 1, 0, T0 + DAY)]
    older = [TransitionRow("a", "c", 4, 1, 0, T0)]

    assert state.apply(part_one) == (["a"], 1, 0)
    assert state.apply(part_two) == (["a"], 0, 0)
    assert state.lists(["a"]) == [StoredTransitions(T0, ["b", "c", "d"], [5, 3, 1])]
    assert state.apply(newer) == (["a"], 0, 0)
    assert state.lists(["a"]) == [StoredTransitions(T0 + DAY, ["x"], [9])]
    assert state.apply(older) == ([], 0, 1)
    assert state.lists(["a"]) == [StoredTransitions(T0 + DAY, ["x"], [9])]


def test_transition_state_evicts_least_recent():
    state = TransitionState(max_items=2)
    for item_id in ("a", "b", "c"):
        state.apply([TransitionRow(item_id, "z", 1, 1, 0, T0)])

    assert state.evict_overflow() == 1
    assert state.missing({"a", "b", "c"}) == ["a"]


def test_transition_state_seed_then_merge():
    state = TransitionState(max_items=10)
    state.seed("a", StoredTransitions(T0, ["b", "c"], [5, 3]))

    state.apply([TransitionRow("a", "d", 1, 3, 0, T0)])

    assert state.lists(["a"]) == [StoredTransitions(T0, ["b", "c", "d"], [5, 3, 1])]


def test_transition_state_ties_by_next_item_id():
    state = TransitionState(max_items=10)

    state.apply([TransitionRow("a", "e", 2, 2, 0, T0), TransitionRow("a", "c", 2, 1, 0, T0), TransitionRow("a", "z", 7, 1, 0, T0)])

    assert state.lists(["a"]) == [StoredTransitions(T0, ["z", "c", "e"], [7, 2, 2])]


VALID_SESSION = session_row("s1", ["i1", "i2"], ["view", "click"], T0, T0 + SECOND)
INVALID_SESSION_ROWS = [
    # (case, key, value, expected reason, expected field)
    ("empty id", b"", dict(VALID_SESSION, session_id=" "), "empty_id", "session_id"),
    ("id too long", None, dict(VALID_SESSION, session_id="s" * 129), "id_too_long", "session_id"),
    ("unknown event type", b"s1", dict(VALID_SESSION, last_event_type="hover"), "unknown_event_type", "last_event_type"),
    ("lone surrogate", b"s1", dict(VALID_SESSION, last_item_id="\ud800"), "invalid_value", "last_item_id"),
    ("negative count", b"s1", dict(VALID_SESSION, view_count=-1), "invalid_value", "view_count"),
    ("count beyond Int64", b"s1", dict(VALID_SESSION, event_count=2**63), "invalid_value", "event_count"),
    ("float count", b"s1", dict(VALID_SESSION, click_count=1.0), "wrong_type", "click_count"),
    ("last_items not a list", b"s1", dict(VALID_SESSION, last_items="i1"), "wrong_type", "last_items"),
    ("last_items with a number", b"s1", dict(VALID_SESSION, last_items=["i1", 2]), "wrong_type", "last_items"),
    ("time in seconds", b"s1", dict(VALID_SESSION, first_event_time=T0 // 1000), "event_time_too_early", "first_event_time"),
    ("last before first", b"s1", dict(VALID_SESSION, last_event_time=T0 - 1), "invalid_value", "last_event_time"),
    ("key not UTF-8", b"\xff", VALID_SESSION, "unparseable", None),
    ("JSON array", b"s1", [VALID_SESSION], "unparseable", None),
]


@pytest.mark.parametrize("case, key, value, reason, field", INVALID_SESSION_ROWS, ids=[row[0] for row in INVALID_SESSION_ROWS])
def test_parse_row_rejects_session(case, key, value, reason, field):
    with pytest.raises(InvalidFeatureRow) as raised:
        parse_row("features-session", key, json.dumps(value).encode(), FeatureTopics())

    assert raised.value.reason == reason
    assert raised.value.field == field


def test_parse_row_rejects_empty_window():
    row = dict(item_row("i1", "1h", T0, views=1), window_start=T0)

    with pytest.raises(InvalidFeatureRow) as raised:
        parse_row("features-item", b"i1", json.dumps(row).encode(), FeatureTopics())

    assert raised.value.reason == "invalid_value"
    assert raised.value.field == "window_end"


def test_parse_row_accepts_missing_key():
    row = parse_row("features-session", None, json.dumps(VALID_SESSION).encode(), FeatureTopics())

    assert row == SessionRow("s1", 2, 2, ("i1", "i2"), T0, T0 + SECOND, SECOND, 1, 1, 0, 0, "click", "i2")


def test_feature_batch_item_stats_keep_max_window_end():
    batch = FeatureBatch()
    newest = ItemStatsRow("i1", "item_stats_1h", T0, T0 + HOUR, 7, 0, 0, 0, 1)
    batch.add(newest)
    batch.add(ItemStatsRow("i1", "item_stats_1h", T0 - HOUR, T0, 3, 0, 0, 0, 1))
    tie = ItemStatsRow("i1", "item_stats_1h", T0, T0 + HOUR, 8, 0, 0, 0, 2)
    batch.add(tie)

    assert batch.item_stats == {("item_stats_1h", "i1"): tie}
    assert batch.coalesced == {"item_stats_1h": 2}


def test_feature_batch_sessions_keep_last():
    batch = FeatureBatch()
    rows = [SessionRow("s1", n, n, ("i",) * n, T0, T0 + n, n, n, 0, 0, 0, "view", "i") for n in (1, 2, 3)]
    for row in rows:
        batch.add(row)

    assert batch.sessions == {"s1": rows[-1]}
    assert batch.coalesced == {"session_features": 2}


# Tests of the running writer.


def test_session_updates_coalesce_to_last(sqlite_setup):
    setup = sqlite_setup
    s1_updates = [
        session_row("s1", ["i1"], ["view"], T0, T0),
        session_row("s1", ["i1", "i2"], ["view", "click"], T0, T0 + 5 * SECOND),
        session_row("s1", ["i1", "i2", "i1"], ["view", "click", "add_to_cart"], T0, T0 + 9 * SECOND),
    ]
    s2 = session_row("s2", ["i7"], ["purchase"], T0 + SECOND, T0 + SECOND)
    produce(setup.bootstrap, setup.topics.session, [("s1", row) for row in s1_updates] + [("s2", s2)])
    lags: dict[str, int] = {}

    before_ms = time.time_ns() // 1_000_000
    with running_writer(setup.config(freshness_probe=lags.__setitem__)) as counters:
        wait_until(lambda: consumed(counters) == 4, "4 session rows are written")
    after_ms = time.time_ns() // 1_000_000

    values = online(setup.store(), "session_features", SESSION_FEATURES, "session_id", ["s1", "s2", "s3"])
    assert values["s1"] == expected_features(s1_updates[-1], SESSION_FEATURES)
    assert values["s2"] == expected_features(s2, SESSION_FEATURES)
    assert values["s3"] == {name: None for name in SESSION_FEATURES}
    assert counters.written == {"session_features": 2}
    assert counters.coalesced == {"session_features": 2}
    assert counters.reconciles()
    assert set(lags) == {"s1", "s2"}
    assert before_ms - (T0 + 9 * SECOND) <= lags["s1"] <= after_ms - (T0 + 9 * SECOND)


def test_offsets_committed_after_write(sqlite_setup):
    setup = sqlite_setup
    rows = [(f"s{n}", session_row(f"s{n}", ["i1"], ["view"], T0, T0)) for n in range(20)]
    produce(setup.bootstrap, setup.topics.session, rows)

    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 20, "20 session rows are written")

    admin = KafkaAdminClient(bootstrap_servers=setup.bootstrap)
    try:
        committed = admin.list_consumer_group_offsets(setup.group_id)
    finally:
        admin.close()
    assert sum(entry.offset for entry in committed.values()) == 20
    assert counters.written == {"session_features": 20}


def test_item_stats_routed_by_window(sqlite_setup):
    setup = sqlite_setup
    i1_1h_newest = item_row("i1", "1h", T0 + 2 * HOUR, views=9, clicks=2, sessions=4)
    i1_24h = item_row("i1", "24h", T0 + DAY, views=40, clicks=6, sessions=11)
    i2_24h = item_row("i2", "24h", T0 + DAY, views=1)
    i3_1h_tie_last = item_row("i3", "1h", T0 + HOUR, views=6)
    rows = [
        ("i1", item_row("i1", "1h", T0 + HOUR, views=3)),
        ("i1", i1_1h_newest),
        ("i1", item_row("i1", "1h", T0 + HOUR, views=5)),  # older window_end, arrives last: ignored
        ("i1", i1_24h),
        ("i2", i2_24h),
        ("i3", item_row("i3", "1h", T0 + HOUR, views=4)),
        ("i3", i3_1h_tie_last),
    ]
    produce(setup.bootstrap, setup.topics.item, rows)

    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == len(rows), f"{len(rows)} item rows are written")

    store = setup.store()
    hourly = online(store, "item_stats_1h", ITEM_STATS_FEATURES, "item_id", ["i1", "i2", "i3"])
    daily = online(store, "item_stats_24h", ITEM_STATS_FEATURES, "item_id", ["i1", "i2", "i3"])
    assert hourly["i1"] == expected_features(i1_1h_newest, ITEM_STATS_FEATURES)
    assert hourly["i2"] == {name: None for name in ITEM_STATS_FEATURES}
    assert hourly["i3"] == expected_features(i3_1h_tie_last, ITEM_STATS_FEATURES)
    assert daily["i1"] == expected_features(i1_24h, ITEM_STATS_FEATURES)
    assert daily["i2"] == expected_features(i2_24h, ITEM_STATS_FEATURES)
    assert daily["i3"] == {name: None for name in ITEM_STATS_FEATURES}
    assert counters.written == {"item_stats_1h": 2, "item_stats_24h": 2}
    assert counters.coalesced == {"item_stats_1h": 3}
    assert counters.reconciles()


def check_transition_merge_and_replace(setup: WriterSetup) -> None:
    """Merge one window's rows produced in two calls, then replace them with a newer window."""
    topic = setup.topics.transition
    store = setup.store()
    with running_writer(setup.config()) as counters:
        # Part one arrives out of rank order; the stored list is sorted by rank.
        produce(setup.bootstrap, topic, [("a", transition_row("a", "c", 3, 2, T0)), ("a", transition_row("a", "b", 5, 1, T0))])
        wait_until(lambda: consumed(counters) == 2, "part one is written")
        assert online(store, "item_transitions", TRANSITION_FEATURES, "item_id", ["a"])["a"] == {
            "next_item_ids": ["b", "c"], "next_item_counts": [5, 3], "window_end": T0,
        }

        produce(setup.bootstrap, topic, [("a", transition_row("a", "d", 2, 3, T0))])
        wait_until(lambda: consumed(counters) == 3, "part two is written")
        assert online(store, "item_transitions", TRANSITION_FEATURES, "item_id", ["a"])["a"] == {
            "next_item_ids": ["b", "c", "d"], "next_item_counts": [5, 3, 2], "window_end": T0,
        }

        produce(setup.bootstrap, topic, [("a", transition_row("a", "x", 4, 1, T0 + DAY))])
        wait_until(lambda: consumed(counters) == 4, "the newer window is written")
        produce(setup.bootstrap, topic, [("a", transition_row("a", "c", 9, 1, T0))])
        wait_until(lambda: consumed(counters) == 5, "the stale row is consumed")

    assert online(store, "item_transitions", TRANSITION_FEATURES, "item_id", ["a"])["a"] == {
        "next_item_ids": ["x"], "next_item_counts": [4], "window_end": T0 + DAY,
    }
    assert counters.written == {"item_transitions": 3}
    assert counters.coalesced == {"item_transitions": 1}
    assert counters.stale == {"item_transitions": 1}
    assert counters.reconciles()


def test_transitions_merge_and_replace(sqlite_setup):
    check_transition_merge_and_replace(sqlite_setup)


def test_transitions_merge_after_restart(sqlite_setup):
    setup = sqlite_setup
    topic = setup.topics.transition
    produce(setup.bootstrap, topic, [("a", transition_row("a", "b", 5, 1, T0)), ("a", transition_row("a", "c", 3, 2, T0))])
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 2, "part one is written")

    produce(setup.bootstrap, topic, [("a", transition_row("a", "d", 2, 3, T0))])
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 1, "part two is written by a new writer")

    assert online(setup.store(), "item_transitions", TRANSITION_FEATURES, "item_id", ["a"])["a"] == {
        "next_item_ids": ["b", "c", "d"], "next_item_counts": [5, 3, 2], "window_end": T0,
    }


def popular_row(item_id: str, count: int, rank: int, window_end: int, scope: str = "all") -> dict:
    return {"scope": scope, "item_id": item_id, "count": count, "rank": rank,
            "window_start": window_end - HOUR, "window_end": window_end}


def test_popular_items_merge_across_writers_and_replace(sqlite_setup):
    """One window's popular rows split over two writers merge into one ranked list; a newer window replaces it."""
    setup = sqlite_setup
    topic = setup.topics.popular
    produce(setup.bootstrap, topic, [("all", popular_row("i2", 7, 2, T0)), ("all", popular_row("i1", 7, 1, T0))])
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 2, "part one is written")
    produce(setup.bootstrap, topic, [("all", popular_row("i3", 9, 1, T0)), ("all", popular_row("i4", 1, 1, T0 - HOUR))])
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 2, "part two is written by a new writer")
    assert counters.stale == {"popular_items": 1}

    store = setup.store()
    assert online(store, "popular_items", ("item_ids", "counts", "window_end"), "scope", ["all"])["all"] == {
        "item_ids": ["i3", "i1", "i2"], "counts": [9, 7, 7], "window_end": T0,
    }

    produce(setup.bootstrap, topic, [("all", popular_row("i5", 2, 1, T0 + HOUR))])
    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 1, "the newer window is written")
    assert online(store, "popular_items", ("item_ids", "counts", "window_end"), "scope", ["all"])["all"] == {
        "item_ids": ["i5"], "counts": [2], "window_end": T0 + HOUR,
    }


def test_parse_row_rejects_popular_key_mismatch():
    with pytest.raises(InvalidFeatureRow) as raised:
        parse_row("features-popular", b"other", json.dumps(popular_row("i1", 3, 1, T0)).encode(), FeatureTopics())
    assert raised.value.field == "scope"


def test_invalid_rows_dead_lettered(sqlite_setup):
    setup = sqlite_setup
    valid_session = session_row("s1", ["i1"], ["view"], T0, T0)
    missing_field = {key: value for key, value in valid_session.items() if key != "event_count"}
    wrong_type = dict(valid_session, event_count="3")
    produce(setup.bootstrap, setup.topics.session, [
        ("s1", b"{not json"),
        ("s1", missing_field),
        ("s1", wrong_type),
        ("s9", valid_session),  # key differs from session_id
        ("s1", valid_session),
    ])
    produce(setup.bootstrap, setup.topics.item, [
        ("i1", item_row("i1", "7d", T0 + DAY, views=1)),
        ("i1", dict(item_row("i1", "1h", T0 + HOUR, views=1), views=-1)),
        ("i1", dict(item_row("i1", "1h", T0 + HOUR, views=1), window_end=T0 // 1000)),
    ])
    produce(setup.bootstrap, setup.topics.transition, [("a", dict(transition_row("a", "b", 1, 1, T0), rank=True))])

    with running_writer(setup.config()) as counters:
        wait_until(lambda: consumed(counters) == 9, "9 records are consumed")

    expected_reasons = {
        "unparseable": 1,
        "missing_field": 1,
        "wrong_type": 2,
        "key_mismatch": 1,
        "unknown_window": 1,
        "invalid_value": 1,
        "event_time_too_early": 1,
    }
    assert counters.dead_lettered == expected_reasons
    assert counters.written == {"session_features": 1}
    assert counters.reconciles()
    dead_letters = [json.loads(record.value) for record in read_topic(setup.bootstrap, setup.topics.dead_letter, 8)]
    assert len(dead_letters) == 8
    reasons: dict[str, int] = {}
    for entry in dead_letters:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    assert reasons == expected_reasons
    unparseable = next(entry for entry in dead_letters if entry["reason"] == "unparseable")
    assert unparseable["raw"] == "{not json"
    assert unparseable["source"] == setup.topics.session
    assert unparseable["key"] == "s1"
    assert unparseable["offset"] == 0
    missing = next(entry for entry in dead_letters if entry["reason"] == "missing_field")
    assert missing["field"] == "event_count"
    values = online(setup.store(), "session_features", SESSION_FEATURES, "session_id", ["s1", "s9"])
    assert values["s1"] == expected_features(valid_session, SESSION_FEATURES)
    assert values["s9"]["event_count"] is None


def test_writer_main_until_sigterm(sqlite_setup):
    setup = sqlite_setup
    row = session_row("s1", ["i1", "i2"], ["view", "view"], T0, T0 + SECOND)
    produce(setup.bootstrap, setup.topics.session, [("s1", row)])
    command = [
        sys.executable, "-m", "pipelines.feature_writer",
        "--bootstrap-servers", setup.bootstrap,
        "--repo", str(setup.repo),
        "--group-id", setup.group_id,
        "--session-topic", setup.topics.session,
        "--item-topic", setup.topics.item,
        "--transition-topic", setup.topics.transition,
        "--dead-letter-topic", setup.topics.dead_letter,
    ]
    root = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True)
    store = setup.store()
    try:
        wait_until(
            lambda: online(store, "session_features", ("event_count",), "session_id", ["s1"])["s1"]["event_count"] == 2,
            "the writer process stores s1",
        )
    finally:
        writer.send_signal(signal.SIGTERM)
        _, stderr = writer.communicate(timeout=STOP_TIMEOUT.total_seconds())
    assert writer.returncode == 0, stderr
    assert "feature writer stopped" in stderr


def test_writer_on_redis(kafka_broker, tmp_path, monkeypatch):
    config = stack_config(tmp_path / "stack")
    redis_server.start(config)
    try:
        monkeypatch.setenv("SEQREC_REDIS_CONNECTION_STRING", f"127.0.0.1:{config.redis_port}")
        repo = copy_feature_repo(tmp_path / "feature_repo")
        run_feast(repo, "-f", REDIS_PROFILE, "apply", env=dict(os.environ))
        setup = make_setup(kafka_broker.bootstrap_servers, repo, REDIS_PROFILE)
        s1_updates = [
            session_row("s1", ["i1"], ["view"], T0, T0),
            # Same last_event_time as the update before: Feast's own Redis
            # deduplication would drop it, the profile turns that off.
            session_row("s1", ["i1", "i2"], ["view", "click"], T0, T0),
        ]
        item = item_row("i1", "24h", T0 + DAY, views=12, sessions=3)
        produce(setup.bootstrap, setup.topics.session, [("s1", s1_updates[0])])
        produce(setup.bootstrap, setup.topics.item, [("i1", item)])

        with running_writer(setup.config()) as counters:
            wait_until(lambda: consumed(counters) == 2, "the first session row and the item row are written")
            produce(setup.bootstrap, setup.topics.session, [("s1", s1_updates[1])])
            wait_until(lambda: consumed(counters) == 3, "the second session row is written")

        store = setup.store()
        assert online(store, "session_features", SESSION_FEATURES, "session_id", ["s1"])["s1"] == expected_features(
            s1_updates[1], SESSION_FEATURES
        )
        assert online(store, "item_stats_24h", ITEM_STATS_FEATURES, "item_id", ["i1"])["i1"] == expected_features(
            item, ITEM_STATS_FEATURES
        )
        check_transition_merge_and_replace(make_setup(kafka_broker.bootstrap_servers, repo, REDIS_PROFILE))
    finally:
        redis_server.stop(config)


def test_writer_retries_while_redis_down(kafka_broker, tmp_path, monkeypatch):
    config = stack_config(tmp_path / "stack")
    redis_server.start(config)
    try:
        monkeypatch.setenv("SEQREC_REDIS_CONNECTION_STRING", f"127.0.0.1:{config.redis_port}")
        repo = copy_feature_repo(tmp_path / "feature_repo")
        run_feast(repo, "-f", REDIS_PROFILE, "apply", env=dict(os.environ))
        setup = make_setup(kafka_broker.bootstrap_servers, repo, REDIS_PROFILE)
        row = session_row("s1", ["i1"], ["view"], T0, T0)

        with running_writer(setup.config()) as counters:
            produce(setup.bootstrap, setup.topics.session, [("s9", session_row("s9", ["i1"], ["view"], T0, T0))])
            wait_until(lambda: consumed(counters) == 1, "the writer is running")
            redis_server.stop(config)
            produce(setup.bootstrap, setup.topics.session, [("s1", row)])
            wait_until(lambda: counters.snapshot().retries >= 2, "the write to the stopped Redis is retried")
            assert consumed(counters) == 1
            redis_server.start(config)
            wait_until(lambda: consumed(counters) == 2, "the row is written after Redis is back")

        values = online(setup.store(), "session_features", SESSION_FEATURES, "session_id", ["s1"])
        assert values["s1"] == expected_features(row, SESSION_FEATURES)
    finally:
        redis_server.stop(config)


def test_writer_rejects_unapplied_repo(tmp_path):
    repo = copy_feature_repo(tmp_path / "feature_repo")
    config = FeatureWriterConfig(repo_path=repo, profile=DEFAULT_PROFILE)

    with pytest.raises(LookupError, match="Run `feast -f feature_store.yaml apply`"):
        FeatureWriter(config).run(threading.Event())
