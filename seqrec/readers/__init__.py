"""Dataset readers: each turns one file format into a stream of :class:`SourceRecord`.

>>> sorted(FORMATS)
['diginetica', 'generic', 'movielens', 'rees46', 'retailrocket', 'session-rec', 'yoochoose']

Every input row yields one record, holding either event fields or the reason the
row could not be parsed. The fields still have to pass
:func:`seqrec.events.validate_event`.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from seqrec.readers.base import SourceRecord
from seqrec.readers.diginetica import looks_like_diginetica, read_diginetica
from seqrec.readers.generic import PARQUET_MAGIC, read_generic
from seqrec.readers.lines import first_line
from seqrec.readers.movielens import looks_like_movielens, read_movielens
from seqrec.readers.rees46 import looks_like_rees46, read_rees46
from seqrec.readers.retailrocket import looks_like_retailrocket, read_retailrocket
from seqrec.readers.session_rec import looks_like_session_rec, read_session_rec
from seqrec.readers.yoochoose import looks_like_yoochoose, read_yoochoose

Reader = Callable[..., Iterator[SourceRecord]]

FORMATS: dict[str, Reader] = {
    "yoochoose": read_yoochoose,
    "session-rec": read_session_rec,
    "diginetica": read_diginetica,
    "retailrocket": read_retailrocket,
    "rees46": read_rees46,
    "movielens": read_movielens,
    "generic": read_generic,
}
"""Reader for each ``--format`` name."""

SNIFFERS: dict[str, Callable[[str], bool]] = {
    "session-rec": looks_like_session_rec,
    "diginetica": looks_like_diginetica,
    "retailrocket": looks_like_retailrocket,
    "rees46": looks_like_rees46,
    "movielens": looks_like_movielens,
    "yoochoose": looks_like_yoochoose,
}
"""Checks of the first non-blank line, tried in this order.

The ``generic`` format is never detected.
"""

__all__ = [
    "FORMATS",
    "SourceRecord",
    "detect_format",
    "read_diginetica",
    "read_generic",
    "read_movielens",
    "read_records",
    "read_rees46",
    "read_retailrocket",
    "read_session_rec",
    "read_yoochoose",
]


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the ``FORMATS`` name that fits the first non-blank line of ``path``.

    Raises ``ValueError`` naming the file and the choices if no format fits,
    and for Parquet, which needs the ``generic`` format and a column mapping.
    """
    path = Path(path)
    with open(path, "rb") as file:
        if file.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC:
            raise ValueError(
                f"{path} is a Parquet file; read it with --format generic and a column mapping"
            )
    line = first_line(path)
    if line is not None:
        for name, looks_like in SNIFFERS.items():
            if looks_like(line):
                return name
    raise ValueError(
        f"cannot detect the format of {path} from its first line {line!r}; "
        f"choose one with --format: {', '.join(FORMATS)}"
    )


def read_records(
    path: str | os.PathLike[str], format: str | None = None, **options: Any
) -> Iterator[SourceRecord]:
    """Read ``path`` with the reader for ``format``, detected from the file when None.

    ``options`` go to the reader, e.g. ``session_gap`` for ``retailrocket`` or
    ``columns`` and ``time_unit`` for ``generic``.
    """
    if format is None:
        format = detect_format(path)
    reader = FORMATS.get(format)
    if reader is None:
        raise ValueError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    accepted = set(inspect.signature(reader).parameters) - {"path"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"option {', '.join(unknown)} does not apply to the {format} format; "
            f"it takes {', '.join(sorted(accepted)) or 'no options'}"
        )
    return reader(path, **options)
