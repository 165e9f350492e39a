"""``seqrec demo``: the whole system on one dataset, ending with a live replay and a report (see :mod:`demo.orchestrator`)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole system on a dataset and report how well each part recommends",
        description="Start Kafka and Flink, run the feature job, the writer, the archiver and the River learner, "
        "replay the history, train and promote GRU4Rec with Beam, start the gRPC server, replay the test part as "
        "live traffic, and write a report. Every process it starts is stopped at the end.",
    )
    parser.add_argument("--data", type=Path, required=True,
                        help="folder with NAME_train_full.txt and NAME_test.txt, or one dataset file to split by time")
    parser.add_argument("--report-dir", type=Path, default=Path("demo-report"),
                        help="folder of report.md and its plots (default demo-report)")
    parser.add_argument("--speedup", type=float, default=120.0,
                        help="event time runs this many times faster than wall time in the live replay (default 120)")
    parser.add_argument("--max-wait-ms", type=int, default=500,
                        help="maximum pause between two live events, in ms (default 500)")
    parser.add_argument("--epochs", type=int, default=5, help="GRU4Rec training epochs (default 5)")
    parser.add_argument("--keep-stack", action="store_true", help="leave Kafka and Flink running at the end")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from demo.orchestrator import DemoSettings
    from demo.orchestrator import run as run_demo

    if args.speedup <= 0 or args.max_wait_ms < 0 or args.epochs < 1:
        raise SystemExit(
            f"seqrec demo: --speedup {args.speedup}, --max-wait-ms {args.max_wait_ms} and --epochs {args.epochs} "
            "must be positive (max-wait may be 0)"
        )
    try:
        return run_demo(DemoSettings(
            data=args.data, report_dir=args.report_dir, speedup=args.speedup,
            max_wait=timedelta(milliseconds=args.max_wait_ms), epochs=args.epochs, keep_stack=args.keep_stack,
        ))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"seqrec demo: {error}") from None
