"""Build, start and stop the gRPC server: the Recommender service, health checking, reflection and metrics.

>>> server, port = create_server("127.0.0.1:0")
>>> server.start()
>>> port > 0
True
>>> server.stop(grace_s=0).wait(5)
True
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving.call_metrics import CallMetricsInterceptor
from serving.config import ServingConfig
from serving.event_sink import EventSink
from serving.features import FeatureReader, FeatureStoreUnavailable, open_feature_store
from serving.metrics import ServingMetrics
from serving.periodic import PeriodicTask
from serving.protos.seqrec.v1 import recommender_pb2, recommender_pb2_grpc
from serving.recommender import Recommender
from serving.rules import Rules
from serving.rules_watcher import RulesWatcher
from serving.security import BearerTokenInterceptor, server_credentials
from serving.service import RecommenderService
from serving.torch_model import ModelWatcher

logger = logging.getLogger(__name__)

SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


@dataclass
class ServingParts:
    """The optional parts behind the service; tests reach them to force a reload."""

    features: FeatureReader | None = None
    models: ModelWatcher | None = None
    snapshots: object | None = None
    rules: RulesWatcher | None = None
    events: EventSink | None = None
    tasks: list[PeriodicTask] = field(default_factory=list)


class RecommenderServer:
    """A gRPC server with its background reloads and metrics endpoint; from :func:`create_server`."""

    def __init__(self, server: grpc.Server, port: int, parts: ServingParts, config: ServingConfig,
                 metrics: ServingMetrics, health_servicer: health.HealthServicer):
        self.grpc_server = server
        self.port = port
        self.parts = parts
        self.config = config
        self.metrics = metrics
        self.metrics_port: int | None = None
        self._health = health_servicer

    def start(self) -> None:
        """Start serving calls, the background reloads and the metrics endpoint."""
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.config.metrics_port)
        for task in self.parts.tasks:
            task.start()
        self.grpc_server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving %s on port %d", SERVICE_NAME, self.port)

    def stop(self, grace_s: float | None = None) -> threading.Event:
        """Report NOT_SERVING, let calls in flight finish within ``grace_s``, then release every part.

        Returns an event that is set when the server has stopped.
        """
        grace_s = self.config.grace_period_s if grace_s is None else grace_s
        logger.info("stopping: calls in flight get %.1f s to finish", grace_s)
        self._health.enter_graceful_shutdown()
        stopped = self.grpc_server.stop(grace_s)
        done = threading.Event()

        def release() -> None:
            stopped.wait()
            for task in self.parts.tasks:
                task.stop()
            if self.parts.snapshots is not None:
                self.parts.snapshots.close()
            if self.parts.events is not None:
                self.parts.events.close()
            self.metrics.close()
            logger.info("stopped")
            done.set()

        threading.Thread(target=release, name="server-release", daemon=True).start()
        return done

    def wait_for_termination(self, timeout_s: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout_s)


def _build_parts(config: ServingConfig, metrics: ServingMetrics) -> ServingParts:
    parts = ServingParts()

    def failure_counter(part: str) -> Callable[[], None]:
        return lambda: metrics.reload_failures.labels(part).inc()

    if config.features.repo_path is not None:
        parts.features = FeatureReader(open_feature_store(config.features), config.features)

        def refresh_popularity() -> None:
            try:
                parts.features.refresh_popularity()
            except FeatureStoreUnavailable as error:
                logger.warning("popularity not refreshed, keeping the last list: %s", error)
                metrics.reload_failures.labels("popularity").inc()

        refresh_popularity()
        parts.tasks.append(PeriodicTask("popularity-refresh", config.features.popularity_refresh_s, refresh_popularity))
    if config.models.registry_root is not None:
        torch.set_num_threads(config.models.torch_threads)
        parts.models = ModelWatcher(
            config.models.registry_root,
            config.models.model_name,
            on_loaded=lambda model: metrics.set_model_version(config.models.model_name, model.version),
            on_failure=failure_counter("torch_model"),
        )
        parts.models.reload_if_changed()
        parts.tasks.append(PeriodicTask("model-reload", config.models.poll_interval_s, parts.models.reload_if_changed))
    if config.models.snapshot_root is not None:
        from online_learning.snapshots import SnapshotWatcher

        parts.snapshots = SnapshotWatcher(
            config.models.snapshot_root, max_staleness=timedelta(seconds=config.models.snapshot_max_staleness_s)
        )
    if config.rules_path is not None:
        parts.rules = RulesWatcher(config.rules_path, on_failure=failure_counter("rules"))
        parts.tasks.append(PeriodicTask("rules-reload", config.rules_poll_interval_s, parts.rules.reload_if_changed))
    parts.events = EventSink(config.events)
    return parts


def create_server(address: str, config: ServingConfig = ServingConfig()) -> tuple[RecommenderServer, int]:
    """Build the server and bind it to ``address`` (``host:port``, port 0 picks a free one).

    Loads the rules, the current model and the popularity list before it
    returns, so the first call is served by them. Returns the server, not yet
    started, and the bound port. Raises :class:`serving.rules.InvalidRules` for
    a broken rules file, FileNotFoundError for a missing feature repo profile,
    and RuntimeError when the address cannot be bound.
    """
    metrics = ServingMetrics()
    parts = _build_parts(config, metrics)
    rules_watcher = parts.rules
    recommender = Recommender(
        features=parts.features,
        models=parts.models,
        snapshots=parts.snapshots,
        rules=(lambda: rules_watcher.current) if rules_watcher is not None else Rules,
        blend=config.blend,
        model_settings=config.models,
    )
    interceptors: list[grpc.ServerInterceptor] = [CallMetricsInterceptor(metrics)]
    if config.security.bearer_token is not None:
        interceptors.append(BearerTokenInterceptor(config.security.bearer_token))
    options = [
        ("grpc.max_receive_message_length", config.limits.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=options,
    )
    service = RecommenderService(recommender, parts.events, config, metrics)
    recommender_pb2_grpc.add_RecommenderServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    if config.security.tls_enabled:
        port = server.add_secure_port(address, server_credentials(config.security))
    else:
        port = server.add_insecure_port(address)
    return RecommenderServer(server, port, parts, config, metrics, health_servicer), port


def serve(address: str, config: ServingConfig) -> int:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully; returns the exit code."""
    server, port = create_server(address, config)
    stop_requested = threading.Event()

    def request_stop(signal_number: int, _frame) -> None:
        logger.info("received %s", signal.Signals(signal_number).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    logger.info("listening on %s (port %d)%s", address, port, ", TLS" if config.security.tls_enabled else "")
    stop_requested.wait()
    server.stop().wait(config.grace_period_s + 10)
    return 0
