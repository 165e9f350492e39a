"""Non-neural baselines for next-item prediction in sessions.

Every baseline has ``fit(train_sessions, n_items)``, where sessions are arrays
of item indices in event order and training sessions are listed oldest first,
and ``score(prefixes)``, which returns a float64 array ``n_cases x n_items``
(higher is better). Items a baseline cannot score get exactly 0, so they tie.
Evaluate with :mod:`seqrec.metrics`, which counts those ties fairly. One call
to ``score`` returns a dense matrix, so callers score large test sets in
batches of a few hundred prefixes.

- :class:`Popularity` (POP): training event count of each item.
- :class:`SessionPopularity` (S-POP): occurrences in the prefix, plus
  popularity scaled below 1 as the tie-breaker.
- :class:`SequentialRules` (SR): rules from an item to the items that follow it
  within ``steps`` positions, weighted 1 / distance; scored from the last item.
- :class:`ItemKNN`: cosine similarity of items over the sessions that contain
  them; scored from the last item.
- :class:`VectorSessionKNN` (V-SKNN): the most similar recent training
  sessions, with prefix items weighted by position.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp


class SessionBaseline:
    """Common input checks; subclasses implement ``_fit`` and ``_score``."""

    name = "baseline"

    def __init__(self) -> None:
        self.n_items: int | None = None

    def fit(self, train_sessions: Sequence[np.ndarray], n_items: int) -> SessionBaseline:
        """Learn from training sessions of item indices in ``0 .. n_items - 1``; returns self."""
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}")
        if not len(train_sessions):
            raise ValueError(f"{self.name}: no training sessions to fit on")
        items, session_numbers = _flatten(train_sessions, n_items, "training session")
        self.n_items = n_items
        self._fit(items, session_numbers, len(train_sessions))
        return self

    def score(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        """Score every item after each prefix: returns ``len(prefixes) x n_items`` float64."""
        if self.n_items is None:
            raise ValueError(f"{self.name} is not fitted; call fit(train_sessions, n_items) first")
        _, case_numbers = _flatten(prefixes, self.n_items, "prefix")
        lengths = np.bincount(case_numbers, minlength=len(prefixes))
        if len(prefixes) and lengths.min() == 0:
            raise ValueError(f"prefix {int(np.argmin(lengths))} is empty; every case needs at least one item")
        if not len(prefixes):
            return np.zeros((0, self.n_items))
        return self._score(prefixes)

    def _fit(self, items: np.ndarray, session_numbers: np.ndarray, n_sessions: int) -> None:
        raise NotImplementedError

    def _score(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class Popularity(SessionBaseline):
    """POP: every prefix gets each item's number of training events."""

    name = "POP"

    def _fit(self, items, session_numbers, n_sessions):
        self.counts = np.bincount(items, minlength=self.n_items).astype(np.float64)

    def _score(self, prefixes):
        return np.tile(self.counts, (len(prefixes), 1))


class SessionPopularity(SessionBaseline):
    """S-POP: occurrences of an item in the prefix plus ``count / (max_count + 1)``.

    ``count`` is the item's number of training events, so the second term lies
    in [0, 1): it orders items with equal prefix occurrences by popularity and
    never outweighs one more occurrence. Items outside the prefix are ranked by
    popularity, and only items never seen in training score 0.
    """

    name = "S-POP"

    def _fit(self, items, session_numbers, n_sessions):
        counts = np.bincount(items, minlength=self.n_items).astype(np.float64)
        self.tie_breaker = counts / (counts.max() + 1.0)

    def _score(self, prefixes):
        scores = np.tile(self.tie_breaker, (len(prefixes), 1))
        items, case_numbers = _flatten(prefixes, self.n_items, "prefix")
        np.add.at(scores, (case_numbers, items), 1.0)
        return scores


