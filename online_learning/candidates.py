"""Candidate generation: the items worth scoring as a session's next item.

Candidates come from three sources, in this order and without repeats: the
items most often seen right after the current item, the session's own recent
items (newest first), and the most popular items of the window. Serving can
call :func:`generate_candidates` with a context filled from Feast.

>>> context = CandidateContext("s1", ("x", "a"), {"b": 2, "c": 5, "x": 1}, {})
>>> generate_candidates(context, popular_items=["p", "c"], max_transitions=2, max_recent=5)
['c', 'b', 'a', 'x', 'p']
"""

from __future__ import annotations

import heapq
from typing import Sequence

from online_learning.scoring import CandidateContext


def top_transitions(context: CandidateContext, limit: int) -> list[str]:
    """Return up to ``limit`` items most often seen after the current item; equal counts go by item id."""
    transitions = context.transitions
    if len(transitions) <= limit:
        return sorted(transitions, key=lambda item: (-transitions[item], item))
    top = heapq.nsmallest(limit, transitions.items(), key=lambda pair: (-pair[1], pair[0]))
    return [item for item, _ in top]


def generate_candidates(
    context: CandidateContext,
    popular_items: Sequence[str],
    max_transitions: int = 20,
    max_recent: int = 10,
) -> list[str]:
    """List the candidate next items of a session, each once, in source order (see the module docstring)."""
    candidates = dict.fromkeys(top_transitions(context, max_transitions))
    for item in reversed(context.recent_items[-max_recent:]):
        candidates.setdefault(item)
    for item in popular_items:
        candidates.setdefault(item)
    return list(candidates)
