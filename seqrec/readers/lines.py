"""The loop that the text readers share: lines in, one SourceRecord per row out.

A reader supplies a row parser that turns one line of text into event fields and
raises ``ValueError`` (or :class:`~seqrec.events.InvalidEvent`) for a malformed
row. :func:`records_from_lines` and :func:`records_after_header` turn that error
into an error record, so a bad row never stops the stream.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from seqrec.events import InvalidEvent, Reason
from seqrec.readers.base import SourceRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")

RowParser = Callable[[str, int], dict[str, Any]]
"""Turns the text of one row and its 1-based line number into event fields."""

HeaderParser = Callable[[str], RowParser]
"""Reads the header line and returns the parser for the rows below it."""

UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_MAX_BYTES = 64 * 1024
"""How much of the first line :func:`first_line` reads when sniffing a format."""

_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "::": "'::'"}


def iter_lines(path: Path) -> Iterator[tuple[int, str, UnicodeDecodeError | None]]:
    """Yield ``(line number, text, decode error)`` for every non-blank line.

    Line numbers are 1-based and count blank lines, like ``sed -n LINEp``: only
    ``\\n`` ends a line, and a trailing ``\\r`` is removed. A line that is not
    UTF-8 comes with its decode error and its text with the bad bytes escaped.
    """
    with open(path, "rb") as file:
        for number, data in enumerate(file, start=1):
            if number == 1:
                data = data.removeprefix(UTF8_BOM)
            data = data.rstrip(b"\n").rstrip(b"\r")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                yield number, data.decode("utf-8", "backslashreplace"), error
                continue
            if text.strip():
                yield number, text, None


def first_line(path: Path) -> str | None:
    """Return the first non-blank line of a file, or None if there is none or it is not UTF-8."""
    with open(path, "rb") as file:
        data = file.readline(SNIFF_MAX_BYTES).removeprefix(UTF8_BOM)
        while data:
            try:
                text = data.rstrip(b"\n").rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                return None
            if text.strip():
                return text
            data = file.readline(SNIFF_MAX_BYTES)
    return None


def records_from_lines(
    path: Path, layout: str, parse_row: RowParser
) -> Iterator[SourceRecord]:
    """Parse every non-blank line of a file without a header into a :class:`SourceRecord`.

    ``layout`` describes the expected row, and error messages end with it. A
    malformed row yields an error record.
    """
    return _parse_rows(path.name, iter_lines(path), layout, parse_row)


def records_after_header(
    path: Path, layout: str, parse_header: HeaderParser
) -> Iterator[SourceRecord]:
    """Parse the header (the first non-blank line) and then every row below it.

    ``parse_header`` raises ``ValueError`` for a header that does not fit the
    format, and this generator lets it propagate. Rows are handled as in
    :func:`records_from_lines`.
    """
    lines = iter_lines(path)
    header = next(lines, None)
    if header is None:
        return
    number, text, decode_error = header
    if decode_error is not None:
        raise ValueError(
            f"{path}: the header on line {number} is not UTF-8 ({decode_error}); "
            "convert the file to UTF-8"
        )
    yield from _parse_rows(path.name, lines, layout, parse_header(text))


def _parse_rows(
    source: str,
    lines: Iterator[tuple[int, str, UnicodeDecodeError | None]],
    layout: str,
    parse_row: RowParser,
) -> Iterator[SourceRecord]:
    good = bad = 0
    for number, text, decode_error in lines:
        try:
            if decode_error is not None:
                raise InvalidEvent(Reason.UNPARSEABLE, f"line is not UTF-8 ({decode_error})")
            fields = parse_row(text, number)
        except ValueError as error:
            bad += 1
            yield SourceRecord(source, number, text, error=error_with_layout(error, layout))
        else:
            good += 1
            yield SourceRecord(source, number, text, fields=fields)
    logger.debug("read %s: %d rows parsed, %d malformed", source, good, bad)


def error_with_layout(error: ValueError, layout: str) -> InvalidEvent:
    """Turn a row's parse error into an :class:`InvalidEvent` with ``layout`` at its end."""
    if isinstance(error, InvalidEvent):
        reason, message, field = error.reason, error.message, error.field
    else:
        reason, message, field = Reason.UNPARSEABLE, str(error), None
    return InvalidEvent(reason, f"{message}; expected {layout}", field)


def split_cells(
    text: str, delimiter: str, expected: int | None = None, quoted: bool = False
) -> list[str]:
    """Split one row into cells, and raise ``ValueError`` unless there are ``expected`` of them.

    ``expected`` None accepts any count, as for a header.
    ``quoted`` applies CSV quoting rules, so ``"a,b"`` is one cell. A quoted
    cell cannot span lines, because each physical line is one row.
    """
    if quoted:
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error as error:
            raise ValueError(f"row has invalid CSV quoting ({error})") from error
    else:
        cells = text.split(delimiter)
    if expected is not None and len(cells) != expected:
        name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        raise ValueError(f"row has {len(cells)} {name}-separated columns instead of {expected}")
    return cells


def column_positions(
    path: Path,
    header: Sequence[str],
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> dict[str, int]:
    """Map column names to their index in ``header``, and raise ``ValueError`` if one is missing.

    Optional columns that the header lacks are left out of the result.
    """
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{path}: header {list(header)} lacks the column(s) {missing}; this format "
            f"needs the columns {list(required)}. Check the file and the chosen format"
        )
    present = [*required, *(name for name in optional if name in header)]
    return {name: list(header).index(name) for name in present}


def parse_cell(text: str, converter: Callable[[str], T], column: str, field: str) -> T:
    """Apply ``converter`` to a cell, turning its ``ValueError`` into an ``InvalidEvent``."""
    try:
        return converter(text)
    except ValueError as error:
        raise InvalidEvent(Reason.UNPARSEABLE, f"column {column!r}: {error}", field) from error


def parse_price(text: str) -> float | None:
    """Parse a price cell, where an empty cell means no price.

    NaN, infinity and negative prices pass through for the validator to reject.
    """
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a number") from error


def optional_text(text: str | None) -> str | None:
    """Return None for a missing or blank optional cell, else the cell unchanged."""
    if text is None or not text.strip():
        return None
    return text


def line_event_id(path: Path, line: int) -> str:
    """Return the event id for a format without one: ``{file stem}:{line}``."""
    return f"{path.stem}:{line}"


def event_fields(
    *,
    event_id: str,
    session_id: str | None,
    item_id: str,
    event_type: str,
    event_time: int,
    user_id: str | None = None,
    category: str | None = None,
    price: float | None = None,
) -> dict[str, Any]:
    """Return the event schema's fields as a dict, with None for the absent optional ones."""
    return {
        "event_id": event_id,
        "session_id": session_id,
        "user_id": user_id,
        "item_id": item_id,
        "event_type": event_type,
        "event_time": event_time,
        "category": category,
        "price": price,
    }
