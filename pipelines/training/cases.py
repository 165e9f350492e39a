"""Next-item evaluation cases: every next item of a session, predicted from the items before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class NextItemCases:
    """Evaluation cases: ``prefixes[n]`` is followed by ``targets[n]``.

    ``sources[n]`` is the position of the case's session in the input list or,
    for a file that lists cases directly, the case's 0-based row after the header.
    """

    prefixes: list[np.ndarray]
    targets: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def next_item_cases(sessions: Sequence[np.ndarray]) -> NextItemCases:
    """Cut every session into cases that predict each next item from all items before it.

    The session ``[a, b, c, d]`` gives ``[a] -> b``, ``[a, b] -> c`` and
    ``[a, b, c] -> d``. Prefixes are views into the session arrays.
    """
    prefixes, targets, sources = [], [], []
    for position, items in enumerate(sessions):
        for cut in range(1, len(items)):
            prefixes.append(items[:cut])
            targets.append(items[cut])
            sources.append(position)
    return NextItemCases(prefixes, np.array(targets, dtype=np.int64), np.array(sources, dtype=np.int64))
