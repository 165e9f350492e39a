"""The scoring path of Recommend: features, candidates, Torch and River scores, blend, rules, fallbacks.

Paths, in the order they are chosen:

1. The feature store fails: the request's recent items feed the models that
   are loaded, with the last popularity list read (``feature_store_down``).
2. No stored session and no recent items: popularity (``cold_start``).
3. Neither the Torch model nor a River snapshot is loaded: popularity (``popularity``).
4. Otherwise the blend (``model``), flagged as a fallback when the River
   snapshot is missing, or when the Torch model is missing or has none of
   the session's items (``torch_model_unavailable``).

A server without a feature repo reads no stored sessions and no popularity,
so it serves as if the store returned no rows: the request's recent items
feed the models, and a request without them takes the cold start path. It
never reports ``feature_store_down``, which means a configured store failed.

The constraint layer runs last on every path. This module does not import gRPC.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from serving.blend import blend_scores, choose_weights
from serving.config import BlendWeights, ModelSettings
from serving.features import FeatureReader, FeatureStoreUnavailable, Popularity, RankedList, SessionFeatures
from serving.rules import RequestConstraints, Rules, apply_rules
from serving.torch_model import ModelWatcher, TorchScores

logger = logging.getLogger(__name__)

PURCHASE = "purchase"


class ServingPath:
    """Names of the serving paths, as in the response and the metrics."""

    MODEL = "model"
    POPULARITY = "popularity"
    FEATURE_STORE_DOWN = "feature_store_down"
    COLD_START = "cold_start"


class FallbackReason:
    NO_MODEL = "no_model"
    FEATURE_STORE_UNAVAILABLE = "feature_store_unavailable"
    UNKNOWN_SESSION = "unknown_session"
    TORCH_MODEL_UNAVAILABLE = "torch_model_unavailable"
    LEARNER_SNAPSHOT_UNAVAILABLE = "learner_snapshot_unavailable"


class Source:
    TORCH = "torch"
    TRANSITIONS = "transitions"
    POPULARITY = "popularity"


class DeadlineExceeded(RuntimeError):
    """The call's deadline passed before the response was complete."""


@dataclass(frozen=True)
class RecommendQuery:
    """A validated Recommend request."""

    session_id: str
    k: int
    recent_items: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    purchased: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    request_id: str = ""


@dataclass
class ScoredItem:
    item_id: str
    score: float
    torch_score: float | None
    river_score: float | None
    sources: tuple[str, ...]


@dataclass
class Recommendation:
    """Result of one Recommend call, with the counts that the metrics record."""

    items: list[ScoredItem]
    path: str
    fallback_reason: str = ""
    torch_version: str = ""
    river_version: int | None = None
    river_events_learned: int = 0
    feature_age_ms: dict[str, int] = field(default_factory=dict)
    removed: Counter = field(default_factory=Counter)
    weights_source: str = "config"


@dataclass
class SessionState:
    """Session state from the features and the request."""

    sequence: tuple[str, ...]
    session: SessionFeatures | None
    transitions: RankedList | None
    store_down: bool


def merge_sequences(stored: Sequence[str], recent: Sequence[str]) -> tuple[str, ...]:
    """Append the request's items to the stored ones, without repeating their overlap.

    The request's items are the newest. When the stored sequence ends with the
    first items of the request, those items are not added twice.

    >>> merge_sequences(["a", "b", "c"], ["b", "c", "d"])
    ('a', 'b', 'c', 'd')
    >>> merge_sequences(["a"], [])
    ('a',)
    """
    for overlap in range(min(len(stored), len(recent)), 0, -1):
        if tuple(stored[-overlap:]) == tuple(recent[:overlap]):
            return tuple(stored) + tuple(recent[overlap:])
    return tuple(stored) + tuple(recent)


