"""Flink feature job: Kafka events -> session, item and transition features on Kafka.

The same file runs three ways:

    python pipelines/features_job.py --bootstrap-servers 127.0.0.1:9092        # mini-cluster
    flink run -pyexec PY -pyclientexec PY -py pipelines/features_job.py ...    # standalone cluster
    run(["--bounded", ...])                                                     # from a test

The feature topics are read by ``pipelines/feature_writer.py``, which writes
them to the Feast online store. On the mini-cluster, pass ``--connector-jar``
(or set ``SEQREC_FLINK_KAFKA_JAR``); a cluster started by ``seqrec stack up``
has the jar on ``pipeline.jars`` already.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):
    # `flink run -py` and `python pipelines/features_job.py` run this file as a
    # script; make the project's packages importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.features_config import FeatureJobConfig, SlidingWindow  # noqa: E402
from pipelines.features_sql import statements  # noqa: E402

logger = logging.getLogger(__name__)

JOB_NAME = "seqrec-features"
DURATION_UNITS = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
                  "h": timedelta(hours=1), "d": timedelta(days=1)}


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``1h`` or ``7d`` (an integer and a unit) into a timedelta."""
    for unit in sorted(DURATION_UNITS, key=len, reverse=True):
        number = text[: -len(unit)]
        if text.endswith(unit) and number.isdigit():
            return int(number) * DURATION_UNITS[unit]
    raise argparse.ArgumentTypeError(f"invalid duration {text!r}; write an integer and one of ms, s, m, h, d, e.g. 5m")


def parse_window(text: str) -> SlidingWindow:
    """Parse ``NAME=SIZE/SLIDE`` (or ``SIZE/SLIDE``, named after SIZE), e.g. ``1h=1h/5m``."""
    name, _, spec = text.rpartition("=")
    size, sep, slide = spec.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid window {text!r}; write NAME=SIZE/SLIDE, e.g. 24h=24h/5m")
    return SlidingWindow(name or size, parse_duration(size), parse_duration(slide))


def parse_args(argv: list[str] | None) -> tuple[FeatureJobConfig, argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description="Compute session, item and transition features with Flink SQL.")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("SEQREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--events-topic", default="events")
    parser.add_argument("--topic-prefix", default="", help="prefix of the output topics (tests use it)")
    parser.add_argument("--group-id", default="flink-features")
    parser.add_argument("--out-of-orderness-ms", type=int, default=500, help="watermark delay, milliseconds")
    parser.add_argument("--watermark-emit", choices=("periodic", "on-event"), default="periodic")
    parser.add_argument("--idle-timeout-ms", type=int, default=5000, help="idle partition timeout, milliseconds")
    parser.add_argument("--session-gap-minutes", type=float, default=30.0)
    parser.add_argument("--last-items", type=int, default=10, help="recent item ids kept per session")
    parser.add_argument("--top-k", type=int, default=20, help="next items kept per item")
    parser.add_argument("--item-window", type=parse_window, action="append",
                        help="item stats window NAME=SIZE/SLIDE, repeatable (default 1h=1h/5m and 24h=24h/5m); "
                        "the feature repo has views for the names 1h and 24h")
    parser.add_argument("--transition-window", type=parse_window, default=parse_window("24h/5m"),
                        help="transition window SIZE/SLIDE (default 24h/5m)")
    parser.add_argument("--popular-window", type=parse_window, default=parse_window("1h/5m"),
                        help="window SIZE/SLIDE of the catalogue-wide popular items (default 1h/5m)")
    parser.add_argument("--popular-top-k", type=int, default=100, help="popular items kept per window")
    parser.add_argument("--checkpoint-interval-s", type=float, default=10.0, help="checkpoint interval, seconds")
    parser.add_argument("--startup-mode", choices=("group-offsets", "earliest-offset", "latest-offset"), default="group-offsets")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets that are latest at start")
    parser.add_argument("--parallelism", type=int)
    parser.add_argument("--partitions", type=int, default=4, help="partitions of output topics this job creates")
    parser.add_argument("--connector-jar", default=os.environ.get("SEQREC_FLINK_KAFKA_JAR"),
                        help="Flink Kafka SQL connector jar, for the mini-cluster")
    parser.add_argument("--checkpoint-dir", default=os.environ.get("SEQREC_CHECKPOINT_DIR"),
                        help="checkpoint directory URI or path (default: the cluster's; on the mini-cluster "
                        "~/.cache/seqrec/flink-checkpoints)")
    parser.add_argument("--wait", action="store_true", help="block until the job ends (bounded runs)")
    args, runner_args = parser.parse_known_args(argv)
    prefix = args.topic_prefix
    windows = {} if args.item_window is None else {"item_windows": tuple(args.item_window)}
    config = FeatureJobConfig(
        **windows,
        bootstrap_servers=args.bootstrap_servers,
        events_topic=args.events_topic,
        session_topic=f"{prefix}features-session",
        item_topic=f"{prefix}features-item",
        transition_topic=f"{prefix}features-transition",
        late_topic=f"{prefix}events-late",
        popular_topic=f"{prefix}features-popular",
        group_id=args.group_id,
        out_of_orderness=timedelta(milliseconds=args.out_of_orderness_ms),
        watermark_emit=args.watermark_emit,
        idle_timeout=timedelta(milliseconds=args.idle_timeout_ms),
        session_gap=timedelta(minutes=args.session_gap_minutes),
        last_items=args.last_items,
        transition_top_k=args.top_k,
        transition_window=args.transition_window,
        popular_window=args.popular_window,
        popular_top_k=args.popular_top_k,
        checkpoint_interval=timedelta(seconds=args.checkpoint_interval_s),
        startup_mode=args.startup_mode,
        bounded=args.bounded,
        parallelism=args.parallelism,
    )
    return config, args, runner_args


