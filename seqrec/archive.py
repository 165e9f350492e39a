"""The offline event archive: Parquet files of valid events, one folder per UTC event date.

Layout under the archive root, as Hive partitions that ``pyarrow.dataset`` and
Apache Beam read directly::

    ROOT/event_date=2024-03-09/part-p002-o00000000000000001200-00000000000000001249.parquet

Each file contains the valid events of one Kafka partition's offset range (first
and last offset, both inclusive) whose ``event_time`` falls on that date. A
range that spans two dates gives two files with the same name in two folders.
Every file has the schema :data:`ARCHIVE_SCHEMA`. A file is first written under
a hidden temporary name (a leading dot, which dataset readers skip) and then
renamed, so readers never see a partial file. The writer is
``pipelines/event_archive.py``. One root archives one topic, because the file
names do not contain the topic.

>>> partition_folder(event_date(1411462780513))
'event_date=2014-09-23'
>>> name = ArchiveFileName(partition=2, first_offset=1200, last_offset=1249)
>>> str(name)
'part-p002-o00000000000000001200-00000000000000001249.parquet'
>>> ArchiveFileName.parse(str(name)) == name, ArchiveFileName.parse("notes.txt")
(True, None)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from seqrec.events import FIELD_NAMES, FIELDS, Event

PARTITION_COLUMN = "event_date"
"""Name of the Hive partition key: the UTC date of ``event_time``."""

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64()}


def _archive_schema() -> pa.Schema:
    columns = []
    for field in FIELDS:
        if field.python_type not in _ARROW_TYPES:
            raise TypeError(
                f"event field {field.name!r} has Python type {field.python_type.__name__}, "
                f"which has no Parquet column type; add it to _ARROW_TYPES in {__name__}"
            )
        columns.append(
            pa.field(
                field.name,
                _ARROW_TYPES[field.python_type],
                nullable=not field.required,
                metadata={"description": field.description},
            )
        )
    return pa.schema(columns)


ARCHIVE_SCHEMA = _archive_schema()
"""Schema of every archive file: the event fields in ``FIELDS`` order, optional fields nullable.

``event_time`` is int64 UTC epoch milliseconds. The ``event_date`` partition
column is not stored in the files, because dataset readers add it from the folder name.
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
_FILE_NAME = re.compile(r"part-p(\d+)-o(\d+)-(\d+)\.parquet")


def event_date(event_time_ms: int) -> date:
    """Return the UTC date of an event time given in epoch milliseconds."""
    return (_EPOCH + timedelta(milliseconds=event_time_ms)).date()


def partition_folder(day: date) -> str:
    """Return the Hive partition folder name of a date, e.g. ``event_date=2024-03-09``."""
    return f"{PARTITION_COLUMN}={day.isoformat()}"


@dataclass(frozen=True, order=True)
class ArchiveFileName:
    """Name of an archive file: the Kafka partition and the inclusive offset range it covers."""

    partition: int
    first_offset: int
    last_offset: int

    def __str__(self) -> str:
        return f"part-p{self.partition:03d}-o{self.first_offset:020d}-{self.last_offset:020d}.parquet"

    @property
    def temp_name(self) -> str:
        """Hidden name the file has while it is being written."""
        return f"{_TEMP_PREFIX}{self}{_TEMP_SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> ArchiveFileName | None:
        """Return the parsed name of a finished archive file, or None for any other name."""
        match = _FILE_NAME.fullmatch(name)
        if match is None:
            return None
        partition, first, last = (int(group) for group in match.groups())
        return cls(partition, first, last)

    @classmethod
    def parse_temp(cls, name: str) -> ArchiveFileName | None:
        """Return the parsed name of a temporary file, or None for any other name."""
        if not (name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)):
            return None
        return cls.parse(name[len(_TEMP_PREFIX):-len(_TEMP_SUFFIX)])


@dataclass(frozen=True)
class ArchiveFile:
    """A file found in the archive, where ``temporary`` marks a write that never finished."""

    path: Path
    name: ArchiveFileName
    day: date
    temporary: bool


