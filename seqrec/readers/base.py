"""What every dataset reader yields: one record per input row, good or bad."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqrec.events import InvalidEvent


@dataclass(frozen=True)
class SourceRecord:
    """One input row: the event fields it maps to, or the reason it could not be mapped.

    Exactly one of ``fields`` and ``error`` is set. ``fields`` still has to pass
    :func:`seqrec.events.validate_event`; readers only translate formats.
    ``line`` is 1-based and counts the header, so it matches ``sed -n LINEp FILE``.
    """

    source: str
    line: int
    raw: str
    fields: dict[str, Any] | None = None
    error: InvalidEvent | None = None
