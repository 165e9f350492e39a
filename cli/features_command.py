"""``seqrec features submit | write`` and ``seqrec archive``: the feature pipeline's processes."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

JOB = Path(__file__).resolve().parents[1] / "pipelines" / "features_job.py"


def add_parsers(commands) -> None:
    features = commands.add_parser(
        "features",
        help="submit the Flink feature job or run the feature writer",
        description="`submit` runs `flink run -py pipelines/features_job.py` against the local cluster; "
        "`write` runs the Kafka-to-Feast feature writer. Options after `--` go to the job "
        "(`python pipelines/features_job.py --help`) or the writer (`python -m pipelines.feature_writer --help`).",
    )
    actions = features.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = actions.add_parser("submit", help="submit the Flink feature job")
    submit.add_argument("--attached", action="store_true", help="wait for the job instead of detaching")
    submit.add_argument(
        "--from-checkpoint",
        metavar="latest|PATH",
        help="restore state from this retained checkpoint, or the newest one in the stack's checkpoint dir",
    )
    submit.add_argument("options", nargs=argparse.REMAINDER, help="options for the job")
    write = actions.add_parser("write", help="run the feature writer")
    write.add_argument("options", nargs=argparse.REMAINDER, help="options for the writer")
    features.set_defaults(handler=run_features)

    archive = commands.add_parser(
        "archive",
        help="archive every valid event to Parquet partitioned by event date",
        description="Run the event archiver (options go to `python -m pipelines.event_archive`).",
    )
    archive.add_argument("options", nargs=argparse.REMAINDER, help="options for the archiver")
    archive.set_defaults(handler=run_archive)


def _options(raw: list[str]) -> list[str]:
    return raw[1:] if raw[:1] == ["--"] else raw


def latest_checkpoint(checkpoint_dir: Path) -> Path:
    """Return the newest completed checkpoint (a ``chk-N`` folder with ``_metadata``) under ``checkpoint_dir``."""
    candidates = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata")]
    if not candidates:
        raise SystemExit(
            f"no completed checkpoint under {checkpoint_dir}; run the job until it has checkpointed, "
            "or submit without --from-checkpoint"
        )
    return max(candidates, key=lambda path: path.stat().st_mtime)


def run_features(args: argparse.Namespace) -> int:
    options = _options(args.options)
    if args.action == "write":
        from pipelines.feature_writer import main

        return main(options)

    from stack import flink
    from stack.config import StackConfig

    config = StackConfig.from_env()
    command = flink.run_command(config, JOB, "--bootstrap-servers", config.bootstrap_servers, *options,
                                detached=not args.attached)
    if args.from_checkpoint:
        path = latest_checkpoint(config.checkpoint_dir) if args.from_checkpoint == "latest" else Path(args.from_checkpoint)
        print(f"restoring from {path}")
        command[2:2] = ["--fromSavepoint", str(path)]
    return subprocess.run(command, env=flink.environment(config)).returncode


def run_archive(args: argparse.Namespace) -> int:
    from pipelines.event_archive import main

    return main(_options(args.options))
