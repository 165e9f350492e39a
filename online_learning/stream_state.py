"""Stream state of the learner: sessions, item-to-item transitions and popularity.

The learner keeps these counts itself rather than reading them from Feast, so
that they are checkpointed together with the model and the Kafka offsets. After
a restart the state is exactly what it was at the checkpoint, which a Feast
read could not promise. Time is event time (UTC epoch milliseconds), and the
clock is the greatest event time seen so far.

>>> state = StreamState(StreamStateConfig(popular_refresh_events=1))
>>> for item, time_ms in [("a", 1_000), ("b", 2_000), ("a", 3_000)]:
...     state.observe("s1", item, time_ms)
>>> context = state.context("s1")
>>> context.recent_items, dict(context.transitions), context.popularity["a"]
(('a', 'b', 'a'), {'b': 1}, 2)
>>> state.popular_items()
['a', 'b']
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from online_learning.scoring import CandidateContext

EMPTY_COUNTS: Mapping[str, int] = {}


@dataclass(frozen=True)
class StreamStateConfig:
    """Sizes and windows of :class:`StreamState`."""

    max_recent_items: int = 10
    """Items remembered per session, the newest last."""
    session_gap: timedelta = timedelta(minutes=30)
    """A session idle for longer than this (in event time) starts anew and is forgotten."""
    popularity_window: timedelta = timedelta(hours=24)
    """Events older than this, behind the clock, no longer count towards popularity."""
    max_popular_items: int = 20
    """Length of the popular-items list that candidates are drawn from."""
    popular_refresh_events: int = 1_000
    """The popular-items list is recomputed after this many events, because sorting every item each event is too slow."""


@dataclass
class _Session:
    items: deque
    last_event_ms: int


class StreamState:
    """Sessions, transitions and windowed popularity, updated one event at a time.

    Transitions count, for each item, the items that followed it directly in a
    session. Repeated events on one item are not transitions, which is the rule
    of the Flink feature job too.

    NOTE: transition counts and the set of known items have no window. They grow
    with the number of distinct item pairs and items, while sessions and
    popularity are bounded by their windows.
    """

    def __init__(self, config: StreamStateConfig = StreamStateConfig()):
        self.config = config
        self.clock_ms = 0
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._transitions: dict[str, Counter] = {}
        self._popularity: Counter = Counter()
        self._known_items: set[str] = set()
        self._known_item_list: list[str] = []
        """The known items in order of first occurrence, for uniform sampling."""
        self._popularity_events: deque[tuple[int, str]] = deque()
        self._popular: list[str] = []
        self._events_since_refresh = 0
        self._gap_ms = int(config.session_gap / timedelta(milliseconds=1))
        self._window_ms = int(config.popularity_window / timedelta(milliseconds=1))

    def context(self, session_id: str) -> CandidateContext | None:
        """Return the session's context for scoring its next item; None when the session has no live history."""
        session = self._sessions.get(session_id)
        if session is None or not session.items or self.clock_ms - session.last_event_ms > self._gap_ms:
            return None
        current = session.items[-1]
        return CandidateContext(
            session_id=session_id,
            recent_items=tuple(session.items),
            transitions=self._transitions.get(current, EMPTY_COUNTS),
            popularity=self._popularity,
        )

    def is_known(self, item_id: str) -> bool:
        """Tell whether ``item_id`` occurred in the stream before."""
        return item_id in self._known_items

    def sample_known_items(self, rng: random.Random, count: int) -> list[str]:
        """Draw ``count`` items uniformly, with replacement, from all items seen so far, or none before the first."""
        items = self._known_item_list
        if not items:
            return []
        return [items[rng.randrange(len(items))] for _ in range(count)]

    def popular_items(self) -> list[str]:
        """Return the most frequent items of the window, most frequent first, as of the last refresh.

        Equal counts are ordered by item id, so the list does not depend on dict order.
        """
        return self._popular

    def observe(self, session_id: str, item_id: str, event_time_ms: int) -> None:
        """Add one event: extend the session, count the transition and the item's popularity."""
        self.clock_ms = max(self.clock_ms, event_time_ms)
        session = self._sessions.get(session_id)
        if session is not None and self.clock_ms - session.last_event_ms > self._gap_ms:
            session = None
        if session is None:
            session = _Session(deque(maxlen=self.config.max_recent_items), event_time_ms)
            self._sessions[session_id] = session
        else:
            previous = session.items[-1]
            if previous != item_id:
                self._transitions.setdefault(previous, Counter())[item_id] += 1
        session.items.append(item_id)
        session.last_event_ms = max(session.last_event_ms, event_time_ms)
        self._sessions.move_to_end(session_id)

        if item_id not in self._known_items:
            self._known_items.add(item_id)
            self._known_item_list.append(item_id)
        self._popularity[item_id] += 1
        self._popularity_events.append((event_time_ms, item_id))
        self._expire()
        self._events_since_refresh += 1
        if self._events_since_refresh >= self.config.popular_refresh_events:
            self._refresh_popular()

    def _expire(self) -> None:
        horizon = self.clock_ms - self._window_ms
        events = self._popularity_events
        while events and events[0][0] <= horizon:
            _, item = events.popleft()
            remaining = self._popularity[item] - 1
            if remaining:
                self._popularity[item] = remaining
            else:
                del self._popularity[item]
        # Sessions are ordered by their last update, so the stalest comes first.
        session_horizon = self.clock_ms - self._gap_ms
        sessions = self._sessions
        while sessions:
            oldest_id, oldest = next(iter(sessions.items()))
            if oldest.last_event_ms >= session_horizon:
                break
            del sessions[oldest_id]

    def _refresh_popular(self) -> None:
        self._events_since_refresh = 0
        top = heapq.nsmallest(
            self.config.max_popular_items, self._popularity.items(), key=lambda pair: (-pair[1], pair[0])
        )
        self._popular = [item for item, _ in top]

    @property
    def session_count(self) -> int:
        """Sessions currently remembered."""
        return len(self._sessions)
