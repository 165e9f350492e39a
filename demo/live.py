"""Replay test events as live traffic through the gRPC service and score each strategy on the next item.

For every test event the client first calls ``Recommend`` with only the
session id, then ``SendEvent`` with the event, like a shop front end. When the
event continues a session that has earlier test events, it is a next-item
case: the items recommended just before it are ranked against it for four
strategies, all from the same response:

- blend: the response's order (the service's blend after its rules);
- torch: the returned items ordered by ``torch_score``;
- river: the returned items ordered by ``river_score``;
- popularity: the ``popular_items`` list that the service's fallback reads from Feast.

Items without a score of that model are left out of its list. The client asks
for ``candidates`` items (more than the K of the metrics) so that each model's
own top K is among them.

Events are paced by their event times sped up ``speedup`` times, with each
wait capped at ``max_wait``, so that sessions keep their order and the
features of one event can reach the store before the session's next event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from seqrec.events import Event
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from serving.protos.seqrec.v1 import recommender_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

STRATEGIES = ("popularity", "torch", "river", "blend")
CUTOFFS = (1, 5, 10, 20)


@dataclass(frozen=True)
class LiveSettings:
    """Pace and size of the live replay."""

    address: str
    candidates: int = 200
    """Items asked of each Recommend call; the service accepts at most 200."""
    speedup: float = 120.0
    """Event time passes this many times faster than wall time."""
    max_wait: timedelta = timedelta(milliseconds=500)
    """Maximum pause between two events, however far apart their event times are."""
    deadline: timedelta = timedelta(seconds=2)
    freshness_every: int = 10
    """Measure feature freshness on every n-th event."""
    freshness_timeout: timedelta = timedelta(seconds=30)


@dataclass
class StrategyScore:
    """Hits and reciprocal ranks of one strategy over the next-item cases."""

    cases: int = 0
    hits: Counter = field(default_factory=Counter)
    reciprocal_ranks: Counter = field(default_factory=Counter)
    ndcg: Counter = field(default_factory=Counter)

    def add(self, ranked: list[str], target: str) -> None:
        self.cases += 1
        try:
            rank = ranked.index(target) + 1
        except ValueError:
            return
        for cutoff in CUTOFFS:
            if rank <= cutoff:
                self.hits[cutoff] += 1
                self.reciprocal_ranks[cutoff] += 1.0 / rank
                self.ndcg[cutoff] += 1.0 / math.log2(rank + 1)

    def recall(self, cutoff: int) -> float:
        return self.hits[cutoff] / self.cases if self.cases else 0.0

    def mrr(self, cutoff: int) -> float:
        return self.reciprocal_ranks[cutoff] / self.cases if self.cases else 0.0

    def ndcg_at(self, cutoff: int) -> float:
        return self.ndcg[cutoff] / self.cases if self.cases else 0.0


@dataclass
class LiveResult:
    """Measurements of the live replay."""

    events_sent: int = 0
    send_failures: Counter = field(default_factory=Counter)
    recommend_failures: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    freshness_ms: list[float] = field(default_factory=list)
    freshness_timeouts: int = 0
    paths: Counter = field(default_factory=Counter)
    fallback_reasons: Counter = field(default_factory=Counter)
    torch_versions: Counter = field(default_factory=Counter)
    river_versions: set = field(default_factory=set)
    scores: dict[str, StrategyScore] = field(default_factory=lambda: {name: StrategyScore() for name in STRATEGIES})
    seconds: float = 0.0


def rankings(response: pb.RecommendResponse, popular: list[str]) -> dict[str, list[str]]:
    """Return each strategy's ranked item ids from one response (see the module docstring)."""
    items = list(response.items)
    torch_scored = [item for item in items if item.HasField("torch_score")]
    river_scored = [item for item in items if item.HasField("river_score")]
    return {
        "blend": [item.item_id for item in items],
        "torch": [item.item_id for item in sorted(torch_scored, key=lambda item: -item.torch_score)],
        "river": [item.item_id for item in sorted(river_scored, key=lambda item: -item.river_score)],
        "popularity": list(popular),
    }


