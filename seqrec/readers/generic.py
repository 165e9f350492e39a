"""Reader for any CSV or Parquet file whose columns are named in a mapping.

``columns`` maps event schema field names to the file's column names, e.g.
``{"session_id": "sid", "item_id": "sku", "event_time": "ts"}``. Parquet is
recognised by its ``PAR1`` magic bytes and read one record batch at a time.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from seqrec.events import FIELD_NAMES, InvalidEvent, Reason
from seqrec.readers.base import SourceRecord
from seqrec.readers.lines import (
    RowParser,
    column_positions,
    error_with_layout,
    line_event_id,
    optional_text,
    parse_price,
    records_after_header,
    split_cells,
)
from seqrec.readers.times import (
    MS_PER_SECOND,
    date_to_ms,
    datetime_to_ms,
    decimal_to_ms,
    iso_to_ms,
    milliseconds_to_int,
    seconds_to_ms,
)

TIME_UNITS: dict[str, Callable[[str], int]] = {
    "s": seconds_to_ms,
    "ms": milliseconds_to_int,
    "iso": iso_to_ms,
}
"""Accepted ``time_unit`` values and the parser for a text cell in each."""

UNIT_MS = {"s": MS_PER_SECOND, "ms": 1}
"""Milliseconds per unit, for numeric time values."""

REQUIRED_MAPPINGS = ("session_id", "item_id", "event_time")
OPTIONAL_ID_FIELDS = ("user_id", "category")
PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 10_000
"""Rows per Parquet record batch, so memory stays bounded on large files."""


def read_generic(
    path: str | os.PathLike[str],
    columns: Mapping[str, str],
    time_unit: str,
    event_type: str | None = None,
    delimiter: str = ",",
) -> Iterator[SourceRecord]:
    """Read a CSV (with a header) or Parquet file through a column mapping.

    ``columns`` must map ``session_id``, ``item_id`` and ``event_time``, and
    ``event_type`` unless the ``event_type`` argument gives one type for every
    row. Without an ``event_id`` column the event id is ``{file stem}:{line}``.
    ``time_unit`` is ``"s"`` (unix seconds, fraction allowed, rounded half to
    even at the millisecond), ``"ms"`` (whole unix milliseconds) or ``"iso"``
    (ISO-8601 text, UTC unless it has an offset). A Parquet timestamp or date
    column is converted whatever the unit. Numeric ids become decimal text.

    For CSV, ``line`` is the physical line number and the header is line 1.
    For Parquet, ``line`` is the 1-based row number and ``raw`` is the row as
    JSON. Raises ``ValueError`` for a bad mapping or unit at the call, and on
    the first iteration if the file lacks a mapped column.
    """
    path = Path(path)
    _check_arguments(columns, time_unit, event_type, delimiter)
    if _is_parquet(path):
        return _read_parquet(path, columns, time_unit, event_type)
    return _read_csv(path, columns, time_unit, event_type, delimiter)


def _check_arguments(
    columns: Mapping[str, str], time_unit: str, event_type: str | None, delimiter: str
) -> None:
    unknown = sorted(set(columns) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(
            f"columns maps unknown field(s) {unknown}; the keys must be event fields: "
            + ", ".join(FIELD_NAMES)
        )
    missing = [name for name in REQUIRED_MAPPINGS if name not in columns]
    if missing:
        raise ValueError(f"columns lacks {missing}; map each to the file's column name")
    if ("event_type" in columns) == (event_type is not None):
        raise ValueError(
            "give the event type either as columns['event_type'] or as event_type=, exactly once"
        )
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit {time_unit!r} is not one of {list(TIME_UNITS)}")
    if len(delimiter) != 1:
        raise ValueError(f"delimiter {delimiter!r} must be one character, as for csv.reader")


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _layout(columns: Mapping[str, str], time_unit: str, kind: str) -> str:
    mapping = ", ".join(f"{field}={column}" for field, column in columns.items())
    return f"{kind} with mapped columns {mapping} and event_time unit {time_unit!r}"


def _read_csv(
    path: Path,
    columns: Mapping[str, str],
    time_unit: str,
    event_type: str | None,
    delimiter: str,
) -> Iterator[SourceRecord]:
    def parse_header(text: str) -> RowParser:
        header = split_cells(text, delimiter, quoted=True)
        positions = column_positions(path, header, list(columns.values()))
        column_count = len(header)

        def parse(row_text: str, line: int) -> dict[str, Any]:
            cells = split_cells(row_text, delimiter, column_count, quoted=True)
            values = {field: cells[positions[column]] for field, column in columns.items()}
            return _fields(values, columns, path, line, time_unit, event_type)

        return parse

    layout = _layout(columns, time_unit, f"CSV row separated by {delimiter!r}")
    return records_after_header(path, layout, parse_header)


def _read_parquet(
    path: Path, columns: Mapping[str, str], time_unit: str, event_type: str | None
) -> Iterator[SourceRecord]:
    import pyarrow.parquet as parquet

    parquet_file = parquet.ParquetFile(path)
    missing = [name for name in columns.values() if name not in parquet_file.schema_arrow.names]
    if missing:
        raise ValueError(
            f"{path}: Parquet columns {parquet_file.schema_arrow.names} lack {missing}; "
            "fix the column mapping"
        )
    layout = _layout(columns, time_unit, "Parquet row")
    row_number = 0
    for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            row_number += 1
            raw = json.dumps(row, default=str, ensure_ascii=False)
            values = {field: row[column] for field, column in columns.items()}
            try:
                fields = _fields(values, columns, path, row_number, time_unit, event_type)
            except ValueError as error:
                invalid = error_with_layout(error, layout)
                yield SourceRecord(path.name, row_number, raw, error=invalid)
            else:
                yield SourceRecord(path.name, row_number, raw, fields=fields)


def _fields(
    values: Mapping[str, Any],
    columns: Mapping[str, str],
    path: Path,
    line: int,
    time_unit: str,
    event_type: str | None,
) -> dict[str, Any]:
    """Build event fields from mapped values, which are text for CSV and typed for Parquet."""
    fields: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
    for field, value in values.items():
        try:
            fields[field] = _convert(field, value, time_unit)
        except ValueError as error:
            raise InvalidEvent(
                Reason.UNPARSEABLE, f"column {columns[field]!r}: {error}", field
            ) from error
    if "event_id" not in values:
        fields["event_id"] = line_event_id(path, line)
    if event_type is not None:
        fields["event_type"] = event_type
    return fields


def _convert(field: str, value: Any, time_unit: str) -> Any:
    if field == "event_time":
        return _time_ms(value, time_unit)
    if field == "price":
        return _price(value)
    if field == "event_type":
        return value
    return _id_text(value, optional=field in OPTIONAL_ID_FIELDS)


def _id_text(value: Any, optional: bool) -> Any:
    """Return an id as text. Values of other types pass through for the validator to reject."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        # A Parquet integer column with nulls often arrives as floats from pandas.
        return str(int(value))
    if isinstance(value, str) and optional:
        return optional_text(value)
    return value


def _price(value: Any) -> Any:
    """Return a price as a float. Values of other types pass through for the validator."""
    if isinstance(value, str):
        return parse_price(value)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    return value


def _time_ms(value: Any, time_unit: str) -> int | None:
    """Convert a time value to epoch milliseconds, or raise ``ValueError``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    if isinstance(value, date):
        return date_to_ms(value.isoformat())
    if isinstance(value, str):
        return TIME_UNITS[time_unit](value)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(
            f"{value!r} is a {type(value).__name__}; expected text, a number or a timestamp"
        )
    if time_unit not in UNIT_MS:
        raise ValueError(
            f"{value!r} is a number but time_unit {time_unit!r} expects text; "
            "use time_unit 's' or 'ms' for a numeric column"
        )
    if isinstance(value, int):
        return value * UNIT_MS[time_unit]
    # repr gives the shortest decimal text that round-trips, e.g. 1411462780.513.
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number of {time_unit!r}")
    return decimal_to_ms(number, UNIT_MS[time_unit])