class SequentialRules(SessionBaseline):
    """SR: sequential rules scored from the last prefix item.

    Whenever item ``b`` follows item ``a`` in a training session at a distance of
    ``d <= steps`` positions, the rule ``a -> b`` gains ``1 / d``. The score of
    ``b`` after a prefix is the weight of the rule from the prefix's last item
    to ``b``, or 0 without such a rule. Repeats count, so ``a -> a`` is a rule
    too. Rules are not pruned.
    """

    name = "SR"

    def __init__(self, steps: int = 10):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.steps = steps

    def _fit(self, items, session_numbers, n_sessions):
        rows, columns, weights = [], [], []
        for distance in range(1, self.steps + 1):
            same_session = session_numbers[:-distance] == session_numbers[distance:]
            rows.append(items[:-distance][same_session])
            columns.append(items[distance:][same_session])
            weights.append(np.full(int(same_session.sum()), 1.0 / distance))
        shape = (self.n_items, self.n_items)
        # Converting to CSR sums the weights of repeated (a, b) pairs.
        self.rules = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))), shape=shape
        )

    def _score(self, prefixes):
        return self.rules[_last_items(prefixes)].toarray()


class ItemKNN(SessionBaseline):
    """Item-kNN: cosine similarity between the last prefix item and every other item.

    Each item is a binary vector over training sessions (1 when the session
    contains it), so ``sim(a, b) = sessions(a and b) / sqrt(sessions(a) * sessions(b))``.
    An item's similarity to itself is set to 0, so the last item is not
    recommended again on this basis. Items that never share a session with
    the last item score 0. All neighbours are kept.
    """

    name = "Item-kNN"

    def _fit(self, items, session_numbers, n_sessions):
        incidence = _session_incidence(items, session_numbers, n_sessions, self.n_items)
        co_occurrence = (incidence.T @ incidence).tocsr()
        sessions_per_item = co_occurrence.diagonal()
        inverse_norms = np.zeros(self.n_items)
        seen = sessions_per_item > 0
        inverse_norms[seen] = 1.0 / np.sqrt(sessions_per_item[seen])
        scaling = sp.diags(inverse_norms)
        similarity = (scaling @ co_occurrence @ scaling).tocsr()
        similarity = (similarity - sp.diags(similarity.diagonal())).tocsr()
        similarity.eliminate_zeros()
        self.similarity = similarity

    def _score(self, prefixes):
        return self.similarity[_last_items(prefixes)].toarray()


class VectorSessionKNN(SessionBaseline):
    """V-SKNN: score items by the training sessions most similar to the prefix.

    The prefix is a vector over items. The item at position ``p`` (1-based) of a
    prefix of length ``L`` gets the linearly decaying weight ``p / L``, so the
    last item weighs 1. A repeated item keeps the weight of its last position.
    A training session is a binary vector over its distinct items, and the
    similarity is the cosine between the two vectors.

    Parameters (untuned defaults):

    - ``sample_size`` (500): candidate neighbours are the most recent training
      sessions that share at least one item with the prefix, at most this many.
      Recency is the order of the training sessions passed to ``fit``.
    - ``k`` (100): the candidates with the highest similarity become the
      neighbours. Equal similarities go to the more recent session.

    An item's score is the sum of the similarities of the neighbours that
    contain it, so items in no neighbour score 0. Items of the prefix are
    scored like any other item.
    """

    name = "V-SKNN"

    def __init__(self, k: int = 100, sample_size: int = 500):
        super().__init__()
        if k < 1 or sample_size < 1:
            raise ValueError(f"k and sample_size must be at least 1, got k={k}, sample_size={sample_size}")
        self.k = k
        self.sample_size = sample_size

    def _fit(self, items, session_numbers, n_sessions):
        self.incidence = _session_incidence(items, session_numbers, n_sessions, self.n_items)
        self.incidence_by_item = self.incidence.T.tocsr()
        self.session_norms = np.sqrt(np.diff(self.incidence.indptr))

    def _score(self, prefixes):
        weights = _position_weights(prefixes, self.n_items)  # n_cases x n_items, sparse
        prefix_norms = np.sqrt(weights.multiply(weights).sum(axis=1)).A1
        overlaps = (weights @ self.incidence_by_item).tocsr()  # n_cases x n_sessions, sparse
        overlaps.sort_indices()

        rows, columns, similarities = [], [], []
        for case in range(len(prefixes)):
            start, end = overlaps.indptr[case], overlaps.indptr[case + 1]
            # Sessions are numbered oldest first, so the last indices are the most recent.
            start = max(start, end - self.sample_size)
            candidates = overlaps.indices[start:end]
            cosines = overlaps.data[start:end] / (prefix_norms[case] * self.session_norms[candidates])
            # Sort by similarity, then by recency, and keep the top k.
            chosen = np.lexsort((candidates, cosines))[-self.k:]
            rows.append(np.full(len(chosen), case))
            columns.append(candidates[chosen])
            similarities.append(cosines[chosen])
        neighbours = sp.csr_matrix(
            (np.concatenate(similarities), (np.concatenate(rows), np.concatenate(columns))),
            shape=(len(prefixes), self.incidence.shape[0]),
        )
        return (neighbours @ self.incidence).toarray()


