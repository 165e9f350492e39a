"""Entry point of the ``seqrec`` console script.

Each subcommand imports its component lazily, so ``seqrec stack status`` works
in an image that has no Flink, and ``seqrec replay`` in one without Feast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cli import demo_command, features_command, registry_command, replay_command, stack_command, train_command
from cli import serve_command
from cli import learn_command

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Clients of these libraries log every connection at INFO; keep their warnings only.
QUIET_LIBRARIES = ("kafka", "urllib3", "py4j")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqrec", description="Streaming sequence recommender.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack_command.add_parser(commands)
    replay_command.add_parser(commands)
    features_command.add_parsers(commands)
    registry_command.add_parser(commands)
    train_command.add_parser(commands)
    demo_command.add_parser(commands)
    serve_command.add_parser(commands)
    learn_command.add_parser(commands)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
