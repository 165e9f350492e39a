"""Candidate features and the scoring half of the online learner, shared by the learner and serving.

The learner and the gRPC service both turn a :class:`CandidateContext` and a
list of candidate items into features with :func:`candidate_features`, so a
snapshot scores a candidate exactly as the learner did when it learned.

This module imports only the standard library and River: serving loads it
without Kafka or Feast.

>>> context = CandidateContext(
...     session_id="s1",
...     recent_items=("a", "b"),
...     transitions={"c": 3, "a": 1},
...     popularity={"a": 10, "b": 4, "c": 5},
... )
>>> rows = candidate_features(context, ["c", "a"])
>>> rows[0]["transition_relative"], rows[0]["popularity_relative"], rows[0]["recency"]
(1.0, 0.5, 0.0)
>>> rows[1]["transition_relative"], rows[1]["seen_in_session"], rows[1]["recency"]
(0.3333333333333333, 1.0, 0.5)
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Mapping, Sequence

from river import base, linear_model, optim
from river.utils.math import sigmoid

FEATURE_NAMES = (
    "transition_relative",
    "transition_present",
    "popularity_relative",
    "seen_in_session",
    "recency",
    "is_current_item",
    "torch_score",
    "has_torch_score",
)
"""Feature names of :func:`candidate_features`, in a fixed order. Every value lies in [0, 1]."""


@dataclass(frozen=True)
class CandidateContext:
    """Session data at the time its next item is scored.

    ``recent_items`` runs oldest first and ends with the current item.
    ``transitions`` maps each item seen right after the current item to its
    count, and ``popularity`` maps items to their recent event counts. Items
    missing from either mapping count 0. ``torch_scores`` contains the nightly
    model's score of each candidate, a probability in [0, 1], when one is
    available.
    """

    session_id: str
    recent_items: tuple[str, ...]
    transitions: Mapping[str, int]
    popularity: Mapping[str, int]
    torch_scores: Mapping[str, float] | None = None


def candidate_features(context: CandidateContext, candidates: Sequence[str]) -> list[dict[str, float]]:
    """Compute the features of each candidate as River input dicts, in the order of ``candidates``.

    Counts are divided by the largest count among the candidates, so the
    features do not depend on how many events the window holds. ``recency`` is
    1 for the current item, 1/2 for the item before it and so on, taking each
    item's latest position, and 0 for items not in ``recent_items``. Torch
    scores are clipped to [0, 1], and missing ones are 0 with
    ``has_torch_score`` 0.
    """
    transitions = context.transitions
    popularity = context.popularity
    transition_counts = [transitions.get(item, 0) for item in candidates]
    popularity_counts = [popularity.get(item, 0) for item in candidates]
    max_transition = max(transition_counts, default=0)
    max_popularity = max(popularity_counts, default=0)

    recent = context.recent_items
    steps_back: dict[str, int] = {}
    for position, item in enumerate(reversed(recent), start=1):
        steps_back.setdefault(item, position)
    current = recent[-1] if recent else None
    torch_scores = context.torch_scores

    rows = []
    for item, transition_count, popularity_count in zip(candidates, transition_counts, popularity_counts):
        steps = steps_back.get(item)
        torch_score = None if torch_scores is None else torch_scores.get(item)
        rows.append({
            "transition_relative": transition_count / max_transition if max_transition else 0.0,
            "transition_present": 1.0 if transition_count > 0 else 0.0,
            "popularity_relative": popularity_count / max_popularity if max_popularity else 0.0,
            "seen_in_session": 0.0 if steps is None else 1.0,
            "recency": 0.0 if steps is None else 1.0 / steps,
            "is_current_item": 1.0 if item == current else 0.0,
            "torch_score": 0.0 if torch_score is None else min(1.0, max(0.0, float(torch_score))),
            "has_torch_score": 0.0 if torch_score is None else 1.0,
        })
    return rows


def default_model(learning_rate: float = 0.05, l2: float = 0.0) -> base.Classifier:
    """Build the learner's default River model: a logistic regression trained by plain SGD."""
    return linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)


def score_rows(model: base.Classifier, rows: Sequence[dict[str, float]]) -> list[float]:
    """Return the model's probability of the positive class for each row of :func:`candidate_features`.

    A logistic regression with log loss is scored from its weights directly,
    because ``predict_proba_one`` costs several times more per row. This relies
    on the rows listing their features in ``FEATURE_NAMES`` order. The result
    equals River's up to the order of the floating-point additions.
    """
    if type(model) is linear_model.LogisticRegression and type(model.loss) is optim.losses.Log:
        weights = model.weights
        weight_vector = [weights.get(name, 0.0) for name in FEATURE_NAMES]
        intercept = model.intercept
        return [sigmoid(intercept + sum(map(operator.mul, weight_vector, row.values()))) for row in rows]
    return [model.predict_proba_one(row).get(True, 0.0) for row in rows]


class LearnerSnapshot:
    """A frozen copy of the learner's model that serving scores with.

    ``version`` increases with every snapshot the learner writes,
    ``created_at_ms`` is the UTC epoch milliseconds of its creation and
    ``events_learned`` the number of events the model had learned from. The
    model must not be changed after the snapshot is made, so the learner passes
    a copy (``model.clone(include_attributes=True)``).
    """

    def __init__(self, model: base.Classifier, version: int, created_at_ms: int, events_learned: int):
        self.model = model
        self.version = version
        self.created_at_ms = created_at_ms
        self.events_learned = events_learned

    def score(self, context: CandidateContext, candidates: Sequence[str]) -> dict[str, float]:
        """Score each candidate as the next item of the session: a probability in [0, 1], higher is better.

        A candidate listed twice appears once in the result.
        """
        rows = candidate_features(context, candidates)
        return dict(zip(candidates, score_rows(self.model, rows)))

    def __repr__(self) -> str:
        return (
            f"LearnerSnapshot(version={self.version}, created_at_ms={self.created_at_ms}, "
            f"events_learned={self.events_learned}, model={type(self.model).__name__})"
        )
