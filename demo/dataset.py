"""The demo's input: a history part replayed as a backlog and a test part replayed as live traffic.

``DATA`` is either a folder with a session-rec pair of files
(``<name>_train_full.txt`` and ``<name>_test.txt``, as in ``yoochoose-1-64``)
or one file in any format that ``seqrec replay`` reads. A single file is split
by time. Sessions whose last event falls within the last ``test_span`` of the
data are the test part, and all others the history. Both parts are written as
Parquet files that the generic reader reads back.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seqrec.events import FIELDS, Event, InvalidEvent, validate_event
from seqrec.readers import read_records

logger = logging.getLogger(__name__)

TRAIN_SUFFIX = "_train_full.txt"
TEST_SUFFIX = "_test.txt"
DEFAULT_TEST_SPAN = timedelta(days=1)
GENERIC_OPTIONS = {
    "format": "generic",
    "reader_options": {"columns": {f.name: f.name for f in FIELDS}, "time_unit": "ms"},
}
"""Replay options that read the Parquet parts written by :func:`split_file`."""


@dataclass
class DemoData:
    """Paths of the two parts, and the reader settings that ``seqrec replay`` needs for them."""

    history: Path
    test: Path
    format: str | None = None
    reader_options: dict = field(default_factory=dict)

    def test_events(self) -> tuple[list[Event], Counter]:
        """Return the valid test events in event-time order, and the invalid rows counted by reason."""
        return read_events(self.test, self.format, self.reader_options)


def read_events(path: Path, format: str | None = None, reader_options: dict | None = None) -> tuple[list[Event], Counter]:
    """Read and validate ``path``; return the valid events sorted by (event_time, event_id) and the rejections by reason."""
    events, rejected = [], Counter()
    for record in read_records(path, format, **(reader_options or {})):
        if record.fields is None:
            rejected[record.error.reason] += 1
            continue
        try:
            events.append(validate_event(record.fields))
        except InvalidEvent as error:
            rejected[error.reason] += 1
    events.sort(key=lambda event: (event.event_time, event.event_id))
    return events, rejected


def resolve(data: Path, work_dir: Path, test_span: timedelta = DEFAULT_TEST_SPAN) -> DemoData:
    """Return the history and test parts of ``data``, splitting a single file into ``work_dir``."""
    if data.is_dir():
        trains = sorted(data.glob(f"*{TRAIN_SUFFIX}"))
        for train in trains:
            test = train.with_name(train.name[: -len(TRAIN_SUFFIX)] + TEST_SUFFIX)
            if test.is_file():
                return DemoData(history=train, test=test)
        raise FileNotFoundError(
            f"{data} has no pair of files NAME{TRAIN_SUFFIX} and NAME{TEST_SUFFIX}; "
            "pass such a folder, or one dataset file to split by time"
        )
    if not data.is_file():
        raise FileNotFoundError(f"dataset {data} not found; pass DATA=PATH (see the README for downloads)")
    return split_file(data, work_dir, test_span)


def split_file(path: Path, work_dir: Path, test_span: timedelta) -> DemoData:
    """Split one dataset file by session end time into ``history.parquet`` and ``test.parquet``."""
    events, rejected = read_events(path)
    if not events:
        raise ValueError(f"{path} has no valid event (rejected: {dict(rejected)}); check the file and its format")
    if rejected:
        logger.warning("%s: %d invalid rows left out of the split: %s", path, sum(rejected.values()), dict(rejected))
    cutoff = events[-1].event_time - test_span // timedelta(milliseconds=1)
    session_end: dict[str, int] = {}
    for event in events:
        session_end[event.session_id] = event.event_time
    history = [event for event in events if session_end[event.session_id] < cutoff]
    test = [event for event in events if session_end[event.session_id] >= cutoff]
    if not history:
        raise ValueError(f"{path}: every session ends within the last {test_span}, so no history is left to learn from")
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = DemoData(work_dir / "history.parquet", work_dir / "test.parquet", **GENERIC_OPTIONS)
    _write_parquet(history, parts.history)
    _write_parquet(test, parts.test)
    logger.info("split %s at %d: %d history events, %d test events", path, cutoff, len(history), len(test))
    return parts


def _write_parquet(events: list[Event], path: Path) -> None:
    columns = {f.name: [getattr(event, f.name) for event in events] for f in FIELDS}
    arrow_types = {int: pa.int64(), float: pa.float64(), str: pa.string()}
    types = {f.name: arrow_types[f.python_type] for f in FIELDS}
    table = pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})
    pq.write_table(table, path)
