"""The model registry: registration, verification, the promotion gate, rollback and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cli import registry_command
from seqrec.registry import (
    CURRENT_FILE,
    METADATA_FILE,
    Action,
    CorruptArtifact,
    DataRange,
    IncompatibleArtifact,
    IncompleteVersion,
    ModelRegistry,
    NoPreviousVersion,
    Version,
    VersionNotFound,
)

MODEL = "gru4rec"
FORMAT = "gru4rec-torch-v1"
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def write_artifacts(directory: Path, weights: bytes = b"weights-1") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.pt").write_bytes(weights)
    (directory / "vocab").mkdir(exist_ok=True)
    (directory / "vocab" / "items.json").write_text('["i1", "i2", "i3"]')
    return directory


def register(registry: ModelRegistry, tmp_path: Path, recall: float | None, **options) -> str:
    """Register a small model whose validation recall@20 is ``recall`` and return its version."""
    source = write_artifacts(tmp_path / f"train-{len(os.listdir(tmp_path))}", weights=f"w{recall}".encode())
    metrics = {"validation": {"recall@20": recall}, "test": {"recall@20": 0.3}} if recall is not None else {}
    options.setdefault("artifact_format", FORMAT)
    options.setdefault("code_version", "test")
    return registry.register(MODEL, source, metrics=metrics, **options).version


def current_pointer(registry: ModelRegistry) -> str:
    return (registry.storage.local_path(f"models/{MODEL}") / CURRENT_FILE).read_text()


# --- registration and listing -----------------------------------------------------------------


def test_register_records_files_and_metadata(registry, tmp_path):
    source = write_artifacts(tmp_path / "train")
    registered = registry.register(
        MODEL,
        source,
        artifact_format=FORMAT,
        metrics={"validation": {"recall@20": 0.41, "mrr@20": 0.17}, "test": {"recall@20": 0.39}},
        hyperparameters={"hidden_size": 100, "loss": "bpr-max"},
        data_range=DataRange(start="2014-04-01", end="2014-09-29", description="YooChoose 1/64"),
        code_version="abc123",
    )
    metadata = registered.metadata
    assert Version.parse(registered.version).number == 1
    assert metadata.model_name == MODEL
    assert metadata.artifact_format == FORMAT
    assert metadata.code_version == "abc123"
    assert metadata.metric("recall@20") == 0.41
    assert metadata.metric("recall@20", split="test") == 0.39
    assert metadata.hyperparameters == {"hidden_size": 100, "loss": "bpr-max"}
    assert metadata.data_range.start == "2014-04-01"
    assert metadata.created_at.endswith("Z")
    assert sorted(f.path for f in metadata.files) == ["model.pt", "vocab/items.json"]
    weights = next(f for f in metadata.files if f.path == "model.pt")
    assert weights.size_bytes == len(b"weights-1")
    assert (registered.path / "model.pt").read_bytes() == b"weights-1"
    stored = json.loads((registered.path / METADATA_FILE).read_text())
    assert stored["version"] == registered.version
    # The source is copied, not moved, by default.
    assert (source / "model.pt").exists()


def test_register_from_mapping_with_move(registry, tmp_path):
    source = tmp_path / "out.bin"
    source.write_bytes(b"abc")
    registered = registry.register(MODEL, {"model.pt": source}, artifact_format=FORMAT, code_version="t", move=True)
    assert not source.exists()
    assert (registered.path / "model.pt").read_bytes() == b"abc"


def test_register_detects_code_version(registry, tmp_path):
    registered = registry.register(MODEL, write_artifacts(tmp_path / "a"), artifact_format=FORMAT)
    # A git commit (40 hex digits, maybe "+dirty") in a checkout, else the installed package version.
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|seqrec .+|unknown", registered.metadata.code_version)


@pytest.mark.parametrize(
    "artifacts, options, message",
    [
        ({"../escape.pt": "x"}, {}, "invalid artifact path"),
        ({METADATA_FILE: "x"}, {}, "reserved"),
        ({"model.pt": "missing.pt"}, {}, "is not a file"),
        ({}, {}, "no artifact files"),
        ({"model.pt": "x"}, {"artifact_format": ""}, "artifact_format"),
        ({"model.pt": "x"}, {"metrics": {"validation": {"recall@20": float("nan")}}}, "finite number"),
        ({"model.pt": "x"}, {"hyperparameters": {"device": object()}}, "not JSON"),
    ],
)
def test_register_rejects_invalid_input(registry, tmp_path, artifacts, options, message):
    (tmp_path / "x").write_bytes(b"x")
    artifacts = {name: tmp_path / source for name, source in artifacts.items()}
    options.setdefault("artifact_format", FORMAT)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        registry.register(MODEL, artifacts, code_version="t", **options)
    # Invalid input uses no version number.
    assert registry.storage.list_children(f"models/{MODEL}/.claims") == []


def test_register_rejects_invalid_model_name(registry, tmp_path):
    with pytest.raises(ValueError, match="invalid model name"):
        registry.register("../other", write_artifacts(tmp_path / "a"), artifact_format=FORMAT)


def test_data_range_rejects_bad_dates():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        DataRange(start="April 2014")
    with pytest.raises(ValueError, match="after its end"):
        DataRange(start="2014-09-30", end="2014-04-01")


def test_list_versions_marks_current(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    assert registry.list_versions(MODEL)[0].is_current is False
    registry.promote(MODEL, first)

    listings = registry.list_versions(MODEL)

    assert [listing.version for listing in listings] == [first, second]
    assert [listing.is_current for listing in listings] == [True, False]
    assert listings[1].metadata.metric("recall@20") == 0.42
    assert Version.parse(first) < Version.parse(second)


def test_list_versions_of_unknown_model_is_empty(registry):
    assert registry.list_versions("unknown") == []
    assert registry.current("unknown") is None


def test_failed_copy_leaves_no_version(registry, tmp_path, monkeypatch):
    def failing_put(key, source, move):
        raise OSError("disk full")

    monkeypatch.setattr(registry.storage, "put_file", failing_put)
    with pytest.raises(OSError, match="disk full"):
        register(registry, tmp_path, 0.4)
    assert registry.list_versions(MODEL) == []
    assert registry.incomplete_versions(MODEL) == []


def test_incomplete_version_is_ignored(registry, tmp_path):
    complete = register(registry, tmp_path, 0.40)
    incomplete = "v000002-20261204T221500Z"
    folder = registry.storage.local_path(f"models/{MODEL}/{incomplete}")
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"half written")

    assert [listing.version for listing in registry.list_versions(MODEL)] == [complete]
    assert registry.incomplete_versions(MODEL) == [incomplete]
    with pytest.raises(IncompleteVersion, match="no metadata.json"):
        registry.promote(MODEL, incomplete)
    # The next registration takes a number after the incomplete one.
    assert Version.parse(register(registry, tmp_path, 0.41)).number == 3


def test_concurrent_registrations_get_distinct_versions(registry, tmp_path):
    thread_count = 8
    sources = [write_artifacts(tmp_path / f"train-{index}", f"w{index}".encode()) for index in range(thread_count)]
    barrier = threading.Barrier(thread_count)
    versions: list[str] = []
    errors: list[BaseException] = []

    def register_one(source: Path) -> None:
        barrier.wait()
        try:
            versions.append(registry.register(MODEL, source, artifact_format=FORMAT, code_version="t").version)
        except BaseException as error:  # collected and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=register_one, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(Version.parse(version).number for version in versions)
    assert numbers == list(range(1, thread_count + 1))
    assert len(registry.list_versions(MODEL)) == thread_count
    for version in versions:
        registry.verify(MODEL, version)


def test_resolve_version_accepts_number(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    assert registry.resolve_version(MODEL, "1") == version
    assert registry.resolve_version(MODEL, "v000001") == version
    with pytest.raises(VersionNotFound, match="'7'"):
        registry.resolve_version(MODEL, "7")


# --- verification -----------------------------------------------------------------------------


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_accepts_intact_version(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    assert registry.verify(MODEL, version, artifact_format=FORMAT).version == version


def test_verify_detects_flipped_byte(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    flip_byte(registry.get(MODEL, version).path / "model.pt")
    with pytest.raises(CorruptArtifact, match="model.pt has SHA-256") as caught:
        registry.verify(MODEL, version)
    assert caught.value.file == "model.pt"


def test_verify_detects_size_change(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    path = registry.get(MODEL, version).path / "vocab" / "items.json"
    path.write_text(path.read_text() + " ")
    with pytest.raises(CorruptArtifact, match="vocab/items.json has 19 bytes, metadata.json records 18"):
        registry.verify(MODEL, version)


def test_verify_detects_missing_and_unexpected_files(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    folder = registry.get(MODEL, version).path
    (folder / "extra.bin").write_bytes(b"?")
    with pytest.raises(CorruptArtifact, match="extra.bin is not listed"):
        registry.verify(MODEL, version)
    (folder / "model.pt").unlink()
    with pytest.raises(CorruptArtifact, match="model.pt is missing"):
        registry.verify(MODEL, version)


def test_verify_detects_malformed_metadata(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    (registry.get(MODEL, version).path / METADATA_FILE).write_text("{not json")
    with pytest.raises(CorruptArtifact, match="metadata.json is malformed"):
        registry.verify(MODEL, version)


def test_verify_rejects_other_artifact_format(registry, tmp_path):
    version = register(registry, tmp_path, 0.4, artifact_format="gru4rec-torch-v2")
    with pytest.raises(IncompatibleArtifact, match="'gru4rec-torch-v2', the loader reads 'gru4rec-torch-v1'"):
        registry.verify(MODEL, version, artifact_format=FORMAT)


def test_verify_runs_load_test(registry, tmp_path):
    version = register(registry, tmp_path, 0.4)
    seen = []
    registry.verify(MODEL, version, load_test=lambda path: seen.append((path / "model.pt").read_bytes()))
    assert seen == [b"w0.4"]

    def failing_load(path: Path) -> None:
        raise RuntimeError("size mismatch for embedding.weight")

    with pytest.raises(IncompatibleArtifact, match="failing_load failed: RuntimeError: size mismatch"):
        registry.verify(MODEL, version, load_test=failing_load)


def test_verify_unknown_version(registry):
    with pytest.raises(VersionNotFound, match="no version"):
        registry.verify(MODEL, "v000009-20261204T221500Z")


# --- promotion --------------------------------------------------------------------------------


def test_promote_first_model(registry, tmp_path):
    version = register(registry, tmp_path, 0.40)

    decision = registry.promote(MODEL, version)

    assert decision.promoted
    assert decision.action == Action.PROMOTE
    assert decision.previous is None
    assert decision.reason == f"promoted: first promotion of {MODEL}"
    assert current_pointer(registry) == f"{version}\n"
    current = registry.current(MODEL)
    assert current.version == version
    assert current.metadata.metric("recall@20") == 0.40
    unpacked_version, path, metadata = current
    assert unpacked_version == version
    assert path == registry.get(MODEL, version).path
    assert metadata.version == version


def test_promote_rejects_candidate_worse_beyond_tolerance(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, 0.41)
    registry.promote(MODEL, incumbent)

    decision = registry.promote(MODEL, candidate, tolerance=0.01)

    assert not decision.promoted
    assert decision.reason.startswith(f"rejected: worse than current {incumbent} by 0.04 ")
    assert decision.candidate_value == 0.41
    assert decision.current_value == 0.45
    assert registry.current(MODEL).version == incumbent


def test_promote_accepts_candidate_worse_within_tolerance(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, 0.44)
    registry.promote(MODEL, incumbent)

    decision = registry.promote(MODEL, candidate, tolerance=0.02)

    assert decision.promoted
    assert decision.previous == incumbent
    assert decision.reason.startswith("promoted: validation recall@20 0.44 >= current")
    assert registry.current(MODEL).version == candidate


def test_promote_accepts_candidate_at_threshold(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, 0.42)
    registry.promote(MODEL, incumbent)
    # 0.45 - 0.03 is 0.42000000000000004 in binary floating point, just above the candidate.
    assert 0.42 < 0.45 - 0.03
    assert registry.promote(MODEL, candidate, tolerance=0.03).promoted


def test_promote_accepts_better_candidate(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, 0.46)
    registry.promote(MODEL, incumbent)
    assert registry.promote(MODEL, candidate).promoted


def test_promote_force_skips_metric_gate(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, 0.30)
    registry.promote(MODEL, incumbent)

    decision = registry.promote(MODEL, candidate, force=True)

    assert decision.promoted
    assert decision.forced
    assert decision.reason.startswith("promoted (forced): worse than current")


def test_promote_rejects_candidate_without_metric(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.45)
    candidate = register(registry, tmp_path, None)
    registry.promote(MODEL, incumbent)

    decision = registry.promote(MODEL, candidate)

    assert not decision.promoted
    assert "has no validation recall@20" in decision.reason


def test_promote_same_version_is_unchanged(registry, tmp_path):
    version = register(registry, tmp_path, 0.45)
    registry.promote(MODEL, version)
    decision = registry.promote(MODEL, version)
    assert decision.action == Action.UNCHANGED
    assert not decision.promoted


def test_promote_rejects_invalid_tolerance(registry, tmp_path):
    version = register(registry, tmp_path, 0.45)
    with pytest.raises(ValueError, match="tolerance -0.1"):
        registry.promote(MODEL, version, tolerance=-0.1)


def test_promote_rejects_corrupt_artifact(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.40)
    candidate = register(registry, tmp_path, 0.50)
    registry.promote(MODEL, incumbent)
    pointer_before = current_pointer(registry)
    flip_byte(registry.get(MODEL, candidate).path / "model.pt", offset=1)

    decision = registry.promote(MODEL, candidate, force=True)

    assert not decision.promoted
    assert decision.reason.startswith(f"rejected: corrupt artifact in {MODEL} {candidate}: model.pt has SHA-256")
    assert current_pointer(registry) == pointer_before


def test_promote_rejects_incompatible_format(registry, tmp_path):
    incumbent = register(registry, tmp_path, 0.40)
    candidate = register(registry, tmp_path, 0.50, artifact_format="sasrec-torch-v1")
    registry.promote(MODEL, incumbent)

    decision = registry.promote(MODEL, candidate, artifact_format=FORMAT, force=True)

    assert not decision.promoted
    assert "incompatible artifact" in decision.reason
    assert registry.current(MODEL).version == incumbent


def test_promote_rejects_failing_load_test(registry, tmp_path):
    version = register(registry, tmp_path, 0.50)

    def load(path: Path) -> None:
        raise ValueError("unexpected key 'gru.weight_hh_l1'")

    decision = registry.promote(MODEL, version, load_test=load)

    assert not decision.promoted
    assert "load test" in decision.reason
    assert "gru.weight_hh_l1" in decision.reason
    assert registry.current(MODEL) is None


def test_promote_unknown_version_raises(registry):
    with pytest.raises(VersionNotFound):
        registry.promote(MODEL, "v000001-20261204T221500Z")


def test_decisions_are_appended_to_history(registry, tmp_path):
    first = register(registry, tmp_path, 0.45)
    second = register(registry, tmp_path, 0.30)
    registry.promote(MODEL, first)
    registry.promote(MODEL, second)

    history = registry.history(MODEL)

    assert [(entry.action, entry.version) for entry in history] == [(Action.PROMOTE, first), (Action.REJECT, second)]
    lines = (registry.storage.local_path(f"models/{MODEL}") / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["reason"].startswith("rejected: worse than current")


def test_history_skips_truncated_line(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.45)
    registry.promote(MODEL, first)
    history_path = registry.storage.local_path(f"models/{MODEL}") / "history.jsonl"
    with open(history_path, "a") as handle:
        handle.write('{"model_name": "gru4rec", "vers')  # a crash during an append
    registry.promote(MODEL, second)

    assert [entry.version for entry in registry.history(MODEL)] == [first, second]
    assert registry.rollback(MODEL).version == first


# --- rollback and the pointer file ------------------------------------------------------------


def test_rollback_restores_previous_version(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    third = register(registry, tmp_path, 0.44)
    for version in (first, second, third):
        registry.promote(MODEL, version)

    decision = registry.rollback(MODEL)

    assert decision.action == Action.ROLLBACK
    assert decision.version == second
    assert decision.previous == third
    assert current_pointer(registry) == f"{second}\n"
    # A second rollback walks further back, then there is nothing left.
    assert registry.rollback(MODEL).version == first
    with pytest.raises(NoPreviousVersion, match=f"no version promoted before {first}"):
        registry.rollback(MODEL)


def test_rollback_after_pointer_changed_outside_history(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    third = register(registry, tmp_path, 0.44)
    unpromoted = register(registry, tmp_path, 0.46)
    for version in (first, second, third):
        registry.promote(MODEL, version)
    pointer = registry.storage.local_path(f"models/{MODEL}") / CURRENT_FILE

    # A rollback that crashed after the pointer write, before its history line.
    pointer.write_text(f"{second}\n")
    assert registry.rollback(MODEL).version == first

    # A promotion that crashed the same way: the next rollback returns to the last recorded one.
    pointer.write_text(f"{unpromoted}\n")
    assert registry.rollback(MODEL).version == first


def test_rollback_skips_rejected_candidates(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    rejected = register(registry, tmp_path, 0.10)
    registry.promote(MODEL, first)
    registry.promote(MODEL, second)
    registry.promote(MODEL, rejected)
    assert registry.rollback(MODEL).version == first


def test_rollback_without_history_raises(registry, tmp_path):
    with pytest.raises(NoPreviousVersion, match="promote one first"):
        registry.rollback(MODEL)
    registry.promote(MODEL, register(registry, tmp_path, 0.4))
    with pytest.raises(NoPreviousVersion):
        registry.rollback(MODEL)


def test_rollback_rejects_corrupt_target(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    registry.promote(MODEL, first)
    registry.promote(MODEL, second)
    flip_byte(registry.get(MODEL, first).path / "model.pt")

    with pytest.raises(CorruptArtifact, match="model.pt"):
        registry.rollback(MODEL)
    assert registry.current(MODEL).version == second


def test_pointer_unchanged_when_replace_fails(registry, tmp_path, monkeypatch):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.42)
    registry.promote(MODEL, first)

    def failing_replace(source, destination):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        registry.promote(MODEL, second)
    monkeypatch.undo()

    assert current_pointer(registry) == f"{first}\n"
    leftovers = [name for name in os.listdir(registry.storage.local_path(f"models/{MODEL}")) if name.endswith(".tmp")]
    assert leftovers == []


def test_pointer_reads_never_see_partial_file(registry, tmp_path):
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.40)
    registry.promote(MODEL, first)
    pointer = registry.storage.local_path(f"models/{MODEL}") / CURRENT_FILE
    expected = {f"{first}\n", f"{second}\n"}
    stop = threading.Event()
    unexpected: list[str] = []

    def read_pointer() -> None:
        while not stop.is_set():
            content = pointer.read_text()
            if content not in expected:
                unexpected.append(content)

    reader = threading.Thread(target=read_pointer)
    reader.start()
    try:
        for _ in range(50):
            assert registry.promote(MODEL, second).promoted
            assert registry.rollback(MODEL).version == first
    finally:
        stop.set()
        reader.join()

    assert unexpected == []


def test_registry_imports_no_component_or_torch():
    code = (
        "import sys, seqrec.registry\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(roots & {'torch', 'pipelines', 'serving', 'online_learning', 'cli'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- command line -----------------------------------------------------------------------------


def registry_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqrec")
    commands = parser.add_subparsers(dest="command", required=True)
    registry_command.add_parser(commands)
    return parser


def test_cli_parses_promote_options():
    args = registry_parser().parse_args(
        ["registry", "promote", "12", "--root", "/tmp/r", "--model", "sasrec", "--metric", "mrr@20",
         "--tolerance", "0.005", "--force", "--artifact-format", FORMAT, "--load-test", "json:loads"]
    )
    assert args.action == "promote"
    assert args.version == "12"
    assert args.root == Path("/tmp/r")
    assert args.model == "sasrec"
    assert args.metric == "mrr@20"
    assert args.tolerance == 0.005
    assert args.force is True
    assert args.artifact_format == FORMAT
    assert args.load_test == "json:loads"
    assert args.handler is registry_command.run


def test_cli_defaults(monkeypatch):
    monkeypatch.setenv("SEQREC_REGISTRY", "/srv/models")
    args = registry_parser().parse_args(["registry", "rollback"])
    assert args.model == "gru4rec"
    assert registry_command.registry_root(args) == Path("/srv/models")
    assert registry_parser().parse_args(["registry", "promote", "3"]).tolerance == 0.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["registry", "promote", "3", "--tolerance", "-1"], "--tolerance"),
        (["registry", "verify"], "VERSION"),
        (["registry", "delete"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        registry_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def run_cli(root: Path, *argv: str) -> int:
    args = registry_parser().parse_args(["registry", *argv, "--root", str(root)])
    return args.handler(args)


def test_cli_end_to_end(registry, tmp_path, capsys):
    root = registry.storage.local_path("")
    first = register(registry, tmp_path, 0.40)
    second = register(registry, tmp_path, 0.30)

    assert run_cli(root, "promote", "1") == 0
    assert run_cli(root, "promote", second) == 1
    assert "rejected: worse than current" in capsys.readouterr().out
    assert run_cli(root, "promote", "2", "--force") == 0
    assert run_cli(root, "verify", "1", "--artifact-format", FORMAT) == 0
    assert run_cli(root, "rollback") == 0
    capsys.readouterr()

    assert run_cli(root, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("*") and first in line for line in lines)
    assert any(line.startswith(" ") and second in line and "recall@20=0.3" in line for line in lines)


def test_cli_reports_corrupt_version(registry, tmp_path):
    root = registry.storage.local_path("")
    version = register(registry, tmp_path, 0.40)
    flip_byte(registry.get(MODEL, version).path / "model.pt")
    with pytest.raises(SystemExit, match="model.pt has SHA-256"):
        run_cli(root, "verify", "1")


def test_cli_load_test_must_name_a_function(registry, tmp_path):
    root = registry.storage.local_path("")
    register(registry, tmp_path, 0.40)
    with pytest.raises(SystemExit, match="MODULE:FUNCTION"):
        run_cli(root, "verify", "1", "--load-test", "json")
    with pytest.raises(SystemExit, match="no_such_module"):
        run_cli(root, "verify", "1", "--load-test", "no_such_module:load")
