"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from seqrec.metrics import (
    RankingAccumulator,
    expected_metrics,
    pessimistic_metrics,
    popularity_percentiles,
    target_ranks,
    top_k_mask,
)


def metrics_for(scores, target, cutoffs):
    """Expected and pessimistic metrics of a single case."""
    ranks = target_ranks(np.array([scores], dtype=np.float64), np.array([target]))
    expected = {name: float(values[0]) for name, values in expected_metrics(ranks, cutoffs).items()}
    pessimistic = {name: float(values[0]) for name, values in pessimistic_metrics(ranks, cutoffs).items()}
    return expected, pessimistic


def test_no_ties_rank_three():
    # Items 0 and 1 score above the target (item 2), nothing ties: rank 3.
    expected, pessimistic = metrics_for([0.9, 0.5, 0.3, 0.1], target=2, cutoffs=(1, 5))
    assert expected["Recall@1"] == 0.0
    assert expected["MRR@1"] == 0.0
    assert expected["Recall@5"] == 1.0
    assert expected["MRR@5"] == pytest.approx(1 / 3)
    assert expected["NDCG@5"] == pytest.approx(1 / math.log2(4))  # = 0.5
    assert pessimistic == pytest.approx(expected)


def test_target_ranks_counts():
    scores = np.array([[3.0, 1.0, 1.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    ranks = target_ranks(scores, np.array([1, 4]))
    assert ranks.higher.tolist() == [2, 0]
    assert ranks.tied.tolist() == [2, 4]


def test_ties_straddling_cutoff():
    # 18 items score 2, the target (item 18) ties with 4 items at 1, 7 items score 0.
    # The target's rank is uniform on 19..23 (5 outcomes), and 19 and 20 are within K = 20:
    #   Recall@20 = 2/5
    #   MRR@20    = (1/19 + 1/20) / 5 = 39/1900
    #   NDCG@20   = (1/log2(20) + 1/log2(21)) / 5
    scores = [2.0] * 18 + [1.0] * 5 + [0.0] * 7
    expected, pessimistic = metrics_for(scores, target=18, cutoffs=(5, 20))
    assert expected["Recall@20"] == pytest.approx(2 / 5)
    assert expected["MRR@20"] == pytest.approx(39 / 1900)
    assert expected["NDCG@20"] == pytest.approx((1 / math.log2(20) + 1 / math.log2(21)) / 5)
    assert expected["Recall@5"] == 0.0
    # Pessimistic rank 18 + 4 + 1 = 23 > 20.
    assert pessimistic["Recall@20"] == 0.0
    assert pessimistic["MRR@20"] == 0.0
    assert pessimistic["NDCG@20"] == 0.0


def test_all_zero_scores_not_a_hit():
    # A sparse baseline that scores nothing: the target ties with all 999 other items,
    # so its rank is uniform on 1..1000. Recall@20 = 20/1000 and MRR@20 = H(20)/1000,
    # where "1 + items scored higher" would have claimed a hit at rank 1.
    expected, pessimistic = metrics_for([0.0] * 1000, target=500, cutoffs=(20,))
    harmonic_20 = sum(1 / rank for rank in range(1, 21))
    assert expected["Recall@20"] == pytest.approx(0.02)
    assert expected["MRR@20"] == pytest.approx(harmonic_20 / 1000)
    assert expected["NDCG@20"] == pytest.approx(sum(1 / math.log2(rank + 1) for rank in range(1, 21)) / 1000)
    assert pessimistic["Recall@20"] == 0.0


@pytest.mark.parametrize("rank", [19, 20, 21])
def test_cutoff_boundary(rank):
    # rank - 1 items above the target, no ties.
    scores = [1.0] * (rank - 1) + [0.5] + [0.0] * 5
    expected, pessimistic = metrics_for(scores, target=rank - 1, cutoffs=(19, 20))
    hit_at_20 = rank <= 20
    assert expected["Recall@20"] == (1.0 if hit_at_20 else 0.0)
    assert expected["MRR@20"] == pytest.approx(1 / rank if hit_at_20 else 0.0)
    assert expected["NDCG@20"] == pytest.approx(1 / math.log2(rank + 1) if hit_at_20 else 0.0)
    assert expected["Recall@19"] == (1.0 if rank <= 19 else 0.0)
    assert pessimistic == pytest.approx(expected)


def test_rank_twenty_counts_at_twenty():
    # The guard against "Recall@20" that is really Recall@19.
    scores = [1.0] * 19 + [0.5]
    expected, _ = metrics_for(scores, target=19, cutoffs=(20,))
    assert expected["Recall@20"] == 1.0


def test_pessimistic_below_expected():
    # The target ties with one item at the top: rank 1 or 2, each with probability 1/2.
    expected, pessimistic = metrics_for([1.0, 1.0, 0.0], target=1, cutoffs=(1, 2))
    assert expected["Recall@1"] == 0.5
    assert expected["MRR@1"] == 0.5
    assert pessimistic["Recall@1"] == 0.0
    assert expected["Recall@2"] == 1.0
    assert expected["MRR@2"] == pytest.approx((1 + 1 / 2) / 2)
    assert pessimistic["Recall@2"] == 1.0
    assert pessimistic["MRR@2"] == 0.5
    assert pessimistic["NDCG@2"] == pytest.approx(1 / math.log2(3))


def test_expectation_matches_enumeration():
    # Average the metrics over every order of the tied items, for small random rows.
    rng = np.random.default_rng(7)
    for _ in range(50):
        scores = rng.integers(0, 3, size=7).astype(np.float64)
        target = int(rng.integers(0, 7))
        expected, _ = metrics_for(scores, target, cutoffs=(1, 2, 3))
        higher = int((scores > scores[target]).sum())
        others = int((scores == scores[target]).sum()) - 1
        orders = list(itertools.permutations(range(others + 1)))
        for cutoff in (1, 2, 3):
            ranks = [higher + order.index(0) + 1 for order in orders]
            recall = np.mean([rank <= cutoff for rank in ranks])
            mrr = np.mean([1 / rank if rank <= cutoff else 0.0 for rank in ranks])
            assert expected[f"Recall@{cutoff}"] == pytest.approx(recall)
            assert expected[f"MRR@{cutoff}"] == pytest.approx(mrr)


def test_nan_score_names_case():
    accumulator = RankingAccumulator(n_items=3, cutoffs=(1,))
    accumulator.add(np.zeros((2, 3)), np.array([0, 1]))
    bad = np.array([[0.1, 0.2, 0.3], [0.1, np.nan, 0.3]])
    with pytest.raises(ValueError, match=r"case 3: item 1 has score nan"):
        accumulator.add(bad, np.array([0, 0]))


def test_infinite_score_rejected():
    with pytest.raises(ValueError, match="case 0: item 2 has score -inf"):
        target_ranks(np.array([[0.0, 1.0, -np.inf]]), np.array([0]))


def test_target_out_of_range_rejected():
    with pytest.raises(ValueError, match="case 1: target index 3 is outside 0..2"):
        target_ranks(np.zeros((2, 3)), np.array([0, 3]))


def test_top_k_ties_by_index():
    scores = np.array([[0.0, 1.0, 1.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0, 0.0]])
    mask = top_k_mask(scores, 2)
    assert mask.tolist() == [
        [False, True, True, False, False],
        [True, True, False, False, False],
    ]


def test_popularity_percentiles_midrank():
    # Item 0 is above the three others, items 1 and 2 share the middle, item 3 is last.
    percentiles = popularity_percentiles(np.array([10.0, 5.0, 5.0, 1.0]))
    assert percentiles.tolist() == [1.0, 0.5, 0.5, 0.0]


def test_accumulator_means_and_lists():
    popularity = np.array([10.0, 5.0, 5.0, 1.0])
    accumulator = RankingAccumulator(n_items=4, cutoffs=(1, 2), item_popularity=popularity, list_length=2)
    # Case 0: target 0 at rank 1. Case 1: target 3 tied with item 1 behind item 2 (rank 2 or 3).
    accumulator.add(np.array([[0.9, 0.5, 0.1, 0.0]]), np.array([0]))
    accumulator.add(np.array([[0.0, 0.4, 0.8, 0.4]]), np.array([3]))
    result = accumulator.result()
    assert result.cases == 2
    assert result.expected["Recall@1"] == 0.5
    assert result.expected["Recall@2"] == pytest.approx((1 + 0.5) / 2)
    assert result.expected["MRR@2"] == pytest.approx((1 + 0.5 * 0.5) / 2)
    assert result.pessimistic["Recall@2"] == 0.5
    # Top-2 lists: {0, 1} and {2, 1} (item 1 wins the tie with item 3 by index).
    assert result.coverage == pytest.approx(3 / 4)
    assert result.mean_popularity == pytest.approx((10 + 5 + 5 + 5) / 4)
    assert result.popularity_percentile == pytest.approx((1.0 + 0.5 + 0.5 + 0.5) / 4)


def test_accumulator_without_cases_raises():
    with pytest.raises(ValueError, match="no test cases"):
        RankingAccumulator(n_items=3).result()


def test_accumulator_rejects_wrong_width():
    accumulator = RankingAccumulator(n_items=3)
    with pytest.raises(ValueError, match="expected n_items = 3"):
        accumulator.add(np.zeros((1, 4)), np.array([0]))


def test_top_k_matches_full_sort():
    # Rows wide enough for the block bound, with heavy ties, distinct values and sparse rows.
    rng = np.random.default_rng(3)
    sparse = np.zeros((20, 2000))
    sparse[np.arange(20)[:, None], rng.integers(0, 2000, (20, 5))] = rng.random((20, 5))
    rows = {
        "few values": rng.integers(0, 3, (20, 2000)).astype(np.float64),
        "distinct": rng.random((20, 2000)),
        "mostly zero": sparse,
    }
    for name, scores in rows.items():
        for k in (1, 5, 20):
            mask = top_k_mask(scores, k)
            # Reference: a stable sort by descending score keeps lower indices first among ties.
            reference = np.zeros_like(mask)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            np.put_along_axis(reference, top, True, axis=1)
            assert (mask == reference).all(), (name, k)
