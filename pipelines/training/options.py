"""Options of the training pipeline, kept free of Beam, torch and scipy imports.

The command line builds its ``seqrec train`` parser from :func:`add_arguments`
without paying for those imports.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pipelines.training.trainers import BASELINE_NAMES, TRAINER_NAMES

DEFAULT_MODEL = "gru4rec"
DEFAULT_BASELINES = tuple(BASELINE_NAMES)
DEFAULT_MIN_ITEM_SUPPORT = 5
DEFAULT_MIN_SESSION_LENGTH = 2
"""Copies of the ``SplitConfig`` defaults, which a test compares, because importing it loads pandas."""


@dataclass(frozen=True)
class TrainingOptions:
    """The pipeline's own options; Beam's runner options travel separately."""

    registry: str | None
    model: str = DEFAULT_MODEL
    archive: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    dataset: str | None = None
    dataset_format: str | None = None
    reader_options: dict[str, Any] = field(default_factory=dict)
    registry_name: str | None = None
    """Model name in the registry, default the ``--model`` name."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    split: Any = None
    """A ``pipelines.training.sessions.SplitConfig``; None means its defaults."""
    promotion_tolerance: float = 0.0
    """Allowed drop of validation recall@20 against the current version, absolute."""
    register: bool = True
    report: str | None = None
    """Path of the JSON report of counts, metrics and the promotion decision, if wanted."""

    def data_description(self) -> str:
        if self.archive is not None:
            return f"archive {self.archive} from {self.start_date} to {self.end_date}"
        return f"dataset {self.dataset} (format {self.dataset_format or 'detected'})"


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text}: expected an integer >= 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"invalid tolerance {text}: expected a finite number >= 0")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"invalid JSON {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a JSON object such as '{{\"steps\": 5}}'")
    return value


def _model_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in BASELINE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline {', '.join(unknown)}; choose from {', '.join(BASELINE_NAMES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser, *, registering: bool = True) -> None:
    """Add the pipeline's options to ``parser``; ``registering=False`` leaves out the registry options."""
    source = parser.add_argument_group("input (one of --archive or --dataset)")
    source.add_argument("--archive", help="root of the Parquet event archive (folders event_date=YYYY-MM-DD)")
    source.add_argument("--start-date", type=_iso_date, help="first UTC event date read from the archive, inclusive")
    source.add_argument("--end-date", type=_iso_date, help="last UTC event date read from the archive, inclusive")
    source.add_argument("--dataset", help="dataset file in any format that seqrec.readers reads")
    source.add_argument("--format", dest="dataset_format", help="dataset format (default: detected from the first line)")
    source.add_argument("--reader-options", type=_json_object, default={},
                        help='JSON object of reader options, e.g. \'{"columns": {...}, "time_unit": "ms"}\'')

    model = parser.add_argument_group("model and evaluation")
    model.add_argument("--model", default=DEFAULT_MODEL, choices=TRAINER_NAMES, help=f"trainer (default {DEFAULT_MODEL})")
    model.add_argument("--hyperparameters", type=_json_object, default={},
                       help="JSON object of the trainer's hyperparameters, e.g. '{\"steps\": 5}' for sr")
    model.add_argument("--baselines", type=_model_list, default=DEFAULT_BASELINES,
                       help=f"comma-separated baselines evaluated for comparison (default {','.join(DEFAULT_BASELINES)})")
    model.add_argument("--min-item-support", type=_positive_int, default=DEFAULT_MIN_ITEM_SUPPORT,
                       help=f"events an item needs to be kept (default {DEFAULT_MIN_ITEM_SUPPORT})")
    model.add_argument("--min-session-length", type=_positive_int, default=DEFAULT_MIN_SESSION_LENGTH,
                       help=f"events a session needs after rare items are dropped (default {DEFAULT_MIN_SESSION_LENGTH})")
    model.add_argument("--test-days", type=_positive_int, default=1,
                       help="days at the end of the data whose sessions are the test set (default 1)")
    model.add_argument("--validation-days", type=_positive_int, default=1,
                       help="days before the test period whose sessions are the validation set (default 1)")
    model.add_argument("--report", help="write a JSON report of counts, metrics and the decision to this path")

    if registering:
        registry = parser.add_argument_group("registry")
        registry.add_argument("--registry", required=True, help="model registry root directory")
        registry.add_argument("--registry-name", help="model name in the registry (default: the --model name)")
        registry.add_argument("--promotion-tolerance", type=_non_negative, default=0.0,
                              help="allowed drop of validation recall@20 against the current model, absolute (default 0)")
        registry.add_argument("--no-register", dest="register", action="store_false",
                              help="evaluate only: register and promote nothing")


def options_from_args(args: argparse.Namespace) -> TrainingOptions:
    """Build and check :class:`TrainingOptions` from parsed arguments; raises ValueError naming the option."""
    if (args.archive is None) == (args.dataset is None):
        raise ValueError("pass exactly one input: --archive ROOT with --start-date and --end-date, or --dataset FILE")
    if args.archive is not None and (args.start_date is None or args.end_date is None):
        raise ValueError("--archive needs --start-date and --end-date (UTC dates, YYYY-MM-DD, inclusive)")
    if args.archive is not None and args.start_date > args.end_date:
        raise ValueError(f"--start-date {args.start_date} is after --end-date {args.end_date}; swap them")
    from pipelines.training.sessions import SplitConfig

    register = getattr(args, "register", False)
    return TrainingOptions(
        registry=getattr(args, "registry", None),
        model=args.model,
        archive=args.archive,
        start_date=args.start_date,
        end_date=args.end_date,
        dataset=args.dataset,
        dataset_format=args.dataset_format,
        reader_options=args.reader_options,
        registry_name=getattr(args, "registry_name", None),
        hyperparameters=args.hyperparameters,
        baselines=args.baselines,
        split=SplitConfig(
            min_item_support=args.min_item_support,
            min_session_length=args.min_session_length,
            test_period=timedelta(days=args.test_days),
            validation_period=timedelta(days=args.validation_days),
        ),
        promotion_tolerance=getattr(args, "promotion_tolerance", 0.0),
        register=register,
        report=args.report,
    )
