"""``seqrec learn``: the River online learner on the events topic."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "learn",
        help="learn a River model from the events topic, prequentially",
        description="Consume the events topic and, for each event, score the session's candidate next "
        "items, update prequential Recall@K and MRR@K, then learn. The model, the stream state and the "
        "offsets are checkpointed together, so a restart learns each event exactly once. Snapshots for "
        "serving go to --snapshot-dir. Stop with Ctrl-C or SIGTERM; both write a final checkpoint.",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("SEQREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default $SEQREC_KAFKA_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument("--topic", default="events", help="events topic (default events)")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("data/learner/checkpoint"), help="directory of the checkpoint (default data/learner/checkpoint)")
    parser.add_argument("--snapshot-dir", type=Path, default=Path("data/learner/snapshots"), help="directory that serving loads snapshots from (default data/learner/snapshots)")
    parser.add_argument("--checkpoint-interval-events", type=_at_least_one, default=10_000, help="checkpoint after at most this many records (default 10000)")
    parser.add_argument("--checkpoint-interval-s", type=_positive_seconds, default=10.0, help="checkpoint after at most this many seconds (default 10)")
    parser.add_argument("--snapshot-interval-s", type=_positive_seconds, default=5.0, help="seconds between snapshots for serving (default 5)")
    parser.add_argument("--snapshot-keep", type=_at_least_one, default=5, help="snapshot files kept on disk (default 5)")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on 127.0.0.1:PORT; 0 = off (default)")
    parser.add_argument("--log-interval-s", type=_positive_seconds, default=30.0, help="seconds between progress log lines (default 30)")
    parser.add_argument("--max-idle-s", type=_positive_seconds, help="stop after this many seconds without records (default: run until stopped)")
    parser.add_argument("--max-records", type=_at_least_one, help="stop once this many records were consumed in total, counting those before a restart")
    parser.add_argument("--curve-interval-events", type=int, default=0, help="record a prequential Recall@K and MRR@K point in the checkpoint after every this many scored events; 0 = none (default)")
    parser.add_argument("--cutoff", type=_at_least_one, default=20, help="list length K of the prequential Recall@K and MRR@K (default 20)")
    parser.add_argument("--negatives", type=int, default=1, help="candidates learned as negatives per event, sampled uniformly (default 1)")
    parser.add_argument("--random-negatives", type=int, default=1, help="items learned as negatives per event, sampled uniformly from all items seen (default 1)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="SGD step size of the logistic regression (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the negative sampling (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from online_learning.checkpoint import CheckpointError
    from online_learning.config import LearnerRunConfig
    from online_learning.learner import LearnerConfig
    from online_learning.runner import LearnerRunner

    config = LearnerRunConfig(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        checkpoint_dir=args.checkpoint_dir,
        snapshot_dir=args.snapshot_dir,
        checkpoint_interval_events=args.checkpoint_interval_events,
        checkpoint_interval_s=args.checkpoint_interval_s,
        snapshot_interval_s=args.snapshot_interval_s,
        snapshot_keep=args.snapshot_keep,
        metrics_port=args.metrics_port,
        log_interval_s=args.log_interval_s,
        max_idle_s=args.max_idle_s,
        max_records=args.max_records,
        learner=LearnerConfig(
            cutoff=args.cutoff,
            negatives_per_event=args.negatives,
            random_negatives_per_event=args.random_negatives,
            learning_rate=args.learning_rate,
            seed=args.seed,
            curve_interval_events=args.curve_interval_events,
        ),
    )
    stop_event = threading.Event()
    try:
        runner = LearnerRunner(config, stop_event)
    except CheckpointError as error:
        # The message names the file and the fix, so a traceback would add nothing.
        raise SystemExit("seqrec learn: error: " + " ".join(str(error).split())) from None
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda _signum, _frame: stop_event.set())
    runner.run()
    return 0
