"""Prometheus metrics of the server, in a registry of its own so that several servers can share a process."""

from __future__ import annotations

import logging
from collections import Counter as Counts
from typing import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, values

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FEATURE_AGE_BUCKETS_S = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600, 6 * 3600, 24 * 3600)


class ServingMetrics:
    """Every metric the server exports; :meth:`serve` exposes them over HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        if values.ValueClass is not values.MutexValue:
            logger.warning(
                "prometheus_client keeps its values in PROMETHEUS_MULTIPROCESS_DIR (set by Feast or the "
                "environment), so servers in this process share their metric values; import serving "
                "before feast, or unset the variable, to keep them apart"
            )
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "seqrec_rpc_latency_seconds", "Server-side time per call, by RPC method.",
            ["method"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.calls = Counter(
            "seqrec_rpc_calls", "Finished calls, by RPC method and status code.", ["method", "code"], registry=self.registry,
        )

        self.responses = Counter(
            "seqrec_recommend_responses", "Recommend responses, by serving path.", ["path"], registry=self.registry,
        )
        self.fallbacks = Counter(
            "seqrec_fallbacks", "Recommend responses that fell back, by reason.", ["reason"], registry=self.registry,
        )

        self.feature_age = Histogram(
            "seqrec_feature_age_seconds", "Age of the feature rows read, by feature view.",
            ["view"], buckets=FEATURE_AGE_BUCKETS_S, registry=self.registry,
        )
        self.model_version = Gauge(
            "seqrec_model_version_info", "1 for the model version being served, by model and version.",
            ["model", "version"], registry=self.registry,
        )

        self.removed = Counter(
            "seqrec_items_removed", "Candidate items removed by the constraint layer, by rule.", ["rule"],
            registry=self.registry,
        )
        self.reload_failures = Counter(
            "seqrec_reload_failures", "Failed reloads, by part (rules, torch_model, popularity).", ["part"],
            registry=self.registry,
        )

        self._http_server = None
        self._served_versions: dict[str, str] = {}

    def serve(self, port: int) -> int:
        """Expose the metrics on http://127.0.0.1:``port``/metrics (0 picks a free port); returns the port.

        Raises RuntimeError when the port cannot be bound.
        """
        try:
            self._http_server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as error:
            raise RuntimeError(
                f"cannot serve metrics on 127.0.0.1:{port}: {error.strerror or error}; pick a free --metrics-port"
            ) from error
        bound = self._http_server.server_address[1]
        logger.info("metrics on http://127.0.0.1:%d/metrics", bound)
        return bound

    def close(self) -> None:
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None

    def set_model_version(self, model: str, version: str) -> None:
        """Mark ``version`` as the one served for ``model``, and drop the series of the version before it."""
        previous = self._served_versions.get(model)
        if previous is not None and previous != version:
            self.model_version.remove(model, previous)
        self.model_version.labels(model, version).set(1)
        self._served_versions[model] = version

    def record_recommendation(self, path: str, reason: str, ages_ms: Mapping[str, int], removed: Counts) -> None:
        self.responses.labels(path).inc()
        if reason:
            self.fallbacks.labels(reason).inc()
        for view, age_ms in ages_ms.items():
            self.feature_age.labels(view).observe(max(age_ms, 0) / 1000)
        for rule, count in removed.items():
            self.removed.labels(rule).inc(count)
