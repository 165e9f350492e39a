"""The prequential learner: for each event, score the session's candidates, measure, then learn.

For an event of a session that already has a live history, the learner

1. builds the session's :class:`~online_learning.scoring.CandidateContext`
   from the state *before* the event and scores the candidates,
2. updates prequential Recall@K and MRR@K with the event's item as the target,
   and feeds the hit to an ADWIN drift detector,
3. learns: the target is a positive, and ``negatives_per_event`` candidates
   sampled uniformly without the target and ``random_negatives_per_event``
   items sampled uniformly from all items seen so far are negatives,
4. adds the event to the stream state (session, transition, popularity).

The first event of a session only does step 4. A target item never seen before
counts as a miss and as an unknown item, and the model does not learn from it,
because all its features are 0.

>>> learner = PrequentialLearner(LearnerConfig(negatives_per_event=1))
>>> [learner.process("s1", item, time_ms).scored for item, time_ms in [("a", 1_000), ("b", 2_000), ("a", 3_000)]]
[False, True, True]
>>> learner.counters.events_learned, learner.counters.events_scored, learner.counters.unknown_items
(3, 2, 1)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from river import base, drift, stats, utils

from online_learning.candidates import generate_candidates
from online_learning.prequential import ranking_metrics
from online_learning.scoring import LearnerSnapshot, candidate_features, default_model, score_rows
from online_learning.stream_state import StreamState, StreamStateConfig


@dataclass(frozen=True)
class LearnerConfig:
    """Model, candidate and evaluation settings of :class:`PrequentialLearner`."""

    cutoff: int = 20
    """List length K of the prequential Recall@K and MRR@K."""
    negatives_per_event: int = 1
    """Candidates learned as negatives per event, sampled uniformly without the target."""
    random_negatives_per_event: int = 1
    """Items learned as negatives per event, sampled uniformly from all items seen so far.

    They teach the model that an item without transitions, popularity or a place
    in the session is unlikely, which serving needs for candidates of the Torch
    model that the learner's candidate lists never contain. A sample equal to the
    target is dropped."""
    learning_rate: float = 0.05
    """SGD step size of the logistic regression."""
    l2: float = 0.0
    """L2 penalty of the logistic regression."""
    max_transition_candidates: int = 20
    max_recent_candidates: int = 10
    rolling_window_events: int = 5_000
    """Scored events in the rolling Recall@K that the curve reports."""
    seed: int = 0
    """Seed of the negative sampling, so that a replay learns the same model."""
    curve_interval_events: int = 0
    """Append a :class:`CurvePoint` after every this many scored events; 0 records no curve."""
    stream: StreamStateConfig = field(default_factory=StreamStateConfig)


@dataclass
class LearnerCounters:
    """Totals since the learner's first event; they are part of every checkpoint."""

    events_learned: int = 0
    """Valid events taken into the state, scored or not."""
    events_scored: int = 0
    """Events whose session had a history, so a prediction was measured."""
    unknown_items: int = 0
    """Scored events whose item had never been seen before."""
    drift_events: int = 0
    """Changes that ADWIN detected in the hit stream."""


@dataclass(frozen=True)
class CurvePoint:
    """Prequential quality after ``events_scored`` scored events: since the start and over the rolling window."""

    events_scored: int
    recall: float
    mrr: float
    rolling_recall: float
    rolling_mrr: float


@dataclass(frozen=True)
class EventOutcome:
    """Measurements of one processed event. ``hit`` and ``reciprocal_rank`` are 0 when it was not scored."""

    scored: bool
    hit: float = 0.0
    reciprocal_rank: float = 0.0
    unknown_item: bool = False
    drift_detected: bool = False


