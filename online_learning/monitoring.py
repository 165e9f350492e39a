"""Prometheus metrics of the learner, in a registry of their own, served on 127.0.0.1."""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

logger = logging.getLogger(__name__)

METRICS_ADDRESS = "127.0.0.1"


class LearnerMetrics:
    """The learner's Prometheus metrics; counters count since this process started."""

    def __init__(self, cutoff: int) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events = Counter("seqrec_learner_events", "Valid events learned by this process", registry=registry)
        self.invalid_events = Counter(
            "seqrec_learner_invalid_events", "Invalid records skipped, by rejection reason", ["reason"], registry=registry
        )
        self.unknown_items = Counter(
            "seqrec_learner_unknown_items", "Scored events whose item was never seen before", registry=registry
        )
        self.drift_events = Counter(
            "seqrec_learner_drift_events", "Changes that ADWIN detected in the prequential hit stream", registry=registry
        )
        self.recall = Gauge(
            f"seqrec_learner_prequential_recall_at_{cutoff}", f"Prequential Recall@{cutoff} since the first event",
            registry=registry,
        )
        self.mrr = Gauge(
            f"seqrec_learner_prequential_mrr_at_{cutoff}", f"Prequential MRR@{cutoff} since the first event",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "seqrec_learner_consumer_lag", "Records in the topic not yet consumed, over all partitions", registry=registry
        )
        self.snapshot_version = Gauge(
            "seqrec_learner_snapshot_version", "Version of the last snapshot written", registry=registry
        )
        self._server: WSGIServer | None = None

    def serve(self, port: int) -> None:
        """Serve the metrics on ``127.0.0.1:port`` from a daemon thread; port 0 serves nothing."""
        if port == 0:
            return
        self._server, _ = start_http_server(port, addr=METRICS_ADDRESS, registry=self.registry)
        logger.info("serving Prometheus metrics on http://%s:%d/metrics", METRICS_ADDRESS, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
