"""Benchmark: session rows/s that Feast writes to the online store, write_to_online_store vs push.

Usage: python benchmarks/feast_write.py REPO ROWS [--repeat N] [--redis-connection-string HOST:PORT] [--no-redis]

REPO is the feature repo folder (feature_repo). The benchmark copies it to a
temporary folder without its data, runs `feast apply` there, and times only the
Feast call on ready-made pandas frames of ROWS session rows. Each method writes
fresh session ids, so every write is an insert. Three shapes are timed: one
call with all ROWS rows, calls of 100 rows each, which is closer to what the
feature writer sends when traffic is light, and 100 calls of one row, which
shows the fixed cost of a call in milliseconds. Each figure is the best of
--repeat runs, because other processes on a shared machine add noise. Without --redis-connection-string
the Redis run starts its own redis-server on a free 127.0.0.1 port.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from feast import FeatureStore  # noqa: E402
from feast.data_source import PushMode  # noqa: E402

from pipelines.feast_store import DEFAULT_PROFILE, REDIS_PROFILE, open_store  # noqa: E402
from pipelines.feature_batch import session_frame  # noqa: E402
from pipelines.feature_rows import SESSION_VIEW, SessionRow  # noqa: E402
from stack import redis as redis_server  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.process import free_port  # noqa: E402

FIRST_EVENT_TIME_MS = 1_733_300_000_000  # 2024-12-04T08:13:20Z
SMALL_BATCH_ROWS = 100
SINGLE_ROW_CALLS = 100
FEAST = Path(sys.executable).with_name("feast")


def session_rows(prefix: str, count: int) -> pd.DataFrame:
    rows = [
        SessionRow(
            session_id=f"{prefix}-{n}",
            event_count=5,
            distinct_items=4,
            last_items=("i1", "i2", "i3", "i2", f"i{n % 1000}"),
            first_event_time=FIRST_EVENT_TIME_MS,
            last_event_time=FIRST_EVENT_TIME_MS + 60_000,
            duration_ms=60_000,
            view_count=3,
            click_count=1,
            add_to_cart_count=1,
            purchase_count=0,
            last_event_type="add_to_cart",
            last_item_id=f"i{n % 1000}",
        )
        for n in range(count)
    ]
    return session_frame(rows)


def rows_per_second(write: Callable[[pd.DataFrame], None], frames: list[pd.DataFrame]) -> float:
    started = time.perf_counter()
    for frame in frames:
        write(frame)
    return sum(len(frame) for frame in frames) / (time.perf_counter() - started)


def time_methods(store: FeatureStore, rows: int, repeat: int, label: str) -> None:
    methods: dict[str, Callable[[pd.DataFrame], None]] = {
        "write_to_online_store": lambda frame: store.write_to_online_store(SESSION_VIEW, frame),
        "push(to=ONLINE)": lambda frame: store.push(f"{SESSION_VIEW}_push", frame, to=PushMode.ONLINE),
    }
    # One untimed call loads the registry cache and opens the connection.
    store.write_to_online_store(SESSION_VIEW, session_rows("warm-up", 10))
    for name, write in methods.items():
        whole_runs, small_runs, call_ms_runs = [], [], []
        for run in range(repeat):
            whole_runs.append(rows_per_second(write, [session_rows(f"{name}-{run}-whole", rows)]))
            small_frames = [
                session_rows(f"{name}-{run}-small-{start}", min(SMALL_BATCH_ROWS, rows - start))
                for start in range(0, rows, SMALL_BATCH_ROWS)
            ]
            small_runs.append(rows_per_second(write, small_frames))
            single_frames = [session_rows(f"{name}-{run}-single-{n}", 1) for n in range(SINGLE_ROW_CALLS)]
            call_ms_runs.append(1000 / rows_per_second(write, single_frames))
        print(
            f"{label:7} {name:22} one call of {rows}: best {max(whole_runs):7,.0f} rows/s {[round(r) for r in whole_runs]}   "
            f"calls of {SMALL_BATCH_ROWS}: best {max(small_runs):7,.0f} rows/s {[round(r) for r in small_runs]}   "
            f"1-row call: best {min(call_ms_runs):5.1f} ms"
        )


def applied_copy(repo: Path, workspace: Path, profile: str, env: dict[str, str]) -> Path:
    copy = Path(shutil.copytree(repo, workspace / f"repo-{profile}", ignore=shutil.ignore_patterns("data", "__pycache__")))
    subprocess.run([str(FEAST), "-f", profile, "apply"], cwd=copy, env=env, check=True, capture_output=True)
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="feature repo folder, e.g. feature_repo")
    parser.add_argument("rows", type=int, help="session rows per timed run, e.g. 10000")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each method and shape (default 3)")
    parser.add_argument("--redis-connection-string", help="use this Redis (Feast format host:port) instead of starting one")
    parser.add_argument("--no-redis", action="store_true", help="time SQLite only")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error(f"rows is {args.rows} and --repeat is {args.repeat}; both must be at least 1")

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}")
    workspace = Path(tempfile.mkdtemp(prefix="bench-feast-write-"))
    redis_config = None
    try:
        env = dict(os.environ)
        sqlite_repo = applied_copy(args.repo, workspace, DEFAULT_PROFILE, env)
        time_methods(open_store(sqlite_repo, DEFAULT_PROFILE), args.rows, args.repeat, "sqlite")
        if args.no_redis:
            return 0
        connection = args.redis_connection_string
        if connection is None:
            redis_config = StackConfig.from_env(state_dir=workspace / "stack", redis_port=free_port())
            redis_server.start(redis_config)
            connection = f"127.0.0.1:{redis_config.redis_port}"
        os.environ["SEQREC_REDIS_CONNECTION_STRING"] = connection
        redis_repo = applied_copy(args.repo, workspace, REDIS_PROFILE, dict(os.environ))
        time_methods(open_store(redis_repo, REDIS_PROFILE), args.rows, args.repeat, "redis")
    finally:
        if redis_config is not None:
            redis_server.stop(redis_config)
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
