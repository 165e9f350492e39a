"""Reader for the REES46 e-commerce event CSVs (cosmetics shop, electronics, multi-category).

Comma-separated with the header
``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``,
e.g. ``2019-12-01 00:00:05 UTC,view,5848413,1487580007675986893,,freedecor,0.79,348405118,
722ffea5-73c0-4924-8e8f-371ff8031af4`` (one line).
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
    parse_price,
    records_after_header,
    split_cells,
)
from seqrec.readers.times import iso_to_ms

DELIMITER = ","
HEADER = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
LAYOUT = (
    "REES46 row 'event_time,event_type,product_id,category_id,category_code,brand,price,"
    "user_id,user_session' with event_time like 2019-12-01 00:00:00 UTC"
)

EVENT_TYPES = {"view": "view", "cart": "add_to_cart", "purchase": "purchase"}
"""REES46 event names mapped to the schema's. Others, such as ``remove_from_cart``,
pass through unchanged and fail validation."""


def looks_like_rees46(line: str) -> bool:
    """Tell whether a first line is the REES46 header."""
    return tuple(line.split(DELIMITER)) == HEADER


def read_rees46(path: str | os.PathLike[str]) -> Iterator[SourceRecord]:
    """Read REES46 events with ``session_id`` = ``user_session``, or None when that cell is empty.

    The item is ``product_id``. The category is ``category_code`` when it is not
    empty, else ``category_id``. The price becomes a float, and the time
    becomes UTC epoch milliseconds. ``brand`` is dropped, and the event id is
    ``{file stem}:{line}``. Iterating raises ``ValueError`` if the header lacks a
    column.
    """
    path = Path(path)

    def parse_header(text: str) -> RowParser:
        header = split_cells(text, DELIMITER, quoted=True)
        return _row_parser(path, len(header), column_positions(path, header, HEADER))

    return records_after_header(path, LAYOUT, parse_header)


def _row_parser(path: Path, column_count: int, positions: dict[str, int]) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        cells = split_cells(text, DELIMITER, column_count, quoted=True)

        def cell(name: str) -> str:
            return cells[positions[name]]

        event = cell("event_type")
        category = optional_text(cell("category_code")) or optional_text(cell("category_id"))
        return event_fields(
            event_id=line_event_id(path, line),
            session_id=optional_text(cell("user_session")),
            item_id=cell("product_id"),
            event_type=EVENT_TYPES.get(event, event),
            event_time=parse_cell(cell("event_time"), iso_to_ms, "event_time", "event_time"),
            user_id=optional_text(cell("user_id")),
            category=category,
            price=parse_cell(cell("price"), parse_price, "price", "price"),
        )

    return parse
