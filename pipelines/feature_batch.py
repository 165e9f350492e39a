"""Coalesce one batch of feature rows into one Feast row per entity and feature view.

Rows are upserts of the latest value, so within a batch only the newest row of
each key needs writing:

- sessions: the last row per ``session_id`` in consumption order;
- item statistics: per feature view and ``item_id``, the row with the greatest
  ``window_end`` (on a tie the last one);
- transitions: the Flink job emits all top-K rows of one item and window
  together, but a poll can split them, so :class:`TransitionState` keeps each
  item's list for its greatest ``window_end`` across batches and merges new rows
  into it. Lists are sorted by count descending, then next item id ascending,
  which is the order of the job's rank (its ROW_NUMBER uses that ordering).
- popular items: the same, per ``scope``, with a :class:`TransitionState` of
  their own (the scope takes the place of the item, the popular item that of
  the next item).

Every accepted row is either written or counted as coalesced (superseded by, or
merged into, another row of the same batch) or stale (older than the window
already written for that item).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import pandas as pd

from pipelines.feature_rows import (
    POPULAR_VIEW,
    SESSION_VIEW,
    TRANSITIONS_VIEW,
    FeatureRow,
    ItemStatsRow,
    PopularRow,
    SessionRow,
    TransitionRow,
)

logger = logging.getLogger(__name__)

EVENT_TIMESTAMP = "event_timestamp"


@dataclass
class StoredTransitions:
    """The transition list of one item as written to ``item_transitions``, in rank order."""

    window_end: int
    next_item_ids: list[str]
    next_item_counts: list[int]


@dataclass
class _TransitionList:
    window_end: int
    # next_item_id -> count
    next_items: dict[str, int] = field(default_factory=dict)


class TransitionState:
    """Per item, the merged top-K transition rows of its greatest ``window_end`` seen so far.

    Memory grows with the number of distinct items, K rows each, up to
    ``max_items`` items. Beyond that the least recently updated items are
    evicted. The writer reloads an evicted or never seen item from the online
    store with :meth:`seed` before it merges new rows into it, and this also
    restores the lists after a restart.
    """

    def __init__(self, max_items: int):
        if max_items < 1:
            raise ValueError(f"max_items is {max_items}, expected at least 1")
        self.max_items = max_items
        self._lists: OrderedDict[str, _TransitionList] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lists)

    def missing(self, item_ids: set[str]) -> list[str]:
        """Return the items of ``item_ids`` that have no list in memory, sorted."""
        return sorted(item_id for item_id in item_ids if item_id not in self._lists)

    def seed(self, item_id: str, stored: StoredTransitions) -> None:
        """Load an item's list as read from the online store."""
        next_items = dict(zip(stored.next_item_ids, stored.next_item_counts))
        self._lists[item_id] = _TransitionList(stored.window_end, next_items)

    def apply(self, rows: list[TransitionRow] | list[PopularRow]) -> tuple[list[str], int, int]:
        """Merge rows in consumption order and return (changed item ids, coalesced rows, stale rows).

        A row with a newer ``window_end`` than the item's list replaces the list,
        a row of the same ``window_end`` is merged by ``next_item_id`` (a repeated
        next item keeps the later row), and an older row is stale and ignored.
        """
        accepted: Counter[str] = Counter()
        stale = 0
        for row in rows:
            key, member = _list_key(row)
            current = self._lists.get(key)
            if current is not None and row.window_end < current.window_end:
                stale += 1
                continue
            if current is None or row.window_end > current.window_end:
                current = _TransitionList(row.window_end)
                self._lists[key] = current
            current.next_items[member] = row.count
            self._lists.move_to_end(key)
            accepted[key] += 1
        coalesced = sum(accepted.values()) - len(accepted)
        return list(accepted), coalesced, stale

    def lists(self, item_ids: list[str]) -> list[StoredTransitions]:
        """Return the lists of ``item_ids``, each in rank order.

        Rank order is count descending, then next item id ascending. Sorting by
        these rather than by the rows' ``rank`` also orders lists reloaded from
        the store, which keeps no ranks.
        """
        result = []
        for item_id in item_ids:
            current = self._lists[item_id]
            ordered = sorted(current.next_items.items(), key=lambda entry: (-entry[1], entry[0]))
            result.append(
                StoredTransitions(
                    window_end=current.window_end,
                    next_item_ids=[next_item_id for next_item_id, _ in ordered],
                    next_item_counts=[count for _, count in ordered],
                )
            )
        return result

    def evict_overflow(self) -> int:
        """Drop the least recently updated lists beyond ``max_items`` and return how many were dropped."""
        evicted = 0
        while len(self._lists) > self.max_items:
            self._lists.popitem(last=False)
            evicted += 1
        return evicted

    def clear(self) -> None:
        """Forget every list, for example after a rebalance moved partitions to another writer."""
        self._lists.clear()


def _list_key(row: TransitionRow | PopularRow) -> tuple[str, str]:
    """Return (list key, list member) of a ranked row."""
    if isinstance(row, PopularRow):
        return row.scope, row.item_id
    return row.item_id, row.next_item_id


