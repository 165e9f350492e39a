"""Feature rows on the Flink job's output topics, and the feature views they go to.

Each topic carries UTF-8 JSON objects keyed by the entity id, with times in UTC
epoch milliseconds. :mod:`pipelines.row_validation` turns Kafka records into
these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

SESSION_VIEW = "session_features"
ITEM_STATS_VIEWS = {"1h": "item_stats_1h", "24h": "item_stats_24h"}
"""Feature view of each item statistics window, by the row's ``window`` value."""
TRANSITIONS_VIEW = "item_transitions"
POPULAR_VIEW = "popular_items"
POPULAR_SCOPE = "all"
"""The ``scope`` of the catalogue-wide popularity list, the only one the Flink job emits."""


@dataclass(frozen=True)
class FeatureTopics:
    """Names of the Kafka topics that the writer reads and the one it dead-letters to."""

    session: str = "features-session"
    item: str = "features-item"
    transition: str = "features-transition"
    dead_letter: str = "features-dead-letter"
    popular: str = "features-popular"

    def inputs(self) -> tuple[str, ...]:
        return (self.session, self.item, self.transition, self.popular)


@dataclass(frozen=True)
class SessionRow:
    """Running aggregates of one session, as the Flink job emits them after each event."""

    session_id: str
    event_count: int
    distinct_items: int
    last_items: tuple[str, ...]
    first_event_time: int
    last_event_time: int
    duration_ms: int
    view_count: int
    click_count: int
    add_to_cart_count: int
    purchase_count: int
    last_event_type: str
    last_item_id: str


@dataclass(frozen=True)
class ItemStatsRow:
    """Event counts of one item over one window, with ``view`` naming the feature view it goes to."""

    item_id: str
    view: str
    window_start: int
    window_end: int
    views: int
    clicks: int
    add_to_carts: int
    purchases: int
    distinct_sessions: int


@dataclass(frozen=True)
class TransitionRow:
    """One of an item's top next items in one window.

    ``rank`` 1 is the most frequent next item. The Flink job ranks by count
    descending, then next item id ascending.
    """

    item_id: str
    next_item_id: str
    count: int
    rank: int
    window_start: int
    window_end: int


@dataclass(frozen=True)
class PopularRow:
    """One of the most frequent items of a scope in one window.

    ``rank`` 1 has the most events of any type. The Flink job ranks by count
    descending, then item id ascending, like transitions.
    """

    scope: str
    item_id: str
    count: int
    rank: int
    window_start: int
    window_end: int


FeatureRow = SessionRow | ItemStatsRow | TransitionRow | PopularRow

SESSION_COUNT_FIELDS = (
    "event_count", "distinct_items", "duration_ms",
    "view_count", "click_count", "add_to_cart_count", "purchase_count",
)
SESSION_FIELDS = (
    "session_id", "event_count", "distinct_items", "last_items", "first_event_time",
    "last_event_time", "duration_ms", "view_count", "click_count", "add_to_cart_count",
    "purchase_count", "last_event_type", "last_item_id",
)
ITEM_COUNT_FIELDS = ("views", "clicks", "add_to_carts", "purchases", "distinct_sessions")
ITEM_FIELDS = ("item_id", "window", "window_start", "window_end", *ITEM_COUNT_FIELDS)
TRANSITION_FIELDS = ("item_id", "next_item_id", "count", "rank", "window_start", "window_end")
POPULAR_FIELDS = ("scope", "item_id", "count", "rank", "window_start", "window_end")
