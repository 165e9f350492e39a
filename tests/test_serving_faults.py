"""Faults of the serving parts over a real socket: no deadline, Kafka down, bad models, no feature repo, bad options."""

from __future__ import annotations

import json
import logging
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pytest
import torch

from cli.main import build_parser
from cli.serve_command import run
from seqrec.registry import ModelRegistry
from serving.config import EventSettings, ModelSettings, ServingConfig
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from serving.torch_model import ModelWatcher
from stack.process import free_port
from tests.serving_helpers import CATALOGUE, MODEL_NAME, now_ms, running_server, train_and_register, write_river_snapshot

SEND_TIMEOUT_MS = 1500
CALL_TIMEOUT_S = 3.0
CONCURRENT_SENDS = 6


def event_request(identifier: str) -> pb.SendEventRequest:
    return pb.SendEventRequest(event=pb.Event(
        event_id=identifier, session_id="s-fault", item_id="item-1", event_type="view", event_time=now_ms(),
    ))


def unreachable_kafka_config(**changes) -> ServingConfig:
    """A server whose Kafka address is a 127.0.0.1 port that nothing listens on."""
    events = EventSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", send_timeout_ms=SEND_TIMEOUT_MS)
    return ServingConfig(events=events, **changes)


def test_send_event_without_deadline_unavailable():
    with running_server(unreachable_kafka_config()) as server:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            server.stub.SendEvent(event_request("e-no-deadline"))
        elapsed_s = time.monotonic() - started

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Kafka at 127.0.0.1:" in raised.value.details()
    assert elapsed_s < SEND_TIMEOUT_MS / 1000 + 1


def test_unreachable_kafka_fails_fast():
    config = unreachable_kafka_config(max_workers=2)
    results: list[tuple[grpc.StatusCode, float]] = []
    lock = threading.Lock()

    with running_server(config) as server:
        def send(index: int) -> None:
            started = time.monotonic()
            try:
                server.stub.SendEvent(event_request(f"e{index}"), timeout=CALL_TIMEOUT_S)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            with lock:
                results.append((code, time.monotonic() - started))

        senders = [threading.Thread(target=send, args=(index,)) for index in range(CONCURRENT_SENDS)]
        for sender in senders:
            sender.start()
        time.sleep(0.2)
        started = time.monotonic()
        response = server.stub.Recommend(pb.RecommendRequest(session_id="s-during", k=1), timeout=CALL_TIMEOUT_S)
        recommend_s = time.monotonic() - started
        for sender in senders:
            sender.join()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as later:
            server.stub.SendEvent(event_request("e-later"), timeout=CALL_TIMEOUT_S)
        later_s = time.monotonic() - started

    assert response.path == pb.SERVING_PATH_COLD_START
    assert recommend_s < 1.0
    assert [code for code, _ in results] == [grpc.StatusCode.UNAVAILABLE] * CONCURRENT_SENDS
    assert max(elapsed for _, elapsed in results) < CALL_TIMEOUT_S
    assert later.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in later.value.details()
    assert later_s < 0.5


class FailingScorer(torch.nn.Module):
    """A module whose forward pass raises, as a broken export would; TorchScript raises torch.jit.Error."""

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        if items.numel() > 0:
            raise ValueError("broken export")
        return items.float()


def register_files(registry_root: Path, files: dict[str, bytes | torch.jit.ScriptModule],
                   artifact_format: str = "gru4rec-torch-v1") -> str:
    """Register and promote a version made of ``files``; returns its version."""
    with tempfile.TemporaryDirectory(prefix="seqrec-test-bad-model-") as staging:
        directory = Path(staging)
        for name, content in files.items():
            if isinstance(content, bytes):
                (directory / name).write_bytes(content)
            else:
                torch.jit.save(content, str(directory / name))
        registry = ModelRegistry(registry_root)
        registered = registry.register(MODEL_NAME, directory, artifact_format=artifact_format,
                                       metrics={"validation": {"recall@20": 0.1}}, code_version="test")
    assert registry.promote(MODEL_NAME, registered.version, force=True).promoted
    return registered.version


