"""Nightly training as an Apache Beam pipeline: events in, an evaluated and registered model out.

Steps (see :mod:`pipelines.training.beam_transforms` and
:mod:`pipelines.training.model_transforms`)::

    ReadEvents -> ValidateEvents -> DropDuplicateEvents -> SessionizeEvents
      -> SplitSessionsByTime -> TrainModel -> EvaluateModel -> RegisterCandidate -> WriteReport

Input is either the Parquet event archive (``--archive ROOT --start-date
--end-date``, UTC event dates, both inclusive) or one dataset file in any format
that :func:`seqrec.readers.read_records` reads (``--dataset FILE``, read whole by
one worker). ``--model`` picks the trainer: ``gru4rec`` or a baseline (``sr``,
``vsknn``, ...), which trains in seconds without torch.

Run it locally with DirectRunner (the default)::

    python -m pipelines.train_pipeline --dataset train.tsv --registry /tmp/registry --model sr

Options this module does not define go to Beam's ``PipelineOptions``, so the same
file runs on other runners, e.g. ``--runner FlinkRunner --flink_master
localhost:8081`` or ``--runner DataflowRunner --project P --region R
--temp_location gs://...``. On a distributed runner the registry root and the
dataset file must be reachable from the workers, e.g. a shared filesystem.

Flink versions: Beam 2.61 runs FlinkRunner through the
``beam-runners-flink-1.19-job-server`` jar, which embeds Flink 1.17 to 1.19 and,
without ``--flink_master``, runs it in ``[local]`` mode inside the job server.
Beam 2.77 supports Flink up to 2.2 but cannot share a Python environment with
PyFlink, so to train on the same Flink 2.2 cluster as the streaming jobs, build
a separate training image with that Beam version.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.training.beam_transforms import (
    DropDuplicateEvents,
    ReadEvents,
    SessionizeEvents,
    SplitSessionsByTime,
    ValidateEvents,
)
from pipelines.training.model_transforms import (
    EvaluateModel,
    RegisterCandidate,
    TrainModel,
    write_report,
)
from pipelines.training.options import TrainingOptions, add_arguments, options_from_args

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_pipeline(pipeline: beam.Pipeline, options: TrainingOptions) -> beam.PCollection:
    """Add the training steps to ``pipeline`` and return the PCollection of the single report."""
    events = (
        pipeline
        | "ReadEvents" >> ReadEvents(
            archive_root=options.archive,
            start_date=options.start_date,
            end_date=options.end_date,
            dataset=options.dataset,
            dataset_format=options.dataset_format,
            reader_options=options.reader_options,
        )
        | "ValidateEvents" >> ValidateEvents()
        | "DropDuplicateEvents" >> DropDuplicateEvents()
    )
    trained = (
        events
        | "SessionizeEvents" >> SessionizeEvents()
        | "SplitSessionsByTime" >> SplitSessionsByTime(options.split)
        | "TrainModel" >> TrainModel(options.model, options.hyperparameters)
        | "EvaluateModel" >> EvaluateModel(options.baselines)
    )
    if options.register:
        report = trained | "RegisterCandidate" >> RegisterCandidate(
            options.registry,
            options.registry_name or options.model,
            options.data_description(),
            options.promotion_tolerance,
        )
    else:
        report = trained | "TakeReport" >> beam.Map(lambda trained_model: trained_model.report)
    if options.report is not None:
        report | "WriteReport" >> beam.Map(write_report, options.report)
    return report


def run_training(options: TrainingOptions, beam_args: Sequence[str] = ()) -> beam.runners.runner.PipelineResult:
    """Run the pipeline to completion with ``beam_args`` as Beam pipeline options; returns the result."""
    pipeline_options = PipelineOptions(list(beam_args))
    log.info("training %s from %s with Beam options %s", options.model, options.data_description(), list(beam_args))
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, options)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def parse_options(argv: Sequence[str] | None) -> tuple[TrainingOptions, list[str]]:
    """Split ``argv`` into the pipeline's options and the leftover Beam options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args, beam_args = parser.parse_known_args(argv)
    try:
        return options_from_args(args), beam_args
    except ValueError as error:
        parser.error(str(error))


def run(argv: Sequence[str] | None = None) -> beam.runners.runner.PipelineResult:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the pipeline and wait for it."""
    options, beam_args = parse_options(argv)
    return run_training(options, beam_args)


def print_report(report: dict[str, Any]) -> None:
    """Print the case counts, the headline metrics and, when registered, the promotion decision."""
    cases = report["cases"]
    print(f"cases: validation {cases['validation']}, test {cases['test']}")
    rows = {report["model"]: report["metrics"], **report["baselines"]}
    for name, metrics in rows.items():
        values = " ".join(
            f"{split_name} recall@20={metrics[split_name]['recall@20']:.4f} mrr@20={metrics[split_name]['mrr@20']:.4f}"
            for split_name in ("validation", "test") if split_name in metrics
        )
        print(f"{name:10} {values or 'no cases'}")
    decision = report.get("decision")
    if decision is not None:
        print(f"{decision['model_name']} {decision['version']}: {decision['reason']}")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    options, beam_args = parse_options(argv)
    return run_and_print(options, beam_args)


def run_and_print(options: TrainingOptions, beam_args: Sequence[str]) -> int:
    """Run the pipeline, print its report, and return 1 if the candidate was rejected, else 0."""
    import tempfile
    from pathlib import Path

    from apache_beam.io.filesystems import FileSystems

    with tempfile.TemporaryDirectory(prefix="seqrec-report-") as scratch:
        if options.report is None:
            # NOTE: a local report path works only where the workers share this machine's filesystem.
            options = _with_report(options, str(Path(scratch) / "report.json"))
        run_training(options, beam_args)
        with FileSystems.open(options.report) as file:
            report = json.loads(file.read())
    print_report(report)
    decision = report.get("decision")
    return 1 if decision is not None and decision["action"] == "reject" else 0


def _with_report(options: TrainingOptions, path: str) -> TrainingOptions:
    import dataclasses

    return dataclasses.replace(options, report=path)


if __name__ == "__main__":
    sys.exit(main())
