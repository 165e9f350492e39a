"""Session-parallel mini-batches and popularity-based negative sampling for GRU4Rec.

Session-parallel batching keeps ``batch_size`` slots, each working through one
session. Every step takes the next event of each slot's session as input and
the event after it as target. When a slot's session has no target left, the
next session in time order takes over that slot. The step that feeds the new
session's first event marks the slot in ``reset``, and the trainer zeroes the
hidden state of that slot only. Sessions are never shuffled.

An epoch ends at the first step after which a slot has no session left to
take, because fewer than ``batch_size`` sessions remain. The remaining events
of the other slots' sessions are not trained on in that epoch; with sessions in
a fixed order, these are the same events (the end of the newest sessions) in
every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

MIN_TRAINING_LENGTH = 2
"""Events a session needs to give at least one (input, target) pair; shorter ones are skipped."""


@dataclass(frozen=True)
class BatchStep:
    """One mini-batch step: ``inputs[b] -> targets[b]`` for slot b.

    ``reset[b]`` is True when ``inputs[b]`` is the first event of a session, so
    the hidden state of slot b must be zero before this step. All arrays have
    shape ``(batch_size,)``.
    """

    inputs: np.ndarray
    targets: np.ndarray
    reset: np.ndarray


class SessionParallelBatches:
    """Iterate over session-parallel steps of time-ordered ``sessions``; see the module docstring."""

    def __init__(self, sessions: Sequence[np.ndarray], batch_size: int):
        kept = [np.asarray(items, dtype=np.int64) for items in sessions if len(items) >= MIN_TRAINING_LENGTH]
        if len(kept) < batch_size:
            raise ValueError(
                f"session-parallel batching needs at least batch_size ({batch_size}) sessions of "
                f"{MIN_TRAINING_LENGTH} or more events, got {len(kept)}; lower batch_size"
            )
        self.batch_size = batch_size
        self.skipped_sessions = len(sessions) - len(kept)
        self.items = np.concatenate(kept)
        lengths = np.array([len(items) for items in kept], dtype=np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(lengths)))  # session n is items[offsets[n]:offsets[n + 1]]

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    def __iter__(self) -> Iterator[BatchStep]:
        slot_sessions = np.arange(self.batch_size)
        positions = self.offsets[slot_sessions].copy()  # index in self.items of each slot's next input
        session_ends = self.offsets[slot_sessions + 1]
        next_session = self.batch_size
        reset = np.ones(self.batch_size, dtype=bool)
        while True:
            yield BatchStep(self.items[positions], self.items[positions + 1], reset)
            positions = positions + 1
            finished = np.flatnonzero(positions + 1 >= session_ends)
            # A fresh array each step, so a reset never carries over to the next step.
            reset = np.zeros(self.batch_size, dtype=bool)
            if not len(finished):
                continue
            if next_session + len(finished) > self.n_sessions:
                return
            new_sessions = np.arange(next_session, next_session + len(finished))
            next_session += len(finished)
            positions[finished] = self.offsets[new_sessions]
            session_ends[finished] = self.offsets[new_sessions + 1]
            reset[finished] = True


class PopularitySampler:
    """Draw negative items with probability proportional to ``popularity ** alpha``.

    Draws are made ``cache_steps`` steps at a time, one block of
    ``cache_steps * n_sample`` items, which is much faster than many small draws.
    """

    def __init__(self, popularity: np.ndarray, alpha: float, n_sample: int, cache_steps: int, seed: int):
        popularity = np.asarray(popularity, dtype=np.float64)
        if popularity.ndim != 1 or (popularity < 0).any() or popularity.sum() <= 0:
            raise ValueError("popularity must be a 1-D array of non-negative counts with a positive sum")
        weights = popularity**alpha
        weights[popularity == 0] = 0.0  # 0 ** 0 is 1, but items never seen are never drawn
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self._cumulative[-1] = 1.0  # guards against rounding leaving the last bucket short
        self.n_sample = n_sample
        self.cache_steps = cache_steps
        self._generator = np.random.default_rng(seed)
        self._cache = np.empty((0, n_sample), dtype=np.int64)
        self._next_row = 0

    def draw(self) -> np.ndarray:
        """Return ``n_sample`` item indices for one mini-batch step."""
        if self._next_row >= len(self._cache):
            uniform = self._generator.random(self.cache_steps * self.n_sample)
            block = np.searchsorted(self._cumulative, uniform, side="right")
            self._cache = np.minimum(block, len(self._cumulative) - 1).reshape(self.cache_steps, self.n_sample)
            self._next_row = 0
        row = self._cache[self._next_row]
        self._next_row += 1
        return row
