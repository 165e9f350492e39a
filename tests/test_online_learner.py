"""The prequential learner: scoring comes before learning, metrics and negatives are exact, snapshots are copies."""

from __future__ import annotations

import math
import random

import pytest
from river import base

from online_learning.learner import LearnerConfig, PrequentialLearner
from online_learning.scoring import CandidateContext, LearnerSnapshot, candidate_features, default_model, score_rows
from online_learning.stream_state import StreamStateConfig

T0_MS = 1_411_462_780_000
SECOND_MS = 1_000


class RecordingClassifier(base.Classifier):
    """Scores each row by its ``transition_relative`` feature and records every call in order."""

    def __init__(self):
        self.calls: list[tuple[str, dict, bool | None]] = []

    def learn_one(self, x, y):
        self.calls.append(("learn", dict(x), y))

    def predict_proba_one(self, x):
        self.calls.append(("predict", dict(x), None))
        return {False: 1.0 - x["transition_relative"], True: x["transition_relative"]}


def feed(learner, events):
    return [learner.process(session, item, time_ms) for session, item, time_ms in events]


def test_first_event_of_session_is_not_scored():
    model = RecordingClassifier()
    learner = PrequentialLearner(LearnerConfig(), model=model)
    outcome = learner.process("s1", "a", T0_MS)
    assert not outcome.scored
    assert model.calls == []
    assert learner.counters.events_learned == 1
    assert learner.counters.events_scored == 0


def test_scores_before_learning_and_before_state_update():
    model = RecordingClassifier()
    learner = PrequentialLearner(
        LearnerConfig(negatives_per_event=1, random_negatives_per_event=0, stream=StreamStateConfig(popular_refresh_events=1)),
        model=model,
    )
    # Session s0 teaches the transition a -> b twice and a -> c once.
    feed(learner, [
        ("s0", "a", T0_MS), ("s0", "b", T0_MS + 1 * SECOND_MS),
        ("s9", "a", T0_MS + 2 * SECOND_MS), ("s9", "b", T0_MS + 3 * SECOND_MS),
        ("s8", "a", T0_MS + 4 * SECOND_MS), ("s8", "c", T0_MS + 5 * SECOND_MS),
        ("s1", "a", T0_MS + 6 * SECOND_MS),
    ])
    model.calls.clear()
    outcome = learner.process("s1", "c", T0_MS + 7 * SECOND_MS)

    # Candidates: transitions of a (b 2, c 1), then recent a, then popular a, b, c.
    predicted = [x for kind, x, _ in model.calls if kind == "predict"]
    assert [x["transition_relative"] for x in predicted] == [1.0, 0.5, 0.0]
    kinds = [kind for kind, _, _ in model.calls]
    assert kinds == ["predict", "predict", "predict", "learn", "learn"]
    # The scored popularity of c is 1, from before this event: a 4, b 2, c 1.
    assert predicted[1]["popularity_relative"] == 1 / 4
    # c scored 0.5 behind b's 1.0: rank 2.
    assert outcome.scored
    assert outcome.hit == 1.0
    assert outcome.reciprocal_rank == 0.5
    _, positive, label = model.calls[3]
    assert label is True
    assert positive == predicted[1]
    _, negative, label = model.calls[4]
    assert label is False
    assert negative in (predicted[0], predicted[2])
    # The event itself is remembered only after learning.
    assert learner.state.context("s1").recent_items == ("a", "c")


def test_prequential_means_are_exact():
    model = RecordingClassifier()
    learner = PrequentialLearner(LearnerConfig(negatives_per_event=0), model=model)
    outcomes = feed(learner, [
        ("s1", "a", T0_MS), ("s1", "b", T0_MS + SECOND_MS),      # b unknown: miss
        ("s2", "a", T0_MS + 2 * SECOND_MS), ("s2", "b", T0_MS + 3 * SECOND_MS),  # b after a: rank 1
        ("s2", "z", T0_MS + 4 * SECOND_MS),                       # z unknown: miss
    ])
    assert [outcome.scored for outcome in outcomes] == [False, True, False, True, True]
    assert [outcome.hit for outcome in outcomes] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert [outcome.unknown_item for outcome in outcomes] == [False, True, False, False, True]
    assert learner.counters.events_scored == 3
    assert learner.counters.unknown_items == 2
    assert learner.recall.get() == pytest.approx(1 / 3)
    assert learner.mrr.get() == pytest.approx(1 / 3)
    # Unknown items are not learned from, and the known b is learned once as a positive.
    learned = [(x["transition_relative"], y) for kind, x, y in model.calls if kind == "learn"]
    assert learned == [(1.0, True)]


