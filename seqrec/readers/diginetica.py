"""Reader for the CIKM Cup 2016 (Diginetica) ``train-item-views.csv``.

Semicolon-separated with the header ``session_id;user_id;item_id;timeframe;eventdate``.
``timeframe`` is milliseconds since the session started and ``eventdate`` the
day, e.g. ``1;NA;81766;526309;2016-05-09``. Anonymous views have ``NA`` as user.
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
    line_event_id,
    parse_cell,
    records_after_header,
    split_cells,
)
from seqrec.readers.times import date_to_ms, milliseconds_to_int

DELIMITER = ";"
COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
LAYOUT = "Diginetica row 'session_id;user_id;item_id;timeframe;eventdate' with timeframe in ms"
ANONYMOUS_USERS = ("", "NA")


def looks_like_diginetica(line: str) -> bool:
    """Tell whether a first line is the Diginetica item-views header."""
    return tuple(line.split(DELIMITER)) == COLUMNS


def read_diginetica(path: str | os.PathLike[str]) -> Iterator[SourceRecord]:
    """Read Diginetica item views as ``view`` events.

    ``event_time`` is ``eventdate`` at 00:00 UTC plus ``timeframe`` milliseconds.
    The data has no time of day for the session start, so this time only orders
    the views within a session and places the session on its day. A ``NA`` or
    empty user becomes None. The event id is ``{file stem}:{line}``.
    Iterating raises ``ValueError`` if the header lacks a column.
    """
    path = Path(path)

    def parse_header(text: str) -> RowParser:
        header = text.split(DELIMITER)
        return _row_parser(path, len(header), column_positions(path, header, COLUMNS))

    return records_after_header(path, LAYOUT, parse_header)


def _row_parser(path: Path, column_count: int, positions: dict[str, int]) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        cells = split_cells(text, DELIMITER, column_count)
        day_ms = parse_cell(cells[positions["eventdate"]], date_to_ms, "eventdate", "event_time")
        offset_ms = parse_cell(
            cells[positions["timeframe"]], milliseconds_to_int, "timeframe", "event_time"
        )
        user = cells[positions["user_id"]]
        return event_fields(
            event_id=line_event_id(path, line),
            session_id=cells[positions["session_id"]],
            item_id=cells[positions["item_id"]],
            event_type="view",
            event_time=day_ms + offset_ms,
            user_id=None if user.strip() in ANONYMOUS_USERS else user,
        )

    return parse
