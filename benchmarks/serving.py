"""Benchmark: latency and throughput of Recommend, on Feast's SQLite and Redis online stores.

Usage: python benchmarks/serving.py [--items N] [--k K] [--rate QPS] [--concurrency C] [--duration-s S]
                                    [--profiles feature_store.yaml,feature_store.redis.yaml]

Setup, in a temporary folder: a catalogue of --items items (10,000 by
default), and a GRU4Rec trained for one epoch on random sessions over it and
promoted in a fresh registry. Serving loads its TorchScript export. Beside it
go a River snapshot and a rules file (a blocklist of 100 items, seen items
excluded, at most 5 items per category over 50 categories). A fresh copy of
the Feast repo gets 5,000 live sessions, a transition list for every item and
a popularity list. For the Redis profile a Redis server is started on a free
127.0.0.1 port and stopped at the end.

The server runs in this process with its defaults. The load generator is ghz
(built with `go install github.com/bojand/ghz/cmd/ghz@latest` into
~/.cache/seqrec/bin on first use), a separate process that round-robins 5,000
requests, one per session, each with k = --k and two recent items. Per profile:

1. Fixed rate: --rate calls/s at --concurrency for --duration-s, p50 and p99.
2. Saturation: as fast as possible at --concurrency, for the QPS.
3. The same two runs of the empty RPC grpc.health.v1.Health/Check on the same
   server, and the ratio of Recommend to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from online_learning.scoring import CandidateContext, LearnerSnapshot, candidate_features, default_model  # noqa: E402
from online_learning.snapshots import write_snapshot  # noqa: E402
from seqrec.registry import ModelRegistry  # noqa: E402
from serving.config import FeatureSettings, ModelSettings, ServingConfig  # noqa: E402
from serving.features import open_feature_store  # noqa: E402
from serving.server import create_server  # noqa: E402
from stack import redis as redis_server  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.process import free_port  # noqa: E402

logger = logging.getLogger("benchmarks.serving")

REPOSITORY = Path(__file__).resolve().parents[1]
FEATURE_REPO = REPOSITORY / "feature_repo"
FEAST = Path(sys.executable).with_name("feast")
GHZ_PACKAGE = "github.com/bojand/ghz/cmd/ghz@latest"
GHZ_PATH = Path("~/.cache/seqrec/bin/ghz").expanduser()
SQLITE_PROFILE = "feature_store.yaml"
REDIS_PROFILE = "feature_store.redis.yaml"
SESSIONS = 5_000
SESSION_LENGTH = 5
TRANSITIONS_PER_ITEM = 20
POPULAR_ITEMS = 100
CATEGORIES = 50
BLOCKED_ITEMS = 100
WRITE_CHUNK_ROWS = 2_000
WARM_UP_CALLS = 500
FEAST_TIMEOUT = timedelta(minutes=3)
GHZ_TIMEOUT_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class LoadResult:
    """One ghz run: latencies in milliseconds and the achieved calls per second."""

    name: str
    p50_ms: float
    p99_ms: float
    qps: float
    calls: int
    errors: dict[str, int]

    def line(self) -> str:
        return (f"{self.name:42} p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  "
                f"{self.qps:8.1f} calls/s  {self.calls:7,} calls  errors: {self.errors or 'none'}")


def item_ids(count: int) -> list[str]:
    return [f"item-{index}" for index in range(count)]


def ghz_binary() -> Path:
    if GHZ_PATH.is_file():
        return GHZ_PATH
    go = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if go is None:
        raise SystemExit(f"ghz is not in {GHZ_PATH} and Go is not installed; install Go, or run `go install {GHZ_PACKAGE}`")
    GHZ_PATH.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "install", GHZ_PACKAGE], env={**os.environ, "GOBIN": str(GHZ_PATH.parent)}, check=True)
    return GHZ_PATH


def train_model(registry_root: Path, items: list[str], workspace: Path) -> str:
    """Train GRU4Rec for one epoch on random sessions, register and promote it; returns the version."""
    from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig

    generator = np.random.default_rng(7)
    sessions = [generator.integers(0, len(items), size=SESSION_LENGTH) for _ in range(2_000)]
    config = GRU4RecConfig(hidden_size=64, batch_size=64, n_sample=256, epochs=1, device="cpu")
    model = GRU4Rec(config).fit(sessions, n_items=len(items))
    staging = workspace / "model"
    model.save(staging)
    (staging / "item_index.json").write_text(json.dumps(items))
    registry = ModelRegistry(registry_root)
    registered = registry.register("gru4rec", staging, artifact_format="gru4rec-torch-v1",
                                   metrics={"validation": {"recall@20": 0.0}}, code_version="benchmark", move=True)
    registry.promote("gru4rec", registered.version, force=True)
    return registered.version


def write_snapshot_file(root: Path) -> None:
    model = default_model()
    context = CandidateContext("s", ("item-1",), {"item-2": 5}, {"item-2": 9, "item-3": 4})
    for _ in range(50):
        positive, negative = candidate_features(context, ["item-2", "item-3"])
        model.learn_one(positive, True)
        model.learn_one(negative, False)
    write_snapshot(root, LearnerSnapshot(model.clone(include_attributes=True), 1, int(time.time() * 1000), 100))


def write_rules(path: Path, items: list[str]) -> None:
    lines = [
        "blocklist: [" + ", ".join(items[:BLOCKED_ITEMS]) + "]",
        "exclude_seen: true",
        "exclude_purchased: true",
        "max_per_category: 5",
        "item_categories_file: categories.csv",
    ]
    path.write_text("\n".join(lines) + "\n")
    categories = "\n".join(f"{item},category-{index % CATEGORIES}" for index, item in enumerate(items))
    (path.parent / "categories.csv").write_text(categories + "\n")


def apply_feature_repo(destination: Path, profile: str) -> Path:
    repo = Path(shutil.copytree(FEATURE_REPO, destination, ignore=shutil.ignore_patterns("data", "__pycache__")))
    subprocess.run([str(FEAST), "-f", profile, "apply"], cwd=repo, check=True, capture_output=True,
                   timeout=FEAST_TIMEOUT.total_seconds())
    return repo


def write_features(settings: FeatureSettings, items: list[str]) -> list[list[str]]:
    """Write sessions, transitions and popularity; returns the stored item list of each session."""
    store = open_feature_store(settings)
    now = int(time.time() * 1000)
    generator = np.random.default_rng(11)
    sessions = [[items[index] for index in generator.integers(0, len(items), size=SESSION_LENGTH)] for _ in range(SESSIONS)]

    def timestamps(count: int) -> pd.Series:
        return pd.Series(pd.to_datetime([now] * count, unit="ms", utc=True))

    for start in range(0, SESSIONS, WRITE_CHUNK_ROWS):
        chunk = sessions[start:start + WRITE_CHUNK_ROWS]
        frame = pd.DataFrame({
            "session_id": [f"s-{start + offset}" for offset in range(len(chunk))],
            "event_count": SESSION_LENGTH, "distinct_items": SESSION_LENGTH, "last_items": chunk,
            "first_event_time": now - 60_000, "last_event_time": now, "duration_ms": 60_000,
            "view_count": SESSION_LENGTH, "click_count": 0, "add_to_cart_count": 0, "purchase_count": 0,
            "last_event_type": "view", "last_item_id": [session[-1] for session in chunk],
        })
        frame["event_timestamp"] = timestamps(len(chunk))
        store.write_to_online_store("session_features", frame)
    for start in range(0, len(items), WRITE_CHUNK_ROWS):
        chunk = items[start:start + WRITE_CHUNK_ROWS]
        next_items = [[items[index] for index in generator.integers(0, len(items), size=TRANSITIONS_PER_ITEM)]
                      for _ in chunk]
        frame = pd.DataFrame({
            "item_id": chunk, "next_item_ids": next_items,
            "next_item_counts": [list(range(TRANSITIONS_PER_ITEM, 0, -1))] * len(chunk), "window_end": now,
        })
        frame["event_timestamp"] = timestamps(len(chunk))
        store.write_to_online_store("item_transitions", frame)
    frame = pd.DataFrame({"scope": ["all"], "item_ids": [items[:POPULAR_ITEMS]],
                          "counts": [list(range(10 * POPULAR_ITEMS, 0, -10))], "window_end": [now]})
    frame["event_timestamp"] = timestamps(1)
    store.write_to_online_store("popular_items", frame)
    return sessions


def request_file(path: Path, sessions: list[list[str]], items: list[str], k: int) -> Path:
    generator = np.random.default_rng(13)
    requests = []
    for number, session in enumerate(sessions):
        recent = [session[-1], items[int(generator.integers(0, len(items)))]]
        requests.append({"session_id": f"s-{number}", "k": k, "recent_item_ids": recent, "request_id": f"r{number}"})
    path.write_text(json.dumps(requests))
    return path


def write_protoset(path: Path) -> Path:
    """Write the descriptors of the Recommender and Health services as a protoset file for ghz.

    NOTE: ghz requests the method's full name from server reflection, which the Python
    reflection service of grpcio-reflection 1.65 does not resolve, so ghz reads the descriptors from this file.
    """
    from google.protobuf import descriptor_pb2
    from grpc_health.v1 import health_pb2

    from serving.protos.seqrec.v1 import recommender_pb2

    descriptors = descriptor_pb2.FileDescriptorSet()
    for module in (recommender_pb2, health_pb2):
        module.DESCRIPTOR.CopyToProto(descriptors.file.add())
    path.write_bytes(descriptors.SerializeToString())
    return path


def run_ghz(name: str, address: str, call: str, data_file: Path | None, rate: int, concurrency: int,
            duration_s: float, protoset: Path) -> LoadResult:
    command = [str(ghz_binary()), "--insecure", "--protoset", str(protoset), "--call", call, "--concurrency", str(concurrency),
               "--connections", "2", "--duration", f"{duration_s}s", "--format", "json"]
    if rate > 0:
        command += ["--rps", str(rate)]
    if data_file is not None:
        command += ["--data-file", str(data_file)]
    command.append(address)
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=duration_s + GHZ_TIMEOUT_MARGIN.total_seconds())
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"ghz failed with exit code {result.returncode} on {name}: {result.stderr.strip()}")
    report = json.loads(result.stdout)
    percentiles = {entry["percentage"]: entry["latency"] for entry in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    # ghz cancels the calls in flight when --duration ends and counts them as errors.
    errors = {code: count for code, count in codes.items() if code != "OK"}
    return LoadResult(name, percentiles.get(50, 0) / 1e6, percentiles.get(99, 0) / 1e6, report["rps"],
                      int(report["count"]), errors)


def benchmark_profile(profile: str, args: argparse.Namespace, workspace: Path, items: list[str],
                      registry: Path, snapshots: Path, rules: Path) -> list[LoadResult]:
    repo = apply_feature_repo(workspace / f"repo-{profile}", profile)
    settings = FeatureSettings(repo_path=repo, profile=profile)
    sessions = write_features(settings, items)
    data_file = request_file(workspace / f"requests-{profile}.json", sessions, items, args.k)
    config = ServingConfig(features=settings, models=ModelSettings(registry_root=registry, snapshot_root=snapshots),
                           rules_path=rules)
    server, port = create_server("127.0.0.1:0", config)
    server.start()
    address = f"127.0.0.1:{port}"
    protoset = write_protoset(workspace / "services.protoset")
    recommend, health = "seqrec.v1.Recommender.Recommend", "grpc.health.v1.Health.Check"
    try:
        time.sleep(2 * config.models.snapshot_max_staleness_s / 4)
        run_ghz("warm-up", address, recommend, data_file, 0, args.concurrency, 5, protoset)
        results = [
            run_ghz(f"Recommend at {args.rate} calls/s", address, recommend, data_file, args.rate,
                    args.concurrency, args.duration_s, protoset),
            run_ghz(f"Health/Check at {args.rate} calls/s", address, health, None, args.rate,
                    args.concurrency, args.duration_s, protoset),
            run_ghz("Recommend, saturated", address, recommend, data_file, 0, args.concurrency, args.duration_s, protoset),
            run_ghz("Health/Check, saturated", address, health, None, 0, args.concurrency, args.duration_s, protoset),
        ]
    finally:
        server.stop(grace_s=1).wait(30)
    return results


def print_results(profile: str, results: list[LoadResult]) -> None:
    print(f"\n== {profile} ==")
    for result in results:
        print(result.line())
    fixed, fixed_empty, saturated, saturated_empty = results
    print(f"ratio Recommend / Health at {fixed.name.split(' at ')[-1]}: p50 {fixed.p50_ms / fixed_empty.p50_ms:.1f}x, "
          f"p99 {fixed.p99_ms / fixed_empty.p99_ms:.1f}x")
    print(f"ratio of saturated QPS Recommend / Health: {saturated.qps / saturated_empty.qps:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="catalogue size (default 10,000)")
    parser.add_argument("--k", type=int, default=20, help="items per response (default 20)")
    parser.add_argument("--rate", type=int, default=200, help="calls/s of the fixed-rate runs (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent calls of ghz (default 8)")
    parser.add_argument("--duration-s", type=float, default=20.0, help="seconds per measured run (default 20)")
    parser.add_argument("--profiles", default=f"{SQLITE_PROFILE},{REDIS_PROFILE}",
                        help="Feast profiles to measure, comma-separated (default both)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()}")
    workspace = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    items = item_ids(args.items)
    registry, snapshots, rules = workspace / "registry", workspace / "snapshots", workspace / "rules.yaml"
    version = train_model(registry, items, workspace)
    write_snapshot_file(snapshots)
    write_rules(rules, items)
    print(f"catalogue: {len(items):,} items, model {version}, k={args.k}, concurrency {args.concurrency}, "
          f"{args.duration_s:g} s per run")
    stack = StackConfig.from_env(state_dir=workspace / "stack", kafka_port=free_port(),
                                 kafka_controller_port=free_port(), flink_rest_port=free_port(),
                                 flink_rpc_port=free_port(), redis_port=free_port())
    saved_connection = os.environ.get("SEQREC_REDIS_CONNECTION_STRING")
    try:
        for profile in args.profiles.split(","):
            if profile == REDIS_PROFILE:
                redis_server.start(stack)
                os.environ["SEQREC_REDIS_CONNECTION_STRING"] = f"127.0.0.1:{stack.redis_port}"
            print_results(profile, benchmark_profile(profile, args, workspace, items, registry, snapshots, rules))
    finally:
        if saved_connection is None:
            os.environ.pop("SEQREC_REDIS_CONNECTION_STRING", None)
        else:
            os.environ["SEQREC_REDIS_CONNECTION_STRING"] = saved_connection
        redis_server.stop(stack)
        shutil.rmtree(workspace, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
