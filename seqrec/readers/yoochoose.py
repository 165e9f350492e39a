"""Reader for the RecSys Challenge 2015 (YooChoose) ``clicks.dat`` and ``buys.dat``.

Neither file has a header. Rows are comma-separated:

- clicks: ``session,time,item,category``, e.g. ``1,2014-04-07T10:51:09.277Z,214536502,0``
- buys: ``session,time,item,price,quantity``

The time is ISO-8601 in UTC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from seqrec.readers.base import SourceRecord
from seqrec.readers.lines import (
    RowParser,
    event_fields,
    first_line,
    line_event_id,
    optional_text,
    parse_cell,
    parse_price,
    records_from_lines,
    split_cells,
)
from seqrec.readers.times import iso_to_ms

CLICKS = "clicks"
BUYS = "buys"
KINDS = (CLICKS, BUYS)

CLICKS_COLUMNS = 4
BUYS_COLUMNS = 5
CLICKS_LAYOUT = "YooChoose clicks row 'session,ISO-8601 time,item,category'"
BUYS_LAYOUT = "YooChoose buys row 'session,ISO-8601 time,item,price,quantity'"


def sniff_yoochoose_kind(path: str | os.PathLike[str]) -> str:
    """Return ``"clicks"`` or ``"buys"`` from the column count of the first line (4 or 5).

    Raises ``ValueError`` if the file is empty or its first line has another count.
    """
    line = first_line(Path(path))
    if line is None:
        raise ValueError(f"{path}: no text line found; pass kind='clicks' or kind='buys'")
    count = len(line.split(","))
    if count == CLICKS_COLUMNS:
        return CLICKS
    if count == BUYS_COLUMNS:
        return BUYS
    raise ValueError(
        f"{path}: first line {line!r} has {count} comma-separated columns; YooChoose clicks "
        f"have {CLICKS_COLUMNS} and buys {BUYS_COLUMNS}. Check the file or pass kind="
    )


def looks_like_yoochoose(line: str) -> bool:
    """Tell whether a first line is a YooChoose row: 4 or 5 columns, an ISO time second."""
    cells = line.split(",")
    if len(cells) not in (CLICKS_COLUMNS, BUYS_COLUMNS) or "T" not in cells[1]:
        return False
    try:
        iso_to_ms(cells[1])
    except ValueError:
        return False
    return True


def read_yoochoose(
    path: str | os.PathLike[str], kind: str | None = None
) -> Iterator[SourceRecord]:
    """Read YooChoose clicks (event type ``click``) or buys (event type ``purchase``).

    ``kind`` is ``"clicks"`` or ``"buys"``, and None sniffs it with :func:`sniff_yoochoose_kind`.
    The event id is ``{file stem}:{line}``. Times become UTC epoch milliseconds,
    the click category stays text (``"0"``, ``"S"``, ``"2053013555"``), and the buy
    price becomes a float. The quantity of a buy is dropped because the event
    schema has no field for it: a buy of 3 units is one purchase event.
    """
    path = Path(path)
    if kind is None:
        kind = sniff_yoochoose_kind(path)
    if kind == CLICKS:
        return records_from_lines(path, CLICKS_LAYOUT, _click_parser(path))
    if kind == BUYS:
        return records_from_lines(path, BUYS_LAYOUT, _buy_parser(path))
    raise ValueError(f"unknown YooChoose kind {kind!r}; use one of {KINDS} or None to sniff")


def _click_parser(path: Path) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        session, time, item, category = split_cells(text, ",", CLICKS_COLUMNS)
        return event_fields(
            event_id=line_event_id(path, line),
            session_id=session,
            item_id=item,
            event_type="click",
            event_time=parse_cell(time, iso_to_ms, "time", "event_time"),
            category=optional_text(category),
        )

    return parse


def _buy_parser(path: Path) -> RowParser:
    def parse(text: str, line: int) -> dict[str, Any]:
        session, time, item, price, _quantity = split_cells(text, ",", BUYS_COLUMNS)
        return event_fields(
            event_id=line_event_id(path, line),
            session_id=session,
            item_id=item,
            event_type="purchase",
            event_time=parse_cell(time, iso_to_ms, "time", "event_time"),
            price=parse_cell(price, parse_price, "price", "price"),
        )

    return parse
