"""A server interceptor that records each unary call's latency and status code."""

from __future__ import annotations

import time

import grpc

from serving.metrics import ServingMetrics


def _code_name(context: grpc.ServicerContext, default: grpc.StatusCode) -> str:
    code = context.code()
    if code is None:
        return default.name
    # The context stores a StatusCode once set; older grpcio versions may store its (int, str) value.
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class CallMetricsInterceptor(grpc.ServerInterceptor):
    """Observe latency per method and count calls by method and status code (unary-unary methods only)."""

    def __init__(self, metrics: ServingMetrics):
        self.metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        behavior = handler.unary_unary
        metrics = self.metrics

        def timed(request, context):
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = behavior(request, context)
                code = grpc.StatusCode.OK
                return response
            finally:
                metrics.latency.labels(method).observe(time.perf_counter() - started)
                metrics.calls.labels(method, _code_name(context, code)).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