class Recommender:
    """Recommend items for :class:`RecommendQuery` objects from the parts that are present; every part may be None."""

    def __init__(
        self,
        features: FeatureReader | None,
        models: ModelWatcher | None,
        snapshots: Any,
        rules: Callable[[], Rules],
        blend: BlendWeights,
        model_settings: ModelSettings,
    ):
        self.features = features
        self.models = models
        self.snapshots = snapshots
        self.rules = rules
        self.blend = blend
        self.model_settings = model_settings

    def recommend(self, query: RecommendQuery, deadline: float) -> Recommendation:
        """Return the top ``query.k`` items; ``deadline`` is a ``time.monotonic()`` value.

        Raises :class:`DeadlineExceeded` when the deadline passes between steps.
        NOTE: a step that is running (a Feast read, the Torch forward pass) is not
        interrupted, so a call can overrun its deadline by the length of one step.
        """
        state = self._read_session(query)
        _check(deadline)
        popularity = self.features.popularity if self.features is not None else Popularity()
        torch_model = self.models.current if self.models is not None else None
        snapshot = self.snapshots.current if self.snapshots is not None else None
        if state.store_down:
            path, reason = ServingPath.FEATURE_STORE_DOWN, FallbackReason.FEATURE_STORE_UNAVAILABLE
        elif not state.sequence:
            path, reason = ServingPath.COLD_START, FallbackReason.UNKNOWN_SESSION
        elif torch_model is None and snapshot is None:
            path, reason = ServingPath.POPULARITY, FallbackReason.NO_MODEL
        elif torch_model is None:
            path, reason = ServingPath.MODEL, FallbackReason.TORCH_MODEL_UNAVAILABLE
        elif snapshot is None:
            path, reason = ServingPath.MODEL, FallbackReason.LEARNER_SNAPSHOT_UNAVAILABLE
        else:
            path, reason = ServingPath.MODEL, ""
        use_models = path in (ServingPath.MODEL, ServingPath.FEATURE_STORE_DOWN) and bool(state.sequence)

        torch_scores = torch_model.score(state.sequence) if use_models and torch_model is not None else None
        if torch_model is not None and use_models and torch_scores is None and not reason:
            reason = FallbackReason.TORCH_MODEL_UNAVAILABLE
        _check(deadline)
        candidates, sources = self._candidates(state, popularity, torch_scores, query.k)
        components: dict[str, dict[str, float]] = {Source.POPULARITY: _as_floats(popularity.counts)}
        torch_of_candidates: dict[str, float] = {}
        river_of_candidates: dict[str, float] = {}
        weights_source = "config"
        if use_models:
            if state.transitions is not None:
                components[Source.TRANSITIONS] = _as_floats(state.transitions.counts)
            if torch_scores is not None:
                torch_of_candidates = torch_scores.of(candidates)
                components["torch"] = torch_of_candidates
            if snapshot is not None:
                river_of_candidates = self._river_scores(query, state, popularity, torch_of_candidates, snapshot, candidates)
                components["river"] = river_of_candidates
            weights, weights_source = choose_weights(self.blend, snapshot)
        else:
            weights = {Source.POPULARITY: 1.0}
        _check(deadline)

        blended = blend_scores(candidates, components, weights)
        ranked = sorted(candidates, key=lambda item: (-blended[item], item))
        kept, removed = apply_rules(self.rules(), ranked, self._constraints(query, state), query.k)
        items = [
            ScoredItem(
                item_id=item,
                score=blended[item],
                torch_score=torch_of_candidates.get(item),
                river_score=river_of_candidates.get(item),
                sources=tuple(sorted(sources[item])),
            )
            for item in kept
        ]
        return Recommendation(
            items=items,
            path=path,
            fallback_reason=reason,
            torch_version=torch_model.version if torch_scores is not None else "",
            river_version=snapshot.version if river_of_candidates else None,
            river_events_learned=snapshot.events_learned if river_of_candidates else 0,
            feature_age_ms=self._feature_ages(state, popularity),
            removed=removed,
            weights_source=weights_source,
        )

    def _read_session(self, query: RecommendQuery) -> SessionState:
        request_item = query.recent_items[-1] if query.recent_items else None
        if self.features is None:
            return SessionState(query.recent_items, None, None, store_down=False)
        try:
            session, transitions = self.features.read_session(query.session_id, request_item)
            stored = session.last_items if session is not None else ()
            sequence = merge_sequences(stored, query.recent_items)
            if request_item is None and sequence:
                transitions = self.features.read_transitions(sequence[-1])
        except FeatureStoreUnavailable as error:
            logger.warning("request %s for session %s: %s", query.request_id, query.session_id, error)
            return SessionState(query.recent_items, None, None, store_down=True)
        return SessionState(sequence, session, transitions, store_down=False)

    def _candidates(
        self, state: SessionState, popularity: Popularity, torch_scores: TorchScores | None, k: int
    ) -> tuple[list[str], dict[str, set[str]]]:
        """Collect the candidates and their sources; each source gives at least ``k`` items when it has them."""
        sources: dict[str, set[str]] = {}
        if torch_scores is not None:
            for item, _ in torch_scores.top(max(self.model_settings.torch_candidates, k)):
                sources.setdefault(item, set()).add(Source.TORCH)
        if state.transitions is not None:
            for item in state.transitions.counts:
                sources.setdefault(item, set()).add(Source.TRANSITIONS)
        for item in popularity.items[: max(self.model_settings.popularity_candidates, k)]:
            sources.setdefault(item, set()).add(Source.POPULARITY)
        return list(sources), sources

    def _river_scores(self, query, state, popularity, torch_scores, snapshot, candidates) -> dict[str, float]:
        from online_learning.scoring import CandidateContext

        context = CandidateContext(
            session_id=query.session_id,
            recent_items=state.sequence,
            transitions=state.transitions.counts if state.transitions is not None else {},
            popularity=popularity.counts,
            torch_scores=torch_scores or None,
        )
        return snapshot.score(context, candidates)

    @staticmethod
    def _constraints(query: RecommendQuery, state: SessionState) -> RequestConstraints:
        # NOTE: the session features store only the latest event's type, so a purchase
        # before the session's latest event is known only from the request's purchased_item_ids.
        purchased = set(query.purchased)
        session = state.session
        if session is not None and session.last_event_type == PURCHASE and session.last_item_id:
            purchased.add(session.last_item_id)
        return RequestConstraints(
            seen=frozenset(state.sequence),
            purchased=frozenset(purchased),
            excluded=query.excluded,
            categories=query.categories,
        )

    @staticmethod
    def _feature_ages(state: SessionState, popularity: Popularity) -> dict[str, int]:
        ages = {}
        if state.session is not None:
            ages["session_features"] = state.session.age_ms
        if state.transitions is not None:
            ages["item_transitions"] = state.transitions.age_ms
        popularity_age = popularity.age_ms(time.time_ns() // 1_000_000)
        if popularity_age is not None:
            ages["popular_items"] = popularity_age
        return ages


def _as_floats(counts: dict[str, int]) -> dict[str, float]:
    return {item: float(count) for item, count in counts.items()}


def _check(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise DeadlineExceeded("the deadline passed before the recommendations were complete")
