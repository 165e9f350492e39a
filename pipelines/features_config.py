"""Settings of the Flink feature job, with units in the names or types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class SlidingWindow:
    """An event-time sliding (HOP) window: ``size`` long, a new one every ``slide``."""

    name: str
    size: timedelta
    slide: timedelta


@dataclass
class FeatureJobConfig:
    """Kafka topics, event-time rules and window sizes of the feature job."""

    bootstrap_servers: str = "127.0.0.1:9092"
    events_topic: str = "events"
    session_topic: str = "features-session"
    item_topic: str = "features-item"
    transition_topic: str = "features-transition"
    late_topic: str = "events-late"
    popular_topic: str = "features-popular"
    group_id: str = "flink-features"
    # Watermark = greatest event time seen minus this bound. An event at or
    # behind the watermark is late. Session features lag event time by
    # about this much, so it trades freshness for tolerance of disorder.
    out_of_orderness: timedelta = timedelta(milliseconds=500)
    # "periodic" emits watermarks every pipeline.auto-watermark-interval (200 ms
    # by default); "on-event" after every record, which makes lateness
    # deterministic for a given input order (used by the tests).
    watermark_emit: str = "periodic"
    # A Kafka partition without records for this long stops holding the watermark back.
    idle_timeout: timedelta = timedelta(seconds=5)
    session_gap: timedelta = timedelta(minutes=30)
    last_items: int = 10
    item_windows: tuple[SlidingWindow, ...] = (
        SlidingWindow("1h", timedelta(hours=1), timedelta(minutes=5)),
        SlidingWindow("24h", timedelta(hours=24), timedelta(minutes=5)),
    )
    transition_window: SlidingWindow = field(
        default_factory=lambda: SlidingWindow("24h", timedelta(hours=24), timedelta(minutes=5))
    )
    transition_top_k: int = 20
    # The catalogue-wide most frequent items (events of any type), the
    # popularity that serving falls back to; one list per window.
    popular_window: SlidingWindow = field(
        default_factory=lambda: SlidingWindow("1h", timedelta(hours=1), timedelta(minutes=5))
    )
    popular_top_k: int = 100
    # Keyed state older than this is dropped: duplicate event ids are detected
    # within this span, and a session idle this long loses its running features.
    state_ttl: timedelta = timedelta(days=1)
    checkpoint_interval: timedelta = timedelta(seconds=10)
    # "group-offsets" resumes where the consumer group left off (earliest if none);
    # "earliest-offset" rereads the topic.
    startup_mode: str = "group-offsets"
    # Stop at the offsets that are latest when the job starts (tests, backfills).
    bounded: bool = False
    parallelism: int | None = None

    def __post_init__(self) -> None:
        if self.last_items < 2:
            raise ValueError(
                f"last_items={self.last_items}: keep at least 2 recent items, "
                "because item-to-item transitions read the previous item from them"
            )
        if self.watermark_emit not in ("periodic", "on-event"):
            raise ValueError(f"watermark_emit={self.watermark_emit!r}: use 'periodic' or 'on-event'")
        if self.startup_mode not in ("group-offsets", "earliest-offset", "latest-offset"):
            raise ValueError(
                f"startup_mode={self.startup_mode!r}: use group-offsets, earliest-offset or latest-offset"
            )
        for window in (*self.item_windows, self.transition_window, self.popular_window):
            if window.size % window.slide:
                raise ValueError(
                    f"window {window.name}: size {window.size} is not a multiple of slide {window.slide}; "
                    "Flink's HOP windows need that"
                )
