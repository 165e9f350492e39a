"""Offline evaluation of a trained model and the baselines on the validation and test sessions.

Every case is ranked against the whole catalogue (full ranking) with
:class:`seqrec.metrics.RankingAccumulator`. Metric names are lower case, as the
registry's promotion gate expects: ``recall@20`` is the expectation over a random
order of tied items, ``pessimistic_recall@20`` puts the target last among its
ties, and ``coverage@20`` and ``popularity_percentile@20`` describe the top-20 lists.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from pipelines.training.sessions import SessionSplit, next_item_cases
from seqrec.metrics import DEFAULT_CUTOFFS, RankingAccumulator

log = logging.getLogger(__name__)

EVALUATION_SPLITS = ("validation", "test")
SCORING_BATCH_CASES = 256
"""Prefixes scored per call, so a dense ``cases x n_items`` score matrix stays small."""


def split_sessions(split: SessionSplit, name: str) -> list[np.ndarray]:
    """Return the encoded sessions of ``validation`` or ``test``."""
    if name not in EVALUATION_SPLITS:
        raise ValueError(f"unknown evaluation split {name!r}; expected one of {EVALUATION_SPLITS}")
    return getattr(split, name).items


def case_counts(split: SessionSplit) -> dict[str, int]:
    """Return the number of next-item cases of each evaluation split."""
    return {name: len(next_item_cases(split_sessions(split, name))) for name in EVALUATION_SPLITS}


def evaluate(model, split: SessionSplit, cutoffs: Sequence[int] = DEFAULT_CUTOFFS) -> dict[str, dict[str, float]]:
    """Rank every validation and test case with ``model`` and return the mean metrics per split.

    A split without cases is left out of the result and logged. Without
    validation metrics, the registry rejects the model unless no version is current yet.
    """
    n_items = len(split.item_index)
    popularity = np.bincount(np.concatenate(split.train.items), minlength=n_items)
    metrics: dict[str, dict[str, float]] = {}
    for name in EVALUATION_SPLITS:
        cases = next_item_cases(split_sessions(split, name))
        if not len(cases):
            log.warning("the %s split has no next-item cases, so it has no metrics", name)
            continue
        accumulator = RankingAccumulator(n_items, cutoffs, item_popularity=popularity)
        for start in range(0, len(cases), SCORING_BATCH_CASES):
            end = start + SCORING_BATCH_CASES
            accumulator.add(model.score(cases.prefixes[start:end]), cases.targets[start:end])
        result = accumulator.result()
        values = {key.lower(): value for key, value in result.expected.items()}
        values.update({f"pessimistic_{key.lower()}": value for key, value in result.pessimistic.items()})
        values[f"coverage@{result.list_length}"] = result.coverage
        if result.popularity_percentile is not None:
            values[f"popularity_percentile@{result.list_length}"] = result.popularity_percentile
        metrics[name] = values
    return metrics