class PopularList:
    """The ``popular_items`` list from Feast, reread when the last read is older than ``refresh``."""

    def __init__(self, store, refresh: timedelta = timedelta(seconds=1)):
        self._store = store
        self._refresh = refresh.total_seconds()
        self._read_at = float("-inf")
        self._items: list[str] = []

    def get(self) -> list[str]:
        now = time.monotonic()
        if now - self._read_at >= self._refresh:
            values = self._store.get_online_features(
                features=["popular_items:item_ids"], entity_rows=[{"scope": "all"}]
            ).to_dict()
            self._items = list(values["item_ids"][0] or [])
            self._read_at = now
        return self._items


class FreshnessProbe:
    """Measure, in a background thread, how long an event takes to show in the session's Feast row."""

    def __init__(self, store, timeout: timedelta, result: LiveResult):
        self._store = store
        self._timeout = timeout.total_seconds()
        self._result = result
        self._pending: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="freshness-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, event: Event, sent_at: float) -> None:
        with self._lock:
            self._pending.append((event.session_id, event.event_time, sent_at))

    def close(self, drain: timedelta) -> None:
        deadline = time.monotonic() + drain.total_seconds()
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.1)
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = list(self._pending)
            if not pending:
                time.sleep(0.02)
                continue
            rows = self._store.get_online_features(
                features=["session_features:last_event_time"],
                entity_rows=[{"session_id": session_id} for session_id, _, _ in pending],
            ).to_dict()["last_event_time"]
            now = time.monotonic()
            done = set()
            for index, ((_, event_time, sent_at), stored) in enumerate(zip(pending, rows)):
                if stored is not None and stored >= event_time:
                    self._result.freshness_ms.append((now - sent_at) * 1000.0)
                    done.add(index)
                elif now - sent_at > self._timeout:
                    self._result.freshness_timeouts += 1
                    done.add(index)
            with self._lock:
                self._pending = [entry for index, entry in enumerate(self._pending) if index not in done]
            time.sleep(0.02)


def event_message(event: Event) -> pb.Event:
    message = pb.Event(
        event_id=event.event_id, session_id=event.session_id, item_id=event.item_id,
        event_type=event.event_type, event_time=event.event_time,
    )
    if event.user_id is not None:
        message.user_id = event.user_id
    if event.category is not None:
        message.category = event.category
    if event.price is not None:
        message.price = event.price
    return message


def replay_live(events: list[Event], settings: LiveSettings, store, progress=None) -> LiveResult:
    """Send ``events`` (sorted by event time) through the service; see the module docstring."""
    result = LiveResult()
    popular = PopularList(store)
    probe = FreshnessProbe(store, settings.freshness_timeout, result)
    probe.start()
    seen_sessions: set[str] = set()
    deadline_s = settings.deadline.total_seconds()
    started = time.monotonic()
    with grpc.insecure_channel(settings.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        previous_time = None
        for index, event in enumerate(events):
            if previous_time is not None:
                gap_s = (event.event_time - previous_time) / 1000.0 / settings.speedup
                time.sleep(min(max(gap_s, 0.0), settings.max_wait.total_seconds()))
            previous_time = event.event_time

            request = pb.RecommendRequest(session_id=event.session_id, k=settings.candidates,
                                          request_id=uuid.uuid4().hex)
            called = time.perf_counter()
            try:
                response = stub.Recommend(request, timeout=deadline_s)
            except grpc.RpcError as error:
                result.recommend_failures[error.code().name] += 1
                response = None
            result.latencies_ms.append((time.perf_counter() - called) * 1000.0)
            if response is not None:
                result.paths[pb.ServingPath.Name(response.path)] += 1
                if response.fallback_reason:
                    result.fallback_reasons[response.fallback_reason] += 1
                result.torch_versions[response.model_versions.torch_version or "none"] += 1
                if response.model_versions.HasField("river_version"):
                    result.river_versions.add(response.model_versions.river_version)
                if event.session_id in seen_sessions:
                    for name, ranked in rankings(response, popular.get()).items():
                        result.scores[name].add(ranked[: max(CUTOFFS)], event.item_id)

            try:
                stub.SendEvent(pb.SendEventRequest(event=event_message(event)), timeout=deadline_s)
                result.events_sent += 1
                if index % settings.freshness_every == 0:
                    probe.watch(event, time.monotonic())
            except grpc.RpcError as error:
                result.send_failures[error.code().name] += 1
                logger.warning("SendEvent failed for event %s: %s", event.event_id, error.details())
            seen_sessions.add(event.session_id)
            if progress is not None:
                progress(index + 1)
    probe.close(settings.freshness_timeout)
    result.seconds = time.monotonic() - started
    return result
