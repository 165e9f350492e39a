"""Pluggable trainers for the training pipeline: fit a model, save it as an artifact, load it back.

A trainer turns training sessions of item indices into a model with
``score(prefixes) -> n_cases x n_items`` scores, and names the registry's
``artifact_format`` of what it saves. ``--model`` picks one from
:data:`TRAINER_NAMES`:

- ``gru4rec``: :mod:`pipelines.training.gru4rec`, imported only when chosen, so
  the pipeline runs without torch for the baselines. Format ``gru4rec-torch-v1``.
- ``pop``, ``spop``, ``sr``, ``itemknn``, ``vsknn``: the baselines of
  :mod:`pipelines.training.baselines`, saved as a pickle of the fitted object.
  Format ``baseline-<name>-v1``.

>>> trainer = get_trainer("sr")
>>> trainer.artifact_format, trainer.hyperparameters
('baseline-sr-v1', {'steps': 10})
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np

    from pipelines.training.sessions import NextItemCases

BASELINE_NAMES = {
    "pop": "POP",
    "spop": "S-POP",
    "sr": "SR",
    "itemknn": "Item-kNN",
    "vsknn": "V-SKNN",
}
"""``--model`` name of each baseline, mapped to its key in ``pipelines.training.baselines.BASELINES``.

This module imports the baselines (and with them scipy) only when a trainer is
built, so that the command line can list the names quickly."""

GRU4REC = "gru4rec"
GRU4REC_MODULE = "pipelines.training.gru4rec"
GRU4REC_FORMAT = "gru4rec-torch-v1"
TRAINER_NAMES = (GRU4REC, *BASELINE_NAMES)

BASELINE_ARTIFACT = "model.pkl"
BASELINE_HEADER = "baseline.json"
"""Files of a baseline artifact: the pickled fitted object, and its class and parameters as JSON."""


class ScoringModel(Protocol):
    def score(self, prefixes: Sequence[np.ndarray]) -> np.ndarray: ...


class Trainer(Protocol):
    """Interface of a model family: fit a model, save it to a directory, load it back."""

    name: str
    artifact_format: str
    hyperparameters: dict[str, Any]

    def fit(self, train_sessions: Sequence[np.ndarray], n_items: int, valid_cases: NextItemCases) -> ScoringModel: ...

    def save(self, model: ScoringModel, directory: Path) -> None: ...

    def load(self, directory: Path) -> ScoringModel: ...


class BaselineTrainer:
    """Trainer of one baseline class; ``hyperparameters`` go to its constructor."""

    def __init__(self, name: str, hyperparameters: Mapping[str, Any] | None = None):
        self.name = name
        self.artifact_format = f"baseline-{name}-v1"
        from pipelines.training.baselines import BASELINES

        self.baseline_class = BASELINES[BASELINE_NAMES[name]]
        requested = dict(hyperparameters or {})
        parameters = inspect.signature(self.baseline_class.__init__).parameters
        accepted = [key for key in parameters if key != "self"]
        unknown = sorted(set(requested) - set(accepted))
        if unknown:
            raise ValueError(
                f"hyperparameter {', '.join(unknown)} does not apply to {name}; "
                f"it takes {', '.join(accepted) or 'none'}"
            )
        defaults = {key: parameters[key].default for key in accepted}
        self.hyperparameters = {**defaults, **requested}

    def fit(self, train_sessions, n_items, valid_cases=None):
        # Baselines have nothing to tune on validation cases, so they are not used.
        return self.baseline_class(**self.hyperparameters).fit(train_sessions, n_items)

    def save(self, model, directory):
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / BASELINE_ARTIFACT, "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
        header = {
            "artifact_format": self.artifact_format,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "hyperparameters": self.hyperparameters,
            "n_items": model.n_items,
        }
        (directory / BASELINE_HEADER).write_text(json.dumps(header, indent=2, sort_keys=True))

    def load(self, directory):
        # NOTE: unpickling runs code from the file, so load only artifacts from a registry you trust.
        with open(directory / BASELINE_ARTIFACT, "rb") as file:
            model = pickle.load(file)
        if not isinstance(model, self.baseline_class):
            raise TypeError(
                f"{directory / BASELINE_ARTIFACT} contains a {type(model).__name__}, "
                f"expected {self.baseline_class.__name__}"
            )
        return model


class GRU4RecTrainer:
    """Trainer of :mod:`pipelines.training.gru4rec`; ``hyperparameters`` fill ``GRU4RecConfig``."""

    name = GRU4REC
    artifact_format = GRU4REC_FORMAT

    def __init__(self, hyperparameters: Mapping[str, Any] | None = None):
        try:
            module = importlib.import_module(GRU4REC_MODULE)
        except ImportError as error:
            raise ValueError(
                f"--model gru4rec needs {GRU4REC_MODULE} and torch, and the import failed ({error}); "
                f"install the training extra or train a baseline ({', '.join(BASELINE_NAMES)})"
            ) from error
        self.module = module
        config = module.GRU4RecConfig(**dict(hyperparameters or {}))
        self.config = config
        self.hyperparameters = _config_values(config)

    def fit(self, train_sessions, n_items, valid_cases=None):
        # GRU4Rec rejects an empty case list, and None means it keeps the last epoch.
        if valid_cases is not None and not len(valid_cases):
            valid_cases = None
        return self.module.GRU4Rec(self.config).fit(train_sessions, n_items, valid_cases=valid_cases)

    def save(self, model, directory):
        directory.mkdir(parents=True, exist_ok=True)
        model.save(directory)

    def load(self, directory):
        return self.module.GRU4Rec.load(directory)


def get_trainer(name: str, hyperparameters: Mapping[str, Any] | None = None) -> Trainer:
    """Return the trainer that ``--model NAME`` selects; raises ValueError for an unknown name."""
    if name == GRU4REC:
        return GRU4RecTrainer(hyperparameters)
    if name in BASELINE_NAMES:
        return BaselineTrainer(name, hyperparameters)
    raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(TRAINER_NAMES)}")


def _config_values(config: Any) -> dict[str, Any]:
    """Return a configuration dataclass as a JSON-serializable dict, other values as text."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    return json.loads(json.dumps(values, default=str))
