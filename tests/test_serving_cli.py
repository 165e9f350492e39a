"""`seqrec serve` as a process: grpcurl lists the service through reflection, and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.process import free_port
from tests.grpc_tools_helpers import go_tool

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
GRPCURL_TIMEOUT_S = 30


@pytest.fixture
def serve_process(tmp_path):
    port = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text("blocklist: [item-0]\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--address", f"127.0.0.1:{port}", "--rules", str(rules)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_S)
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "seqrec serve did not report SERVING"
            time.sleep(0.1)
        yield process, port
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_stops_gracefully(serve_process):
    process, _ = serve_process

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=STOP_TIMEOUT_S)

    assert process.returncode == 0, output
    assert "received SIGTERM" in output
    assert "stopped" in output


def test_grpcurl_lists_and_calls_service(serve_process):
    grpcurl = go_tool("grpcurl")
    if grpcurl is None:
        pytest.skip("Go is not installed, so grpcurl cannot be built (go install github.com/fullstorydev/grpcurl/cmd/grpcurl)")
    _, port = serve_process
    address = f"127.0.0.1:{port}"

    listed = subprocess.run([str(grpcurl), "-plaintext", address, "list"], capture_output=True, text=True,
                            timeout=GRPCURL_TIMEOUT_S)
    called = subprocess.run(
        [str(grpcurl), "-plaintext", "-d", '{"session_id": "s1", "k": 3, "recent_item_ids": ["item-1"]}',
         address, "seqrec.v1.Recommender/Recommend"],
        capture_output=True, text=True, timeout=GRPCURL_TIMEOUT_S,
    )

    assert listed.returncode == 0, listed.stderr
    assert "seqrec.v1.Recommender" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["path"] == "SERVING_PATH_POPULARITY"
