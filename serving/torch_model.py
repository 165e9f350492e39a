"""The nightly Torch model in serving: a TorchScript module and its item index, from the model registry.

A version directory written by GRU4Rec contains ``model.ts`` (input: the item
indices of one session prefix, oldest first, LongTensor ``(T,)``; output: the
logits over all items, ``(n_items,)``) and ``item_index.json`` (item ids in
index order). Serving needs torch and this module, not the training code.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from seqrec.registry import ModelRegistry, RegistryError

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT = "gru4rec-torch-v1"
"""Registry artifact format that serving loads: the format GRU4Rec training registers."""
SCRIPTED_FILE = "model.ts"
ITEM_INDEX_FILE = "item_index.json"
MAX_SEQUENCE_ITEMS = 50
"""Items of a session fed to the GRU, the latest ones; older items barely move its hidden state."""


class ModelLoadError(RuntimeError):
    """A registry version that serving cannot load."""


@dataclass(frozen=True)
class TorchScores:
    """The model's probabilities over all items after one session prefix."""

    probabilities: torch.Tensor
    """Softmax over all items, shape ``(n_items,)``."""
    model: TorchModel

    def top(self, count: int) -> list[tuple[str, float]]:
        """Return the ``count`` most probable items with their probabilities, best first."""
        count = min(count, len(self.model.item_ids))
        values, indices = torch.topk(self.probabilities, count)
        return [(self.model.item_ids[index], value) for index, value in zip(indices.tolist(), values.tolist())]

    def of(self, items: Sequence[str]) -> dict[str, float]:
        """Return the probability of each item in the model's index; other items are left out."""
        index = self.model.index
        known = [item for item in items if item in index]
        if not known:
            return {}
        positions = torch.tensor([index[item] for item in known], dtype=torch.int64)
        return dict(zip(known, self.probabilities[positions].tolist()))


class TorchModel:
    """One loaded version: the scripted module, its item ids and their indices."""

    def __init__(self, version: str, module: torch.jit.ScriptModule, item_ids: list[str]):
        self.version = version
        self.module = module
        self.item_ids = item_ids
        self.index = {item: position for position, item in enumerate(item_ids)}

    @classmethod
    def load(cls, version: str, directory: Path) -> TorchModel:
        """Load ``model.ts`` and ``item_index.json`` from ``directory``; raises :class:`ModelLoadError`."""
        scripted = directory / SCRIPTED_FILE
        if not scripted.is_file():
            raise ModelLoadError(
                f"{scripted} not found; version {version} predates the TorchScript export, "
                "so retrain it with the current training code and promote the new version"
            )
        try:
            item_ids = _read_item_ids(directory / ITEM_INDEX_FILE)
            module = torch.jit.load(str(scripted), map_location="cpu")
            module.eval()
            model = cls(version, module, item_ids)
            probe = model.score([item_ids[0]]) if item_ids else None
        except (OSError, ValueError, TypeError, RuntimeError, torch.jit.Error) as error:
            # A module that fails its first forward pass raises torch.jit.Error,
            # which derives from Exception, not RuntimeError.
            raise ModelLoadError(f"cannot load version {version} from {directory}: {error}") from error
        if probe is None or probe.probabilities.shape != (len(item_ids),):
            raise ModelLoadError(
                f"version {version} in {directory} does not score its {len(item_ids)} items; "
                "check that model.ts and item_index.json come from the same training run"
            )
        return model

    def score(self, recent_items: Sequence[str]) -> TorchScores | None:
        """Score all items after ``recent_items`` (oldest first), or return None when none is in the model's index."""
        indices = [self.index[item] for item in recent_items if item in self.index][-MAX_SEQUENCE_ITEMS:]
        if not indices:
            return None
        with torch.inference_mode():
            logits = self.module(torch.tensor(indices, dtype=torch.int64))  # (n_items,)
            probabilities = torch.softmax(logits.float(), dim=0)  # (n_items,)
        return TorchScores(probabilities, self)


def _read_item_ids(path: Path) -> list[str]:
    """Read the item ids of ``item_index.json``. Raises ValueError unless it is a JSON list of strings or integers."""
    item_ids = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(item_ids, list) or not all(isinstance(item, (str, int)) for item in item_ids):
        raise ValueError(f"{path} is not a JSON list of item ids")
    return [str(item) for item in item_ids]


class ModelWatcher:
    """The registry's current version of one model, reloaded by :meth:`reload_if_changed`.

    A new version is loaded beside the old one, and requests switch to it in one
    assignment, so no request sees a half-loaded model. A version that fails to
    load is logged once and skipped until ``CURRENT`` changes again, and the
    previous model keeps serving.
    """

    def __init__(self, registry_root: Path, model_name: str, on_loaded: Callable[[TorchModel], None] = lambda _: None,
                 on_failure: Callable[[], None] = lambda: None):
        self.registry = ModelRegistry(registry_root)
        self.model_name = model_name
        self._on_loaded = on_loaded
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._attempted: str | None = None
        self._model: TorchModel | None = None

    @property
    def current(self) -> TorchModel | None:
        return self._model

    def reload_if_changed(self) -> bool:
        """Load the version that ``CURRENT`` names if it is new; returns True when a new model took effect."""
        with self._lock:
            try:
                version = self.registry.current_version(self.model_name)
            except OSError as error:
                logger.error("cannot read the current version of %s: %s", self.model_name, error)
                self._on_failure()
                return False
            if version is None or version == self._attempted:
                return False
            self._attempted = version
            try:
                registered = self.registry.get(self.model_name, version)
                self.registry.verify(self.model_name, version, artifact_format=ARTIFACT_FORMAT)
                model = TorchModel.load(version, registered.path)
            except (RegistryError, ModelLoadError, OSError) as error:
                serving = self._model.version if self._model else "no model"
                logger.error("cannot serve %s %s (%s); still serving %s", self.model_name, version, error, serving)
                self._on_failure()
                return False
            self._model = model
            logger.info("serving %s %s with %d items", self.model_name, version, len(model.item_ids))
            self._on_loaded(model)
            return True