def list_archive_files(root: Path) -> Iterator[ArchiveFile]:
    """List the finished and temporary archive files under ``root``, skipping any other file."""
    prefix = f"{PARTITION_COLUMN}="
    for folder in sorted(root.glob(f"{prefix}*")):
        try:
            day = date.fromisoformat(folder.name[len(prefix):])
        except ValueError:
            continue
        for path in sorted(folder.iterdir()):
            name = ArchiveFileName.parse(path.name)
            temporary = name is None
            if temporary:
                name = ArchiveFileName.parse_temp(path.name)
            if name is not None:
                yield ArchiveFile(path, name, day, temporary)


def events_to_table(events: Sequence[Event]) -> pa.Table:
    """Build an :data:`ARCHIVE_SCHEMA` table from validated events."""
    columns = {name: [getattr(event, name) for event in events] for name in FIELD_NAMES}
    return pa.Table.from_pydict(columns, schema=ARCHIVE_SCHEMA)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_archive_file(root: Path, day: date, name: ArchiveFileName, events: Sequence[Event]) -> Path:
    """Write events to ``root/event_date=DAY/NAME`` atomically and durably, and return the final path.

    The table goes to the hidden temporary name first, is flushed to disk, and
    is then renamed over any file of the same name. Raises ``OSError`` when the
    disk write fails; calling again with the same arguments is safe.
    """
    folder = root / partition_folder(day)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    temp_path = folder / name.temp_name
    final_path = folder / str(name)
    with open(temp_path, "wb") as file:
        pq.write_table(events_to_table(events), file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp_path, final_path)
    _fsync_folder(folder)
    if created:
        _fsync_folder(root)
    return final_path


def archive_dataset(root: Path | str) -> ds.Dataset:
    """Open the archive as a ``pyarrow`` dataset with an ``event_date`` (date32) partition column.

    Raises ``FileNotFoundError`` if ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"archive root {root} does not exist or is not a folder, so "
            f"write it first with `python -m pipelines.event_archive --root {root}`"
        )
    partitioning = ds.partitioning(pa.schema([pa.field(PARTITION_COLUMN, pa.date32())]), flavor="hive")
    schema = ARCHIVE_SCHEMA.append(pa.field(PARTITION_COLUMN, pa.date32()))
    return ds.dataset(root, format="parquet", partitioning=partitioning, schema=schema)


def _check_date(name: str, value: date | None) -> None:
    # datetime is a subclass of date, and its time of day and zone would be dropped silently.
    if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
        raise TypeError(f"{name} must be a datetime.date (a UTC event date), got {type(value).__name__} {value!r}")


def read_archive(root: Path | str, start_date: date | None = None, end_date: date | None = None) -> pd.DataFrame:
    """Read the archived events whose UTC event date lies in ``[start_date, end_date]``.

    Both bounds are inclusive and optional. Only the matching date folders are
    read. The frame has one column per event field (``ARCHIVE_SCHEMA`` order),
    optional strings are None and a missing price is NaN. Row order is
    unspecified. Raises ``FileNotFoundError`` for a missing root and
    ``ValueError`` when ``start_date`` is after ``end_date``.
    """
    _check_date("start_date", start_date)
    _check_date("end_date", end_date)
    if start_date is not None and end_date is not None and start_date > end_date:
        raise ValueError(f"start_date {start_date} is after end_date {end_date}, so swap them")
    conditions: list[ds.Expression] = []
    if start_date is not None:
        conditions.append(ds.field(PARTITION_COLUMN) >= start_date)
    if end_date is not None:
        conditions.append(ds.field(PARTITION_COLUMN) <= end_date)
    row_filter = _all_of(conditions)
    table = archive_dataset(root).to_table(columns=list(FIELD_NAMES), filter=row_filter)
    return table.to_pandas()


def _all_of(conditions: Iterable[ds.Expression]) -> ds.Expression | None:
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined
