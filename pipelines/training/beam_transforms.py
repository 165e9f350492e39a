"""Composite Beam transforms of the training pipeline, from raw events to a registered model.

The steps, in order: :class:`ReadEvents`, :class:`ValidateEvents`,
:class:`DropDuplicateEvents`, :class:`SessionizeEvents`,
:class:`SplitSessionsByTime`, :class:`TrainModel`, :class:`EvaluateModel` and
:class:`RegisterCandidate`. From ``SplitSessionsByTime`` on, the PCollection has
a single element, handled by one worker: the session split, then the split with
its fitted model, then the evaluation report.

Counters go to Beam metrics under the namespace :data:`METRICS_NAMESPACE`:
``valid_events``, ``invalid_events`` and ``invalid_<reason>`` per
:class:`seqrec.events.Reason`, ``duplicate_events``, ``sessions``, and
``validation_cases`` and ``test_cases``.

DoFns and mapped functions import their dependencies in their own body,
because DirectRunner in multi-processing mode runs them in workers that did not
import this pipeline's main module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

log = logging.getLogger(__name__)

METRICS_NAMESPACE = "seqrec.train"


@dataclass(frozen=True)
class UnreadableRow:
    """A dataset row that its reader could not map to event fields, with the reader's reason."""

    reason: str
    location: str
    message: str


@dataclass(frozen=True)
class TrainingData:
    """The single element after :class:`SplitSessionsByTime`: the split and the range of the events used.

    ``first_event_ms`` and ``last_event_ms`` are the earliest and latest event
    times (UTC epoch milliseconds) of the events that survived preprocessing.
    """

    split: Any  # pipelines.training.sessions.SessionSplit
    first_event_ms: int
    last_event_ms: int


def archive_day_patterns(root: str, start_date: date, end_date: date) -> list[str]:
    """Return one file pattern per UTC day in ``[start_date, end_date]``, matching finished archive files only.

    Temporary files start with a dot, so ``part-*`` skips them.
    """
    from apache_beam.io.filesystems import FileSystems

    from seqrec.archive import partition_folder

    if start_date > end_date:
        raise ValueError(f"--start-date {start_date} is after --end-date {end_date}; swap them")
    days = (start_date + timedelta(days=offset) for offset in range((end_date - start_date).days + 1))
    return [FileSystems.join(root, partition_folder(day), "part-*.parquet") for day in days]


class ReadDatasetFile(beam.DoFn):
    """Read one dataset file with :func:`seqrec.readers.read_records`, all of it on one worker."""

    def __init__(self, format: str | None, reader_options: Mapping[str, Any]):
        self.format = format
        self.reader_options = dict(reader_options)

    def process(self, path: str):
        from seqrec.readers import read_records

        for record in read_records(path, self.format, **self.reader_options):
            if record.fields is not None:
                yield dict(record.fields)
            else:
                yield UnreadableRow(record.error.reason, f"{record.source}:{record.line}", record.error.message)