def checkpoint_uri(requested: str | None) -> str | None:
    """Return where checkpoints go: ``requested``, else the cluster's setting, else a local folder.

    A cluster started by ``seqrec stack up`` sets one in ``FLINK_CONF_DIR``. The
    mini-cluster has none, and its default JobManager storage fails any
    checkpoint over 5 MB.
    """
    if requested:
        return requested if "://" in requested else Path(requested).resolve().as_uri()
    if os.environ.get("FLINK_CONF_DIR"):
        return None
    return (Path.home() / ".cache" / "seqrec" / "flink-checkpoints").as_uri()


def build_environment(config: FeatureJobConfig, connector_jar: str | None, checkpoint_dir: str | None):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    settings = env.get_config()
    settings.set("pipeline.name", JOB_NAME)
    # Window bounds and TO_TIMESTAMP_LTZ follow the session time zone.
    settings.set("table.local-time-zone", "UTC")
    # Share the views that several INSERTs read (deduplication, session rows)
    # instead of planning them once per INSERT. Without this, projection push-down
    # gives each INSERT its own copy: EXPLAIN showed three deduplications by
    # event_id, each keeping every id for a day, and two recent-items OVER windows.
    settings.set("table.optimizer.reuse-optimize-block-with-digest-enabled", "true")
    settings.set("table.exec.state.ttl", f"{config.state_ttl // timedelta(milliseconds=1)} ms")
    settings.set("execution.checkpointing.interval", f"{config.checkpoint_interval // timedelta(milliseconds=1)} ms")
    settings.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    settings.set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    # A failed checkpoint (a slow disk, say) should not restart the job; the next one retries.
    settings.set("execution.checkpointing.tolerable-failed-checkpoints", "3")
    if checkpoint_dir:
        settings.set("execution.checkpointing.dir", checkpoint_dir)
    settings.set("restart-strategy.type", "fixed-delay")
    settings.set("restart-strategy.fixed-delay.attempts", "100")
    settings.set("restart-strategy.fixed-delay.delay", "2 s")
    if config.parallelism:
        settings.set("parallelism.default", str(config.parallelism))
    if connector_jar:
        settings.set("pipeline.jars", Path(connector_jar).resolve().as_uri())
    return env


def ensure_topics(config: FeatureJobConfig, partitions: int) -> None:
    """Create the output topics that do not exist yet, so the sinks need no broker-side auto-creation."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers.split(","))
    try:
        existing = set(admin.list_topics())
        if config.events_topic not in existing:
            raise RuntimeError(
                f"input topic {config.events_topic!r} does not exist on {config.bootstrap_servers}; "
                "start the stack with `seqrec stack up` or create the topic"
            )
        outputs = (config.session_topic, config.item_topic, config.transition_topic, config.popular_topic,
                   config.late_topic)
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in outputs if t not in existing]
        if missing:
            admin.create_topics(missing)
            logger.info("created topics %s", ", ".join(t.name for t in missing))
    finally:
        admin.close()


def run(argv: list[str] | None = None):
    """Submit the job; return its ``TableResult`` (call ``.wait()`` to block)."""
    config, args, _ = parse_args(argv)
    ensure_topics(config, args.partitions)
    env = build_environment(config, args.connector_jar, checkpoint_uri(args.checkpoint_dir))
    ddl, inserts = statements(config)
    for statement in ddl:
        env.execute_sql(statement)
    statement_set = env.create_statement_set()
    for insert in inserts:
        statement_set.add_insert_sql(insert)
    logger.info("submitting %s: %s -> %s, %s, %s, %s, %s", JOB_NAME, config.events_topic, config.session_topic,
                config.item_topic, config.transition_topic, config.popular_topic, config.late_topic)
    result = statement_set.execute()
    if args.wait:
        result.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
