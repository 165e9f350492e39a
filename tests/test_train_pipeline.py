"""The Beam training pipeline on DirectRunner, from a small generated event set to the registry.

The fixture spans three UTC days, so the last day is the test set, the day
before it the validation set, and the first day training. Ten items ``i0 .. i9``
follow each other in order, and every session walks that cycle.

Expected next-item cases, counted by hand from :func:`fixture_sessions`:

- validation: 10 sessions of 3 items give 2 cases each (20). The session
  ``i0 rare i1`` loses its rare item (2 events in all, below the support of 5)
  and gives 1 case. ``rare i2`` is left with one event and is dropped.
  Total 21.
- test: 8 sessions of 5 items give 4 cases each (32). The 5 sessions
  ``i3 new i4`` keep ``new`` (exactly 5 events), which is then removed for being
  unseen in training, and give 1 case each (5). Total 37.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from apache_beam.metrics.metric import MetricsFilter

from pipelines import train_pipeline
from pipelines.training.beam_transforms import METRICS_NAMESPACE
from seqrec.archive import ArchiveFileName, write_archive_file
from seqrec.events import Event
from seqrec.registry import Action, ModelRegistry

FIRST_DAY = date(2024, 3, 7)
DAY_START = datetime(2024, 3, 7, tzinfo=timezone.utc)
EVENT_GAP = timedelta(minutes=1)
SESSION_GAP = timedelta(minutes=10)
ITEMS = [f"i{number}" for number in range(10)]

TRAIN_SESSIONS = 40
VALIDATION_CASES = 21
TEST_CASES = 37


def _cycle(start: int, length: int) -> list[str]:
    return [ITEMS[(start + step) % len(ITEMS)] for step in range(length)]


def fixture_sessions() -> list[tuple[str, datetime, list[str]]]:
    """Return (session id, start time, items) for the three days; the module docstring counts the cases."""
    sessions = []
    day = DAY_START
    for number in range(TRAIN_SESSIONS):
        sessions.append((f"train-{number}", day + number * SESSION_GAP, _cycle(number, 4)))
    day = DAY_START + timedelta(days=1)
    for number in range(10):
        sessions.append((f"valid-{number}", day + number * SESSION_GAP, _cycle(number, 3)))
    sessions.append(("valid-rare-middle", day + 10 * SESSION_GAP, ["i0", "rare", "i1"]))
    sessions.append(("valid-rare-first", day + 11 * SESSION_GAP, ["rare", "i2"]))
    day = DAY_START + timedelta(days=2)
    for number in range(8):
        sessions.append((f"test-{number}", day + number * SESSION_GAP, _cycle(number, 5)))
    for number in range(5):
        sessions.append((f"test-new-{number}", day + (8 + number) * SESSION_GAP, ["i3", "new", "i4"]))
    return sessions


def fixture_events() -> list[Event]:
    events = []
    for session_id, start, items in fixture_sessions():
        for position, item in enumerate(items):
            moment = start + position * EVENT_GAP
            events.append(Event(
                event_id=f"{session_id}-{position}",
                session_id=session_id,
                item_id=item,
                event_type="click",
                event_time=int(moment.timestamp() * 1000),
            ))
    return events


def write_session_rec(path: Path, invalid_rows: list[str]) -> Path:
    """Write the fixture as a session-rec TSV (Time in unix seconds) with extra invalid rows at the end."""
    lines = ["SessionId\tItemId\tTime"]
    for event in fixture_events():
        seconds, milliseconds = divmod(event.event_time, 1000)
        lines.append(f"{event.session_id}\t{event.item_id}\t{seconds}.{milliseconds:03d}")
    lines.extend(invalid_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


def counter(result, name: str) -> int:
    query = MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name)
    return sum(metric.committed for metric in result.metrics().query(query)["counters"])


def run_pipeline(*argv: str):
    options, beam_args = train_pipeline.parse_options([*argv, "--runner", "DirectRunner"])
    return train_pipeline.run_training(options, beam_args), options


INVALID_ROWS = [
    "bad-time\ti1\tnot-a-number",  # unparseable Time
    "too-early\ti1\t12345.000",  # in 1970, before the earliest accepted event time
]


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return write_session_rec(tmp_path / "events.tsv", INVALID_ROWS)


def test_dataset_run_counts_cases_and_promotes(tmp_path: Path, dataset: Path):
    registry_root = tmp_path / "registry"
    report_path = tmp_path / "report.json"
    result, _ = run_pipeline("--dataset", str(dataset), "--registry", str(registry_root), "--model", "sr",
                             "--report", str(report_path))

    assert counter(result, "invalid_events") == len(INVALID_ROWS)
    assert counter(result, "invalid_event_time_too_early") == 1
    assert counter(result, "valid_events") == len(fixture_events())
    assert counter(result, "validation_cases") == VALIDATION_CASES
    assert counter(result, "test_cases") == TEST_CASES

    report = json.loads(report_path.read_text())
    assert report["cases"] == {"validation": VALIDATION_CASES, "test": TEST_CASES}
    assert report["decision"]["action"] == Action.PROMOTE

    registry = ModelRegistry(registry_root)
    current = registry.current("sr")
    assert current is not None
    assert current.version == report["registered"]["version"]
    metadata = current.metadata
    assert metadata.artifact_format == "baseline-sr-v1"
    assert metadata.hyperparameters == {"steps": 10}
    assert (metadata.data_range.start, metadata.data_range.end) == ("2024-03-07", "2024-03-09")
    for split in ("validation", "test"):
        assert 0.0 < metadata.metrics[split]["recall@20"] <= 1.0
        assert metadata.metrics[split]["pessimistic_recall@20"] <= metadata.metrics[split]["recall@20"]
    assert "recall@20" in metadata.metrics["baseline/vsknn/validation"]
    assert "baseline/sr/validation" not in metadata.metrics
    item_ids = json.loads((current.path / "item_index.json").read_text())
    assert item_ids == sorted(ITEMS)


def test_sequential_fixture_gives_perfect_sr_recall(tmp_path: Path, dataset: Path):
    report_path = tmp_path / "report.json"
    run_pipeline("--dataset", str(dataset), "--registry", str(tmp_path / "registry"), "--model", "sr",
                 "--no-register", "--report", str(report_path))

    report = json.loads(report_path.read_text())
    # Every next item follows its predecessor in the cycle, which SR learns as its strongest rule.
    # In "i3 new i4" the removed "new" leaves i3 -> i4, which is the cycle again.
    assert report["metrics"]["validation"]["recall@1"] == 1.0
    assert report["metrics"]["test"]["recall@1"] == 1.0
    assert "decision" not in report
    assert not (tmp_path / "registry").exists()


def test_better_current_model_rejects_candidate(tmp_path: Path, dataset: Path):
    registry_root = tmp_path / "registry"
    registry = ModelRegistry(registry_root)
    weights = tmp_path / "model.pkl"
    weights.write_bytes(b"not a model")
    current = registry.register("sr", {"model.pkl": weights}, artifact_format="baseline-sr-v1",
                                metrics={"validation": {"recall@20": 1.5}}, code_version="test")
    assert registry.promote("sr", current.version).promoted

    report_path = tmp_path / "report.json"
    run_pipeline("--dataset", str(dataset), "--registry", str(registry_root), "--model", "sr",
                 "--report", str(report_path))

    decision = json.loads(report_path.read_text())["decision"]
    assert decision["action"] == Action.REJECT
    assert decision["current_value"] == 1.5
    assert registry.current("sr").version == current.version


def test_promotion_tolerance_accepts_small_drop(tmp_path: Path, dataset: Path):
    registry_root = tmp_path / "registry"
    registry = ModelRegistry(registry_root)
    weights = tmp_path / "model.pkl"
    weights.write_bytes(b"not a model")
    current = registry.register("sr", {"model.pkl": weights}, artifact_format="baseline-sr-v1",
                                metrics={"validation": {"recall@20": 1.5}}, code_version="test")
    registry.promote("sr", current.version)

    report_path = tmp_path / "report.json"
    run_pipeline("--dataset", str(dataset), "--registry", str(registry_root), "--model", "sr",
                 "--promotion-tolerance", "0.5", "--report", str(report_path))

    decision = json.loads(report_path.read_text())["decision"]
    assert decision["action"] == Action.PROMOTE


def write_fixture_archive(root: Path) -> None:
    """Archive the fixture one file per day, plus a redelivered copy of one event and one invalid event."""
    by_day: dict[date, list[Event]] = {}
    for event in fixture_events():
        by_day.setdefault(datetime.fromtimestamp(event.event_time / 1000, timezone.utc).date(), []).append(event)
    offset = 0
    for day, events in sorted(by_day.items()):
        write_archive_file(root, day, ArchiveFileName(0, offset, offset + len(events) - 1), events)
        offset += len(events)
    last_day, last_events = max(by_day.items())
    redelivered = last_events[0]
    # Built directly to bypass validation, as a corrupt or hand-edited file would be.
    invalid = Event("bad-type", "test-0", "i1", "hover", redelivered.event_time)
    write_archive_file(root, last_day, ArchiveFileName(1, 0, 1), [redelivered, invalid])


def test_archive_run_drops_duplicates(tmp_path: Path):
    archive_root = tmp_path / "archive"
    write_fixture_archive(archive_root)
    report_path = tmp_path / "report.json"
    result, _ = run_pipeline(
        "--archive", str(archive_root), "--start-date", "2024-03-06", "--end-date", "2024-03-09",
        "--registry", str(tmp_path / "registry"), "--model", "sr", "--report", str(report_path),
    )

    assert counter(result, "duplicate_events") == 1
    assert counter(result, "invalid_unknown_event_type") == 1
    assert counter(result, "valid_events") == len(fixture_events()) + 1
    report = json.loads(report_path.read_text())
    assert report["cases"] == {"validation": VALIDATION_CASES, "test": TEST_CASES}
    assert report["decision"]["action"] == Action.PROMOTE


def test_archive_date_range_limits_input(tmp_path: Path):
    archive_root = tmp_path / "archive"
    write_fixture_archive(archive_root)
    # Without 2024-03-09, the last day read is the test set and the first the validation set,
    # which leaves no training day.
    with pytest.raises(Exception, match="no training sessions"):
        run_pipeline(
            "--archive", str(archive_root), "--start-date", "2024-03-07", "--end-date", "2024-03-08",
            "--model", "sr", "--registry", str(tmp_path / "registry"), "--no-register",
        )


def test_options_reject_reversed_dates(tmp_path: Path):
    with pytest.raises(SystemExit):
        train_pipeline.parse_options(["--archive", "root", "--start-date", "2024-03-09",
                                      "--end-date", "2024-03-07", "--registry", str(tmp_path)])


def test_options_reject_two_inputs(tmp_path: Path):
    with pytest.raises(SystemExit):
        train_pipeline.parse_options(["--dataset", "a.tsv", "--archive", "root", "--start-date", "2024-03-07",
                                      "--end-date", "2024-03-09", "--registry", str(tmp_path)])


def test_options_pass_beam_arguments_through(tmp_path: Path):
    options, beam_args = train_pipeline.parse_options(
        ["--dataset", "a.tsv", "--registry", str(tmp_path), "--runner", "FlinkRunner", "--parallelism=2"]
    )
    assert options.dataset == "a.tsv"
    assert beam_args == ["--runner", "FlinkRunner", "--parallelism=2"]


def test_option_defaults_match_split_config():
    from pipelines.training import options
    from pipelines.training.sessions import SplitConfig

    assert options.DEFAULT_MIN_ITEM_SUPPORT == SplitConfig.min_item_support
    assert options.DEFAULT_MIN_SESSION_LENGTH == SplitConfig.min_session_length


def cli_parser():
    import argparse

    from cli import train_command

    parser = argparse.ArgumentParser(prog="seqrec")
    train_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_train_command_prints_decision(tmp_path: Path, dataset: Path, capsys):
    args = cli_parser().parse_args([
        "train", "--dataset", str(dataset), "--registry", str(tmp_path / "registry"), "--model", "sr",
        "--", "--runner", "DirectRunner",
    ])
    assert args.beam_options == ["--", "--runner", "DirectRunner"]

    assert args.handler(args) == 0
    output = capsys.readouterr().out
    assert f"cases: validation {VALIDATION_CASES}, test {TEST_CASES}" in output
    assert "promoted: first promotion of sr" in output


def test_evaluate_command_registers_nothing(tmp_path: Path, dataset: Path, capsys):
    args = cli_parser().parse_args(["evaluate", "--dataset", str(dataset), "--model", "sr", "--baselines", "pop"])

    assert args.handler(args) == 0
    output = capsys.readouterr().out
    assert output.splitlines()[1].startswith("sr ")
    assert output.splitlines()[2].startswith("pop ")
    assert "promoted" not in output


def test_gru4rec_run_registers_torch_artifact(tmp_path: Path, dataset: Path):
    pytest.importorskip("torch")
    registry_root = tmp_path / "registry"
    hyperparameters = {"epochs": 2, "hidden_size": 16, "batch_size": 8}
    run_pipeline("--dataset", str(dataset), "--registry", str(registry_root), "--model", "gru4rec",
                 "--hyperparameters", json.dumps(hyperparameters), "--baselines", "sr")

    current = ModelRegistry(registry_root).current("gru4rec")
    assert current is not None
    assert current.metadata.artifact_format == "gru4rec-torch-v1"
    assert current.metadata.hyperparameters["hidden_size"] == 16
    assert "recall@20" in current.metadata.metrics["validation"]
    assert "recall@20" in current.metadata.metrics["baseline/sr/test"]
    assert (current.path / "item_index.json").is_file()
