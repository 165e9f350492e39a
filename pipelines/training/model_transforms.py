"""Composite Beam transforms that train, evaluate and register a model on one worker.

Each works on the single :class:`pipelines.training.beam_transforms.TrainingData`
element, so its PCollection has one element from start to end. The fitted model
travels between steps as a pickled element.
NOTE: a model larger than the runner's element size limit would have to be passed as a file instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.training.beam_transforms import METRICS_NAMESPACE, TrainingData

log = logging.getLogger(__name__)

ITEM_INDEX_FILE = "item_index.json"
EVALUATION_FILE = "evaluation.json"
PROMOTION_METRIC = "recall@20"


@dataclass
class TrainedModel:
    """A fitted model with its data, and after :class:`EvaluateModel` its report."""

    data: TrainingData
    trainer_name: str
    hyperparameters: dict[str, Any]
    model: Any
    report: dict[str, Any] = field(default_factory=dict)


def train_model(data: TrainingData, trainer_name: str, hyperparameters: Mapping[str, Any]) -> TrainedModel:
    """Fit the ``trainer_name`` model on the training sessions.

    The validation cases go to the trainer too, for trainers that stop early on them (GRU4Rec); baselines ignore them.
    """
    from pipelines.training.sessions import next_item_cases
    from pipelines.training.trainers import get_trainer

    trainer = get_trainer(trainer_name, hyperparameters)
    split = data.split
    log.info("training %s on %d sessions over %d items", trainer_name, len(split.train), len(split.item_index))
    model = trainer.fit(split.train.items, len(split.item_index), valid_cases=next_item_cases(split.validation.items))
    return TrainedModel(data, trainer_name, trainer.hyperparameters, model)


class TrainModel(beam.PTransform):
    """Fit the chosen model (``--model``) on the training sessions."""

    def __init__(self, trainer_name: str, hyperparameters: Mapping[str, Any] | None = None):
        super().__init__()
        self.trainer_name = trainer_name
        self.hyperparameters = dict(hyperparameters or {})

    def expand(self, data):
        return data | "FitModel" >> beam.Map(train_model, self.trainer_name, self.hyperparameters)


def evaluate_model(trained: TrainedModel, baseline_names: Sequence[str]) -> TrainedModel:
    """Evaluate the model and each baseline on validation and test; fills ``trained.report``.

    A baseline with the model's own name is skipped, because it would repeat the model's numbers.
    """
    from pipelines.training.evaluation import case_counts, evaluate
    from pipelines.training.trainers import get_trainer

    import dataclasses

    split = trained.data.split
    cases = case_counts(split)
    for name, count in cases.items():
        Metrics.counter(METRICS_NAMESPACE, f"{name}_cases").inc(count)
    metrics = evaluate(trained.model, split)
    baselines = {}
    for name in baseline_names:
        if name == trained.trainer_name:
            continue
        baseline = get_trainer(name)
        fitted = baseline.fit(split.train.items, len(split.item_index))
        baselines[name] = evaluate(fitted, split)
    _log_comparison(trained.trainer_name, metrics, baselines)
    trained.report = {
        "model": trained.trainer_name,
        "cases": cases,
        "sessions": {"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        "items": len(split.item_index),
        "filter_counts": dataclasses.asdict(split.filter_counts),
        "unseen_counts": {"validation": dataclasses.asdict(split.validation_unseen),
                          "test": dataclasses.asdict(split.test_unseen)},
        "metrics": metrics,
        "baselines": baselines,
    }
    return trained


def _log_comparison(model_name: str, metrics: Mapping[str, Mapping[str, float]],
                    baselines: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    for name, values in {model_name: metrics, **baselines}.items():
        for split_name, split_values in values.items():
            log.info("%s %s %s = %.4f", name, split_name, PROMOTION_METRIC, split_values.get(PROMOTION_METRIC, float("nan")))


class EvaluateModel(beam.PTransform):
    """Rank every validation and test case over the whole catalogue, for the model and the baselines."""

    def __init__(self, baseline_names: Sequence[str]):
        super().__init__()
        self.baseline_names = list(baseline_names)

    def expand(self, trained):
        return trained | "ScoreCases" >> beam.Map(evaluate_model, self.baseline_names)


def registry_metrics(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Flatten a report into the registry's ``split -> metric -> value`` form.

    The model's splits keep their names (``validation``, ``test``), and a
    baseline's go under ``baseline/<name>/<split>``.
    """
    metrics = {name: dict(values) for name, values in report["metrics"].items()}
    for baseline, splits in report["baselines"].items():
        for split_name, values in splits.items():
            metrics[f"baseline/{baseline}/{split_name}"] = dict(values)
    return metrics


def register_candidate(
    trained: TrainedModel,
    registry_root: str,
    model_name: str,
    data_description: str,
    tolerance: float,
) -> dict[str, Any]:
    """Store the model, item index and report as a new version, then try to promote it.

    Returns the report with the registered version and the promotion decision added.
    """
    import json
    import tempfile
    from pathlib import Path

    from pipelines.training.trainers import get_trainer
    from seqrec.archive import event_date
    from seqrec.registry import DataRange, ModelRegistry

    trainer = get_trainer(trained.trainer_name, trained.hyperparameters)
    data = trained.data
    registry = ModelRegistry(registry_root)
    data_range = DataRange(
        start=event_date(data.first_event_ms).isoformat(),
        end=event_date(data.last_event_ms).isoformat(),
        description=data_description,
    )
    with tempfile.TemporaryDirectory(prefix="seqrec-train-") as staging:
        directory = Path(staging)
        trainer.save(trained.model, directory)
        item_ids = [str(item) for item in data.split.item_index.item_ids]
        (directory / ITEM_INDEX_FILE).write_text(json.dumps(item_ids))
        (directory / EVALUATION_FILE).write_text(json.dumps(trained.report, indent=2, sort_keys=True))
        registered = registry.register(
            model_name,
            directory,
            artifact_format=trainer.artifact_format,
            metrics=registry_metrics(trained.report),
            hyperparameters=trainer.hyperparameters,
            data_range=data_range,
            move=True,
        )
    decision = registry.promote(
        model_name,
        registered.version,
        metric=PROMOTION_METRIC,
        tolerance=tolerance,
        artifact_format=trainer.artifact_format,
        load_test=trainer.load,
    )
    return {**trained.report, "registered": {"model_name": model_name, "version": registered.version},
            "decision": json.loads(decision.to_json())}


class RegisterCandidate(beam.PTransform):
    """Register the model in the registry and promote it if it beats the current version on validation recall@20."""

    def __init__(self, registry_root: str, model_name: str, data_description: str, tolerance: float):
        super().__init__()
        self.registry_root = registry_root
        self.model_name = model_name
        self.data_description = data_description
        self.tolerance = tolerance

    def expand(self, trained):
        return trained | "RegisterAndPromote" >> beam.Map(
            register_candidate, self.registry_root, self.model_name, self.data_description, self.tolerance
        )


def write_report(report: Mapping[str, Any], path: str) -> str:
    """Write the report as JSON through Beam's file systems, so ``gs://`` paths work too."""
    import json

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as file:
        file.write(json.dumps(report, indent=2, sort_keys=True).encode())
    return path
