"""Ranking metrics of one prequential prediction: where the actual next item landed among the candidates.

A candidate list is scored before the learner receives the actual next item. The
target's rank counts the candidates scored strictly higher, and candidates
tied with it are taken in a uniformly random order, as in
:mod:`seqrec.metrics`: the reported values are expectations over that order.
A target that is not among the candidates is a miss.

>>> ranking_metrics([0.9, 0.5, 0.5, 0.1], target_index=2, cutoff=2)   # rank 2 or 3
(0.5, 0.25)
>>> ranking_metrics([0.9, 0.5], target_index=None, cutoff=20)
(0.0, 0.0)
"""

from __future__ import annotations

from typing import Sequence


def ranking_metrics(scores: Sequence[float], target_index: int | None, cutoff: int) -> tuple[float, float]:
    """Return (Recall@cutoff, reciprocal rank@cutoff) of the candidate at ``target_index``.

    ``target_index`` is None when the target is not a candidate. Both values
    are expectations over a random order of the candidates tied with the target.
    """
    if target_index is None:
        return 0.0, 0.0
    target_score = scores[target_index]
    higher = 0
    tied = 0
    for score in scores:
        if score > target_score:
            higher += 1
        elif score == target_score:
            tied += 1
    # ``tied`` includes the target, so its rank is uniform on higher + 1 .. higher + tied.
    first = higher + 1
    last = min(higher + tied, cutoff)
    if first > last:
        return 0.0, 0.0
    recall = (last - first + 1) / tied
    reciprocal_rank = sum(1.0 / rank for rank in range(first, last + 1)) / tied
    return recall, reciprocal_rank
