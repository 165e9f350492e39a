"""Sessions for training and evaluation: preprocessing, the time split and next-item cases.

Events come as a pandas DataFrame with the columns of :mod:`seqrec.events`;
only ``session_id``, ``item_id`` and ``event_time`` (UTC epoch milliseconds)
are used. :func:`prepare_sessions` runs the whole chain:

1. Drop the events of items with fewer than ``min_item_support`` events, then
   drop sessions with fewer than ``min_session_length`` events left. Both
   filters run once, in this order, over all events before the split, so an
   item can end up with fewer than ``min_item_support`` events afterwards.
2. Order each session's events by event time, ties kept in input order, and
   order sessions by their start (first event) time.
3. Split by session start: sessions that start on the last UTC day (more
   generally, within ``test_period`` before the end of that day) are the test
   set, those within ``validation_period`` before them are the validation set,
   the rest is training.
4. Number the items seen in training ``0 .. n_items - 1``. Validation and test
   events on other items are removed and counted, and sessions left with fewer
   than two events are dropped and counted.

:func:`next_item_cases` (in :mod:`.cases`) turns sessions into evaluation
cases, and :func:`load_srgnn_split` (in :mod:`.srgnn_split`) reads the SR-GNN
Diginetica split, which comes with its cases already cut. Both stay importable
from this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.training.cases import NextItemCases, next_item_cases  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

_SRGNN_NAMES = ("SrgnnCounts", "SrgnnSplit", "TRAIN_SESSIONS_FILE", "TEST_CASES_FILE", "load_srgnn_split")

MIN_EVALUATION_LENGTH = 2
"""Minimum number of events in an evaluation session: one prefix item and one target."""

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class SplitConfig:
    """Preprocessing and time-split settings."""

    min_item_support: int = 5
    """Events an item needs over the whole data to be kept."""
    min_session_length: int = 2
    """Events a session needs, after rare items are gone, to be kept."""
    test_period: timedelta = timedelta(days=1)
    """Sessions starting within this period before the end of the last UTC day are the test set."""
    validation_period: timedelta = timedelta(days=1)
    """Sessions starting within this period before the test period are the validation set."""


@dataclass(frozen=True)
class Sessions:
    """Time-ordered sessions: ``items[n]`` contains the n-th session's items in event order.

    Items are raw item ids before :meth:`ItemIndex.encode`, item indices after.
    ``start_times_ms`` is each session's first event time, non-decreasing.
    """

    session_ids: np.ndarray
    start_times_ms: np.ndarray
    items: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.items)

    def select(self, mask: np.ndarray) -> Sessions:
        """Return the sessions where the boolean ``mask`` is true, in the same order."""
        positions = np.flatnonzero(mask)
        return Sessions(
            self.session_ids[positions], self.start_times_ms[positions], [self.items[p] for p in positions]
        )

    def event_count(self) -> int:
        return int(sum(len(items) for items in self.items))


@dataclass(frozen=True)
class FilterCounts:
    """What :func:`filter_events` kept and dropped.

    ``rare_item_events`` are the events of items below the support threshold.
    ``short_session_events`` are the events of sessions that then had too few
    events left. A session that lost all its events in the first step has no
    events to count here, but it is part of ``sessions_in - sessions_out``.
    """

    events_in: int
    sessions_in: int
    rare_item_events: int
    short_session_events: int
    events_out: int
    sessions_out: int


@dataclass(frozen=True)
class UnseenCounts:
    """Counts of the events and sessions that :meth:`ItemIndex.encode` removed.

    ``unseen_events`` are events on items not seen in training.
    ``short_sessions`` were then dropped for having fewer than two events left,
    together with the ``short_session_events`` they still had.
    """

    sessions_in: int
    events_in: int
    unseen_events: int
    short_sessions: int
    short_session_events: int
    sessions_out: int
    events_out: int


class ItemIndex:
    """Map between item ids and contiguous indices ``0 .. n_items - 1``, ids in sorted order."""

    def __init__(self, item_ids: np.ndarray):
        item_ids = np.asarray(item_ids)
        if len(item_ids) and not (item_ids[1:] > item_ids[:-1]).all():
            raise ValueError("item_ids must be sorted and unique; build the index with ItemIndex.from_sessions")
        self.item_ids = item_ids

    @classmethod
    def from_sessions(cls, sessions: Sequence[np.ndarray]) -> ItemIndex:
        """Index every item id that occurs in ``sessions`` (the training sessions)."""
        if not len(sessions):
            raise ValueError("cannot build an item index from no sessions")
        return cls(np.unique(np.concatenate(list(sessions))))

    def __len__(self) -> int:
        return len(self.item_ids)

    def lookup(self, item_ids: np.ndarray) -> np.ndarray:
        """Return the index of each id, or -1 for ids not in the index."""
        item_ids = np.asarray(item_ids)
        if not len(self.item_ids) or not len(item_ids):
            return np.full(len(item_ids), -1, dtype=np.int64)
        positions = np.searchsorted(self.item_ids, item_ids)
        clipped = np.minimum(positions, len(self.item_ids) - 1)
        found = self.item_ids[clipped] == item_ids
        return np.where(found, clipped, -1).astype(np.int64)

    def encode(self, sessions: Sessions) -> tuple[Sessions, UnseenCounts]:
        """Replace item ids by indices, removing unseen items and sessions left too short.

        A session is kept when at least two events remain (:data:`MIN_EVALUATION_LENGTH`).
        """
        kept_ids, kept_starts, kept_items = [], [], []
        unseen_events = short_sessions = short_session_events = 0
        for session_id, start, items in zip(sessions.session_ids, sessions.start_times_ms, sessions.items):
            indices = self.lookup(items)
            known = indices[indices >= 0]
            unseen_events += len(indices) - len(known)
            if len(known) < MIN_EVALUATION_LENGTH:
                short_sessions += 1
                short_session_events += len(known)
                continue
            kept_ids.append(session_id)
            kept_starts.append(start)
            kept_items.append(known)
        encoded = Sessions(
            np.array(kept_ids, dtype=sessions.session_ids.dtype),
            np.array(kept_starts, dtype=np.int64),
            kept_items,
        )
        counts = UnseenCounts(
            sessions_in=len(sessions),
            events_in=sessions.event_count(),
            unseen_events=unseen_events,
            short_sessions=short_sessions,
            short_session_events=short_session_events,
            sessions_out=len(encoded),
            events_out=encoded.event_count(),
        )
        return encoded, counts


@dataclass(frozen=True)
class SessionSplit:
    """Output of :func:`prepare_sessions`: three time-ordered parts over one item index."""

    train: Sessions
    validation: Sessions
    test: Sessions
    item_index: ItemIndex
    filter_counts: FilterCounts
    validation_unseen: UnseenCounts
    test_unseen: UnseenCounts


def filter_events(events: pd.DataFrame, min_item_support: int, min_session_length: int) -> tuple[pd.DataFrame, FilterCounts]:
    """Drop events of rare items, then sessions too short; see the module docstring for the order."""
    _check_columns(events)
    support = events["item_id"].map(events["item_id"].value_counts())
    frequent = events[support.to_numpy() >= min_item_support]
    lengths = frequent.groupby("session_id", sort=False)["item_id"].transform("size")
    kept = frequent[lengths.to_numpy() >= min_session_length]
    counts = FilterCounts(
        events_in=len(events),
        sessions_in=events["session_id"].nunique(),
        rare_item_events=len(events) - len(frequent),
        short_session_events=len(frequent) - len(kept),
        events_out=len(kept),
        sessions_out=kept["session_id"].nunique(),
    )
    return kept, counts


def group_sessions(events: pd.DataFrame) -> Sessions:
    """Group events into sessions ordered by start time, items by event time then input order.

    Sessions with the same start time keep the order of their first input rows.
    """
    _check_columns(events)
    if not len(events):
        return Sessions(np.array([]), np.array([], dtype=np.int64), [])
    session_codes, session_ids = pd.factorize(events["session_id"])
    times = events["event_time"].to_numpy(dtype=np.int64)
    rows = np.arange(len(events))
    starts = np.full(len(session_ids), np.iinfo(np.int64).max)
    np.minimum.at(starts, session_codes, times)
    # factorize numbers sessions by first appearance, so the code breaks start-time ties.
    order = np.lexsort((rows, times, session_codes, starts[session_codes]))
    ordered_codes = session_codes[order]
    boundaries = np.flatnonzero(ordered_codes[1:] != ordered_codes[:-1]) + 1
    items = np.split(events["item_id"].to_numpy()[order], boundaries)
    codes_in_order = ordered_codes[np.concatenate(([0], boundaries))]
    return Sessions(np.asarray(session_ids)[codes_in_order], starts[codes_in_order], items)


def split_by_time(sessions: Sessions, test_period: timedelta, validation_period: timedelta) -> tuple[Sessions, Sessions, Sessions]:
    """Split time-ordered sessions by start time into (train, validation, test).

    The split ends at the end of the UTC day of the latest session start. Test
    sessions start within ``test_period`` before that end, validation sessions
    within ``validation_period`` before the test period.

    NOTE: a session belongs to the part where it starts, so a training session
    that runs past the boundary contains events later than the first test events.
    """
    if not len(sessions):
        raise ValueError("cannot split an empty set of sessions")
    end_ms = (int(sessions.start_times_ms.max()) // DAY_MS + 1) * DAY_MS
    test_start_ms = end_ms - _to_ms(test_period)
    validation_start_ms = test_start_ms - _to_ms(validation_period)
    starts = sessions.start_times_ms
    return (
        sessions.select(starts < validation_start_ms),
        sessions.select((starts >= validation_start_ms) & (starts < test_start_ms)),
        sessions.select(starts >= test_start_ms),
    )


def prepare_sessions(events: pd.DataFrame, config: SplitConfig = SplitConfig()) -> SessionSplit:
    """Filter, group, split and encode events; the module docstring lists the steps."""
    kept, filter_counts = filter_events(events, config.min_item_support, config.min_session_length)
    train, validation, test = split_by_time(group_sessions(kept), config.test_period, config.validation_period)
    if not len(train):
        raise ValueError("no training sessions start before the validation period; the data spans too few days")
    item_index = ItemIndex.from_sessions(train.items)
    # Every training item is in the index, so training sessions keep all their events.
    train = Sessions(train.session_ids, train.start_times_ms, [item_index.lookup(items) for items in train.items])
    validation, validation_unseen = item_index.encode(validation)
    test, test_unseen = item_index.encode(test)
    return SessionSplit(train, validation, test, item_index, filter_counts, validation_unseen, test_unseen)


def _check_columns(events: pd.DataFrame) -> None:
    missing = [name for name in ("session_id", "item_id", "event_time") if name not in events.columns]
    if missing:
        raise ValueError(
            f"events lack the column(s) {', '.join(missing)}; "
            "expected the seqrec.events columns session_id, item_id and event_time (epoch ms)"
        )


def _to_ms(period: timedelta) -> int:
    if period < timedelta(0):
        raise ValueError(f"split periods must not be negative, got {period}")
    return int(period / timedelta(milliseconds=1))


def __getattr__(name: str):
    # srgnn_split imports ItemIndex from here, so its names are looked up on first use, not imported above.
    if name in _SRGNN_NAMES:
        from pipelines.training import srgnn_split

        return getattr(srgnn_split, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
