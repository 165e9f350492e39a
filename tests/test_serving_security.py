"""Bearer token and TLS over a real socket; the certificate is made in the test with the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.config import SecuritySettings, ServingConfig
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from tests.serving_helpers import running_server

TOKEN = "test-token-0123456789"
OPENSSL_TIMEOUT_S = 60


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed, and the cryptography package is not either")
    certificate, key = directory / "server.pem", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=OPENSSL_TIMEOUT_S,
    )
    return certificate, key


def test_bearer_token_required():
    config = ServingConfig(security=SecuritySettings(bearer_token=TOKEN))
    request = pb.RecommendRequest(session_id="s", k=1)

    with running_server(config) as server:
        with pytest.raises(grpc.RpcError) as missing:
            server.stub.Recommend(request, timeout=10)
        with pytest.raises(grpc.RpcError) as wrong:
            server.stub.Recommend(request, timeout=10, metadata=[("authorization", "Bearer nope")])
        accepted = server.stub.Recommend(request, timeout=10, metadata=[("authorization", f"Bearer {TOKEN}")])
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)

    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in missing.value.details()
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert accepted.path == pb.SERVING_PATH_COLD_START
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_tls_serves_trusting_client(tmp_path):
    certificate, key = self_signed_certificate(tmp_path)
    config = ServingConfig(security=SecuritySettings(tls_cert_path=certificate, tls_key_path=key))
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate.read_bytes())

    with running_server(config, credentials=credentials) as server:
        response = server.recommend("s-tls", k=2)
        plaintext = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
        plaintext.close()

    assert response.path == pb.SERVING_PATH_COLD_START
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_cert_path": Path("a.pem")}, "both"),
        ({"tls_client_ca_path": Path("ca.pem")}, "client CA"),
        ({"bearer_token": " "}, "empty"),
    ],
)
def test_security_settings_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        SecuritySettings(**settings)
