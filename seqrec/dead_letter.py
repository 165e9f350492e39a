"""Dead-letter records: what was rejected, why, and the raw input, as one JSON object."""

from __future__ import annotations

import json
import time
from typing import Any

from seqrec.events import InvalidEvent


def dead_letter_record(
    error: InvalidEvent,
    raw: str | bytes,
    source: str,
    line: int | None = None,
) -> dict[str, Any]:
    """Describe a rejected input so that it can be inspected, fixed and replayed.

    ``source`` names where the input came from (a file name, ``grpc`` or a topic),
    ``line`` its 1-based line in that file when there is one.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    return {
        "reason": error.reason,
        "message": error.message,
        "field": error.field,
        "source": source,
        "line": line,
        "raw": raw,
        "rejected_at": time.time_ns() // 1_000_000,
    }


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
