"""Ranking metrics for next-item prediction, with full ranking over the whole catalogue.

Each test case is one row of a score matrix (``n_cases x n_items``, higher is
better) and the index of the item that actually came next. For the target of a
case, ``higher`` counts the items scored strictly above it and ``tied`` counts
the other items with exactly its score.

Ties decide a lot for sparse models. A co-occurrence baseline scores most of the
catalogue 0, so a target it cannot score shares its rank with tens of thousands
of items. Counting its rank as ``higher + 1`` would place it in the top 20 and
flatter the model. The headline metrics here are therefore the exact
expectation over a uniformly random order of the tied items: the target's rank
is uniform on ``higher + 1 .. higher + tied + 1``. The pessimistic rank
``higher + tied + 1`` is reported beside them.

Every item must have a finite score: a model gives the items it cannot score a
constant, e.g. 0, and those items then tie. NaN and infinite scores raise
``ValueError`` naming the case.

>>> import numpy as np
>>> scores = np.array([[0.5, 0.0, 0.0, 0.0]])   # the target (item 2) ties with items 1 and 3
>>> ranks = target_ranks(scores, np.array([2]))
>>> int(ranks.higher[0]), int(ranks.tied[0])
(1, 2)
>>> float(expected_metrics(ranks, cutoffs=(2,))["Recall@2"][0])   # rank 2, 3 or 4
0.3333333333333333
>>> float(pessimistic_metrics(ranks, cutoffs=(2,))["Recall@2"][0])   # rank 4
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_CUTOFFS = (1, 5, 10, 20)
"""List lengths K of Recall@K, MRR@K and NDCG@K."""

COVERAGE_LIST_LENGTH = 20
"""Length of the recommendation list that coverage and popularity bias look at."""

METRIC_NAMES = ("Recall", "MRR", "NDCG")


@dataclass(frozen=True)
class TargetRanks:
    """Position of each case's target in its score row.

    ``higher`` counts the items scored strictly above the target and ``tied`` the
    other items with exactly the target's score. Both are int64 arrays of shape
    ``(n_cases,)``.
    """

    higher: np.ndarray
    tied: np.ndarray


def check_scores(scores: np.ndarray, targets: np.ndarray, first_case: int = 0) -> None:
    """Raise ``ValueError`` unless ``scores`` and ``targets`` form a valid batch.

    ``scores`` must be a finite 2-D float array and ``targets`` one integer
    index per row, within ``0 .. n_items - 1``. Error messages number cases from
    ``first_case``, so an accumulator can name the case within the whole test set.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (n_cases x n_items), got shape {scores.shape}")
    if targets.ndim != 1 or len(targets) != len(scores):
        raise ValueError(
            f"targets must contain one item index per score row: got shape {targets.shape} "
            f"for {len(scores)} rows"
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer item indices, got dtype {targets.dtype}")
    n_items = scores.shape[1]
    out_of_range = np.flatnonzero((targets < 0) | (targets >= n_items))
    if len(out_of_range):
        row = out_of_range[0]
        raise ValueError(
            f"case {first_case + row}: target index {targets[row]} is outside 0..{n_items - 1}"
        )
    # Row sums are cheaper than a full mask: a NaN or infinite score makes its row sum
    # non-finite. A sum that overflows with finite scores only leads to the exact check.
    if np.isfinite(scores.sum(axis=1)).all():
        return
    finite = np.isfinite(scores)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        item = int(np.flatnonzero(~finite[row])[0])
        raise ValueError(
            f"case {first_case + row}: item {item} has score {scores[row, item]}; "
            "scores must be finite, so give items the model cannot score a constant such as 0"
        )


def target_ranks(scores: np.ndarray, targets: np.ndarray, first_case: int = 0) -> TargetRanks:
    """Count, per case, the items scored above the target and those tied with it.

    Raises ``ValueError`` on invalid input, see :func:`check_scores`.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    check_scores(scores, targets, first_case)
    target_scores = scores[np.arange(len(scores)), targets][:, None]
    higher = np.count_nonzero(scores > target_scores, axis=1).astype(np.int64)
    # The target itself is among the equal scores, so one is subtracted.
    tied = np.count_nonzero(scores == target_scores, axis=1).astype(np.int64) - 1
    return TargetRanks(higher, tied)


def _gain_tables(max_cutoff: int) -> dict[str, np.ndarray]:
    """Cumulative gains per rank: ``table[name][r]`` sums the gain of ranks 1..r."""
    ranks = np.arange(1, max_cutoff + 1, dtype=np.float64)
    gains = {
        "Recall": np.ones_like(ranks),
        "MRR": 1.0 / ranks,
        "NDCG": 1.0 / np.log2(ranks + 1.0),
    }
    return {name: np.concatenate(([0.0], np.cumsum(gain))) for name, gain in gains.items()}


def expected_metrics(ranks: TargetRanks, cutoffs: Sequence[int] = DEFAULT_CUTOFFS) -> dict[str, np.ndarray]:
    """Per-case Recall@K, MRR@K and NDCG@K, in expectation over random tie order.

    The target's rank is uniform on ``higher + 1 .. higher + tied + 1``, so each
    metric is the sum of its gain over the ranks in that range that are at most
    K, divided by ``tied + 1``. The gains are 1 (Recall), ``1 / rank`` (MRR) and
    ``1 / log2(rank + 1)`` (NDCG, one relevant item, so the ideal DCG is 1).
    Keys are ``"Recall@20"`` and so on.
    """
    cutoffs = _check_cutoffs(cutoffs)
    tables = _gain_tables(max(cutoffs))
    first = ranks.higher  # ranks before the tie group
    last = ranks.higher + ranks.tied + 1  # last rank the target can take
    outcomes = ranks.tied + 1.0
    metrics = {}
    for cutoff in cutoffs:
        lower = np.minimum(first, cutoff)
        upper = np.minimum(last, cutoff)
        for name, table in tables.items():
            metrics[f"{name}@{cutoff}"] = (table[upper] - table[lower]) / outcomes
    return metrics


def pessimistic_metrics(ranks: TargetRanks, cutoffs: Sequence[int] = DEFAULT_CUTOFFS) -> dict[str, np.ndarray]:
    """Per-case Recall@K, MRR@K and NDCG@K with the target last among its ties.

    The rank is ``higher + tied + 1``, a lower bound on what any tie order gives.
    """
    cutoffs = _check_cutoffs(cutoffs)
    rank = (ranks.higher + ranks.tied + 1).astype(np.float64)
    metrics = {}
    for cutoff in cutoffs:
        hit = rank <= cutoff
        metrics[f"Recall@{cutoff}"] = hit.astype(np.float64)
        metrics[f"MRR@{cutoff}"] = np.where(hit, 1.0 / rank, 0.0)
        metrics[f"NDCG@{cutoff}"] = np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0)
    return metrics


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Mark the top ``k`` items of each row; among equal scores lower item indices win.

    Returns a boolean array shaped like ``scores`` with exactly ``min(k, n_items)``
    marks per row. The tie rule is arbitrary but deterministic. It only serves
    list-level statistics (coverage, popularity bias), never the accuracy metrics.
    """
    k = min(k, scores.shape[1])
    kth_largest = _kth_largest(scores, k)[:, None]
    mask = scores > kth_largest
    at_threshold = scores == kth_largest
    room = k - np.count_nonzero(mask, axis=1)
    # Rows with more tied scores than free places take the lowest indices among them.
    crowded = np.flatnonzero(np.count_nonzero(at_threshold, axis=1) > room)
    ties = at_threshold[crowded]
    ties &= np.cumsum(ties, axis=1, dtype=np.int32) <= room[crowded, None]
    at_threshold[crowded] = ties
    mask |= at_threshold
    return mask


def _kth_largest(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the k-th largest score of each row, for ``1 <= k <= n_items``.

    ``np.partition`` over whole rows is slow when most scores are equal, as
    with sparse baselines. So each row is cut into ``4 k`` blocks, and the k-th
    largest block maximum is a lower bound: at least k scores reach it. If
    fewer than k scores exceed the bound, the bound is the k-th largest score.
    Otherwise that score is among the scores above the bound, usually a few dozen.
    """
    n_rows, n_items = scores.shape
    n_blocks = 4 * k
    if n_items < 8 * n_blocks:
        return np.partition(scores, n_items - k, axis=1)[:, n_items - k]
    block_starts = np.linspace(0, n_items, n_blocks, endpoint=False).astype(np.int64)
    block_maxima = np.maximum.reduceat(scores, block_starts, axis=1)
    bound = np.partition(block_maxima, n_blocks - k, axis=1)[:, n_blocks - k]
    above = scores > bound[:, None]
    counts = np.count_nonzero(above, axis=1)
    kth = bound.copy()
    rows = np.flatnonzero(counts >= k)
    if len(rows):
        row_numbers, columns = np.nonzero(above[rows])  # row-major, so grouped by row
        values = scores[rows[row_numbers], columns]
        descending = values[np.lexsort((-values, row_numbers))]
        row_starts = np.concatenate(([0], np.cumsum(counts[rows])[:-1]))
        kth[rows] = descending[row_starts + k - 1]
    return kth


def popularity_percentiles(popularity: np.ndarray) -> np.ndarray:
    """Map each item's training popularity to a percentile in [0, 1].

    An item's percentile is the share of the other items that are less popular,
    with items of equal popularity counted as half: 1 for the single most
    popular item, 0 for the single least popular one.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    if len(popularity) < 2:
        return np.full(len(popularity), 0.5)
    ordered = np.sort(popularity)
    less = np.searchsorted(ordered, popularity, side="left")
    equal_others = np.searchsorted(ordered, popularity, side="right") - less - 1
    return (less + 0.5 * equal_others) / (len(popularity) - 1)


@dataclass(frozen=True)
class RankingResult:
    """Mean metrics over all cases that an accumulator saw.

    ``expected`` and ``pessimistic`` map ``"Recall@20"`` and so on to means over
    cases. ``coverage`` is the share of catalogue items that appear in at least
    one top-``list_length`` list. ``popularity_percentile`` is the mean training
    popularity percentile (see :func:`popularity_percentiles`) of the items in
    those lists, and ``mean_popularity`` their mean training popularity (e.g. the
    number of training events). The lists break ties by lower item index. The
    two popularity statistics are None when the accumulator had no popularity.
    """

    cases: int
    expected: dict[str, float]
    pessimistic: dict[str, float]
    list_length: int
    coverage: float
    popularity_percentile: float | None
    mean_popularity: float | None


class RankingAccumulator:
    """Collect metrics over batches of score rows and return their means.

    ``item_popularity`` (length ``n_items``, e.g. training event counts per item)
    enables the popularity-bias statistics.

    >>> import numpy as np
    >>> accumulator = RankingAccumulator(n_items=3, cutoffs=(1,))
    >>> accumulator.add(np.array([[0.9, 0.1, 0.0]]), np.array([0]))
    >>> accumulator.add(np.array([[0.9, 0.1, 0.0]]), np.array([2]))
    >>> result = accumulator.result()
    >>> result.cases, result.expected["Recall@1"]
    (2, 0.5)
    """

    def __init__(
        self,
        n_items: int,
        cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
        item_popularity: np.ndarray | None = None,
        list_length: int = COVERAGE_LIST_LENGTH,
    ):
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}")
        self.n_items = n_items
        self.cutoffs = _check_cutoffs(cutoffs)
        self.list_length = list_length
        self.cases = 0
        self._expected_sums = {name: 0.0 for name in _metric_keys(self.cutoffs)}
        self._pessimistic_sums = dict(self._expected_sums)
        self._recommended = np.zeros(n_items, dtype=bool)
        self._popularity = None
        self._percentiles = None
        self._popularity_sum = 0.0
        self._percentile_sum = 0.0
        if item_popularity is not None:
            self._popularity = np.asarray(item_popularity, dtype=np.float64)
            if self._popularity.shape != (n_items,):
                raise ValueError(
                    f"item_popularity must have one value per item ({n_items}), "
                    f"got shape {self._popularity.shape}"
                )
            self._percentiles = popularity_percentiles(self._popularity)

    def add(self, scores: np.ndarray, targets: np.ndarray) -> None:
        """Add one batch: ``scores`` is ``n_cases x n_items``, ``targets`` the item index per row."""
        scores = np.asarray(scores)
        if scores.ndim == 2 and scores.shape[1] != self.n_items:
            raise ValueError(f"scores have {scores.shape[1]} columns, expected n_items = {self.n_items}")
        ranks = target_ranks(scores, targets, first_case=self.cases)
        for name, values in expected_metrics(ranks, self.cutoffs).items():
            self._expected_sums[name] += float(values.sum())
        for name, values in pessimistic_metrics(ranks, self.cutoffs).items():
            self._pessimistic_sums[name] += float(values.sum())

        _, listed_items = np.nonzero(top_k_mask(scores, self.list_length))
        self._recommended[listed_items] = True
        if self._popularity is not None:
            self._popularity_sum += float(self._popularity[listed_items].sum())
            self._percentile_sum += float(self._percentiles[listed_items].sum())
        self.cases += len(scores)

    def result(self) -> RankingResult:
        """Return the means over all cases added so far; raises ``ValueError`` if none were."""
        if self.cases == 0:
            raise ValueError("no test cases were added, so there is nothing to average")
        list_entries = self.cases * min(self.list_length, self.n_items)
        with_popularity = self._popularity is not None
        return RankingResult(
            cases=self.cases,
            expected={name: total / self.cases for name, total in self._expected_sums.items()},
            pessimistic={name: total / self.cases for name, total in self._pessimistic_sums.items()},
            list_length=self.list_length,
            coverage=float(self._recommended.mean()),
            popularity_percentile=self._percentile_sum / list_entries if with_popularity else None,
            mean_popularity=self._popularity_sum / list_entries if with_popularity else None,
        )


def _check_cutoffs(cutoffs: Sequence[int]) -> tuple[int, ...]:
    cutoffs = tuple(int(cutoff) for cutoff in cutoffs)
    if not cutoffs or min(cutoffs) < 1:
        raise ValueError(f"cutoffs must be positive list lengths, got {cutoffs}")
    return cutoffs


def _metric_keys(cutoffs: Sequence[int]) -> list[str]:
    return [f"{name}@{cutoff}" for cutoff in cutoffs for name in METRIC_NAMES]
