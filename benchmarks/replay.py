"""Benchmark: events/s that `seqrec replay` puts into Kafka.

Usage: python benchmarks/replay.py PATH [--bootstrap-servers HOST:PORT] [--repeat N]

Without --bootstrap-servers it starts its own Kafka broker on a free 127.0.0.1
port and stops it at the end. Each run writes to fresh topics. The baseline is
a bare kafka-python producer sending the same number of pre-encoded messages
with the same settings (acks=all, idempotence), run in the same process: the
ratio shows what reading, validation and sorting cost on top of the client.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer  # noqa: E402

from ingest.replay import ReplaySettings, replay  # noqa: E402
from seqrec.publisher import PublisherSettings  # noqa: E402
from stack import kafka  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.process import free_port  # noqa: E402

PARTITIONS = 4


def baseline(bootstrap: str, count: int, message_size: int) -> float:
    """Return events/s of a bare producer sending ``count`` fixed messages."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024, enable_idempotence=True
    )
    _create_topics(bootstrap, topic)
    value = b"x" * message_size
    started = time.perf_counter()
    for n in range(count):
        producer.send(topic, key=str(n % 1000).encode(), value=value)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    return count / seconds


def run_replay(path: Path, bootstrap: str) -> tuple[float, object]:
    suffix = uuid.uuid4().hex[:8]
    events_topic, dead_letter_topic = f"bench-events-{suffix}", f"bench-dead-{suffix}"
    _create_topics(bootstrap, events_topic, dead_letter_topic)
    settings = ReplaySettings(
        path=path,
        progress=False,
        publisher=PublisherSettings(bootstrap, events_topic, dead_letter_topic),
    )
    started = time.perf_counter()
    summary = replay(settings)
    return summary.produced / (time.perf_counter() - started), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="dataset file, e.g. ../shared/datasets/yoochoose-1-64/rec15_train_full.txt")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side (default 3)")
    args = parser.parse_args()

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}")
    config = None
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        config = StackConfig.from_env(
            state_dir=Path(tempfile.mkdtemp(prefix="bench-replay-")),
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
        )
        kafka.start(config)
        bootstrap = config.bootstrap_servers
    try:
        replay_rates, baseline_rates = [], []
        summary = None
        for _ in range(args.repeat):
            rate, summary = run_replay(args.path, bootstrap)
            replay_rates.append(rate)
            baseline_rates.append(baseline(bootstrap, summary.produced, 200))
        best_replay, best_baseline = max(replay_rates), max(baseline_rates)
        print(f"rows read: {summary.read}  produced: {summary.produced}  rejected: {dict(summary.rejected)}")
        print(f"replay (read + validate + sort + produce): best {best_replay:,.0f} events/s  runs {[round(r) for r in replay_rates]}")
        print(f"baseline (bare producer, 200-byte messages): best {best_baseline:,.0f} events/s  runs {[round(r) for r in baseline_rates]}")
        print(f"ratio replay / baseline: {best_replay / best_baseline:.2f}")
    finally:
        if config is not None:
            kafka.stop(config)
    return 0


def _create_topics(bootstrap: str, *names: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names])
    finally:
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
