"""``seqrec replay FILE``: dataset file -> validated events on Kafka."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path


def _columns(text: str) -> dict[str, str]:
    mapping = {}
    for pair in text.split(","):
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise argparse.ArgumentTypeError(
                f"invalid column mapping {pair!r}; write FIELD=COLUMN pairs separated by commas, "
                "for example session_id=sid,item_id=product,event_time=ts"
            )
        mapping[field.strip()] = column.strip()
    return mapping


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--speed must be > 0, got {text}")
    return value


def add_parser(commands) -> None:
    from seqrec.readers import FORMATS

    parser = commands.add_parser(
        "replay",
        help="replay a dataset file into the events topic",
        description="Read a click-stream file in its original format, validate every row, and produce "
        "the valid events in event-time order to Kafka, keyed by session id. Rejected rows go to the "
        "dead-letter topic with the reason and the raw line.",
    )
    parser.add_argument("file", type=Path, help="dataset file")
    parser.add_argument("--format", choices=sorted(FORMATS), help="input format (default: detected from the file)")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("SEQREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default $SEQREC_KAFKA_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument("--topic", default="events", help="events topic (default events)")
    parser.add_argument("--dead-letter-topic", default="events-dead-letter", help="topic of rejected rows")
    parser.add_argument("--speed", type=_positive, help="replay at this multiple of real time (60 = one hour per minute); default as fast as possible")
    parser.add_argument("--limit", type=int, help="read at most this many rows")
    parser.add_argument("--event-type", help="event type for formats that have none (session-rec TSV, generic)")
    parser.add_argument("--session-gap-minutes", type=float, help="inactivity gap that ends a session, for formats without sessions (RetailRocket; default 30)")
    parser.add_argument("--columns", type=_columns, help="generic format: FIELD=COLUMN pairs, e.g. session_id=sid,item_id=iid,event_time=ts")
    parser.add_argument("--time-unit", choices=("s", "ms", "iso"), help="generic format: unit of the time column")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ingest.replay import ReplaySettings, replay
    from seqrec.publisher import PublisherSettings

    options = {}
    if args.event_type:
        options["event_type"] = args.event_type
    if args.session_gap_minutes is not None:
        options["session_gap"] = timedelta(minutes=args.session_gap_minutes)
    if args.columns:
        options["columns"] = args.columns
    if args.time_unit:
        options["time_unit"] = args.time_unit
    settings = ReplaySettings(
        path=args.file,
        format=args.format,
        reader_options=options,
        speed=args.speed,
        limit=args.limit,
        progress=not args.no_progress,
        publisher=PublisherSettings(
            bootstrap_servers=args.bootstrap_servers,
            events_topic=args.topic,
            dead_letter_topic=args.dead_letter_topic,
        ),
    )
    summary = replay(settings)
    print(f"replay of {args.file} into {args.topic} at {args.bootstrap_servers}")
    for line in summary.lines():
        print(line)
    if summary.interrupted:
        return 130
    return 0 if summary.reconciled else 1
