"""Benchmark: GRU4Rec against the baselines on the same test cases, full ranking over all items.

Usage: python benchmarks/gru4rec_quick.py DATASET_DIR [DATASET_DIR ...] [options]

Each directory is recognised by its files:

- ``rec15_train_tr.txt``, ``rec15_train_valid.txt`` and ``rec15_test.txt``:
  session-rec's YooChoose files. Everything trains on ``rec15_train_tr.txt``;
  GRU4Rec picks its epoch on the next-item cases of ``rec15_train_valid.txt``.
  Items unseen in that training file are removed from validation and test.
- ``train-sessions.txt`` and ``test-prefix-target.tsv``: the SR-GNN Diginetica
  split. It has no validation file, so the newest ``--validation-share`` of
  the training sessions (by file order, which is time order) is held out for
  validation, and everything trains on the rest.

Baselines are fitted on exactly the sessions GRU4Rec trains on. Metrics at 20
are the expectation over random order of tied scores.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.offline_baselines import CUTOFF, Dataset, evaluate, read_session_rec  # noqa: E402
from pipelines.training.baselines import BASELINES  # noqa: E402
from pipelines.training.gru4rec import GRU4Rec, GRU4RecConfig  # noqa: E402
from pipelines.training.sessions import (  # noqa: E402
    TRAIN_SESSIONS_FILE,
    ItemIndex,
    NextItemCases,
    group_sessions,
    load_srgnn_split,
    next_item_cases,
)

YOOCHOOSE_TRAIN_FILE = "rec15_train_tr.txt"
YOOCHOOSE_VALID_FILE = "rec15_train_valid.txt"
YOOCHOOSE_TEST_FILE = "rec15_test.txt"


def load_yoochoose(directory: Path) -> tuple[Dataset, NextItemCases]:
    train_raw = group_sessions(read_session_rec(directory / YOOCHOOSE_TRAIN_FILE))
    item_index = ItemIndex.from_sessions(train_raw.items)
    train = [item_index.lookup(items) for items in train_raw.items]
    valid, _ = item_index.encode(group_sessions(read_session_rec(directory / YOOCHOOSE_VALID_FILE)))
    test, unseen = item_index.encode(group_sessions(read_session_rec(directory / YOOCHOOSE_TEST_FILE)))
    cases = next_item_cases(test.items)
    notes = [
        f"training ({YOOCHOOSE_TRAIN_FILE}): {len(train):,} sessions, {len(item_index):,} items",
        f"validation ({YOOCHOOSE_VALID_FILE}): {len(valid):,} sessions",
        f"test: {unseen.sessions_out:,} sessions, {len(cases):,} cases "
        f"({unseen.unseen_events:,} events on unseen items removed)",
    ]
    dataset = Dataset(f"YooChoose 1/64 ({directory})", train, cases, len(item_index), notes)
    return dataset, next_item_cases(valid.items)


def load_diginetica(directory: Path, validation_share: float) -> tuple[Dataset, NextItemCases]:
    split = load_srgnn_split(directory)
    n_valid = int(round(len(split.train) * validation_share))
    train, valid = split.train[: len(split.train) - n_valid], split.train[len(split.train) - n_valid:]
    notes = [
        f"training: the oldest {len(train):,} of {len(split.train):,} sessions, {len(split.item_index):,} items",
        f"validation: the newest {len(valid):,} training sessions",
        f"test cases: {len(split.cases):,}",
    ]
    dataset = Dataset(f"Diginetica (SR-GNN split, {directory})", train, split.cases, len(split.item_index), notes)
    return dataset, next_item_cases(valid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="dataset directories, see the module docstring")
    parser.add_argument("--baselines", default="POP,SR,V-SKNN", help="comma-separated baseline names")
    parser.add_argument("--epochs", type=int, default=5, help="GRU4Rec training epochs")
    parser.add_argument("--hidden-size", type=int, default=100, help="GRU units")
    parser.add_argument("--batch-size", type=int, default=64, help="session-parallel slots")
    parser.add_argument("--n-sample", type=int, default=2048, help="sampled negatives per step")
    parser.add_argument("--sample-alpha", type=float, default=0.75, help="popularity exponent of sampling")
    parser.add_argument("--learning-rate", type=float, default=0.08, help="Adagrad learning rate")
    parser.add_argument("--loss", default="cross-entropy", help="cross-entropy or bpr-max")
    parser.add_argument("--dropout-hidden", type=float, default=0.0, help="dropout on the GRU output")
    parser.add_argument("--dropout-embedding", type=float, default=0.0, help="dropout on the input embedding")
    parser.add_argument("--logq", type=float, default=0.0, help="logQ correction strength")
    parser.add_argument("--constrained-embedding", action="store_true", help="tie input and output embeddings")
    parser.add_argument(
        "--validation-share", type=float, default=0.05,
        help="share of the newest Diginetica training sessions held out for validation (default 0.05)",
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar per epoch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    config = GRU4RecConfig(
        hidden_size=args.hidden_size, batch_size=args.batch_size, n_sample=args.n_sample,
        sample_alpha=args.sample_alpha, learning_rate=args.learning_rate, loss=args.loss,
        dropout_hidden=args.dropout_hidden, dropout_embedding=args.dropout_embedding, logq=args.logq,
        constrained_embedding=args.constrained_embedding, epochs=args.epochs, show_progress=args.progress,
    )
    names = [name.strip() for name in args.baselines.split(",") if name.strip()]
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  machine: {platform.machine()}  "
        f"torch: {torch.__version__}"
    )
    print(f"config: {config}")
    started = time.perf_counter()
    for directory in args.directories:
        if (directory / TRAIN_SESSIONS_FILE).exists():
            dataset, valid = load_diginetica(directory, args.validation_share)
        else:
            dataset, valid = load_yoochoose(directory)
        print(f"\n## {dataset.name}\n")
        for note in dataset.notes:
            print(f"- {note}")
        popularity = np.bincount(np.concatenate(dataset.train), minlength=dataset.n_items).astype(np.float64)
        print(f"\n| model | Recall@{CUTOFF} | MRR@{CUTOFF} | fit s | eval s |")
        print("|---|---|---|---|---|")
        fitting = time.perf_counter()
        model = GRU4Rec(config).fit(dataset.train, dataset.n_items, valid_cases=valid)
        fitted = time.perf_counter()
        result = evaluate(model, dataset, popularity, batch_size=500)
        done = time.perf_counter()
        print(
            f"| GRU4Rec | {100 * result.expected[f'Recall@{CUTOFF}']:.2f} | {100 * result.expected[f'MRR@{CUTOFF}']:.2f} "
            f"| {fitted - fitting:.1f} | {done - fitted:.1f} |"
        )
        for name in names:
            fitting = time.perf_counter()
            baseline = BASELINES[name]().fit(dataset.train, dataset.n_items)
            fitted = time.perf_counter()
            result = evaluate(baseline, dataset, popularity, batch_size=500)
            done = time.perf_counter()
            print(
                f"| {name} | {100 * result.expected[f'Recall@{CUTOFF}']:.2f} "
                f"| {100 * result.expected[f'MRR@{CUTOFF}']:.2f} | {fitted - fitting:.1f} | {done - fitted:.1f} |"
            )
        print("\nGRU4Rec epochs (training events/s, validation Recall@20 / MRR@20):")
        for record in model.history:
            print(
                f"- epoch {record.epoch}: loss {record.loss:.4f}, {record.events_per_second:,.0f} events/s, "
                f"{100 * record.validation['Recall@20']:.2f} / {100 * record.validation['MRR@20']:.2f}"
            )
    print(f"\nwall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