def test_target_outside_candidates_is_learned_with_its_features():
    model = RecordingClassifier()
    learner = PrequentialLearner(
        LearnerConfig(
            negatives_per_event=5, random_negatives_per_event=0, stream=StreamStateConfig(popular_refresh_events=10_000)
        ),
        model=model,
    )
    feed(learner, [("s1", "x", T0_MS), ("s2", "a", T0_MS + SECOND_MS)])
    model.calls.clear()
    outcome = learner.process("s2", "x", T0_MS + 2 * SECOND_MS)
    # The only candidate is the session's own a, so the known x is not a candidate.
    assert outcome.hit == 0.0
    learns = [(x["seen_in_session"], y) for kind, x, y in model.calls if kind == "learn"]
    assert learns == [(0.0, True), (1.0, False)]


def test_random_negatives_come_from_known_items():
    model = RecordingClassifier()
    draws = 4
    learner = PrequentialLearner(
        LearnerConfig(negatives_per_event=0, random_negatives_per_event=draws, seed=5), model=model
    )
    feed(learner, [("s1", "x", T0_MS), ("s2", "a", T0_MS + SECOND_MS)])
    model.calls.clear()
    learner.process("s2", "x", T0_MS + 2 * SECOND_MS)

    # The known items are [x, a] in order of first occurrence. Draws of the target x
    # are dropped, so each draw of a (index 1) is one negative with a's features.
    independent = random.Random(5)
    expected_negatives = sum(independent.randrange(2) == 1 for _ in range(draws))
    learned = [(x, y) for kind, x, y in model.calls if kind == "learn"]
    assert learned[0][1] is True
    assert learned[0][0]["seen_in_session"] == 0.0
    negatives = learned[1:]
    assert len(negatives) == expected_negatives
    for row, label in negatives:
        assert label is False
        assert row["is_current_item"] == 1.0


def test_learner_replays_identically_with_same_seed():
    events = [(f"s{n % 7}", f"i{(n * 5) % 11}", T0_MS + n * SECOND_MS) for n in range(300)]
    first = PrequentialLearner(LearnerConfig(seed=3))
    second = PrequentialLearner(LearnerConfig(seed=3))
    feed(first, events)
    feed(second, events)
    assert first.model.weights == second.model.weights
    assert first.model.intercept == second.model.intercept
    assert first.recall.get() == second.recall.get()


def test_snapshot_is_frozen_copy():
    events = [(f"s{n % 5}", f"i{(n * 3) % 7}", T0_MS + n * SECOND_MS) for n in range(100)]
    learner = PrequentialLearner(LearnerConfig())
    feed(learner, events)
    snapshot = learner.snapshot(version=4, created_at_ms=T0_MS)
    weights = dict(snapshot.model.weights)
    feed(learner, [(f"t{n % 5}", f"i{(n * 2) % 7}", T0_MS + (200 + n) * SECOND_MS) for n in range(100)])
    assert snapshot.model.weights == weights
    assert learner.model.weights != weights
    assert (snapshot.version, snapshot.created_at_ms, snapshot.events_learned) == (4, T0_MS, 100)


def test_snapshot_scores_like_the_learner():
    learner = PrequentialLearner(LearnerConfig())
    feed(learner, [(f"s{n % 5}", f"i{(n * 3) % 7}", T0_MS + n * SECOND_MS) for n in range(100)])
    snapshot = learner.snapshot(version=1, created_at_ms=T0_MS)
    context = CandidateContext("s1", ("i1", "i4"), {"i2": 3, "i5": 1}, {"i1": 9, "i2": 4})
    candidates = ["i2", "i5", "i1", "i9"]
    expected = score_rows(learner.model, candidate_features(context, candidates))
    assert snapshot.score(context, candidates) == dict(zip(candidates, expected))
    assert all(0.0 <= value <= 1.0 for value in expected)


def test_default_model_is_logistic_sigmoid_of_weights():
    model = default_model()
    row = {"transition_relative": 1.0, "recency": 0.5}
    model.learn_one(row, True)
    snapshot = LearnerSnapshot(model, version=1, created_at_ms=T0_MS, events_learned=1)
    score = snapshot.score(CandidateContext("s1", ("a",), {"b": 1}, {}), ["b"])["b"]
    # b: transition_relative 1, transition_present 1, all else 0.
    weights = model.weights
    raw = weights["transition_relative"] + weights.get("transition_present", 0.0) + model.intercept
    assert score == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-12)


def test_fast_scoring_matches_river():
    learner = PrequentialLearner(LearnerConfig())
    feed(learner, [(f"s{n % 5}", f"i{(n * 3) % 7}", T0_MS + n * SECOND_MS) for n in range(200)])
    context = CandidateContext("s1", ("i1", "i4", "i1"), {"i2": 3, "i5": 1}, {"i1": 9, "i2": 4}, {"i5": 0.3})
    rows = candidate_features(context, ["i2", "i5", "i1", "i9"])
    fast = score_rows(learner.model, rows)
    river_scores = [learner.model.predict_proba_one(row)[True] for row in rows]
    for fast_score, river_score in zip(fast, river_scores):
        assert fast_score == pytest.approx(river_score, rel=1e-12)
