"""The ``seqrec.v1.Recommender`` servicer: maps requests to the scoring path and errors to status codes.

Status codes: INVALID_ARGUMENT for a request or event outside the limits or
the event schema (the message names the field), DEADLINE_EXCEEDED when the
deadline passes, UNAVAILABLE when Kafka fails, FAILED_PRECONDITION when
SendEvent has no Kafka address.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import grpc

from seqrec.events import InvalidEvent
from serving.config import ServingConfig
from serving.event_sink import EventSink, EventSinkUnavailable, event_record
from serving.limits import InvalidRequest, recommend_query
from serving.metrics import ServingMetrics
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from serving.protos.seqrec.v1 import recommender_pb2_grpc
from serving.recommender import DeadlineExceeded, Recommendation, Recommender, ServingPath, Source

logger = logging.getLogger(__name__)

PATHS = {
    ServingPath.MODEL: pb.SERVING_PATH_MODEL,
    ServingPath.POPULARITY: pb.SERVING_PATH_POPULARITY,
    ServingPath.FEATURE_STORE_DOWN: pb.SERVING_PATH_FEATURE_STORE_DOWN,
    ServingPath.COLD_START: pb.SERVING_PATH_COLD_START,
}
SOURCES = {
    Source.TORCH: pb.ITEM_SOURCE_TORCH,
    Source.TRANSITIONS: pb.ITEM_SOURCE_TRANSITIONS,
    Source.POPULARITY: pb.ITEM_SOURCE_POPULARITY,
}


def response_message(result: Recommendation, request_id: str) -> pb.RecommendResponse:
    response = pb.RecommendResponse(
        path=PATHS[result.path],
        fallback=bool(result.fallback_reason),
        fallback_reason=result.fallback_reason,
        request_id=request_id,
    )
    for item in result.items:
        scored = response.items.add(item_id=item.item_id, score=item.score)
        if item.torch_score is not None:
            scored.torch_score = item.torch_score
        if item.river_score is not None:
            scored.river_score = item.river_score
        scored.sources.extend(SOURCES[source] for source in item.sources)
    response.model_versions.torch_version = result.torch_version
    if result.river_version is not None:
        response.model_versions.river_version = result.river_version
        response.model_versions.river_events_learned = result.river_events_learned
    response.feature_age_ms.update(result.feature_age_ms)
    return response


def time_budget_s(context: grpc.ServicerContext, server_budget_s: float) -> float:
    """Return the seconds a call may take: ``server_budget_s``, cut to the client's deadline when that is sooner.

    Without a client deadline, gRPC Python reports the time remaining as a huge
    number (or None), so the server budget applies. The result is at least 0.
    """
    remaining = context.time_remaining()
    if remaining is None:
        return server_budget_s
    return max(min(server_budget_s, remaining), 0.0)


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    """Recommend and SendEvent over a :class:`Recommender` and an :class:`EventSink`."""

    def __init__(self, recommender: Recommender, events: EventSink, config: ServingConfig, metrics: ServingMetrics):
        self.recommender = recommender
        self.events = events
        self.config = config
        self.metrics = metrics

    def _deadline(self, context: grpc.ServicerContext) -> float:
        """Return the call's deadline as a ``time.monotonic()`` value: the client's or the server budget, the sooner."""
        return time.monotonic() + time_budget_s(context, self.config.deadline_ms / 1000)

    def Recommend(self, request, context):
        try:
            query = recommend_query(request, self.config.limits)
        except InvalidRequest as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            result = self.recommender.recommend(query, self._deadline(context))
        except DeadlineExceeded as error:
            logger.warning("request %s for session %s: %s", query.request_id, query.session_id, error)
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        self.metrics.record_recommendation(result.path, result.fallback_reason, result.feature_age_ms, result.removed)
        return response_message(result, request.request_id)

    def SendEvent(self, request, context):
        record = event_record(request.event)
        timeout = timedelta(seconds=time_budget_s(context, self.events.settings.send_timeout_ms / 1000))
        try:
            stored = self.events.send(record, timeout)
        except InvalidEvent as error:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"event.{error.field or 'event'}: {error.message} (reason {error.reason}); "
                "the event went to the dead-letter topic",
            )
        except EventSinkUnavailable as error:
            code = grpc.StatusCode.FAILED_PRECONDITION if self.events.settings.bootstrap_servers is None else (
                grpc.StatusCode.UNAVAILABLE
            )
            context.abort(code, str(error))
        return pb.SendEventResponse(topic=stored.topic, partition=stored.partition, offset=stored.offset)
