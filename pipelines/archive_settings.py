"""Settings and counters of the event archiver (``pipelines/event_archive.py``)."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Iterable

MAX_AGE = timedelta(seconds=60)
POLL_TIMEOUT = timedelta(seconds=1)
SUMMARY_INTERVAL = timedelta(seconds=30)
SESSION_TIMEOUT = timedelta(seconds=6)
HEARTBEAT_INTERVAL = timedelta(seconds=1)
RETRY_BACKOFF_INITIAL = timedelta(milliseconds=100)
RETRY_BACKOFF_MAX = timedelta(seconds=10)
INVALID_LOG_INTERVAL = timedelta(seconds=10)
"""Shortest time between two log lines about invalid records of the same reason."""
KAFKA_REQUEST_TIMEOUT = timedelta(seconds=30)
CLOSE_TIMEOUT = timedelta(seconds=10)

@dataclass
class ArchiveConfig:
    """Settings of the event archiver, with durations as ``timedelta`` values."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers as ``host:port[,host:port]``."""
    topic: str = "events"
    dead_letter_topic: str = "events-dead-letter"
    group_id: str = "event-archive"
    root: Path = Path("data/archive")
    """Archive folder. Use one root per topic, because file names do not contain the topic."""
    max_records: int = 50_000
    """Records (valid and invalid) per partition buffer before it is written."""
    max_age: timedelta = MAX_AGE
    """Time after a buffer's first record at which it is written, however small."""
    summary_interval: timedelta = SUMMARY_INTERVAL
    """Time between two log lines with the counters."""
    session_timeout: timedelta = SESSION_TIMEOUT
    """Kafka consumer group session timeout: an archiver silent this long loses its partitions."""
    heartbeat_interval: timedelta = HEARTBEAT_INTERVAL

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.max_records < 1:
            raise ValueError(f"max_records is {self.max_records}; it must be at least 1")
        for name in ("max_age", "summary_interval", "session_timeout", "heartbeat_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} is {getattr(self, name)}; it must be positive")
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"heartbeat_interval {self.heartbeat_interval} must be shorter than "
                f"session_timeout {self.session_timeout}; Kafka recommends a third of it at most"
            )


@dataclass
class ArchiveCounters:
    """Totals since the archiver started, safe to read from another thread through :meth:`snapshot`.

    Each consumed record ends up in exactly one of ``archived``,
    ``dead_lettered`` and ``released``. After :func:`run` returns,
    ``consumed == archived + sum(dead_lettered) + released``
    (see :meth:`reconciles`). While it runs, buffered records are in none of them.
    """

    consumed: int = 0
    """Records read from the topic, including records read again after a release."""
    archived: int = 0
    """Valid events in committed archive files."""
    dead_lettered: Counter = field(default_factory=Counter)
    """Invalid records sent to the dead-letter topic and committed, per rejection reason."""
    files_written: int = 0
    """Committed archive files."""
    released: int = 0
    """Records read but not committed (partition revoked, commit rejected, archiver stopped), read again later."""
    retries: int = 0
    """Failed attempts at a Kafka call or file write that were retried."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_consumed(self) -> None:
        with self._lock:
            self.consumed += 1

    def add_flush(self, archived: int, dead_lettered: Iterable[str], files_written: int) -> None:
        """Count one committed flush: its valid events, rejection reasons and files."""
        with self._lock:
            self.archived += archived
            self.dead_lettered.update(dead_lettered)
            self.files_written += files_written

    def add_released(self, records: int) -> None:
        with self._lock:
            self.released += records

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def snapshot(self) -> ArchiveCounters:
        """Return a consistent copy of the counters."""
        with self._lock:
            return ArchiveCounters(
                consumed=self.consumed,
                archived=self.archived,
                dead_lettered=copy.copy(self.dead_lettered),
                files_written=self.files_written,
                released=self.released,
                retries=self.retries,
            )

    def reconciles(self) -> bool:
        """Return True if every consumed record is archived, dead-lettered or released."""
        snapshot = self.snapshot()
        accounted = snapshot.archived + sum(snapshot.dead_lettered.values()) + snapshot.released
        return snapshot.consumed == accounted

    def summary(self) -> str:
        """Return the counts as one log line."""
        snapshot = self.snapshot()
        return (
            f"consumed {snapshot.consumed}, archived {snapshot.archived}, "
            f"dead-lettered {sum(snapshot.dead_lettered.values())} {dict(snapshot.dead_lettered)}, "
            f"files {snapshot.files_written}, released {snapshot.released}, retries {snapshot.retries}"
        )