BASELINES = {
    baseline.name: baseline
    for baseline in (Popularity, SessionPopularity, SequentialRules, ItemKNN, VectorSessionKNN)
}
"""Baseline class for each name, in the order benchmarks report them."""


def _flatten(sessions: Sequence[np.ndarray], n_items: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sessions; returns the items and, per item, the number of its session."""
    lengths = np.array([len(session) for session in sessions], dtype=np.int64)
    if not lengths.sum():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    items = np.concatenate([np.asarray(session) for session in sessions])
    if not np.issubdtype(items.dtype, np.integer):
        raise ValueError(f"{kind} items must be integer item indices, got dtype {items.dtype}")
    numbers = np.repeat(np.arange(len(sessions)), lengths)
    invalid = np.flatnonzero((items < 0) | (items >= n_items))
    if len(invalid):
        position = invalid[0]
        raise ValueError(
            f"{kind} {numbers[position]} contains the invalid item index {items[position]}; "
            f"valid indices are 0..{n_items - 1}"
        )
    return items.astype(np.int64), numbers


def _last_items(prefixes: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([prefix[-1] for prefix in prefixes], dtype=np.int64)


def _session_incidence(items: np.ndarray, session_numbers: np.ndarray, n_sessions: int, n_items: int) -> sp.csr_matrix:
    """Binary ``n_sessions x n_items`` matrix: 1 where the session contains the item."""
    incidence = sp.csr_matrix(
        (np.ones(len(items)), (session_numbers, items)), shape=(n_sessions, n_items)
    )
    incidence.data[:] = 1.0  # repeated items were summed on conversion
    return incidence


def _position_weights(prefixes: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Sparse ``n_cases x n_items`` matrix of V-SKNN prefix weights, ``p / L`` per item."""
    items, case_numbers = _flatten(prefixes, n_items, "prefix")
    lengths = np.array([len(prefix) for prefix in prefixes], dtype=np.int64)
    case_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    positions = np.arange(len(items)) - case_starts[case_numbers] + 1
    weights = positions / lengths[case_numbers]
    # Weights grow along the prefix, so the maximum per (case, item) is the last position's.
    order = np.lexsort((weights, items, case_numbers))
    case_numbers, items, weights = case_numbers[order], items[order], weights[order]
    last_of_pair = np.ones(len(items), dtype=bool)
    last_of_pair[:-1] = (case_numbers[1:] != case_numbers[:-1]) | (items[1:] != items[:-1])
    return sp.csr_matrix(
        (weights[last_of_pair], (case_numbers[last_of_pair], items[last_of_pair])),
        shape=(len(prefixes), n_items),
    )
