"""``seqrec train`` and ``seqrec evaluate``: the Beam training pipeline, with and without registration."""

from __future__ import annotations

import argparse

BEAM_OPTIONS_HELP = (
    "Beam pipeline options after `--`, e.g. `-- --runner FlinkRunner --flink_master localhost:8081` "
    "(default DirectRunner)"
)


def add_parser(commands) -> None:
    from pipelines.training.options import add_arguments

    train = commands.add_parser(
        "train",
        help="train, evaluate and register a model with the Beam training pipeline",
        description="Read events from the Parquet archive or a dataset file, split sessions by time, train "
        "--model, evaluate it and the baselines on validation and test, register it and promote it if its "
        "validation recall@20 is no worse than the current model's. Exits with 1 if the promotion is rejected.",
    )
    add_arguments(train)
    train.add_argument("beam_options", nargs=argparse.REMAINDER, help=BEAM_OPTIONS_HELP)
    train.set_defaults(handler=run)

    evaluate = commands.add_parser(
        "evaluate",
        help="train and evaluate a model without registering it",
        description="Run the training pipeline up to the evaluation and print the metrics of --model "
        "and the baselines; nothing is written to a registry.",
    )
    add_arguments(evaluate, registering=False)
    evaluate.add_argument("beam_options", nargs=argparse.REMAINDER, help=BEAM_OPTIONS_HELP)
    evaluate.set_defaults(handler=run)


def _beam_options(raw: list[str]) -> list[str]:
    return raw[1:] if raw[:1] == ["--"] else raw


def run(args: argparse.Namespace) -> int:
    from pipelines.train_pipeline import run_and_print
    from pipelines.training.options import options_from_args

    try:
        options = options_from_args(args)
    except ValueError as error:
        raise SystemExit(f"seqrec {args.command}: {error}") from None
    return run_and_print(options, _beam_options(args.beam_options))