class FeatureBatch:
    """The valid rows of one batch, coalesced per key, in consumption order."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRow] = {}
        self.item_stats: dict[tuple[str, str], ItemStatsRow] = {}
        self.transitions: list[TransitionRow] = []
        self.popular: list[PopularRow] = []
        self.coalesced: Counter[str] = Counter()
        """Rows superseded within this batch, per feature view."""

    def add(self, row: FeatureRow) -> None:
        if isinstance(row, SessionRow):
            if row.session_id in self.sessions:
                self.coalesced[SESSION_VIEW] += 1
            self.sessions[row.session_id] = row
        elif isinstance(row, ItemStatsRow):
            key = (row.view, row.item_id)
            previous = self.item_stats.get(key)
            if previous is not None:
                self.coalesced[row.view] += 1
                if row.window_end < previous.window_end:
                    return
            self.item_stats[key] = row
        elif isinstance(row, PopularRow):
            self.popular.append(row)
        else:
            self.transitions.append(row)

    def transition_items(self) -> set[str]:
        return {row.item_id for row in self.transitions}

    def popular_scopes(self) -> set[str]:
        return {row.scope for row in self.popular}

    def is_empty(self) -> bool:
        return not (self.sessions or self.item_stats or self.transitions or self.popular)


def _timestamps(epoch_ms: list[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(epoch_ms, unit="ms", utc=True))


def session_frame(rows: list[SessionRow]) -> pd.DataFrame:
    """Build the ``session_features`` frame, with ``last_event_time`` as the event timestamp."""
    frame = pd.DataFrame(
        {
            "session_id": [row.session_id for row in rows],
            "event_count": [row.event_count for row in rows],
            "distinct_items": [row.distinct_items for row in rows],
            "last_items": [list(row.last_items) for row in rows],
            "first_event_time": [row.first_event_time for row in rows],
            "last_event_time": [row.last_event_time for row in rows],
            "duration_ms": [row.duration_ms for row in rows],
            "view_count": [row.view_count for row in rows],
            "click_count": [row.click_count for row in rows],
            "add_to_cart_count": [row.add_to_cart_count for row in rows],
            "purchase_count": [row.purchase_count for row in rows],
            "last_event_type": [row.last_event_type for row in rows],
            "last_item_id": [row.last_item_id for row in rows],
        }
    )
    frame[EVENT_TIMESTAMP] = _timestamps([row.last_event_time for row in rows])
    return frame


def item_stats_frame(rows: list[ItemStatsRow]) -> pd.DataFrame:
    """Build an ``item_stats_*`` frame, with ``window_end`` as the event timestamp."""
    frame = pd.DataFrame(
        {
            "item_id": [row.item_id for row in rows],
            "views": [row.views for row in rows],
            "clicks": [row.clicks for row in rows],
            "add_to_carts": [row.add_to_carts for row in rows],
            "purchases": [row.purchases for row in rows],
            "distinct_sessions": [row.distinct_sessions for row in rows],
            "window_end": [row.window_end for row in rows],
        }
    )
    frame[EVENT_TIMESTAMP] = _timestamps([row.window_end for row in rows])
    return frame


def _ranked_frame(key_column: str, ids_column: str, counts_column: str, keys: list[str],
                  lists: list[StoredTransitions]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            key_column: keys,
            ids_column: [stored.next_item_ids for stored in lists],
            counts_column: [stored.next_item_counts for stored in lists],
            "window_end": [stored.window_end for stored in lists],
        }
    )
    frame[EVENT_TIMESTAMP] = _timestamps([stored.window_end for stored in lists])
    return frame


def transition_frame(item_ids: list[str], lists: list[StoredTransitions]) -> pd.DataFrame:
    """Build the ``item_transitions`` frame, with ``window_end`` as the event timestamp."""
    return _ranked_frame("item_id", "next_item_ids", "next_item_counts", item_ids, lists)


def popular_frame(scopes: list[str], lists: list[StoredTransitions]) -> pd.DataFrame:
    """Build the ``popular_items`` frame, with ``window_end`` as the event timestamp."""
    return _ranked_frame("scope", "item_ids", "counts", scopes, lists)


def frames_by_view(
    batch: FeatureBatch,
    transition_items: list[str],
    state: TransitionState,
    popular_scopes: list[str] = (),
    popular_state: TransitionState | None = None,
) -> dict[str, pd.DataFrame]:
    """Build one frame per feature view that has rows in this batch.

    The lists of ``transition_items`` come from ``state``, those of
    ``popular_scopes`` from ``popular_state``.
    """
    frames: dict[str, pd.DataFrame] = {}
    if batch.sessions:
        frames[SESSION_VIEW] = session_frame(list(batch.sessions.values()))
    by_view: dict[str, list[ItemStatsRow]] = {}
    for (view, _), row in batch.item_stats.items():
        by_view.setdefault(view, []).append(row)
    for view, rows in sorted(by_view.items()):
        frames[view] = item_stats_frame(rows)
    if transition_items:
        frames[TRANSITIONS_VIEW] = transition_frame(transition_items, state.lists(transition_items))
    if popular_scopes:
        assert popular_state is not None
        frames[POPULAR_VIEW] = popular_frame(list(popular_scopes), popular_state.lists(list(popular_scopes)))
    return frames
