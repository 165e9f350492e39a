"""Benchmark: offline accuracy of the baselines, full ranking over all items.

Usage: python benchmarks/offline_baselines.py DATASET_DIR [DATASET_DIR ...]
           [--baselines NAME,...] [--batch-size N]

Each directory is recognised by its files:

- ``train-sessions.txt`` and ``test-prefix-target.tsv``: the SR-GNN Diginetica
  split, whose test cases are given in the file.
- ``rec15_train_full.txt`` and ``rec15_test.txt``: session-rec's YooChoose
  files. Every next item of every test session is a case. The files are
  already preprocessed, so no support or length filter runs again: a new
  filter on the training file alone would make test items unseen.

Test items unseen in training are removed and counted. Metrics at 20: the
expectation over random order of tied scores, with the pessimistic value
(target last among its ties) beside it. Coverage and the popularity
percentile describe the top-20 lists, ties broken by item index.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.training.baselines import BASELINES, SessionBaseline  # noqa: E402
from pipelines.training.sessions import (  # noqa: E402
    TEST_CASES_FILE,
    TRAIN_SESSIONS_FILE,
    ItemIndex,
    NextItemCases,
    Sessions,
    group_sessions,
    load_srgnn_split,
    next_item_cases,
)
from seqrec.metrics import RankingAccumulator, RankingResult  # noqa: E402

YOOCHOOSE_TRAIN_FILE = "rec15_train_full.txt"
YOOCHOOSE_TEST_FILE = "rec15_test.txt"
CUTOFF = 20


@dataclass(frozen=True)
class Dataset:
    """Training sessions and test cases as item indices, with notes on the case counts."""

    name: str
    train: list[np.ndarray]
    cases: NextItemCases
    n_items: int
    notes: list[str]


def load_diginetica(directory: Path) -> Dataset:
    split = load_srgnn_split(directory)
    counts = split.counts
    notes = [
        f"test cases in {TEST_CASES_FILE}: {counts.cases_in_file:,}",
        f"dropped for a target unseen in training: {counts.unseen_target_cases:,}",
        f"unseen items removed from prefixes: {counts.unseen_prefix_items:,}; "
        f"cases dropped for an empty prefix: {counts.empty_prefix_cases:,}",
        f"test cases evaluated: {counts.cases_kept:,}",
    ]
    return Dataset(f"Diginetica (SR-GNN split, {directory})", split.train, split.cases, len(split.item_index), notes)


def read_session_rec(path: Path) -> pd.DataFrame:
    """Read a session-rec TSV into the seqrec.events columns, ``Time`` seconds to epoch ms."""
    frame = pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64})
    return pd.DataFrame({
        "session_id": frame["SessionId"].to_numpy(),
        "item_id": frame["ItemId"].to_numpy(),
        "event_time": np.round(frame["Time"].to_numpy() * 1000).astype(np.int64),
    })


def load_yoochoose(directory: Path) -> Dataset:
    train_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_TRAIN_FILE))
    test_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_TEST_FILE))
    item_index = ItemIndex.from_sessions(train_raw.items)
    train = [item_index.lookup(items) for items in train_raw.items]
    test, unseen = item_index.encode(test_raw)
    cases = next_item_cases(test.items)
    notes = [
        f"training: {len(train):,} sessions, {train_raw.event_count():,} events, {len(item_index):,} items",
        f"test sessions in {YOOCHOOSE_TEST_FILE}: {unseen.sessions_in:,} with {unseen.events_in:,} events",
        f"test events on items unseen in training: {unseen.unseen_events:,}; sessions then shorter than 2: "
        f"{unseen.short_sessions:,} (holding {unseen.short_session_events:,} events)",
        f"test sessions evaluated: {unseen.sessions_out:,}, next-item cases: {len(cases):,} "
        f"(= {unseen.events_out:,} events - {unseen.sessions_out:,} sessions)",
    ]
    return Dataset(f"YooChoose 1/64 (session-rec files, {directory})", train, cases, len(item_index), notes)


def load_dataset(directory: Path) -> Dataset:
    if (directory / TRAIN_SESSIONS_FILE).exists():
        return load_diginetica(directory)
    if (directory / YOOCHOOSE_TRAIN_FILE).exists():
        return load_yoochoose(directory)
    raise SystemExit(
        f"{directory}: found neither {TRAIN_SESSIONS_FILE} (SR-GNN split) nor "
        f"{YOOCHOOSE_TRAIN_FILE} (session-rec YooChoose files); pass a directory that contains one of them"
    )


def evaluate(model: SessionBaseline, dataset: Dataset, popularity: np.ndarray, batch_size: int) -> RankingResult:
    """Score the test cases in batches and return the accumulated metrics."""
    accumulator = RankingAccumulator(dataset.n_items, cutoffs=(CUTOFF,), item_popularity=popularity, list_length=CUTOFF)
    prefixes, targets = dataset.cases.prefixes, dataset.cases.targets
    for start in range(0, len(prefixes), batch_size):
        stop = start + batch_size
        accumulator.add(model.score(prefixes[start:stop]), targets[start:stop])
    return accumulator.result()


def run_dataset(dataset: Dataset, names: list[str], batch_size: int) -> None:
    print(f"\n## {dataset.name}\n")
    for note in dataset.notes:
        print(f"- {note}")
    popularity = np.bincount(np.concatenate(dataset.train), minlength=dataset.n_items).astype(np.float64)
    print(
        f"\n| baseline | Recall@{CUTOFF} | pess. | MRR@{CUTOFF} | pess. | NDCG@{CUTOFF} | pess. "
        f"| coverage@{CUTOFF} | pop. pct. | fit s | score+eval s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        started = time.perf_counter()
        model = BASELINES[name]().fit(dataset.train, dataset.n_items)
        fitted = time.perf_counter()
        result = evaluate(model, dataset, popularity, batch_size)
        done = time.perf_counter()
        expected, pessimistic = result.expected, result.pessimistic
        cells = [
            f"{100 * table[f'{metric}@{CUTOFF}']:.2f}"
            for metric in ("Recall", "MRR", "NDCG")
            for table in (expected, pessimistic)
        ]
        print(
            f"| {name} | {' | '.join(cells)} | {100 * result.coverage:.2f} "
            f"| {100 * result.popularity_percentile:.1f} | {fitted - started:.1f} | {done - fitted:.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="dataset directories, see the module docstring")
    parser.add_argument(
        "--baselines", default=",".join(BASELINES),
        help=f"comma-separated baseline names (default: all of {', '.join(BASELINES)})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=500,
        help="test cases scored at once (default 500); a batch's score matrix takes batch size x items x 8 bytes",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    names = [name.strip() for name in args.baselines.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        parser.error(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}  "
        f"numpy: {np.__version__}  scipy: {scipy.__version__}"
    )
    print(
        f"metrics in percent; Recall/MRR/NDCG@{CUTOFF}: expectation over random order of tied scores, "
        "'pess.' with the target last among its ties; pop. pct.: mean training popularity "
        f"percentile of the top-{CUTOFF} items (100 = most popular)"
    )
    started = time.perf_counter()
    for directory in args.directories:
        loading = time.perf_counter()
        dataset = load_dataset(directory)
        print(f"\n(loaded {directory} in {time.perf_counter() - loading:.1f} s)")
        run_dataset(dataset, names, args.batch_size)
    print(f"\nwall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
