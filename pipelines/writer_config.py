"""Settings of the feature writer, with durations as ``timedelta`` values, and its command-line options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

from pipelines.feast_store import DEFAULT_PROFILE
from pipelines.feature_rows import FeatureTopics

BATCH_INTERVAL = timedelta(milliseconds=100)
SUMMARY_INTERVAL = timedelta(seconds=30)
SESSION_TIMEOUT = timedelta(seconds=6)
HEARTBEAT_INTERVAL = timedelta(seconds=1)

FreshnessProbe = Callable[[str, int], None]
"""Called with (session_id, milliseconds from last_event_time to the write) for each written session row."""


@dataclass
class FeatureWriterConfig:
    """Settings of the feature writer. Durations are ``timedelta`` values."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers as ``host:port[,host:port]``."""
    repo_path: Path = Path("feature_repo")
    """Folder of the Feast feature repo, after ``feast apply``."""
    profile: str = DEFAULT_PROFILE
    """Feast settings file inside ``repo_path``, e.g. ``feature_store.redis.yaml``."""
    topics: FeatureTopics = field(default_factory=FeatureTopics)
    group_id: str = "feature-writer"
    batch_max_records: int = 5000
    """Maximum records per batch."""
    batch_interval: timedelta = BATCH_INTERVAL
    """Maximum time a batch collects records before it is written."""
    summary_interval: timedelta = SUMMARY_INTERVAL
    """Time between two log lines with the counters."""
    transition_cache_items: int = 50_000
    """Maximum items whose transition lists stay in memory. Evicted items are reread from the store.

    Each item takes about 2 KB with K = 20 next items of 12-character ids
    (measured with tracemalloc), so the default needs about 100 MB."""
    session_timeout: timedelta = SESSION_TIMEOUT
    """Kafka consumer group session timeout: a writer silent this long loses its partitions."""
    heartbeat_interval: timedelta = HEARTBEAT_INTERVAL
    freshness_probe: FreshnessProbe | None = None
    """Optional hook called for each written session row. An exception it raises stops the writer."""

    def __post_init__(self) -> None:
        if self.batch_max_records < 1:
            raise ValueError(f"batch_max_records is {self.batch_max_records}, expected at least 1")
        for name in ("batch_interval", "summary_interval", "session_timeout", "heartbeat_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} is {getattr(self, name)}, expected a positive duration")
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"heartbeat_interval {self.heartbeat_interval} must be shorter than "
                f"session_timeout {self.session_timeout}. Kafka recommends at most a third of it"
            )


def _ms(duration: timedelta) -> int:
    return int(duration / timedelta(milliseconds=1))


def parse_args(argv: list[str] | None) -> tuple[FeatureWriterConfig, str]:
    """Parse the command line of ``python -m pipelines.feature_writer`` into a config and a log level."""
    defaults = FeatureWriterConfig()
    default_topics = FeatureTopics()
    parser = argparse.ArgumentParser(description="Write feature rows from Kafka to the Feast online store.")

    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers, help="Kafka brokers, host:port[,host:port] (default: %(default)s)")
    parser.add_argument("--repo", type=Path, default=defaults.repo_path, help="Feast feature repo folder (default: %(default)s)")
    parser.add_argument(
        "--profile", default=defaults.profile,
        help="Feast settings file in the repo, e.g. feature_store.redis.yaml (default: %(default)s)",
    )

    parser.add_argument("--group-id", default=defaults.group_id, help="Kafka consumer group (default: %(default)s)")
    parser.add_argument("--session-topic", default=default_topics.session, help="topic of session rows (default: %(default)s)")
    parser.add_argument("--item-topic", default=default_topics.item, help="topic of item statistics rows (default: %(default)s)")
    parser.add_argument(
        "--transition-topic", default=default_topics.transition, help="topic of item transition rows (default: %(default)s)"
    )
    parser.add_argument(
        "--popular-topic", default=default_topics.popular, help="topic of popular item rows (default: %(default)s)"
    )
    parser.add_argument(
        "--dead-letter-topic", default=default_topics.dead_letter, help="topic for rejected records (default: %(default)s)"
    )

    parser.add_argument(
        "--batch-max-records", type=int, default=defaults.batch_max_records,
        help="maximum records per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-interval-ms", type=int, default=_ms(defaults.batch_interval),
        help="maximum time a batch collects records, in milliseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--summary-interval-s", type=float, default=defaults.summary_interval.total_seconds(),
        help="seconds between two log lines with the counters (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    args = parser.parse_args(argv)

    config = FeatureWriterConfig(
        bootstrap_servers=args.bootstrap_servers,
        repo_path=args.repo,
        profile=args.profile,
        topics=FeatureTopics(
            args.session_topic, args.item_topic, args.transition_topic, args.dead_letter_topic, args.popular_topic
        ),
        group_id=args.group_id,
        batch_max_records=args.batch_max_records,
        batch_interval=timedelta(milliseconds=args.batch_interval_ms),
        summary_interval=timedelta(seconds=args.summary_interval_s),
    )
    return config, args.log_level