class ReadEvents(beam.PTransform):
    """Read raw event records from the Parquet archive or from one dataset file.

    Archive: every finished file in the date folders from ``start_date`` to
    ``end_date`` (both inclusive), read by ``ReadAllFromParquet`` so that a day
    without a folder contributes no rows instead of failing the read. Dataset:
    the path is the only element of a ``Create``, and one worker reads the whole
    file, because the readers are sequential iterators.
    NOTE: so a dataset file must fit one worker's time budget, and the path must be readable from that worker.
    """

    def __init__(
        self,
        *,
        archive_root: str | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        dataset: str | None = None,
        dataset_format: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if (archive_root is None) == (dataset is None):
            raise ValueError("ReadEvents needs exactly one input: archive_root or dataset")
        if archive_root is not None and (start_date is None or end_date is None):
            raise ValueError("ReadEvents from an archive needs both start_date and end_date")
        self.archive_root = archive_root
        self.start_date = start_date
        self.end_date = end_date
        self.dataset = dataset
        self.dataset_format = dataset_format
        self.reader_options = dict(reader_options or {})

    def expand(self, pbegin):
        if self.archive_root is not None:
            patterns = archive_day_patterns(self.archive_root, self.start_date, self.end_date)
            return (
                pbegin
                | "ListArchiveDays" >> beam.Create(patterns)
                | "ReadArchiveFiles" >> beam.io.ReadAllFromParquet()
            )
        return (
            pbegin
            | "DatasetPath" >> beam.Create([self.dataset])
            | "ReadDatasetFile" >> beam.ParDo(ReadDatasetFile(self.dataset_format, self.reader_options))
        )


class ValidateEventRecord(beam.DoFn):
    """Turn a raw record into an :class:`seqrec.events.Event`, dropping and counting invalid ones."""

    def __init__(self):
        self.valid = Metrics.counter(METRICS_NAMESPACE, "valid_events")
        self.invalid = Metrics.counter(METRICS_NAMESPACE, "invalid_events")

    def process(self, record):
        from seqrec.events import InvalidEvent, validate_event

        if isinstance(record, UnreadableRow):
            self._count_invalid(record.reason, record.location, record.message)
            return
        try:
            event = validate_event(record)
        except InvalidEvent as error:
            self._count_invalid(error.reason, record.get("event_id"), error.message)
            return
        self.valid.inc()
        yield event

    def _count_invalid(self, reason: str, location: Any, message: str) -> None:
        self.invalid.inc()
        Metrics.counter(METRICS_NAMESPACE, f"invalid_{reason}").inc()
        # Per-row detail only at DEBUG: the counters carry the totals, and a bad file can have millions of rows.
        log.debug("dropping invalid event %s: %s", location, message)


class ValidateEvents(beam.PTransform):
    """Keep the records that pass :func:`seqrec.events.validate_event`, counting the others by reason."""

    def expand(self, records):
        return records | "ValidateEventRecord" >> beam.ParDo(ValidateEventRecord())


class KeepOneEvent(beam.DoFn):
    """Keep one event of the copies that share an event id, and count the others as duplicates."""

    def __init__(self):
        self.duplicates = Metrics.counter(METRICS_NAMESPACE, "duplicate_events")

    def process(self, keyed_copies):
        _, copies = keyed_copies
        copies = list(copies)
        if len(copies) > 1:
            self.duplicates.inc(len(copies) - 1)
        # Copies usually are identical. When they are not, the earliest wins, so the result does not depend on order.
        yield min(copies, key=lambda event: (event.event_time, event.session_id, event.item_id, event.event_type))


class DropDuplicateEvents(beam.PTransform):
    """Keep one event per ``event_id``."""

    def expand(self, events):
        return (
            events
            | "KeyByEventId" >> beam.Map(lambda event: (event.event_id, event))
            | "GroupCopies" >> beam.GroupByKey()
            | "KeepOneEvent" >> beam.ParDo(KeepOneEvent())
        )


class OrderSessionEvents(beam.DoFn):
    """Sort one session's events by event time, then event id."""

    def __init__(self):
        self.sessions = Metrics.counter(METRICS_NAMESPACE, "sessions")

    def process(self, keyed_events):
        session_id, events = keyed_events
        self.sessions.inc()
        yield session_id, sorted(events, key=lambda event: (event.event_time, event.event_id))


class SessionizeEvents(beam.PTransform):
    """Group events by ``session_id`` into ``(session_id, events in time order)`` pairs."""

    def expand(self, events):
        return (
            events
            | "KeyBySessionId" >> beam.Map(lambda event: (event.session_id, event))
            | "GroupSessions" >> beam.GroupByKey()
            | "OrderSessionEvents" >> beam.ParDo(OrderSessionEvents())
        )


def prepare_training_data(sessions: Sequence[tuple[str, Sequence[Any]]], config=None) -> TrainingData:
    """Run :func:`pipelines.training.sessions.prepare_sessions` over all ordered sessions.

    ``config`` is a ``SplitConfig``, and None means its defaults.
    Sessions are listed by (first event time, session id), so the row order
    that ``prepare_sessions`` uses to break ties does not depend on the runner.
    """
    import pandas as pd

    from pipelines.training.sessions import SplitConfig, prepare_sessions

    if config is None:
        config = SplitConfig()
    if not sessions:
        raise ValueError("no valid events to train on; check the input path, the date range and the invalid_* counters")
    ordered = sorted(sessions, key=lambda pair: (pair[1][0].event_time, pair[0]))
    rows = [(event.session_id, event.item_id, event.event_time) for _, events in ordered for event in events]
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "event_time"])
    split = prepare_sessions(frame, config)
    counts = split.filter_counts
    log.info(
        "preprocessing kept %d of %d events and %d of %d sessions (%d rare-item events, %d short-session events); "
        "split into %d training, %d validation and %d test sessions over %d items",
        counts.events_out, counts.events_in, counts.sessions_out, counts.sessions_in, counts.rare_item_events,
        counts.short_session_events, len(split.train), len(split.validation), len(split.test), len(split.item_index),
    )
    used_sessions = set(split.train.session_ids) | set(split.validation.session_ids) | set(split.test.session_ids)
    used_events = frame[frame["session_id"].isin(used_sessions)]
    return TrainingData(split, int(used_events["event_time"].min()), int(used_events["event_time"].max()))


class SplitSessionsByTime(beam.PTransform):
    """Gather every session on one worker, filter rare items and short sessions, and split by time."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def expand(self, sessions):
        return (
            sessions
            | "GatherSessions" >> beam.combiners.ToList()
            | "PrepareSessions" >> beam.Map(prepare_training_data, self.config)
        )
