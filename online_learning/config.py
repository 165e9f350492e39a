"""Settings of a ``seqrec learn`` process: Kafka, checkpoints, snapshots, metrics and logging."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from online_learning.learner import LearnerConfig

DEFAULT_TOPIC = "events"


@dataclass(frozen=True)
class LearnerRunConfig:
    """One learner process. Intervals are bounds: whichever of events and seconds comes first triggers."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated Kafka brokers."""
    topic: str = DEFAULT_TOPIC
    checkpoint_dir: Path = Path("data/learner/checkpoint")
    snapshot_dir: Path = Path("data/learner/snapshots")
    checkpoint_interval_events: int = 10_000
    """Records consumed (valid or invalid) between checkpoints at most."""
    checkpoint_interval_s: float = 10.0
    """Seconds between checkpoints at most, while records arrive."""
    snapshot_interval_s: float = 5.0
    """Seconds between snapshots for serving, while events arrive."""
    snapshot_keep: int = 5
    """Snapshot files kept on disk."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint on 127.0.0.1; 0 turns it off."""
    log_interval_s: float = 30.0
    """Seconds between progress log lines with the metrics and the consumer lag."""
    poll_timeout_ms: int = 500
    fetch_max_wait_ms: int = 100
    """How long the broker may hold a fetch without new data. A fetch for partitions at
    their end blocks the next fetch that long, which stalls the event-time merge."""
    max_poll_records: int = 2_000
    max_queued_per_partition: int = 20_000
    """Decoded records queued per partition for the event-time merge before its fetching pauses."""
    max_idle_s: float | None = None
    """Stop after this many seconds without records; None runs until stopped."""
    max_records: int | None = None
    """Stop once this many records were consumed in total, counting those before a restart; None runs on."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def __post_init__(self) -> None:
        for name in ("checkpoint_interval_events", "snapshot_keep", "max_poll_records", "max_queued_per_partition"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_interval_s", "snapshot_interval_s", "log_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive seconds, got {getattr(self, name)}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0 (off) or a TCP port, got {self.metrics_port}")
