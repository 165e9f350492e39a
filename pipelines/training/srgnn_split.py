"""The SR-GNN Diginetica split: training sessions and test cases cut in advance, read from two text files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.training.cases import NextItemCases
from pipelines.training.sessions import ItemIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SrgnnCounts:
    """Test cases of the SR-GNN split: read, dropped by rule, and kept.

    A case is dropped when its target is unseen in training. Unseen items are
    removed from the prefixes of the remaining cases (``unseen_prefix_items``),
    and a case whose prefix is then empty is dropped too.
    """

    cases_in_file: int
    unseen_target_cases: int
    unseen_prefix_items: int
    empty_prefix_cases: int
    cases_kept: int


@dataclass(frozen=True)
class SrgnnSplit:
    """The SR-GNN Diginetica split: training sessions and test cases as item indices."""

    train: list[np.ndarray]
    cases: NextItemCases
    item_index: ItemIndex
    counts: SrgnnCounts


TRAIN_SESSIONS_FILE = "train-sessions.txt"
TEST_CASES_FILE = "test-prefix-target.tsv"


def load_srgnn_split(directory: str | Path) -> SrgnnSplit:
    """Read ``train-sessions.txt`` and ``test-prefix-target.tsv`` from ``directory``.

    Training lines are sessions of space-separated integer item ids, in time
    order. The test file has the header ``prefix<TAB>target``, one case per
    line. Unseen items are handled as :class:`SrgnnCounts` describes.
    """
    directory = Path(directory)
    raw_train = [np.array(line.split(), dtype=np.int64) for line in _data_lines(directory / TRAIN_SESSIONS_FILE)]
    raw_train = [session for session in raw_train if len(session)]
    item_index = ItemIndex.from_sessions(raw_train)
    train = [item_index.lookup(session) for session in raw_train]

    lines = _data_lines(directory / TEST_CASES_FILE)
    header = lines.pop(0) if lines else ""
    if header.split("\t") != ["prefix", "target"]:
        raise ValueError(f"{directory / TEST_CASES_FILE}: expected the header 'prefix<TAB>target', got {header!r}")
    prefixes, targets, sources = [], [], []
    unseen_target_cases = unseen_prefix_items = empty_prefix_cases = 0
    for row, line in enumerate(lines):
        prefix_text, target_text = line.split("\t")
        target = item_index.lookup(np.array([int(target_text)]))[0]
        if target < 0:
            unseen_target_cases += 1
            continue
        prefix = item_index.lookup(np.array(prefix_text.split(), dtype=np.int64))
        known = prefix[prefix >= 0]
        unseen_prefix_items += len(prefix) - len(known)
        if not len(known):
            empty_prefix_cases += 1
            continue
        prefixes.append(known)
        targets.append(target)
        sources.append(row)
    cases = NextItemCases(prefixes, np.array(targets, dtype=np.int64), np.array(sources, dtype=np.int64))
    counts = SrgnnCounts(len(lines), unseen_target_cases, unseen_prefix_items, empty_prefix_cases, len(cases))
    log.info(
        "SR-GNN split %s: %d training sessions, %d items, %d of %d test cases kept "
        "(%d with an unseen target, %d with an empty prefix after removing %d unseen items)",
        directory, len(train), len(item_index), counts.cases_kept, counts.cases_in_file,
        counts.unseen_target_cases, counts.empty_prefix_cases, counts.unseen_prefix_items,
    )
    return SrgnnSplit(train, cases, item_index, counts)


def _data_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as file:
        return [line.rstrip("\r\n") for line in file if line.strip()]
