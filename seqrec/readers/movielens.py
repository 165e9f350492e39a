"""Reader for MovieLens ratings, read as one viewing session per user.

Two layouts exist:

- ``dat`` (ml-1m): ``user::item::rating::timestamp`` without a header,
  e.g. ``1::1193::5::978300760``
- ``csv`` (ml-25m, ml-latest): header ``userId,movieId,rating,timestamp``,
  e.g. ``1,296,5.0,1147880044``

``timestamp`` is unix seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from seqrec.readers.base import SourceRecord
from seqrec.readers.lines import (
    RowParser,
    column_positions,
    event_fields,
    first_line,
    line_event_id,
    parse_cell,
    records_after_header,
    records_from_lines,
    split_cells,
)
from seqrec.readers.times import seconds_to_ms

DAT = "dat"
CSV = "csv"
LAYOUTS = (DAT, CSV)

DAT_DELIMITER = "::"
DAT_COLUMNS = 4
DAT_LAYOUT = "MovieLens row 'user::item::rating::timestamp' with timestamp in unix seconds"

CSV_DELIMITER = ","
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
CSV_REQUIRED_COLUMNS = ("userId", "movieId", "timestamp")
CSV_LAYOUT = "MovieLens row 'userId,movieId,rating,timestamp' with timestamp in unix seconds"


def looks_like_movielens(line: str) -> bool:
    """Tell whether a first line is a MovieLens ``dat`` row or ``csv`` ratings header."""
    if tuple(line.split(CSV_DELIMITER)) == CSV_HEADER:
        return True
    cells = line.split(DAT_DELIMITER)
    if len(cells) != DAT_COLUMNS:
        return False
    user, _item, _rating, timestamp = cells
    return user.strip().isdigit() and timestamp.strip().isdigit()


def read_movielens(
    path: str | os.PathLike[str], layout: str | None = None
) -> Iterator[SourceRecord]:
    """Read MovieLens ratings as ``view`` events with ``session_id`` = ``user_id`` = the user.

    ``layout`` is ``"dat"`` or ``"csv"``. None picks ``dat`` when the first line
    contains ``::``, else ``csv``. The rating is dropped, the time becomes epoch milliseconds,
    and the event id is ``{file stem}:{line}``.
    """
    path = Path(path)
    if layout is None:
        line = first_line(path)
        layout = DAT if line is not None and DAT_DELIMITER in line else CSV
    if layout == DAT:
        return records_from_lines(path, DAT_LAYOUT, _dat_parser(path))
    if layout == CSV:

        def parse_header(text: str) -> RowParser:
            header = split_cells(text, CSV_DELIMITER, quoted=True)
            positions = column_positions(path, header, CSV_REQUIRED_COLUMNS)
            return _csv_parser(path, len(header), positions)

        return records_after_header(path, CSV_LAYOUT, parse_header)
    raise ValueError(f"unknown MovieLens layout {layout!r}; use one of {LAYOUTS} or None to sniff")


def _rating_fields(path: Path, line: int, user: str, item: str, timestamp: str) -> dict[str, Any]:
    return event_fields(
        event_id=line_event_id(path, line),
        session_id=user,
        item_id=item,
        event_type="view",
        event_time=parse_cell(timestamp, seconds_to_ms, "timestamp", "event_time"),
        user_id=user,
    )


def _dat_parser(path: Path) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        user, item, _rating, timestamp = split_cells(text, DAT_DELIMITER, DAT_COLUMNS)
        return _rating_fields(path, line, user, item, timestamp)

    return parse


def _csv_parser(path: Path, column_count: int, positions: dict[str, int]) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        cells = split_cells(text, CSV_DELIMITER, column_count, quoted=True)
        return _rating_fields(
            path,
            line,
            user=cells[positions["userId"]],
            item=cells[positions["movieId"]],
            timestamp=cells[positions["timestamp"]],
        )

    return parse
