"""Reader for the tab-separated files of the session-rec framework.

The header is ``SessionId<TAB>ItemId<TAB>Time`` or, with categories,
``SessionId<TAB>ItemId<TAB>CatId<TAB>Time``. Columns are found by name, so their
order may differ and extra columns are ignored. ``Time`` is unix seconds with a
fractional part, e.g. ``1411462780.513``.
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
    optional_text,
    parse_cell,
    records_after_header,
    split_cells,
)
from seqrec.readers.times import seconds_to_ms

DELIMITER = "\t"
REQUIRED_COLUMNS = ("SessionId", "ItemId", "Time")
CATEGORY_COLUMN = "CatId"
LAYOUT = "session-rec row 'SessionId<TAB>ItemId[<TAB>CatId]<TAB>Time' with Time in unix seconds"
DEFAULT_EVENT_TYPE = "click"


def looks_like_session_rec(line: str) -> bool:
    """Tell whether a first line is a session-rec header."""
    columns = line.split(DELIMITER)
    return all(name in columns for name in REQUIRED_COLUMNS)


def read_session_rec(
    path: str | os.PathLike[str], event_type: str = DEFAULT_EVENT_TYPE
) -> Iterator[SourceRecord]:
    """Read a session-rec TSV file, giving every row ``event_type`` (default ``click``).

    ``Time`` seconds become epoch milliseconds exactly, through ``Decimal``, and a
    fraction finer than a millisecond is rounded half to even. ``CatId``, when
    the file has it, becomes the category. The event id is ``{file stem}:{line}``.
    Iterating raises ``ValueError`` if the header lacks a required column.
    """
    path = Path(path)

    def parse_header(text: str) -> RowParser:
        header = text.split(DELIMITER)
        positions = column_positions(path, header, REQUIRED_COLUMNS, (CATEGORY_COLUMN,))
        return _row_parser(path, len(header), positions, event_type)

    return records_after_header(path, LAYOUT, parse_header)


def _row_parser(
    path: Path, column_count: int, positions: dict[str, int], event_type: str
) -> RowParser:
    category_position = positions.get(CATEGORY_COLUMN)

    def parse(text: str, line: int) -> dict[str, Any]:
        cells = split_cells(text, DELIMITER, column_count)
        time = cells[positions["Time"]]
        category = None if category_position is None else optional_text(cells[category_position])
        return event_fields(
            event_id=line_event_id(path, line),
            session_id=cells[positions["SessionId"]],
            item_id=cells[positions["ItemId"]],
            event_type=event_type,
            event_time=parse_cell(time, seconds_to_ms, "Time", "event_time"),
            category=category,
        )

    return parse
