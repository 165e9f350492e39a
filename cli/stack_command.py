"""``seqrec stack up | down | status``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "stack",
        help="start, stop or inspect the local Kafka, Flink and Redis",
        description="Manage the local stack on 127.0.0.1. Ports and directories come from "
        "SEQREC_* environment variables (for example SEQREC_KAFKA_PORT) or these options.",
    )
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, help="directory of PIDs, logs and data (default ~/.cache/seqrec/stack)")
    parser.add_argument("--kafka-port", type=int, help="Kafka listener port (default 9092)")
    parser.add_argument("--flink-rest-port", type=int, help="Flink REST and web UI port (default 8081)")
    parser.add_argument("--redis-port", type=int, help="Redis port (default 6379)")
    parser.add_argument("--redis", action="store_true", help="also start Redis, for the Feast Redis online store")
    parser.add_argument("--no-flink", action="store_true", help="start Kafka only")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from stack import manager
    from stack.config import StackConfig

    config = StackConfig.from_env(
        state_dir=args.state_dir,
        kafka_port=args.kafka_port,
        flink_rest_port=args.flink_rest_port,
        redis_port=args.redis_port,
    )
    if args.action == "up":
        manager.up(config, with_flink=not args.no_flink, with_redis=args.redis)
    elif args.action == "down":
        manager.down(config)
    for name, state in manager.status(config).items():
        print(f"{name:6} {state}")
    if args.action == "up":
        print(f"state  {config.state_dir}")
        print(f"export SEQREC_KAFKA_BOOTSTRAP={config.bootstrap_servers} FLINK_CONF_DIR={config.flink_conf_dir}")
    return 0
