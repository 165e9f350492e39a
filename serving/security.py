"""Bearer-token check and TLS credentials of the server."""

from __future__ import annotations

import hmac
import logging

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


def server_credentials(settings: SecuritySettings) -> grpc.ServerCredentials:
    """Build TLS credentials from the PEM files of ``settings``; raises OSError when a file is unreadable."""
    key = settings.tls_key_path.read_bytes()
    certificate = settings.tls_cert_path.read_bytes()
    client_ca = settings.tls_client_ca_path.read_bytes() if settings.tls_client_ca_path else None
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
