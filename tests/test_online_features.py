"""Candidate features, candidate generation, stream state and prequential ranking metrics, against hand-computed values."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from online_learning.candidates import generate_candidates, top_transitions
from online_learning.prequential import ranking_metrics
from online_learning.scoring import FEATURE_NAMES, CandidateContext, candidate_features
from online_learning.stream_state import StreamState, StreamStateConfig
from seqrec.metrics import expected_metrics, target_ranks

T0_MS = 1_411_462_780_000
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS

CONTEXT = CandidateContext(
    session_id="s1",
    recent_items=("a", "b", "c", "b"),
    transitions={"d": 4, "c": 2, "a": 1},
    popularity={"a": 8, "b": 2, "c": 1, "d": 6, "e": 10},
    torch_scores={"d": 0.7, "e": 1.5},
)


def test_features_hand_computed():
    rows = candidate_features(CONTEXT, ["d", "b", "c", "z"])
    # Among the candidates, d has the largest transition count (4) and popularity (6).
    assert rows[0] == {
        "transition_relative": 1.0,
        "transition_present": 1.0,
        "popularity_relative": 1.0,
        "seen_in_session": 0.0,
        "recency": 0.0,
        "is_current_item": 0.0,
        "torch_score": 0.7,
        "has_torch_score": 1.0,
    }
    assert rows[1] == {
        "transition_relative": 0.0,
        "transition_present": 0.0,
        "popularity_relative": 2 / 6,
        "seen_in_session": 1.0,
        "recency": 1.0,
        "is_current_item": 1.0,
        "torch_score": 0.0,
        "has_torch_score": 0.0,
    }
    # c is two steps back from the end of (a, b, c, b).
    assert rows[2]["transition_relative"] == 2 / 4
    assert rows[2]["popularity_relative"] == 1 / 6
    assert rows[2]["recency"] == 0.5
    assert rows[2]["is_current_item"] == 0.0
    assert rows[3] == dict.fromkeys(FEATURE_NAMES, 0.0)


def test_features_use_latest_position_of_repeated_item():
    rows = candidate_features(CONTEXT, ["a", "b"])
    assert rows[0]["recency"] == 1 / 4
    assert rows[1]["recency"] == 1.0


def test_features_clip_torch_score():
    rows = candidate_features(CONTEXT, ["e"])
    assert rows[0]["torch_score"] == 1.0
    assert rows[0]["has_torch_score"] == 1.0


def test_features_without_counts_are_zero():
    context = CandidateContext("s1", ("a",), {}, {})
    rows = candidate_features(context, ["a", "b"])
    assert rows[0]["transition_relative"] == 0.0
    assert rows[0]["popularity_relative"] == 0.0
    assert rows[1]["popularity_relative"] == 0.0


def test_features_of_empty_candidate_list():
    assert candidate_features(CONTEXT, []) == []


def test_top_transitions_breaks_ties_by_item_id():
    context = CandidateContext("s1", ("a",), {"x": 2, "b": 2, "c": 3, "d": 1}, {})
    assert top_transitions(context, 3) == ["c", "b", "x"]
    assert top_transitions(context, 10) == ["c", "b", "x", "d"]


def test_candidates_in_source_order_without_repeats():
    candidates = generate_candidates(CONTEXT, popular_items=["e", "a", "f"], max_transitions=2, max_recent=3)
    # First the transitions d and c. Then the recent items newest first: b, c (already
    # listed) and the repeated b, while a is outside the last three. Then popular e, a, f.
    assert candidates == ["d", "c", "b", "e", "a", "f"]


def test_state_counts_transitions_without_repeats():
    state = StreamState(StreamStateConfig(popular_refresh_events=1))
    for offset, item in enumerate(["a", "a", "b", "a", "b"]):
        state.observe("s1", item, T0_MS + offset * SECOND_MS)
    context = state.context("s1")
    assert context.recent_items == ("a", "a", "b", "a", "b")
    assert dict(context.transitions) == {"a": 1}
    state.observe("s2", "a", T0_MS + 10 * SECOND_MS)
    assert dict(state.context("s2").transitions) == {"b": 2}


def test_state_keeps_last_recent_items():
    state = StreamState(StreamStateConfig(max_recent_items=2))
    for offset, item in enumerate(["a", "b", "c"]):
        state.observe("s1", item, T0_MS + offset * SECOND_MS)
    assert state.context("s1").recent_items == ("b", "c")


def test_state_session_gap_starts_new_session():
    state = StreamState(StreamStateConfig(session_gap=timedelta(minutes=30)))
    state.observe("s1", "a", T0_MS)
    state.observe("s1", "b", T0_MS + 30 * MINUTE_MS)
    assert state.context("s1").recent_items == ("a", "b")
    state.observe("s1", "c", T0_MS + 61 * MINUTE_MS)
    assert state.context("s1").recent_items == ("c",)
    # The a -> b transition stays, but b -> c crossed the gap and is not counted.
    state.observe("s2", "b", T0_MS + 62 * MINUTE_MS)
    assert dict(state.context("s2").transitions) == {}


def test_state_forgets_idle_sessions():
    state = StreamState(StreamStateConfig(session_gap=timedelta(minutes=30)))
    state.observe("s1", "a", T0_MS)
    state.observe("s2", "a", T0_MS + 20 * MINUTE_MS)
    assert state.session_count == 2
    state.observe("s3", "a", T0_MS + 31 * MINUTE_MS)
    assert state.session_count == 2
    assert state.context("s1") is None


def test_state_popularity_window():
    state = StreamState(StreamStateConfig(popularity_window=timedelta(hours=1), popular_refresh_events=1))
    state.observe("s1", "a", T0_MS)
    state.observe("s2", "a", T0_MS + 30 * MINUTE_MS)
    state.observe("s3", "b", T0_MS + 40 * MINUTE_MS)
    assert state.context("s3").popularity == {"a": 2, "b": 1}
    assert state.popular_items() == ["a", "b"]
    # At exactly one hour the first event leaves the window.
    state.observe("s4", "b", T0_MS + 60 * MINUTE_MS)
    assert state.context("s4").popularity == {"a": 1, "b": 2}
    assert state.popular_items() == ["b", "a"]
    assert state.is_known("a")
    assert not state.is_known("c")


def test_popular_items_refresh_every_n_events():
    state = StreamState(StreamStateConfig(popular_refresh_events=3))
    state.observe("s1", "a", T0_MS)
    state.observe("s1", "b", T0_MS + SECOND_MS)
    assert state.popular_items() == []
    state.observe("s1", "b", T0_MS + 2 * SECOND_MS)
    assert state.popular_items() == ["b", "a"]


@pytest.mark.parametrize(
    ("scores", "target", "cutoff", "expected"),
    [
        ([0.9, 0.5, 0.1], 0, 20, (1.0, 1.0)),
        ([0.9, 0.5, 0.1], 2, 20, (1.0, 1 / 3)),
        ([0.9, 0.5, 0.1], 2, 2, (0.0, 0.0)),
        # Ranks 2, 3 or 4, and the cutoff 3 keeps two of them.
        ([0.9, 0.5, 0.5, 0.5], 1, 3, (2 / 3, (1 / 2 + 1 / 3) / 3)),
        ([0.5, 0.5], None, 20, (0.0, 0.0)),
    ],
)
def test_ranking_metrics_hand_computed(scores, target, cutoff, expected):
    recall, reciprocal_rank = ranking_metrics(scores, target, cutoff)
    assert recall == pytest.approx(expected[0], abs=1e-15)
    assert reciprocal_rank == pytest.approx(expected[1], abs=1e-15)


def test_ranking_metrics_agree_with_offline_metrics():
    rng = np.random.default_rng(7)
    for _ in range(200):
        scores = rng.integers(0, 4, size=30).astype(float)
        target = int(rng.integers(0, 30))
        offline = expected_metrics(target_ranks(scores[None, :], np.array([target])), cutoffs=(20,))
        recall, reciprocal_rank = ranking_metrics(list(scores), target, 20)
        assert recall == pytest.approx(float(offline["Recall@20"][0]), abs=1e-12)
        assert reciprocal_rank == pytest.approx(float(offline["MRR@20"][0]), abs=1e-12)
