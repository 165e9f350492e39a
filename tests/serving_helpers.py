"""Real parts for the serving tests: a Feast repo with rows, a registered GRU4Rec, a River snapshot, a client."""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import grpc
import numpy as np
import pandas as pd

from online_learning.scoring import CandidateContext, LearnerSnapshot, candidate_features, default_model
from online_learning.snapshots import write_snapshot
from seqrec.registry import ModelRegistry
from serving.config import ServingConfig
from serving.features import open_feature_store
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from serving.protos.seqrec.v1 import recommender_pb2_grpc
from serving.server import RecommenderServer, create_server
from tests.test_feature_repo import copy_feature_repo, run_feast

MODEL_NAME = "gru4rec"
GRU4REC_FORMAT = "gru4rec-torch-v1"
N_ITEMS = 30
CATALOGUE = [f"item-{index}" for index in range(N_ITEMS)]
"""Item ids in index order; each session walks i, i+1, i+2, ... (mod N_ITEMS), so the model learns the successor."""
POPULAR = [(f"item-{index}", 100 - index) for index in range(0, N_ITEMS, 2)]
CALL_TIMEOUT_S = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def successor_sessions(count: int, length: int, seed: int) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    starts = generator.integers(0, N_ITEMS, size=count)
    return [(start + np.arange(length)) % N_ITEMS for start in starts]


def train_and_register(registry_root: Path, seed: int = 1, promote: bool = True) -> str:
    """Train a small GRU4Rec on successor sessions, register it and (by default) promote it; returns its version."""
    from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig

    config = GRU4RecConfig(hidden_size=16, batch_size=8, n_sample=8, epochs=3, learning_rate=0.2, seed=seed, device="cpu")
    model = GRU4Rec(config).fit(successor_sessions(200, 6, seed), n_items=N_ITEMS)
    with tempfile.TemporaryDirectory(prefix="seqrec-test-model-") as staging:
        directory = Path(staging)
        model.save(directory)
        (directory / "item_index.json").write_text(json.dumps(CATALOGUE))
        registry = ModelRegistry(registry_root)
        registered = registry.register(
            MODEL_NAME, directory, artifact_format=GRU4REC_FORMAT,
            metrics={"validation": {"recall@20": 0.5}}, code_version="test",
        )
    if promote:
        decision = registry.promote(MODEL_NAME, registered.version, force=True)
        assert decision.promoted, decision.reason
    return registered.version


def write_river_snapshot(root: Path, version: int = 1) -> LearnerSnapshot:
    """Teach a River model that transitions predict the next item, and write it as snapshot ``version``."""
    model = default_model()
    context = CandidateContext("s", ("item-1",), {"item-2": 5}, dict(POPULAR))
    for _ in range(20):
        positive, negative = candidate_features(context, ["item-2", "item-9"])
        model.learn_one(positive, True)
        model.learn_one(negative, False)
    snapshot = LearnerSnapshot(model.clone(include_attributes=True), version, now_ms(), 40)
    write_snapshot(root, snapshot)
    return snapshot


def applied_feature_repo(destination: Path, profile: str = "feature_store.yaml", env: dict | None = None) -> Path:
    repo = copy_feature_repo(destination)
    run_feast(repo, "-f", profile, "apply", env=env)
    return repo


def _timestamps(epoch_ms: Sequence[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(epoch_ms), unit="ms", utc=True))


def write_session(store, session_id: str, items: Sequence[str], last_event_type: str = "view",
                  last_event_time: int | None = None) -> None:
    last = now_ms() if last_event_time is None else last_event_time
    frame = pd.DataFrame({
        "session_id": [session_id], "event_count": [len(items)], "distinct_items": [len(set(items))],
        "last_items": [list(items)], "first_event_time": [last - 1000], "last_event_time": [last],
        "duration_ms": [1000], "view_count": [len(items)], "click_count": [0], "add_to_cart_count": [0],
        "purchase_count": [1 if last_event_type == "purchase" else 0], "last_event_type": [last_event_type],
        "last_item_id": [items[-1]],
    })
    frame["event_timestamp"] = _timestamps([last])
    store.write_to_online_store("session_features", frame)


def write_transitions(store, item_id: str, next_items: Sequence[tuple[str, int]], window_end: int | None = None) -> None:
    end = now_ms() if window_end is None else window_end
    frame = pd.DataFrame({
        "item_id": [item_id], "next_item_ids": [[item for item, _ in next_items]],
        "next_item_counts": [[count for _, count in next_items]], "window_end": [end],
    })
    frame["event_timestamp"] = _timestamps([end])
    store.write_to_online_store("item_transitions", frame)


def write_popular(store, items: Sequence[tuple[str, int]] = POPULAR, window_end: int | None = None) -> None:
    end = now_ms() if window_end is None else window_end
    frame = pd.DataFrame({
        "scope": ["all"], "item_ids": [[item for item, _ in items]], "counts": [[count for _, count in items]],
        "window_end": [end],
    })
    frame["event_timestamp"] = _timestamps([end])
    store.write_to_online_store("popular_items", frame)


def store_of(config: ServingConfig):
    return open_feature_store(config.features)


@dataclass
class RunningServer:
    server: RecommenderServer
    port: int
    channel: grpc.Channel
    stub: recommender_pb2_grpc.RecommenderStub

    def recommend(self, session_id: str, k: int = 5, **fields) -> pb.RecommendResponse:
        request = pb.RecommendRequest(session_id=session_id, k=k, **fields)
        return self.stub.Recommend(request, timeout=CALL_TIMEOUT_S)


@contextmanager
def running_server(config: ServingConfig, credentials: grpc.ChannelCredentials | None = None,
                   target_host: str = "127.0.0.1") -> Iterator[RunningServer]:
    """Start a server on a free 127.0.0.1 port with ``config`` and yield it with a connected client."""
    server, port = create_server("127.0.0.1:0", config)
    server.start()
    target = f"{target_host}:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials is not None else grpc.insecure_channel(target)
    try:
        yield RunningServer(server, port, channel, recommender_pb2_grpc.RecommenderStub(channel))
    finally:
        channel.close()
        server.stop(grace_s=0).wait(10)
