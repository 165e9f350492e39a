"""Replay a click-stream file into Kafka in event-time order.

Every input row ends up in exactly one place: the events topic (valid rows,
sorted by event time, keyed by session id) or the dead-letter topic (rejected
rows, with the reason and the raw line). The summary reconciles the counts.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable

from seqrec.events import Event, InvalidEvent, validate_event
from seqrec.publisher import EventPublisher, PublisherSettings
from seqrec.readers import read_records

logger = logging.getLogger(__name__)

MS_PER_SECOND = 1000
MAX_SLEEP = timedelta(seconds=1)


@dataclass
class ReplaySettings:
    """What to replay and how fast; ``speed`` is a multiple of real time, None = as fast as possible."""

    path: Path
    publisher: PublisherSettings
    format: str | None = None
    reader_options: dict[str, Any] = field(default_factory=dict)
    speed: float | None = None
    limit: int | None = None
    progress: bool = True


@dataclass
class ReplaySummary:
    """Counts that reconcile: ``read == produced + rejected`` once delivery is confirmed."""

    read: int = 0
    valid: int = 0
    rejected: Counter = field(default_factory=Counter)
    produced: int = 0
    dead_lettered: int = 0
    failed_deliveries: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def reconciled(self) -> bool:
        return (
            self.produced == self.valid
            and self.dead_lettered == self.rejected_total
            and self.read == self.valid + self.rejected_total
            and self.failed_deliveries == 0
        )

    def lines(self) -> list[str]:
        rate = self.produced / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"read:          {self.read}",
            f"produced:      {self.produced} of {self.valid} valid ({rate:,.0f} events/s)",
            f"rejected:      {self.rejected_total} (dead-lettered: {self.dead_lettered})",
        ]
        out += [f"  {reason}: {count}" for reason, count in sorted(self.rejected.items())]
        if self.failed_deliveries:
            out.append(f"failed deliveries: {self.failed_deliveries} (see the log)")
        if self.interrupted:
            out.append("interrupted: the replay stopped early; what was sent before is flushed")
        out.append("counts reconcile" if self.reconciled else "counts do NOT reconcile")
        return out


def _progress(total: int | None, enabled: bool, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def _collect(settings: ReplaySettings, publisher: EventPublisher, summary: ReplaySummary) -> list[tuple[int, int, Event]]:
    """Read and validate every row; dead-letter rejects at once and return the valid events."""
    now_ms = time.time_ns() // 1_000_000
    valid: list[tuple[int, int, Event]] = []
    with _progress(None, settings.progress, " rows read") as bar:
        for record in read_records(settings.path, settings.format, **settings.reader_options):
            if settings.limit is not None and summary.read >= settings.limit:
                break
            summary.read += 1
            bar.update()
            error = record.error
            if error is None:
                try:
                    event = validate_event(record.fields, now_ms)
                except InvalidEvent as invalid:
                    error = invalid
                else:
                    valid.append((event.event_time, record.line, event))
                    continue
            summary.rejected[error.reason] += 1
            publisher.send_dead_letter(error, record.raw, record.source, record.line)
    summary.valid = len(valid)
    # Stable order: ties in event time keep the file's order.
    valid.sort(key=lambda item: (item[0], item[1]))
    return valid


def _produce(events: Iterable[tuple[int, int, Event]], total: int, settings: ReplaySettings, publisher: EventPublisher) -> None:
    started = time.monotonic()
    first_time: int | None = None
    with _progress(total, settings.progress, " events") as bar:
        for event_time, _, event in events:
            if settings.speed is not None:
                if first_time is None:
                    first_time = event_time
                due = started + (event_time - first_time) / MS_PER_SECOND / settings.speed
                _sleep_until(due)
            publisher.send_event(event)
            bar.update()


def _sleep_until(due: float) -> None:
    while True:
        remaining = due - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, MAX_SLEEP.total_seconds()))


def replay(settings: ReplaySettings) -> ReplaySummary:
    """Validate, dead-letter and produce the file; return the reconciled counts.

    On Ctrl-C the replay stops reading, flushes what it sent and returns a
    summary marked ``interrupted``.
    """
    if not settings.path.exists():
        raise FileNotFoundError(f"replay input {settings.path} does not exist; pass the path of a dataset file")
    summary = ReplaySummary()
    started = time.monotonic()
    publisher = EventPublisher(settings.publisher)
    try:
        events = _collect(settings, publisher, summary)
        logger.info("read %d rows: %d valid, %d rejected", summary.read, summary.valid, summary.rejected_total)
        _produce(events, len(events), settings, publisher)
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted; flushing what was sent")
    finally:
        publisher.close()
        counts = publisher.counts
        summary.produced = counts.delivered[settings.publisher.events_topic]
        summary.dead_lettered = counts.delivered[settings.publisher.dead_letter_topic]
        summary.failed_deliveries = sum(counts.failed.values())
        summary.seconds = time.monotonic() - started
    return summary