BAD_MODELS = {
    "forward_raises": {"model.ts": torch.jit.script(FailingScorer()), "item_index.json": json.dumps(CATALOGUE).encode()},
    "index_not_list": {"model.ts": torch.jit.script(FailingScorer()), "item_index.json": b"5"},
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_serves_without_torch(tmp_path, case):
    register_files(tmp_path / "registry", BAD_MODELS[case])
    config = ServingConfig(models=ModelSettings(registry_root=tmp_path / "registry", poll_interval_s=0.1))

    with running_server(config) as server:
        response = server.recommend("s-bad-model", k=3, recent_item_ids=["item-1"])
        failures = server.server.metrics.reload_failures.labels("torch_model")._value.get()

    assert server.server.parts.models.current is None
    assert response.path == pb.SERVING_PATH_POPULARITY
    assert response.fallback_reason == "no_model"
    assert failures == 1


def test_failed_hot_reload_keeps_model(tmp_path):
    registry = tmp_path / "registry"
    good = train_and_register(registry, seed=1)
    config = ServingConfig(models=ModelSettings(registry_root=registry, poll_interval_s=0.1))

    with running_server(config) as server:
        register_files(registry, BAD_MODELS["forward_raises"])
        metric = server.server.metrics.reload_failures.labels("torch_model")
        deadline = time.monotonic() + 10
        while metric._value.get() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        response = server.recommend("s-reload", k=3, recent_item_ids=["item-1"])

    assert metric._value.get() == 1
    assert response.model_versions.torch_version == good


def test_other_format_names_formats(tmp_path, caplog):
    version = register_files(tmp_path / "registry", {"model.pkl": b"rules"}, artifact_format="baseline-sr-v1")
    watcher = ModelWatcher(tmp_path / "registry", MODEL_NAME)

    with caplog.at_level(logging.ERROR, logger="serving.torch_model"):
        loaded = watcher.reload_if_changed()

    assert not loaded
    message = caplog.text
    assert version in message
    assert "'baseline-sr-v1'" in message
    assert "'gru4rec-torch-v1'" in message
    assert "predates" not in message


def test_unknown_items_flag_torch_fallback(tmp_path):
    train_and_register(tmp_path / "registry", seed=1)
    write_river_snapshot(tmp_path / "snapshots", version=1)
    config = ServingConfig(models=ModelSettings(registry_root=tmp_path / "registry",
                                                snapshot_root=tmp_path / "snapshots"))

    with running_server(config) as server:
        watcher = server.server.parts.snapshots
        deadline = time.monotonic() + 10
        while watcher.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        known = server.recommend("s-known", k=3, recent_item_ids=["item-1"])
        unknown = server.recommend("s-unknown-items", k=3, recent_item_ids=["not-in-catalogue"])

    assert known.path == pb.SERVING_PATH_MODEL
    assert not known.fallback
    assert unknown.path == pb.SERVING_PATH_MODEL
    assert unknown.fallback
    assert unknown.fallback_reason == "torch_model_unavailable"
    assert unknown.model_versions.torch_version == ""


def test_no_feature_repo_not_store_down():
    with running_server(ServingConfig()) as server:
        with_items = server.recommend("s-items", k=3, recent_item_ids=["item-1"])
        without_items = server.recommend("s-empty", k=3)
        fallbacks = server.server.metrics.fallbacks

    assert with_items.path == pb.SERVING_PATH_POPULARITY
    assert with_items.fallback_reason == "no_model"
    assert without_items.path == pb.SERVING_PATH_COLD_START
    assert without_items.fallback_reason == "unknown_session"
    assert fallbacks.labels("feature_store_unavailable")._value.get() == 0


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--deadline-ms", "0"], "--deadline-ms"),
        (["--deadline-ms", "-5"], ">= 1"),
        (["--max-workers", "0"], "--max-workers"),
        (["--grace-period-s", "-1"], "--grace-period-s"),
        (["--feature-max-age-s", "nan"], "--feature-max-age-s"),
        (["--metrics-port", "70000"], "0 to 65535"),
        (["--blend-weights", '{"foo": 1}'], "valid keys are torch, river, transitions, popularity"),
        (["--blend-weights", '{"torch": "x"}'], "blend weight torch"),
    ],
)
def test_serve_rejects_invalid_option(capsys, options, expected):
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", *options])

    assert raised.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.fixture
def restore_signals():
    """Put back the SIGTERM and SIGINT handlers that ``seqrec serve`` installs."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_serve_busy_metrics_port_one_line(restore_signals):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = build_parser().parse_args(["serve", "--address", "127.0.0.1:0", "--metrics-port", str(port)])
        with pytest.raises(SystemExit) as raised:
            run(args)

    message = str(raised.value.code)
    assert "\n" not in message
    assert f"cannot serve metrics on 127.0.0.1:{port}" in message


def test_serve_invalid_tls_pem_one_line(tmp_path, restore_signals):
    certificate, key = tmp_path / "server.pem", tmp_path / "server.key"
    certificate.write_text("not a certificate\n")
    key.write_text("not a key\n")
    args = build_parser().parse_args(
        ["serve", "--address", "127.0.0.1:0", "--tls-cert", str(certificate), "--tls-key", str(key)]
    )

    with pytest.raises(SystemExit) as raised:
        run(args)

    message = str(raised.value.code)
    assert "\n" not in message
    assert f"invalid TLS certificate {certificate}" in message
