"""GRU4Rec: a recurrent next-item model trained with session-parallel mini-batches.

:class:`GRU4Rec` wraps the network (:mod:`.gru4rec_model`), the batching and
sampling (:mod:`.gru4rec_batches`) and the training loop (:mod:`.gru4rec_train`)
behind the scoring interface of :mod:`.baselines`: ``score(prefixes)``
returns a float64 array ``n_cases x n_items``, higher is better. Unlike the
baselines, ``fit`` also takes validation cases, which choose the epoch kept.

>>> import numpy as np
>>> sessions = [np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([2, 3, 0])]
>>> config = GRU4RecConfig(hidden_size=8, batch_size=2, n_sample=4, epochs=1, device="cpu")
>>> model = GRU4Rec(config).fit(sessions, n_items=4)
>>> model.score([np.array([0, 1])]).shape
(1, 4)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipelines.training.gru4rec_export import export_scripted
from pipelines.training.gru4rec_model import GRU4RecConfig, GRU4RecNetwork
from pipelines.training.gru4rec_train import EpochRecord, train_network
from pipelines.training.sessions import NextItemCases
from seqrec.metrics import RankingAccumulator

__all__ = ["GRU4Rec", "GRU4RecConfig"]

log = logging.getLogger(__name__)

STATE_FILE = "model.pt"
CONFIG_FILE = "config.json"


class GRU4Rec:
    """GRU4Rec with :class:`GRU4RecConfig` hyperparameters; call :meth:`fit`, then :meth:`score`."""

    name = "GRU4Rec"

    def __init__(self, config: GRU4RecConfig = GRU4RecConfig()):
        self.config = config
        self.network: GRU4RecNetwork | None = None
        self.history: list[EpochRecord] = []

    @property
    def n_items(self) -> int | None:
        return None if self.network is None else self.network.n_items

    def fit(
        self, train_sessions: Sequence[np.ndarray], n_items: int, valid_cases: NextItemCases | None = None
    ) -> GRU4Rec:
        """Train on time-ordered sessions of item indices ``0 .. n_items - 1``; returns self.

        After every epoch the model ranks all items for each validation case,
        and the epoch with the best Recall@20 (expected over tie order) is kept.
        Without ``valid_cases`` the last epoch is kept. Test data has no place here.
        """
        if not len(train_sessions):
            raise ValueError("GRU4Rec: no training sessions to fit on")
        _check_items(train_sessions, n_items, "training session")
        torch.manual_seed(self.config.seed)
        self.network = GRU4RecNetwork(n_items, self.config).to(self.config.resolved_device())
        validate = None
        if valid_cases is not None:
            if not len(valid_cases):
                raise ValueError("valid_cases is empty; pass None to train without validation")
            validate = lambda: self.evaluate(valid_cases)  # noqa: E731
        self.history = train_network(self.network, train_sessions, self.config, validate)
        return self

    def score(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        """Score every item after each prefix: returns ``len(prefixes) x n_items`` float64.

        Each prefix runs through the GRU from a zero hidden state, in eval mode.
        """
        if self.network is None:
            raise ValueError("GRU4Rec is not fitted; call fit(train_sessions, n_items) or GRU4Rec.load(path) first")
        _check_items(prefixes, self.network.n_items, "prefix")
        if not len(prefixes):
            return np.zeros((0, self.network.n_items))
        device = next(self.network.parameters()).device
        self.network.eval()
        rows = []
        with torch.no_grad():
            for start in range(0, len(prefixes), self.config.score_batch_size):
                chunk = prefixes[start:start + self.config.score_batch_size]
                lengths = torch.tensor([len(prefix) for prefix in chunk], dtype=torch.int64)
                padded = torch.zeros(int(lengths.max()), len(chunk), dtype=torch.int64)  # (T, B)
                for column, prefix in enumerate(chunk):
                    padded[: len(prefix), column] = torch.as_tensor(np.asarray(prefix), dtype=torch.int64)
                output = self.network.encode_prefixes(padded.to(device), lengths)  # (B, H)
                rows.append(self.network.item_logits(output).double().cpu().numpy())  # (B, n_items)
        return np.concatenate(rows)

    def evaluate(self, cases: NextItemCases) -> dict[str, float]:
        """Rank all items for each case and return the mean metrics, expected over tie order."""
        accumulator = RankingAccumulator(self.network.n_items)
        for start in range(0, len(cases), self.config.score_batch_size):
            stop = start + self.config.score_batch_size
            accumulator.add(self.score(cases.prefixes[start:stop]), cases.targets[start:stop])
        return accumulator.result().expected

    def save(self, path: str | Path) -> None:
        """Write the weights (``model.pt``), the config with the item count (``config.json``) and a
        TorchScript inference module for serving (``model.ts``) to directory ``path``."""
        if self.network is None:
            raise ValueError("GRU4Rec is not fitted, so there is nothing to save")
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu() for name, tensor in self.network.state_dict().items()}
        torch.save(state, directory / STATE_FILE)
        description = {"n_items": self.network.n_items, "config": dataclasses.asdict(self.config)}
        (directory / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
        export_scripted(self.network, directory)

    @classmethod
    def load(cls, path: str | Path, device: str | None = "cpu") -> GRU4Rec:
        """Read a model written by :meth:`save`, onto ``device`` (CPU by default)."""
        directory = Path(path)
        description = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        config = dataclasses.replace(GRU4RecConfig(**description["config"]), device=device)
        model = cls(config)
        model.network = GRU4RecNetwork(int(description["n_items"]), config)
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        model.network.load_state_dict(state)
        model.network.to(config.resolved_device())
        return model


def _check_items(sessions: Sequence[np.ndarray], n_items: int, kind: str) -> None:
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    for position, items in enumerate(sessions):
        items = np.asarray(items)
        if not len(items):
            raise ValueError(f"{kind} {position} is empty; every {kind} needs at least one item")
        if items.min() < 0 or items.max() >= n_items:
            raise ValueError(f"{kind} {position} contains an item outside 0..{n_items - 1}: {items.tolist()}")
