"""Baselines, preprocessing, the time split and evaluation cases on tiny hand-built data."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from pipelines.training.baselines import (
    ItemKNN,
    Popularity,
    SequentialRules,
    SessionPopularity,
    VectorSessionKNN,
)
from pipelines.training.sessions import (
    ItemIndex,
    SplitConfig,
    group_sessions,
    load_srgnn_split,
    next_item_cases,
    prepare_sessions,
)

# Five items; item 4 never occurs in training, so every baseline must score it 0.
N_ITEMS = 5
TRAIN = [np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0, 2, 2])]  # oldest first
# Training event counts: item 0: 2, item 1: 2, item 2: 4, item 3: 1, item 4: 0.


def scores_of(model, *prefixes):
    return model.fit(TRAIN, N_ITEMS).score([np.array(prefix) for prefix in prefixes])


def test_pop_scores_training_counts():
    scores = scores_of(Popularity(), [3], [0, 1])
    assert scores.tolist() == [[2, 2, 4, 1, 0], [2, 2, 4, 1, 0]]


def test_spop_prefix_counts_then_popularity():
    # Tie-breaker count / (max count + 1) = count / 5; prefix [3, 0, 3] adds 2 to item 3 and 1 to item 0.
    scores = scores_of(SessionPopularity(), [3, 0, 3])
    assert scores[0] == pytest.approx([1 + 2 / 5, 2 / 5, 4 / 5, 2 + 1 / 5, 0])


def test_sr_rules_weighted_by_distance():
    # Rules, weight 1/distance:
    #   [0, 1, 2]: 0->1 1, 1->2 1, 0->2 1/2
    #   [1, 2, 3]: 1->2 1, 2->3 1, 1->3 1/2
    #   [0, 2, 2]: 0->2 1, 2->2 1, 0->2 1/2
    scores = scores_of(SequentialRules(), [3, 0], [1], [2], [3])
    assert scores[0] == pytest.approx([0, 1, 2, 0, 0])  # from 0: 0->2 = 1/2 + 1 + 1/2
    assert scores[1] == pytest.approx([0, 0, 2, 0.5, 0])
    assert scores[2] == pytest.approx([0, 0, 1, 1, 0])
    assert scores[3] == pytest.approx([0, 0, 0, 0, 0])  # item 3 is never followed


def test_sr_steps_limits_distance():
    scores = scores_of(SequentialRules(steps=1), [0], [1])
    assert scores[0] == pytest.approx([0, 1, 1, 0, 0])
    assert scores[1] == pytest.approx([0, 0, 2, 0, 0])


def test_item_knn_cosine_of_last_item():
    # Sessions per item: 0 {s0, s2}, 1 {s0, s1}, 2 {s0, s1, s2}, 3 {s1}.
    # From item 1: sim(1, 0) = 1/sqrt(2*2), sim(1, 2) = 2/sqrt(2*3), sim(1, 3) = 1/sqrt(2*1), itself 0.
    scores = scores_of(ItemKNN(), [2, 1])
    assert scores[0] == pytest.approx([0.5, 0, 2 / math.sqrt(6), 1 / math.sqrt(2), 0])


def test_item_knn_counts_repeats_once():
    # Item 2 occurs twice in s2 but the session counts once: sim(0, 2) = 2/sqrt(2*3).
    scores = scores_of(ItemKNN(), [0])
    assert scores[0] == pytest.approx([0, 0.5, 2 / math.sqrt(6), 0, 0])


def test_vsknn_weighted_cosine():
    # Prefix [0, 2]: weights 0 -> 1/2, 2 -> 1, norm sqrt(5)/2.
    # cos(s0 {0,1,2}) = 1.5 / (sqrt(5)/2 * sqrt(3)) = 3/sqrt(15)
    # cos(s1 {1,2,3}) = 1 / (sqrt(5)/2 * sqrt(3))   = 2/sqrt(15)
    # cos(s2 {0,2})   = 1.5 / (sqrt(5)/2 * sqrt(2)) = 3/sqrt(10)
    s0, s1, s2 = 3 / math.sqrt(15), 2 / math.sqrt(15), 3 / math.sqrt(10)
    scores = scores_of(VectorSessionKNN(), [0, 2])
    assert scores[0] == pytest.approx([s0 + s2, s0 + s1, s0 + s1 + s2, s1, 0])


def test_vsknn_k_keeps_most_similar():
    s2 = 3 / math.sqrt(10)
    scores = scores_of(VectorSessionKNN(k=1), [0, 2])
    assert scores[0] == pytest.approx([s2, 0, s2, 0, 0])


def test_vsknn_sample_keeps_recent_sessions():
    # sample_size=2 leaves s1 and s2 as candidates; s0 is the oldest.
    s1, s2 = 2 / math.sqrt(15), 3 / math.sqrt(10)
    scores = scores_of(VectorSessionKNN(sample_size=2), [0, 2])
    assert scores[0] == pytest.approx([s2, s1, s1 + s2, s1, 0])


def test_vsknn_equal_similarity_prefers_recent():
    # Prefix [1]: s0 and s1 both have cosine 1/sqrt(3); k=1 keeps the later s1.
    scores = scores_of(VectorSessionKNN(k=1), [1])
    third = 1 / math.sqrt(3)
    assert scores[0] == pytest.approx([0, third, third, third, 0])


def test_vsknn_repeated_item_keeps_last_weight():
    # Prefix [2, 0, 2]: item 2 weighs 3/3 (its last position), item 0 2/3; norm sqrt(13)/3.
    # cos(s0 {0,1,2}) = (5/3) / (sqrt(13)/3 * sqrt(3)) = 5/sqrt(39)
    # cos(s2 {0,2})   = (5/3) / (sqrt(13)/3 * sqrt(2)) = 5/sqrt(26)
    scores = scores_of(VectorSessionKNN(), [2, 0, 2])
    assert scores[0][0] == pytest.approx(5 / math.sqrt(39) + 5 / math.sqrt(26))


@pytest.mark.parametrize("model", [Popularity(), SessionPopularity(), SequentialRules(), ItemKNN(), VectorSessionKNN()])
def test_baseline_input_checks(model):
    with pytest.raises(ValueError, match="not fitted"):
        type(model)().score([np.array([0])])
    model.fit(TRAIN, N_ITEMS)
    with pytest.raises(ValueError, match="prefix 1 is empty"):
        model.score([np.array([0]), np.array([], dtype=np.int64)])
    with pytest.raises(ValueError, match="invalid item index 7; valid indices are 0..4"):
        model.score([np.array([7])])
    assert model.score([]).shape == (0, N_ITEMS)


# Event times: three UTC days; the last one is the test day.
DAY_0 = int(datetime(2014, 9, 1, tzinfo=timezone.utc).timestamp() * 1000)
DAY_1 = DAY_0 + 86_400_000
DAY_2 = DAY_1 + 86_400_000
SECOND = 1000

EVENTS = pd.DataFrame(
    [
        ("sA", "a", DAY_0 + 1 * SECOND),
        ("sA", "b", DAY_0 + 2 * SECOND),
        ("sA", "c", DAY_0 + 3 * SECOND),
        ("sB", "b", DAY_0 + 20 * SECOND),  # listed first but happened second
        ("sB", "a", DAY_0 + 10 * SECOND),
        ("sC", "a", DAY_0 + 30 * SECOND),
        ("sC", "r", DAY_0 + 31 * SECOND),  # r occurs once: dropped, then sC is too short
        ("sV", "b", DAY_1 + 1 * SECOND),
        ("sV", "n", DAY_1 + 2 * SECOND),  # n never occurs in training
        ("sV", "c", DAY_1 + 3 * SECOND),
        ("sT1", "a", DAY_2 + 5 * SECOND),
        ("sT1", "n", DAY_2 + 6 * SECOND),
        ("sT2", "c", DAY_2 + 1 * SECOND),
        ("sT2", "a", DAY_2 + 1 * SECOND),  # same time as c: input order decides
        ("sT2", "b", DAY_2 + 2 * SECOND),
    ],
    columns=["session_id", "item_id", "event_time"],
)
SMALL_SUPPORT = SplitConfig(min_item_support=2, min_session_length=2)


def test_filter_counts():
    counts = prepare_sessions(EVENTS, SMALL_SUPPORT).filter_counts
    assert counts.events_in == 15
    assert counts.sessions_in == 6
    assert counts.rare_item_events == 1
    assert counts.short_session_events == 1
    assert counts.events_out == 13
    assert counts.sessions_out == 5


def test_split_by_start_day():
    split = prepare_sessions(EVENTS, SMALL_SUPPORT)
    assert split.item_index.item_ids.tolist() == ["a", "b", "c"]
    assert split.train.session_ids.tolist() == ["sA", "sB"]
    assert [items.tolist() for items in split.train.items] == [[0, 1, 2], [0, 1]]
    assert split.validation.session_ids.tolist() == ["sV"]
    assert [items.tolist() for items in split.validation.items] == [[1, 2]]
    assert split.test.session_ids.tolist() == ["sT2"]
    assert [items.tolist() for items in split.test.items] == [[2, 0, 1]]


def test_unseen_items_counted():
    split = prepare_sessions(EVENTS, SMALL_SUPPORT)
    assert split.validation_unseen.unseen_events == 1
    assert split.validation_unseen.short_sessions == 0
    test = split.test_unseen
    assert (test.sessions_in, test.events_in) == (2, 5)
    assert test.unseen_events == 1
    assert test.short_sessions == 1
    assert test.short_session_events == 1
    assert (test.sessions_out, test.events_out) == (1, 3)


def test_split_periods_configurable():
    config = SplitConfig(min_item_support=2, test_period=timedelta(days=2), validation_period=timedelta(0))
    split = prepare_sessions(EVENTS, config)
    assert split.train.session_ids.tolist() == ["sA", "sB"]
    assert len(split.validation) == 0
    assert split.test.session_ids.tolist() == ["sV", "sT2"]


def test_default_support_drops_everything_rare():
    # With the default support of 5 events only item a (5 events) survives, and no session keeps two events.
    with pytest.raises(ValueError, match="cannot split an empty set"):
        prepare_sessions(EVENTS)


def test_sessions_ordered_by_start():
    events = pd.DataFrame(
        [("late", "x", 50), ("early", "y", 10), ("tie", "z", 10), ("early", "x", 5)],
        columns=["session_id", "item_id", "event_time"],
    )
    sessions = group_sessions(events)
    assert sessions.session_ids.tolist() == ["early", "tie", "late"]
    assert sessions.start_times_ms.tolist() == [5, 10, 50]
    assert [items.tolist() for items in sessions.items] == [["x", "y"], ["z"], ["x"]]


def test_missing_column_rejected():
    with pytest.raises(ValueError, match="lack the column.*event_time"):
        group_sessions(pd.DataFrame({"session_id": ["s"], "item_id": ["i"]}))


def test_item_index_lookup_unseen():
    index = ItemIndex.from_sessions([np.array([30, 10]), np.array([20])])
    assert index.lookup(np.array([10, 25, 30, 99])).tolist() == [0, -1, 2, -1]


def test_next_item_cases_every_position():
    cases = next_item_cases([np.array([7, 8, 9, 6]), np.array([5]), np.array([1, 2])])
    assert [prefix.tolist() for prefix in cases.prefixes] == [[7], [7, 8], [7, 8, 9], [1]]
    assert cases.targets.tolist() == [8, 9, 6, 2]
    assert cases.sources.tolist() == [0, 0, 0, 2]


def test_srgnn_loader_unseen_rule(tmp_path):
    (tmp_path / "train-sessions.txt").write_text("1 2\n3 4 5\n2 3\n")
    (tmp_path / "test-prefix-target.tsv").write_text(
        "prefix\ttarget\n"
        "1 2\t3\n"  # kept
        "9 1\t2\n"  # unseen 9 removed from the prefix, kept as [1] -> 2
        "1\t9\n"  # unseen target: dropped
        "9\t2\n"  # prefix empty once 9 is removed: dropped
    )
    split = load_srgnn_split(tmp_path)
    assert split.item_index.item_ids.tolist() == [1, 2, 3, 4, 5]
    assert [session.tolist() for session in split.train] == [[0, 1], [2, 3, 4], [1, 2]]
    counts = split.counts
    assert counts.cases_in_file == 4
    assert counts.unseen_target_cases == 1
    assert counts.unseen_prefix_items == 2
    assert counts.empty_prefix_cases == 1
    assert counts.cases_kept == 2
    assert [prefix.tolist() for prefix in split.cases.prefixes] == [[0, 1], [0]]
    assert split.cases.targets.tolist() == [2, 1]
    assert split.cases.sources.tolist() == [0, 1]


def test_srgnn_loader_checks_header(tmp_path):
    (tmp_path / "train-sessions.txt").write_text("1 2\n")
    (tmp_path / "test-prefix-target.tsv").write_text("1\t2\n")
    with pytest.raises(ValueError, match="expected the header"):
        load_srgnn_split(tmp_path)
