"""Bearer-token check and TLS credentials of the server."""

from __future__ import annotations

import hmac
import logging
import ssl

import grpc

from serving.config import SecuritySettings

logger = logging.getLogger(__name__)

PROTECTED_PREFIX = "/seqrec.v1."
"""Methods under this prefix need the token; health checks and reflection stay open, for probes and grpcurl."""


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Reject ``seqrec.v1`` calls without ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()
        self._rejected_calls = 0

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith(PROTECTED_PREFIX):
            return continuation(handler_call_details)
        headers = dict(handler_call_details.invocation_metadata or ())
        supplied = headers.get("authorization", "")
        if hmac.compare_digest(supplied.encode(), self._expected):
            return continuation(handler_call_details)
        self._rejected_calls += 1
        if self._rejected_calls == 1 or self._rejected_calls % 1000 == 0:
            logger.warning("rejected %d calls without a valid bearer token, latest to %s",
                           self._rejected_calls, handler_call_details.method)
        message = "missing or invalid bearer token; send the header 'authorization: Bearer <token>'"

        def reject(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        return grpc.unary_unary_rpc_method_handler(reject)


def check_pem_files(settings: SecuritySettings) -> None:
    """Check that the certificate, key and client CA of ``settings`` are valid PEM and that the key fits.

    Raises ValueError naming the file; gRPC itself reports only "Failed to bind" for a bad file.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert_path, settings.tls_key_path)
    except ssl.SSLError as error:
        raise ValueError(
            f"invalid TLS certificate {settings.tls_cert_path} or key {settings.tls_key_path}: {error.reason or error}; "
            "pass a PEM certificate and the PEM private key that belongs to it"
        ) from error
    if settings.tls_client_ca_path is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_path)
        except ssl.SSLError as error:
            raise ValueError(
                f"invalid TLS client CA {settings.tls_client_ca_path}: {error.reason or error}; pass a PEM CA certificate"
            ) from error


def server_credentials(settings: SecuritySettings) -> grpc.ServerCredentials:
    """Build TLS credentials from the PEM files of ``settings``.

    Raises OSError when a file is unreadable and ValueError when a file is not valid PEM.
    """
    check_pem_files(settings)
    key = settings.tls_key_path.read_bytes()
    certificate = settings.tls_cert_path.read_bytes()
    client_ca = settings.tls_client_ca_path.read_bytes() if settings.tls_client_ca_path else None
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
