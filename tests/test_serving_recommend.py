"""Recommend over a real socket: the blend, each fallback with its part really gone, hot reload, limits, deadlines."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.config import FeatureSettings, ModelSettings, ServingConfig
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from stack import redis as redis_server
from tests.conftest import stack_config
from tests.serving_helpers import (
    CATALOGUE,
    POPULAR,
    applied_feature_repo,
    now_ms,
    running_server,
    store_of,
    train_and_register,
    write_popular,
    write_river_snapshot,
    write_session,
    write_transitions,
)

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory) -> Path:
    repo = applied_feature_repo(tmp_path_factory.mktemp("serving") / "feature_repo")
    store = store_of(ServingConfig(features=FeatureSettings(repo_path=repo)))
    write_popular(store)
    return repo


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    train_and_register(root, seed=1)
    return root


@pytest.fixture(scope="module")
def snapshot_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("snapshots")
    write_river_snapshot(root, version=1)
    return root


def full_config(feature_repo: Path, registry_root: Path | None, snapshot_root: Path | None, **changes) -> ServingConfig:
    return ServingConfig(
        features=FeatureSettings(repo_path=feature_repo),
        models=ModelSettings(registry_root=registry_root, snapshot_root=snapshot_root, poll_interval_s=0.2,
                             snapshot_max_staleness_s=0.5),
        **changes,
    )


def wait_for_snapshot(server) -> None:
    watcher = server.server.parts.snapshots
    deadline = time.monotonic() + 10
    while watcher.current is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.current is not None, "the River snapshot was not loaded within 10 s"


def test_recommend_blends_both_models(feature_repo, registry_root, snapshot_root):
    config = full_config(feature_repo, registry_root, snapshot_root)
    store = store_of(config)
    write_session(store, "s-happy", ["item-3", "item-4", "item-5"])
    write_transitions(store, "item-5", [("item-6", 9), ("item-20", 2)])

    with running_server(config) as server:
        wait_for_snapshot(server)
        response = server.recommend("s-happy", k=10, request_id="r1")

    assert response.path == pb.SERVING_PATH_MODEL
    assert not response.fallback
    assert response.fallback_reason == ""
    assert response.request_id == "r1"
    assert len(response.items) == 10
    assert response.items[0].item_id == "item-6"
    assert response.model_versions.torch_version.startswith("v000001-")
    assert response.model_versions.river_version == 1
    assert set(response.feature_age_ms) == {"session_features", "item_transitions", "popular_items"}
    assert all(0 <= age < 60_000 for age in response.feature_age_ms.values())
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    first = response.items[0]
    assert first.HasField("torch_score")
    assert 0 < first.torch_score <= 1
    assert first.HasField("river_score")
    assert 0 <= first.river_score <= 1
    assert pb.ITEM_SOURCE_TRANSITIONS in first.sources
    assert all(item.item_id in CATALOGUE for item in response.items)


def test_request_items_extend_stored_session(feature_repo, registry_root, snapshot_root):
    config = full_config(feature_repo, registry_root, snapshot_root)
    store = store_of(config)
    write_session(store, "s-extend", ["item-10", "item-11"])
    write_transitions(store, "item-12", [("item-13", 4)])

    with running_server(config) as server:
        response = server.recommend("s-extend", k=3, recent_item_ids=["item-11", "item-12"])

    assert response.path == pb.SERVING_PATH_MODEL
    assert response.items[0].item_id == "item-13"


def test_no_model_serves_popularity(feature_repo):
    config = full_config(feature_repo, None, None)
    write_session(store_of(config), "s-nomodel", ["item-1", "item-2"])

    with running_server(config) as server:
        response = server.recommend("s-nomodel", k=4)

    assert response.path == pb.SERVING_PATH_POPULARITY
    assert response.fallback
    assert response.fallback_reason == "no_model"
    assert [item.item_id for item in response.items] == ["item-0", "item-2", "item-4", "item-6"]
    assert response.model_versions.torch_version == ""
    assert not response.model_versions.HasField("river_version")


def test_missing_learner_flags_partial_blend(feature_repo, registry_root):
    config = full_config(feature_repo, registry_root, None)
    write_session(store_of(config), "s-partial", ["item-7"])

    with running_server(config) as server:
        response = server.recommend("s-partial", k=3)

    assert response.path == pb.SERVING_PATH_MODEL
    assert response.fallback_reason == "learner_snapshot_unavailable"
    assert not any(item.HasField("river_score") for item in response.items)


def test_unknown_session_cold_starts(feature_repo, registry_root, snapshot_root):
    config = full_config(feature_repo, registry_root, snapshot_root)

    with running_server(config) as server:
        response = server.recommend("s-never-seen", k=3)

    assert response.path == pb.SERVING_PATH_COLD_START
    assert response.fallback_reason == "unknown_session"
    assert [item.item_id for item in response.items] == [item for item, _ in POPULAR[:3]]


def test_stale_session_cold_starts(feature_repo):
    config = full_config(feature_repo, None, None)
    hour_ago = now_ms() - 3_600_000
    write_session(store_of(config), "s-stale", ["item-1"], last_event_time=hour_ago)

    with running_server(config) as server:
        response = server.recommend("s-stale", k=3)

    assert response.path == pb.SERVING_PATH_COLD_START


def drop_online_tables(database: Path) -> None:
    """Remove every table of the SQLite online store; the server keeps its connection open, so unlinking would not do."""
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            connection.execute(f'DROP TABLE "{table}"')


def test_dropped_sqlite_store_falls_back(tmp_path, registry_root, snapshot_root):
    repo = applied_feature_repo(tmp_path / "feature_repo")
    config = full_config(repo, registry_root, snapshot_root)
    store = store_of(config)
    write_popular(store)
    write_session(store, "s-down", ["item-1", "item-2"])

    with running_server(config) as server:
        assert server.recommend("s-down", k=3).path == pb.SERVING_PATH_MODEL
        drop_online_tables(repo / "data" / "online_store.db")
        response = server.recommend("s-down", k=5, recent_item_ids=["item-14"])
        cold = server.recommend("s-down", k=5)

    assert response.path == pb.SERVING_PATH_FEATURE_STORE_DOWN
    assert response.fallback_reason == "feature_store_unavailable"
    assert response.items[0].item_id == "item-15"
    assert "popular_items" in response.feature_age_ms
    assert cold.path == pb.SERVING_PATH_FEATURE_STORE_DOWN
    assert [item.item_id for item in cold.items] == [item for item, _ in POPULAR[:5]]


def test_stopped_redis_falls_back(tmp_path, registry_root, monkeypatch):
    stack = stack_config(tmp_path / "stack")
    redis_server.start(stack)
    try:
        monkeypatch.setenv("SEQREC_REDIS_CONNECTION_STRING", f"127.0.0.1:{stack.redis_port}")
        repo = applied_feature_repo(tmp_path / "feature_repo", "feature_store.redis.yaml")
        config = ServingConfig(
            features=FeatureSettings(repo_path=repo, profile="feature_store.redis.yaml"),
            models=ModelSettings(registry_root=registry_root),
        )
        store = store_of(config)
        write_popular(store)
        write_session(store, "s-redis", ["item-20"])
        with running_server(config) as server:
            before = server.recommend("s-redis", k=3)
            redis_server.stop(stack)
            after = server.recommend("s-redis", k=3, recent_item_ids=["item-20"])
    finally:
        redis_server.stop(stack)

    assert before.path == pb.SERVING_PATH_MODEL
    assert after.path == pb.SERVING_PATH_FEATURE_STORE_DOWN
    assert after.items[0].item_id == "item-21"
    assert len(after.items) == 3


def test_hot_reload_fails_no_request(feature_repo, tmp_path, snapshot_root):
    registry = tmp_path / "registry"
    first = train_and_register(registry, seed=1)
    config = full_config(feature_repo, registry, snapshot_root)
    write_session(store_of(config), "s-reload", ["item-2", "item-3"])
    failures: list[BaseException] = []
    versions: set[str] = set()
    stop = threading.Event()

    with running_server(config) as server:
        def hammer() -> None:
            while not stop.is_set():
                try:
                    versions.add(server.recommend("s-reload", k=20).model_versions.torch_version)
                except grpc.RpcError as error:
                    failures.append(error)

        clients = [threading.Thread(target=hammer) for _ in range(4)]
        for client in clients:
            client.start()
        second = train_and_register(registry, seed=2)
        deadline = time.monotonic() + 20
        while second not in versions and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for client in clients:
            client.join()
        after = server.recommend("s-reload", k=5)

    assert failures == []
    assert {first, second} <= versions
    assert after.model_versions.torch_version == second


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"session_id": "", "k": 5}, "session_id", "empty"),
        ({"session_id": "x" * 129, "k": 5}, "session_id", "128"),
        ({"session_id": "s", "k": 0}, "k", "between 1 and 200"),
        ({"session_id": "s", "k": 201}, "k", "between 1 and 200"),
        ({"session_id": "s", "k": -3}, "k", "between 1 and 200"),
        ({"session_id": "s", "k": 5, "recent_item_ids": ["i"] * 201}, "recent_item_ids", "200"),
        ({"session_id": "s", "k": 5, "recent_item_ids": ["ok", ""]}, "recent_item_ids[1]", "empty"),
        ({"session_id": "s", "k": 5, "recent_item_ids": ["y" * 129]}, "recent_item_ids[0]", "128"),
        ({"session_id": "s", "k": 5, "excluded_item_ids": ["i"] * 1001}, "excluded_item_ids", "1000"),
        ({"session_id": "s", "k": 5, "excluded_item_ids": [" "]}, "excluded_item_ids[0]", "empty"),
        ({"session_id": "s", "k": 5, "purchased_item_ids": ["i"] * 201}, "purchased_item_ids", "200"),
        ({"session_id": "s", "k": 5, "filters": pb.Filters(categories=["c"] * 101)}, "filters.categories", "100"),
        ({"session_id": "s", "k": 5, "filters": pb.Filters(categories=["z" * 129])}, "filters.categories[0]", "128"),
        ({"session_id": "s", "k": 5, "request_id": "r" * 129}, "request_id", "128"),
    ],
)
def test_invalid_request_names_field(feature_repo, fields, field, limit):
    with running_server(full_config(feature_repo, None, None)) as server:
        with pytest.raises(grpc.RpcError) as raised:
            server.stub.Recommend(pb.RecommendRequest(**fields), timeout=10)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{field}:")
    assert limit in raised.value.details()


def test_oversized_message_rejected(feature_repo):
    config = full_config(feature_repo, None, None)
    with running_server(config) as server:
        with pytest.raises(grpc.RpcError) as raised:
            server.recommend("s", k=5, request_id="r" * (2 << 20))
        still_serving = server.recommend("s-after", k=1)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(still_serving.items) == 1


def test_expired_deadline_returns_deadline_exceeded(feature_repo, registry_root):
    config = full_config(feature_repo, registry_root, None, deadline_ms=1)
    write_session(store_of(config), "s-deadline", ["item-1", "item-2"])

    with running_server(config) as server:
        with pytest.raises(grpc.RpcError) as raised:
            server.recommend("s-deadline", k=5)
        with pytest.raises(grpc.RpcError) as client_deadline:
            server.stub.Recommend(pb.RecommendRequest(session_id="s-deadline", k=5), timeout=0.0001)

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client_deadline.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def metric_samples(port: int) -> dict[tuple, float]:
    """Scrape the metrics endpoint into ``{(sample name, sorted labels): value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_metrics(feature_repo, registry_root, tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("blocklist: [item-0]\n")
    config = dataclasses.replace(full_config(feature_repo, registry_root, None), metrics_port=0, rules_path=rules_path)
    write_session(store_of(config), "s-metrics", ["item-1"])
    recommend = "/seqrec.v1.Recommender/Recommend"

    with running_server(config) as server:
        before = metric_samples(server.server.metrics_port)
        health = health_pb2_grpc.HealthStub(server.channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="seqrec.v1.Recommender"), timeout=5).status
        server.recommend("s-metrics", k=3)
        server.recommend("s-unknown", k=3)
        with pytest.raises(grpc.RpcError):
            server.recommend("s-metrics", k=0)
        after = metric_samples(server.server.metrics_port)

    def added(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert added("seqrec_rpc_latency_seconds_count", method=recommend) == 3
    assert added("seqrec_rpc_calls_total", method=recommend, code="OK") == 2
    assert added("seqrec_rpc_calls_total", method=recommend, code="INVALID_ARGUMENT") == 1
    assert added("seqrec_fallbacks_total", reason="unknown_session") == 1
    assert added("seqrec_recommend_responses_total", path="cold_start") == 1
    assert added("seqrec_feature_age_seconds_count", view="session_features") == 1
    assert added("seqrec_items_removed_total", rule="blocklist") == 2
    served = [labels for name, labels in after if name == "seqrec_model_version_info" and after[(name, labels)] == 1]
    assert [dict(labels)["model"] for labels in served] == ["gru4rec"]
    assert dict(served[0])["version"].startswith("v000001-")