class PrequentialLearner:
    """A River classifier over candidate features, trained prequentially from a stream of events.

    ``model`` is any River binary classifier. The default is
    :func:`~online_learning.scoring.default_model` with the config's learning
    rate and L2 penalty.
    """

    def __init__(self, config: LearnerConfig = LearnerConfig(), model: base.Classifier | None = None):
        self.config = config
        self.model = model if model is not None else default_model(config.learning_rate, config.l2)
        self.state = StreamState(config.stream)
        self.counters = LearnerCounters()
        self.recall = stats.Mean()
        self.mrr = stats.Mean()
        self.rolling_recall = utils.Rolling(stats.Mean(), window_size=config.rolling_window_events)
        self.rolling_mrr = utils.Rolling(stats.Mean(), window_size=config.rolling_window_events)
        self.drift_detector = drift.ADWIN()
        self._random = random.Random(config.seed)
        self.curve: list[CurvePoint] = []

    def process(self, session_id: str, item_id: str, event_time_ms: int) -> EventOutcome:
        """Score, measure, learn and remember one valid event, in that order."""
        context = self.state.context(session_id)
        outcome = EventOutcome(scored=False)
        if context is not None:
            outcome = self._score_and_learn(context, item_id)
        self.state.observe(session_id, item_id, event_time_ms)
        self.counters.events_learned += 1
        return outcome

    def _score_and_learn(self, context, item_id: str) -> EventOutcome:
        # TODO: contexts carry no Torch scores here, so the torch_score weights stay 0 and
        # serving's Torch scores do not change a snapshot's ranking until the learner
        # scores candidates with the registry's model too.
        config = self.config
        candidates = generate_candidates(
            context,
            self.state.popular_items(),
            max_transitions=config.max_transition_candidates,
            max_recent=config.max_recent_candidates,
        )
        rows = candidate_features(context, candidates)
        scores = score_rows(self.model, rows)
        try:
            target_index: int | None = candidates.index(item_id)
        except ValueError:
            target_index = None
        hit, reciprocal_rank = ranking_metrics(scores, target_index, config.cutoff)

        counters = self.counters
        counters.events_scored += 1
        self.recall.update(hit)
        self.mrr.update(reciprocal_rank)
        self.rolling_recall.update(hit)
        self.rolling_mrr.update(reciprocal_rank)
        self.drift_detector.update(hit)
        drift_detected = self.drift_detector.drift_detected
        if drift_detected:
            counters.drift_events += 1
        interval = config.curve_interval_events
        if interval and counters.events_scored % interval == 0:
            self.curve.append(CurvePoint(
                counters.events_scored, self.recall.get(), self.mrr.get(),
                self.rolling_recall.get(), self.rolling_mrr.get(),
            ))

        unknown = not self.state.is_known(item_id)
        if unknown:
            counters.unknown_items += 1
        else:
            self._learn(context, candidates, rows, target_index, item_id)
        return EventOutcome(True, hit, reciprocal_rank, unknown, drift_detected)

    def _learn(self, context, candidates, rows, target_index, item_id) -> None:
        negative_pool: Sequence[int]
        if target_index is None:
            negative_pool = range(len(candidates))
        else:
            negative_pool = [i for i in range(len(candidates)) if i != target_index]
        count = min(self.config.negatives_per_event, len(negative_pool))
        negatives = [rows[index] for index in self._random.sample(negative_pool, count)]
        random_items = [
            item for item in self.state.sample_known_items(self._random, self.config.random_negatives_per_event)
            if item != item_id
        ]

        # Items outside the candidates get features relative to the candidates, so they
        # are computed with the candidates beside them.
        extra_items = random_items if target_index is not None else [item_id, *random_items]
        extra_rows = candidate_features(context, [*candidates, *extra_items])[len(candidates):] if extra_items else []
        if target_index is None:
            positive = extra_rows[0]
            negatives.extend(extra_rows[1:])
        else:
            positive = rows[target_index]
            negatives.extend(extra_rows)

        self.model.learn_one(positive, True)
        for row in negatives:
            self.model.learn_one(row, False)

    def snapshot(self, version: int, created_at_ms: int) -> LearnerSnapshot:
        """Return a snapshot with a copy of the model, which later learning leaves unchanged."""
        return LearnerSnapshot(
            model=self.model.clone(include_attributes=True),
            version=version,
            created_at_ms=created_at_ms,
            events_learned=self.counters.events_learned,
        )
