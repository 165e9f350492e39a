"""``seqrec demo``: the main job end to end on a dataset, at the stage the system has reached.

Today it starts the local stack, replays the dataset into Kafka, reads the
events topic back to check that every valid row arrived, and stops the stack.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the system end to end on a dataset file",
        description="Start the local stack, replay DATA into Kafka, verify the topic, stop the stack.",
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset file (any format `seqrec replay` reads)")
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running at the end")
    parser.set_defaults(handler=run)


def _count_topic(bootstrap: str, topic: str) -> int:
    """Return the number of records in ``topic``, from its partitions' end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        beginning = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        return sum(end[p] - beginning[p] for p in partitions)
    finally:
        consumer.close()


def run(args: argparse.Namespace) -> int:
    from ingest.replay import ReplaySettings, replay
    from seqrec.publisher import PublisherSettings
    from stack import manager
    from stack.config import StackConfig

    if not args.data.exists():
        raise SystemExit(f"dataset {args.data} not found; pass DATA=PATH (see the README for downloads)")
    config = StackConfig.from_env()
    started = time.monotonic()
    print(f"[1/3] starting Kafka and Flink (state in {config.state_dir})", flush=True)
    manager.up(config, with_flink=True)
    try:
        before = _count_topic(config.bootstrap_servers, config.events_topic)
        print(f"[2/3] replaying {args.data} into {config.events_topic}", flush=True)
        summary = replay(
            ReplaySettings(
                path=args.data,
                publisher=PublisherSettings(config.bootstrap_servers, config.events_topic, config.dead_letter_topic),
            )
        )
        for line in summary.lines():
            print(f"      {line}")
        arrived = _count_topic(config.bootstrap_servers, config.events_topic) - before
        print(f"[3/3] the events topic gained {arrived} records (expected {summary.valid})", flush=True)
    finally:
        if args.keep_stack:
            print("stack left running; stop it with `seqrec stack down`")
        else:
            manager.down(config)
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if summary.reconciled and arrived == summary.valid else 1
