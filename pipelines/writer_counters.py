"""Counters of the feature writer, and a rate limit for its per-row log lines.

>>> counters = WriterCounters()
>>> counters.add_batch(WriterCounters(consumed=Counter({"t": 3}), written=Counter({"v": 1}),
...                                   coalesced=Counter({"v": 1}), dead_lettered=Counter({"missing_field": 1})))
>>> counters.batches, counters.reconciles()
(1, True)
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass
class WriterCounters:
    """Totals since the writer started, updated once per committed batch.

    A consumed record ends up in exactly one of ``written``, ``coalesced``,
    ``stale`` and ``dead_lettered``, so once a batch is committed
    ``sum(consumed) == sum(written) + sum(coalesced) + sum(stale) + sum(dead_lettered)``
    (see :meth:`reconciles`). Records of a batch that is still being written are
    in none of them.
    """

    consumed: Counter = field(default_factory=Counter)
    """Records read, per topic."""
    written: Counter = field(default_factory=Counter)
    """Rows written to the online store, per feature view: one per entity and batch."""
    coalesced: Counter = field(default_factory=Counter)
    """Valid rows superseded by or merged into a later row of the same batch, per feature view."""
    stale: Counter = field(default_factory=Counter)
    """Valid rows older than the window already written for their item, per feature view."""
    dead_lettered: Counter = field(default_factory=Counter)
    """Invalid records sent to the dead-letter topic, per reason."""
    batches: int = 0
    """Batches written and committed, empty polls excluded."""
    retries: int = 0
    """Failed attempts at a Kafka or Feast call that were retried."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_batch(self, batch: WriterCounters) -> None:
        """Add the counts of one committed batch and count the batch."""
        with self._lock:
            self.consumed.update(batch.consumed)
            self.written.update(batch.written)
            self.coalesced.update(batch.coalesced)
            self.stale.update(batch.stale)
            self.dead_lettered.update(batch.dead_lettered)
            self.batches += 1

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def snapshot(self) -> WriterCounters:
        """Return a copy that is safe to read while the writer keeps running in another thread."""
        with self._lock:
            return WriterCounters(
                consumed=copy.copy(self.consumed),
                written=copy.copy(self.written),
                coalesced=copy.copy(self.coalesced),
                stale=copy.copy(self.stale),
                dead_lettered=copy.copy(self.dead_lettered),
                batches=self.batches,
                retries=self.retries,
            )

    def reconciles(self) -> bool:
        """Return True if every consumed record is accounted for."""
        snapshot = self.snapshot()
        accounted = sum(snapshot.written.values()) + sum(snapshot.coalesced.values())
        accounted += sum(snapshot.stale.values()) + sum(snapshot.dead_lettered.values())
        return sum(snapshot.consumed.values()) == accounted

    def summary(self) -> str:
        """Return the counts as one log line."""
        snapshot = self.snapshot()
        return (
            f"consumed {sum(snapshot.consumed.values())} {dict(snapshot.consumed)}, "
            f"written {dict(snapshot.written)}, coalesced {sum(snapshot.coalesced.values())}, "
            f"stale {sum(snapshot.stale.values())}, dead-lettered {dict(snapshot.dead_lettered)}, "
            f"batches {snapshot.batches}, retries {snapshot.retries}"
        )


class RateLimitedLog:
    """Log at most one message per key and interval, and report how many were suppressed in between."""

    def __init__(self, logger: logging.Logger, interval: timedelta):
        self._logger = logger
        self._interval_s = interval.total_seconds()
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] += 1
            return
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._last_logged[key] = now
        self._logger.warning(message, *args)
