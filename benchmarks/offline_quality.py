"""Benchmark: offline accuracy of GRU4Rec and the baselines in one run, full ranking over all items.

Usage: python benchmarks/offline_quality.py DIGINETICA_DIR YOOCHOOSE_DIR [options]

- ``DIGINETICA_DIR`` contains the SR-GNN Diginetica split (``train-sessions.txt``
  and ``test-prefix-target.tsv``), whose test cases are given in the file.
- ``YOOCHOOSE_DIR`` contains session-rec's YooChoose 1/64 files. Every model
  trains on ``rec15_train_full.txt``, and every next item of every session of
  ``rec15_test.txt`` is a test case. The files are already preprocessed, so no
  support or length filter runs again: a new filter on the training file alone
  would make test items unseen.

Test items unseen in training are removed and counted. The item index is that
of the whole training data, so every model ranks the same items.

GRU4Rec chooses its number of epochs on a validation set cut from the
training data by time, never on the test set. On YooChoose it trains on
``rec15_train_tr.txt`` and validates on ``rec15_train_valid.txt``. The SR-GNN
split has no timestamps, but its training sessions are in time order, so the
newest ``--validation-share`` of them validate a model trained on the rest.
After that, GRU4Rec trains again on the whole training data for the chosen
number of epochs, unless ``--refit`` leaves the dataset out: then the
validated model is tested.
The baselines have no epochs and train on the whole training data.

Metrics at 20: the headline is the expectation over a random order of the
items tied with the target, and "pess." puts the target last among its ties.
Training events/s counts the events of the training sessions that a model
consumed per second of fitting: per epoch for GRU4Rec, once for a baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.training.baselines import BASELINES  # noqa: E402
from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig  # noqa: E402
from pipelines.training.gru4rec_train import SELECTION_METRIC  # noqa: E402
from pipelines.training.cases import NextItemCases, next_item_cases  # noqa: E402
from pipelines.training.sessions import ItemIndex, group_sessions  # noqa: E402
from pipelines.training.srgnn_split import TEST_CASES_FILE, TRAIN_SESSIONS_FILE, load_srgnn_split  # noqa: E402
from seqrec.metrics import RankingAccumulator, RankingResult  # noqa: E402

log = logging.getLogger("offline_quality")

YOOCHOOSE_TRAIN_FILE = "rec15_train_full.txt"
YOOCHOOSE_TEST_FILE = "rec15_test.txt"
YOOCHOOSE_FIT_FILE = "rec15_train_tr.txt"
YOOCHOOSE_VALID_FILE = "rec15_train_valid.txt"
CUTOFF = 20
GRU4REC = "GRU4Rec"
MODEL_NAMES = (*BASELINES, GRU4REC)

QUICK_TRAIN_SESSIONS = 10_000
"""With ``--quick``: the newest training sessions kept."""
QUICK_TEST_CASES = 1_000
"""With ``--quick``: the first test cases kept."""

GRU4REC_DEFAULTS: dict[str, dict[str, Any]] = {
    "diginetica": dict(
        hidden_size=100, constrained_embedding=True, dropout_hidden=0.2, logq=1.0, loss="cross-entropy",
        learning_rate=0.08, batch_size=64, n_sample=2048, sample_alpha=0.75, epochs=6,
    ),
    "yoochoose": dict(
        hidden_size=100, constrained_embedding=True, dropout_hidden=0.2, logq=1.0, loss="cross-entropy",
        learning_rate=0.08, batch_size=64, n_sample=2048, sample_alpha=0.75, epochs=5,
    ),
}
"""GRU4Rec hyperparameters per dataset; ``--hyperparameters`` and ``--epochs`` override them."""


@dataclass(frozen=True)
class Dataset:
    """Training sessions, the GRU4Rec validation split and the test cases, as item indices."""

    key: str
    title: str
    train: list[np.ndarray]
    validation_train: list[np.ndarray]
    validation_cases: NextItemCases
    test_cases: NextItemCases
    n_items: int
    counts: dict[str, int]
    notes: list[str]


@dataclass(frozen=True)
class ModelResult:
    """Test metrics, throughput and timings of one model on one dataset."""

    name: str
    metrics: RankingResult
    train_events_per_second: float
    fit_seconds: float
    evaluate_seconds: float
    details: dict[str, Any]


def event_count(sessions: Sequence[np.ndarray]) -> int:
    return int(sum(len(items) for items in sessions))


def load_diginetica(directory: Path, validation_share: float) -> Dataset:
    """Read the SR-GNN split and hold out its newest training sessions for validation."""
    split = load_srgnn_split(directory)
    counts = split.counts
    n_validation = int(round(len(split.train) * validation_share))
    validation_train = split.train[: len(split.train) - n_validation]
    validation_sessions = split.train[len(split.train) - n_validation:]
    notes = [
        f"training: {len(split.train):,} sessions, {event_count(split.train):,} events, "
        f"{len(split.item_index):,} items",
        f"test cases in {TEST_CASES_FILE}: {counts.cases_in_file:,}; dropped for a target unseen in training: "
        f"{counts.unseen_target_cases:,}; unseen items removed from prefixes: {counts.unseen_prefix_items:,}; "
        f"dropped for an empty prefix: {counts.empty_prefix_cases:,}",
        f"test cases kept: {counts.cases_kept:,}",
        f"GRU4Rec validation: trains on the oldest {len(validation_train):,} training sessions, "
        f"validates on the newest {len(validation_sessions):,}",
    ]
    return Dataset(
        key="diginetica",
        title=f"Diginetica, SR-GNN split ({directory})",
        train=split.train,
        validation_train=validation_train,
        validation_cases=next_item_cases(validation_sessions),
        test_cases=split.cases,
        n_items=len(split.item_index),
        counts={
            "test_cases_in_file": counts.cases_in_file,
            "unseen_target_cases_removed": counts.unseen_target_cases,
            "unseen_prefix_items_removed": counts.unseen_prefix_items,
            "empty_prefix_cases_removed": counts.empty_prefix_cases,
            "test_cases_kept": counts.cases_kept,
        },
        notes=notes,
    )


def read_session_rec(path: Path) -> pd.DataFrame:
    """Read a session-rec TSV into the seqrec.events columns, ``Time`` seconds to epoch ms."""
    frame = pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64})
    return pd.DataFrame({
        "session_id": frame["SessionId"].to_numpy(),
        "item_id": frame["ItemId"].to_numpy(),
        "event_time": np.round(frame["Time"].to_numpy() * 1000).astype(np.int64),
    })


def load_yoochoose(directory: Path) -> Dataset:
    """Read the training, test and validation files over the item index of the training file."""
    train_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_TRAIN_FILE))
    test_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_TEST_FILE))
    item_index = ItemIndex.from_sessions(train_raw.items)
    train = [item_index.lookup(items) for items in train_raw.items]
    test, unseen = item_index.encode(test_raw)

    # The validation model has embeddings trained only for the items of its own training file, so
    # validation events on other items are removed as they are for the test.
    fit_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_FIT_FILE))
    validation_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_VALID_FILE))
    fit_index = ItemIndex.from_sessions(fit_raw.items)
    validation, validation_unseen = fit_index.encode(validation_raw)
    validation_train = [item_index.lookup(items) for items in fit_raw.items]
    validation_sessions = [item_index.lookup(fit_index.item_ids[items]) for items in validation.items]
    if any((items < 0).any() for items in validation_train + validation_sessions):
        raise ValueError(
            f"{directory}: {YOOCHOOSE_FIT_FILE} or {YOOCHOOSE_VALID_FILE} has items missing from "
            f"{YOOCHOOSE_TRAIN_FILE}; expected the validation files to be a split of the training file"
        )

    test_cases = next_item_cases(test.items)
    validation_cases = next_item_cases(validation_sessions)
    notes = [
        f"training ({YOOCHOOSE_TRAIN_FILE}): {len(train):,} sessions, {train_raw.event_count():,} events, "
        f"{len(item_index):,} items",
        f"test sessions in {YOOCHOOSE_TEST_FILE}: {unseen.sessions_in:,} with {unseen.events_in:,} events; "
        f"events on items unseen in training removed: {unseen.unseen_events:,}; sessions then shorter than 2 "
        f"removed: {unseen.short_sessions:,} (holding {unseen.short_session_events:,} events)",
        f"test sessions kept: {unseen.sessions_out:,}; next-item cases kept: {len(test_cases):,} "
        f"(= {unseen.events_out:,} events - {unseen.sessions_out:,} sessions)",
        f"GRU4Rec validation: trains on {YOOCHOOSE_FIT_FILE} ({len(validation_train):,} sessions), validates "
        f"on {len(validation_cases):,} cases of {YOOCHOOSE_VALID_FILE} "
        f"({validation_unseen.unseen_events:,} events on items unseen in {YOOCHOOSE_FIT_FILE} removed)",
    ]
    return Dataset(
        key="yoochoose",
        title=f"YooChoose 1/64, session-rec files ({directory})",
        train=train,
        validation_train=validation_train,
        validation_cases=validation_cases,
        test_cases=test_cases,
        n_items=len(item_index),
        counts={
            "test_sessions_in_file": unseen.sessions_in,
            "test_events_in_file": unseen.events_in,
            "unseen_events_removed": unseen.unseen_events,
            "short_sessions_removed": unseen.short_sessions,
            "test_sessions_kept": unseen.sessions_out,
            "test_cases_kept": len(test_cases),
        },
        notes=notes,
    )


def shrink(dataset: Dataset) -> Dataset:
    """Keep the newest training sessions and the first test cases, for a smoke run (``--quick``)."""
    train = dataset.train[-QUICK_TRAIN_SESSIONS:]
    validation_train = dataset.validation_train[-QUICK_TRAIN_SESSIONS:]
    cases = dataset.test_cases
    first_cases = slice(0, QUICK_TEST_CASES)
    test_cases = NextItemCases(cases.prefixes[first_cases], cases.targets[first_cases], cases.sources[first_cases])
    validation = dataset.validation_cases
    validation_cases = NextItemCases(
        validation.prefixes[first_cases], validation.targets[first_cases], validation.sources[first_cases]
    )
    note = (
        f"--quick: only the newest {len(train):,} training sessions and the first {len(test_cases):,} "
        "test cases; the counts above are those of the whole files"
    )
    return dataclasses.replace(
        dataset, train=train, validation_train=validation_train, validation_cases=validation_cases,
        test_cases=test_cases, notes=[*dataset.notes, note],
    )


def evaluate(score: Callable[[list[np.ndarray]], np.ndarray], dataset: Dataset, batch_size: int) -> RankingResult:
    """Score the test cases in batches and return the accumulated metrics."""
    popularity = np.bincount(np.concatenate(dataset.train), minlength=dataset.n_items).astype(np.float64)
    accumulator = RankingAccumulator(dataset.n_items, cutoffs=(CUTOFF,), item_popularity=popularity, list_length=CUTOFF)
    prefixes, targets = dataset.test_cases.prefixes, dataset.test_cases.targets
    for start in range(0, len(prefixes), batch_size):
        stop = start + batch_size
        accumulator.add(score(prefixes[start:stop]), targets[start:stop])
    return accumulator.result()


def run_baseline(name: str, dataset: Dataset, batch_size: int) -> ModelResult:
    started = time.perf_counter()
    model = BASELINES[name]().fit(dataset.train, dataset.n_items)
    fitted = time.perf_counter()
    metrics = evaluate(model.score, dataset, batch_size)
    fit_seconds = fitted - started
    return ModelResult(
        name, metrics, event_count(dataset.train) / max(fit_seconds, 1e-9), fit_seconds,
        time.perf_counter() - fitted, {},
    )


def describe_epochs(model: GRU4Rec) -> list[dict[str, Any]]:
    return [
        {
            "epoch": record.epoch,
            "loss": record.loss,
            "events_per_second": record.events_per_second,
            "validation": record.validation,
        }
        for record in model.history
    ]


def run_gru4rec(config: GRU4RecConfig, dataset: Dataset, batch_size: int, refit: bool) -> ModelResult:
    """Choose the epoch count on validation, then (with ``refit``) train on all training sessions."""
    started = time.perf_counter()
    validated = GRU4Rec(config).fit(dataset.validation_train, dataset.n_items, valid_cases=dataset.validation_cases)
    best = max(validated.history, key=lambda record: (record.validation[SELECTION_METRIC], -record.epoch))
    details: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "validation_epochs": describe_epochs(validated),
        "chosen_epochs": best.epoch,
        "validation_seconds": time.perf_counter() - started,
    }
    log.info(
        "%s: validation chose %d epochs (%s %.4f)",
        dataset.key, best.epoch, SELECTION_METRIC, best.validation[SELECTION_METRIC],
    )
    model = validated
    if refit:
        refitting = time.perf_counter()
        model = GRU4Rec(dataclasses.replace(config, epochs=best.epoch)).fit(dataset.train, dataset.n_items)
        details["refit_epochs"] = describe_epochs(model)
        details["refit_seconds"] = time.perf_counter() - refitting
    fitted = time.perf_counter()
    metrics = evaluate(model.score, dataset, batch_size)
    events_per_second = float(np.mean([record.events_per_second for record in model.history]))
    return ModelResult(GRU4REC, metrics, events_per_second, fitted - started, time.perf_counter() - fitted, details)


def format_table(results: list[ModelResult]) -> list[str]:
    lines = [
        f"| model | Recall@{CUTOFF} | pess. | MRR@{CUTOFF} | pess. | NDCG@{CUTOFF} | pess. "
        "| train events/s | fit s | eval s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        expected, pessimistic = result.metrics.expected, result.metrics.pessimistic
        cells = [
            f"{100 * table[f'{metric}@{CUTOFF}']:.2f}"
            for metric in ("Recall", "MRR", "NDCG")
            for table in (expected, pessimistic)
        ]
        lines.append(
            f"| {result.name} | {' | '.join(cells)} | {result.train_events_per_second:,.0f} "
            f"| {result.fit_seconds:.1f} | {result.evaluate_seconds:.1f} |"
        )
    return lines


def gru4rec_config(dataset_key: str, overrides: dict[str, Any], epochs: int | None, progress: bool) -> GRU4RecConfig:
    settings = {**GRU4REC_DEFAULTS[dataset_key], **overrides}
    if epochs is not None:
        settings["epochs"] = epochs
    return GRU4RecConfig(**settings, show_progress=progress)


def run_dataset(dataset: Dataset, names: list[str], config: GRU4RecConfig, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    results = []
    for name in names:
        log.info("%s: fitting and evaluating %s", dataset.key, name)
        if name == GRU4REC:
            results.append(run_gru4rec(config, dataset, args.batch_size, refit=dataset.key in args.refit_keys))
        else:
            results.append(run_baseline(name, dataset, args.batch_size))
    wall_seconds = time.perf_counter() - started

    print(f"\n## {dataset.title}\n")
    for note in dataset.notes:
        print(f"- {note}")
    print()
    for line in format_table(results):
        print(line)
    print(f"\nwall time for this dataset: {wall_seconds:.1f} s")
    for result in results:
        if result.name != GRU4REC:
            continue
        print(f"\nGRU4Rec: {config}")
        print(f"epochs chosen on validation: {result.details['chosen_epochs']}")
        for record in result.details["validation_epochs"]:
            validation = record["validation"]
            print(
                f"- validation run, epoch {record['epoch']}: loss {record['loss']:.4f}, "
                f"{record['events_per_second']:,.0f} events/s, Recall@20 {100 * validation['Recall@20']:.2f}, "
                f"MRR@20 {100 * validation['MRR@20']:.2f}"
            )
        for record in result.details.get("refit_epochs", []):
            print(
                f"- refit on all training sessions, epoch {record['epoch']}: loss {record['loss']:.4f}, "
                f"{record['events_per_second']:,.0f} events/s"
            )
    return {
        "dataset": dataset.title,
        "counts": dataset.counts,
        "notes": dataset.notes,
        "wall_seconds": wall_seconds,
        "models": [
            {
                "name": result.name,
                "cases": result.metrics.cases,
                "expected": result.metrics.expected,
                "pessimistic": result.metrics.pessimistic,
                "coverage": result.metrics.coverage,
                "popularity_percentile": result.metrics.popularity_percentile,
                "train_events_per_second": result.train_events_per_second,
                "fit_seconds": result.fit_seconds,
                "evaluate_seconds": result.evaluate_seconds,
                **result.details,
            }
            for result in results
        ],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diginetica", type=Path, help=f"directory with {TRAIN_SESSIONS_FILE} and {TEST_CASES_FILE}")
    parser.add_argument("yoochoose", type=Path, help=f"directory with {YOOCHOOSE_TRAIN_FILE} and {YOOCHOOSE_TEST_FILE}")
    parser.add_argument(
        "--datasets", default="diginetica,yoochoose",
        help="comma-separated datasets to run (default: diginetica,yoochoose)",
    )
    parser.add_argument(
        "--models", default=",".join(MODEL_NAMES),
        help=f"comma-separated models (default: all of {', '.join(MODEL_NAMES)})",
    )
    parser.add_argument(
        "--epochs", type=int, default=None,
        help="GRU4Rec's maximum number of epochs; validation picks the best of them (default: per dataset, "
        + ", ".join(f"{key} {values['epochs']}" for key, values in GRU4REC_DEFAULTS.items()) + ")",
    )
    parser.add_argument(
        "--hyperparameters", type=json.loads, default={},
        help="JSON object of GRU4RecConfig fields that override the per-dataset defaults, "
        "e.g. '{\"hidden_size\": 200, \"loss\": \"bpr-max\"}'",
    )
    parser.add_argument(
        "--validation-share", type=float, default=0.05,
        help="share of the newest Diginetica training sessions that validate GRU4Rec (default 0.05)",
    )
    parser.add_argument(
        "--refit", default="diginetica,yoochoose",
        help="comma-separated datasets on which GRU4Rec trains again on all training sessions for the chosen "
        "number of epochs (default: both); on the others the validated model is tested",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"smoke run: the newest {QUICK_TRAIN_SESSIONS:,} training sessions and the first "
        f"{QUICK_TEST_CASES:,} test and validation cases of each dataset",
    )
    parser.add_argument(
        "--batch-size", type=int, default=500,
        help="test cases scored at once (default 500); a batch's score matrix takes batch size x items x 8 bytes",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per GRU4Rec epoch")
    parser.add_argument("--output", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    args.dataset_keys = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = [name for name in args.dataset_keys if name not in GRU4REC_DEFAULTS]
    if unknown or not args.dataset_keys:
        parser.error(f"--datasets: unknown or empty {unknown}; choose from {', '.join(GRU4REC_DEFAULTS)}")
    args.refit_keys = [name.strip() for name in args.refit.split(",") if name.strip()]
    unknown = [name for name in args.refit_keys if name not in GRU4REC_DEFAULTS]
    if unknown:
        parser.error(f"--refit: unknown {unknown}; choose from {', '.join(GRU4REC_DEFAULTS)}")
    args.model_names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.model_names if name not in MODEL_NAMES]
    if unknown or not args.model_names:
        parser.error(f"--models: unknown or empty {unknown}; choose from {', '.join(MODEL_NAMES)}")
    if not isinstance(args.hyperparameters, dict):
        parser.error(f"--hyperparameters must be a JSON object, got {args.hyperparameters!r}")
    if not 0.0 < args.validation_share < 1.0:
        parser.error(f"--validation-share must be between 0 and 1, got {args.validation_share}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = {
        key: gru4rec_config(key, args.hyperparameters, args.epochs, args.progress) for key in args.dataset_keys
    }

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"started: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average at start: {os.getloadavg()}")
    print(
        f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  machine: {platform.machine()}  "
        f"python: {platform.python_version()}  numpy: {np.__version__}  torch: {torch.__version__}"
    )
    print(
        f"metrics in percent; Recall/MRR/NDCG@{CUTOFF}: expectation over a random order of tied scores, "
        "'pess.' with the target last among its ties"
    )
    started = time.perf_counter()
    report: dict[str, Any] = {"command": sys.argv, "quick": args.quick, "datasets": {}}
    for key in args.dataset_keys:
        loading = time.perf_counter()
        if key == "diginetica":
            dataset = load_diginetica(args.diginetica, args.validation_share)
        else:
            dataset = load_yoochoose(args.yoochoose)
        if args.quick:
            dataset = shrink(dataset)
        log.info("loaded %s in %.1f s", dataset.title, time.perf_counter() - loading)
        report["datasets"][key] = run_dataset(dataset, args.model_names, configs[key], args)
        if args.output is not None:
            args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    wall_seconds = time.perf_counter() - started
    report["wall_seconds"] = wall_seconds
    report["load_average_at_end"] = os.getloadavg()
    print(f"\nwall time: {wall_seconds:.1f} s; load average at the end: {os.getloadavg()}")
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
