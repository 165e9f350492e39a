"""A TaskManager killed mid-stream: the job restores its latest checkpoint and the features end up exact."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import urllib.request
from datetime import timedelta

import pytest

from stack import flink
from tests import feature_reference as reference
from tests.flink_helpers import run_features_job
from tests.kafka_helpers import create_topics, read_topic, unique_topic
from tests.test_feature_repo import copy_feature_repo, run_feast
from tests.test_feature_writer import WriterSetup, running_writer
from tests.test_features_exact import (
    ITEM_FEATURES,
    OUT_OF_ORDERNESS,
    POPULAR_FEATURES,
    POPULAR_TOP_K,
    POPULAR_WINDOW,
    SECOND,
    SESSION_FEATURES,
    T0,
    TRANSITION_FEATURES,
    job_arguments,
    produce_in_order,
)
from pipelines.feast_store import DEFAULT_PROFILE
from pipelines.feature_rows import FeatureTopics

pytestmark = pytest.mark.integration

EVENTS = 600
SESSIONS = 40
ITEMS = 25
SETTLE_TIMEOUT = timedelta(minutes=3)
POLL = timedelta(seconds=1)
# Far enough ahead that its watermark closes every window of the fixture.
SENTINEL_OFFSET = timedelta(days=2)


def generated_events() -> list[dict]:
    """Events over ~50 minutes with disorder inside the bound and some duplicates.

    No late events: watermarks are not part of a checkpoint, so right after a
    restore the first replayed events see no watermark yet. The exactness test
    covers late events.
    """
    rng = random.Random(11)
    events = []
    for n in range(EVENTS):
        offset_ms = n * 5 * SECOND + rng.randrange(0, 1500)
        events.append({
            "event_id": f"r{n}",
            "session_id": f"s{rng.randrange(SESSIONS)}",
            "item_id": f"i{rng.randrange(ITEMS)}",
            "event_type": rng.choice(["view", "view", "click", "add_to_cart", "purchase"]),
            "event_time": T0 + offset_ms,
        })
        if n % 50 == 7:
            events.append(dict(events[-1]))  # duplicate
    return events


def sentinel() -> dict:
    return {
        "event_id": "sentinel", "session_id": "sentinel-session", "item_id": "sentinel-item",
        "event_type": "view", "event_time": T0 + SENTINEL_OFFSET // timedelta(milliseconds=1),
    }


def rest(config, path: str) -> dict:
    with urllib.request.urlopen(f"{config.flink_rest_url}{path}", timeout=5) as reply:
        return json.load(reply)


def wait_for(condition, description: str, timeout: timedelta = SETTLE_TIMEOUT):
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL.total_seconds())
    pytest.fail(f"timed out after {timeout} waiting until {description}")


def completed_checkpoints(config, job_id: str) -> int:
    return rest(config, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]


def online_matches(setup: WriterSetup, expected: dict) -> bool:
    store = setup.store()
    for view, features, key, rows in expected["views"]:
        ids = sorted(rows)
        values = store.get_online_features(
            features=[f"{view}:{name}" for name in features], entity_rows=[{key: i} for i in ids]
        ).to_dict()
        for position, entity_id in enumerate(ids):
            actual = {name: values[name][position] for name in features}
            if actual != rows[entity_id]:
                return False
    return True


def test_taskmanager_kill_keeps_features_exact(flink_cluster, tmp_path):
    config = flink_cluster
    bootstrap = config.bootstrap_servers
    events = generated_events()
    half = len(events) // 2
    on_time, _ = reference.split_late(events, OUT_OF_ORDERNESS)
    windows = (("1h", reference.Window(3_600_000, 300_000)), ("24h", reference.Window(86_400_000, 300_000)))
    expected = {"views": [
        ("session_features", SESSION_FEATURES, "session_id",
         reference.session_features(on_time, timedelta(minutes=30), 3)),
        *[(f"item_stats_{name}", ITEM_FEATURES, "item_id", reference.item_stats(on_time, window))
          for name, window in windows],
        ("item_transitions", TRANSITION_FEATURES, "item_id",
         reference.transitions(on_time, timedelta(minutes=30), reference.Window(86_400_000, 300_000), 2)),
        ("popular_items", POPULAR_FEATURES, "scope", reference.popular_items(on_time, POPULAR_WINDOW, POPULAR_TOP_K)),
    ]}

    events_topic = unique_topic("events")
    create_topics(bootstrap, events_topic, partitions=1)
    prefix = unique_topic("recovery") + "-"
    arguments = [a for a in job_arguments(events_topic, prefix, unique_topic("flink")) if a not in ("--bounded", "--wait")]
    submitted = run_features_job(config, *arguments, detached=True)
    job_id = re.search(r"JobID ([0-9a-f]{32})", submitted.stdout).group(1)

    repo = copy_feature_repo(tmp_path / "feature_repo")
    run_feast(repo, "apply")
    topics = FeatureTopics(
        session=f"{prefix}features-session", item=f"{prefix}features-item",
        transition=f"{prefix}features-transition", dead_letter=unique_topic("features-dead-letter"),
        popular=f"{prefix}features-popular",
    )
    create_topics(bootstrap, topics.dead_letter)
    setup = WriterSetup(bootstrap, repo, DEFAULT_PROFILE, topics, unique_topic("writer"))
    try:
        with running_writer(setup.config()):
            produce_in_order(bootstrap, events_topic, events[:half])
            wait_for(lambda: len(read_topic(bootstrap, topics.session, half // 2, timedelta(seconds=2))) >= half // 2,
                     "the job emitted session rows of the first half")
            before = completed_checkpoints(config, job_id)
            wait_for(lambda: completed_checkpoints(config, job_id) >= before + 2, "two more checkpoints")

            for pid in flink.taskmanager_pids(config):
                os.kill(pid, signal.SIGKILL)
            flink.start_taskmanager(config)
            wait_for(lambda: rest(config, f"/jobs/{job_id}")["state"] == "RUNNING"
                     and all(v["status"] == "RUNNING" for v in rest(config, f"/jobs/{job_id}")["vertices"]),
                     "the job runs again")
            restored = rest(config, f"/jobs/{job_id}/checkpoints")["latest"]["restored"]
            assert restored is not None, "the job restarted without restoring a checkpoint"

            produce_in_order(bootstrap, events_topic, events[half:] + [sentinel()])
            wait_for(lambda: online_matches(setup, expected), "the online store equals the reference")
    finally:
        urllib.request.urlopen(
            urllib.request.Request(f"{config.flink_rest_url}/jobs/{job_id}?mode=cancel", method="PATCH"), timeout=5
        ).close()
