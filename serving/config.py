"""Configuration of the gRPC server, as typed dataclasses whose field names carry their units.

Every part is optional: without a feature repo, registry, snapshot folder,
rules file or Kafka address the server still starts and serves calls from
the parts it has, and each response names the path that served it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

BLEND_COMPONENTS = ("torch", "river", "transitions", "popularity")


@dataclass(frozen=True)
class BlendWeights:
    """Weights of the blended score; each component is scaled to [0, 1] over the candidates first.

    A component that is missing for a request (no Torch model, no River
    snapshot, no transitions) drops out, and the remaining weights keep their
    proportions. The learner's snapshot can override these weights (see
    :mod:`serving.blend`).
    """

    torch: float = 0.4
    river: float = 0.4
    transitions: float = 0.15
    popularity: float = 0.05

    def __post_init__(self) -> None:
        for name in BLEND_COMPONENTS:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"blend weight {name} is {value}; every weight must be a finite number >= 0")
        if sum(getattr(self, name) for name in BLEND_COMPONENTS) <= 0:
            raise ValueError("blend weights are all 0; give at least one component a positive weight")

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in BLEND_COMPONENTS}


@dataclass(frozen=True)
class InputLimits:
    """Bounds on a request; a request outside them gets INVALID_ARGUMENT naming the field and the bound."""

    max_k: int = 200
    """Largest ``k``; the smallest is 1."""
    max_id_length: int = 128
    """Maximum length of a session, item, category or request id, in characters (the event schema's maximum)."""
    max_recent_items: int = 200
    max_excluded_items: int = 1000
    max_purchased_items: int = 200
    max_categories: int = 100
    max_message_bytes: int = 1 << 20
    """Largest request message gRPC accepts, in bytes; larger ones fail with RESOURCE_EXHAUSTED."""


@dataclass(frozen=True)
class FeatureSettings:
    """Location of the Feast online store and the maximum age of its rows."""

    repo_path: Path | None = None
    """The Feast repo folder (``feature_repo``); None serves without features."""
    profile: str = "feature_store.yaml"
    """Settings file inside ``repo_path``: ``feature_store.yaml`` (SQLite) or ``feature_store.redis.yaml``."""
    session_max_age_s: float = 30 * 60
    """A session row older than this is a finished session, so it is ignored; the Flink job's session gap."""
    transitions_max_age_s: float = 7 * 24 * 3600
    """Transition lists older than this are ignored; the ``item_transitions`` TTL."""
    popularity_max_age_s: float = 24 * 3600
    """A popularity list older than this is ignored; the ``popular_items`` TTL, because an old list beats none."""
    popularity_refresh_s: float = 5.0
    """Interval between background reads of the popularity list; it changes once per 5-minute slide."""


@dataclass(frozen=True)
class ModelSettings:
    """Sources of the Torch model and the River snapshots, and the candidate counts."""

    registry_root: Path | None = None
    """Model registry folder; None serves without the Torch model."""
    model_name: str = "gru4rec"
    """Model name in the registry; ``seqrec train`` registers under its ``--model`` name."""
    poll_interval_s: float = 1.0
    """Interval between checks of the registry's ``CURRENT`` pointer, so a promotion is served within it."""
    snapshot_root: Path | None = None
    """Folder of the River learner's snapshots; None serves without the learner."""
    snapshot_max_staleness_s: float = 10.0
    """Maximum time before the snapshot watcher loads a newer snapshot."""
    torch_candidates: int = 50
    """Top items of the Torch model that join the candidates."""
    popularity_candidates: int = 50
    """Top popular items that join the candidates."""
    torch_threads: int = 1
    """Intra-op threads of torch; 1 leaves the other cores to gRPC's worker threads."""


@dataclass(frozen=True)
class SecuritySettings:
    """Optional bearer token and TLS."""

    bearer_token: str | None = field(default=None, repr=False)
    """When set, every ``seqrec.v1`` call needs the header ``authorization: Bearer <token>``."""
    tls_cert_path: Path | None = None
    tls_key_path: Path | None = None
    tls_client_ca_path: Path | None = None
    """When set, clients must present a certificate signed by this CA (mutual TLS)."""

    def __post_init__(self) -> None:
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ValueError("TLS needs both a certificate path and a key path; set both or neither")
        if self.tls_client_ca_path is not None and self.tls_cert_path is None:
            raise ValueError("a client CA path needs a server certificate and key; set tls_cert_path and tls_key_path")
        if self.bearer_token is not None and not self.bearer_token.strip():
            raise ValueError("the bearer token is empty; set a non-empty token or leave it unset")

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_path is not None


@dataclass(frozen=True)
class EventSettings:
    """Kafka settings of SendEvent."""

    bootstrap_servers: str | None = None
    """Kafka ``host:port[,host:port]``; None makes SendEvent return FAILED_PRECONDITION."""
    events_topic: str = "events"
    dead_letter_topic: str = "events-dead-letter"
    send_timeout_ms: int = 10_000
    """Maximum wait for the broker's acknowledgement when the client sets no shorter deadline; ``deadline_ms`` does not apply."""
    linger_ms: int = 1
    """Producer batching delay; short, because each SendEvent waits for its own acknowledgement."""


@dataclass(frozen=True)
class ServingConfig:
    """Everything :func:`serving.server.create_server` needs besides the address."""

    features: FeatureSettings = field(default_factory=FeatureSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    blend: BlendWeights = field(default_factory=BlendWeights)
    limits: InputLimits = field(default_factory=InputLimits)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    events: EventSettings = field(default_factory=EventSettings)
    rules_path: Path | None = None
    """YAML rules file of the constraint layer; None applies only the request's own exclusions."""
    rules_poll_interval_s: float = 1.0
    """Interval between checks of the rules file for changes."""
    deadline_ms: int = 1000
    """Time budget of a Recommend call, cut to the client's deadline when that is sooner."""
    max_workers: int = 16
    """Threads that run calls; more concurrent calls wait in gRPC's queue."""
    metrics_port: int | None = None
    """Port of the Prometheus endpoint on 127.0.0.1; 0 picks a free port, None turns it off."""
    grace_period_s: float = 5.0
    """On shutdown, how long calls in flight may run before they are cancelled."""
