"""Check a Recommend request against :class:`serving.config.InputLimits` and turn it into a query.

Every violation raises :class:`InvalidRequest` with the field and the bound,
which the service returns as INVALID_ARGUMENT.
"""

from __future__ import annotations

from typing import Iterable

from serving.config import InputLimits
from serving.recommender import RecommendQuery


class InvalidRequest(ValueError):
    """A request field outside its bounds; ``field`` names it as in the proto."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def _check_id(field: str, value: str, limits: InputLimits) -> str:
    if not value.strip():
        raise InvalidRequest(field, "must not be empty")
    if len(value) > limits.max_id_length:
        raise InvalidRequest(field, f"has {len(value)} characters; the maximum is {limits.max_id_length}")
    return value


def _check_ids(field: str, values: Iterable[str], maximum: int, limits: InputLimits) -> tuple[str, ...]:
    values = tuple(values)
    if len(values) > maximum:
        raise InvalidRequest(field, f"has {len(values)} entries; the maximum is {maximum}")
    for position, value in enumerate(values):
        _check_id(f"{field}[{position}]", value, limits)
    return values


def recommend_query(request, limits: InputLimits) -> RecommendQuery:
    """Validate a ``seqrec.v1.RecommendRequest`` and return it as a :class:`RecommendQuery`."""
    session_id = _check_id("session_id", request.session_id, limits)
    if not 1 <= request.k <= limits.max_k:
        raise InvalidRequest("k", f"is {request.k}; it must be between 1 and {limits.max_k}")
    if request.request_id and len(request.request_id) > limits.max_id_length:
        raise InvalidRequest(
            "request_id", f"has {len(request.request_id)} characters; the maximum is {limits.max_id_length}"
        )
    recent = _check_ids("recent_item_ids", request.recent_item_ids, limits.max_recent_items, limits)
    excluded = _check_ids("excluded_item_ids", request.excluded_item_ids, limits.max_excluded_items, limits)
    purchased = _check_ids("purchased_item_ids", request.purchased_item_ids, limits.max_purchased_items, limits)
    categories = _check_ids("filters.categories", request.filters.categories, limits.max_categories, limits)
    return RecommendQuery(
        session_id=session_id,
        k=request.k,
        recent_items=recent,
        excluded=frozenset(excluded),
        purchased=frozenset(purchased),
        categories=frozenset(categories),
        request_id=request.request_id,
    )
