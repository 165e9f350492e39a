"""``seqrec serve``: run the gRPC recommendation service until SIGTERM."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

DEFAULT_ADDRESS = "127.0.0.1:50051"
TOKEN_ENVIRONMENT_VARIABLE = "SEQREC_SERVE_TOKEN"


BLEND_COMPONENTS = ("torch", "river", "transitions", "popularity")
"""Keys of --blend-weights; the fields of serving.config.BlendWeights, repeated so that parsing does not import serving."""


def _blend_weights(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"invalid JSON {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--blend-weights must be a JSON object such as '{{\"torch\": 0.5}}', got {text!r}")
    unknown = sorted(set(value) - set(BLEND_COMPONENTS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown blend weight {', '.join(unknown)}; valid keys are {', '.join(BLEND_COMPONENTS)}"
        )
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise argparse.ArgumentTypeError(f"blend weight {name} is {weight!r}; pass a finite number >= 0")
    return {name: float(weight) for name, weight in value.items()}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range; pass an integer >= 1")
    return value


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; pass a finite number of seconds >= 0")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range; pass a port from 0 to 65535")
    return value


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the gRPC recommendation service",
        description="Serve Recommend and SendEvent over gRPC, with health checking, reflection and Prometheus "
        "metrics. Every source is optional; without one, responses take a fallback path and say so. "
        "SIGTERM or Ctrl-C stops the server after the calls in flight finish.",
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"host:port to listen on (default {DEFAULT_ADDRESS})")
    parser.add_argument("--feature-repo", type=Path, help="Feast repo folder, e.g. feature_repo")
    parser.add_argument("--feature-profile", default="feature_store.yaml",
                        help="settings file in the Feast repo (default feature_store.yaml; feature_store.redis.yaml for Redis)")
    parser.add_argument("--registry", type=Path, help="model registry folder (default: no Torch model)")
    parser.add_argument("--model", default="gru4rec", help="model name in the registry (default gru4rec)")
    parser.add_argument("--snapshots", type=Path, help="folder of the River learner's snapshots")
    parser.add_argument("--rules", type=Path, help="YAML rules file of the constraint layer, reloaded when it changes")
    parser.add_argument("--blend-weights", type=_blend_weights,
                        help='JSON weights, e.g. \'{"torch": 0.4, "river": 0.4, "transitions": 0.15, "popularity": 0.05}\'')
    parser.add_argument("--bootstrap-servers", help="Kafka host:port list for SendEvent (default: SendEvent off)")
    parser.add_argument("--events-topic", default="events", help="topic SendEvent writes to (default events)")
    parser.add_argument("--dead-letter-topic", default="events-dead-letter",
                        help="topic of events that SendEvent rejects (default events-dead-letter)")
    parser.add_argument("--feature-max-age-s", type=_non_negative_seconds,
                        help="ignore session, transition and popularity rows older than this many seconds by wall "
                        "clock; 0 turns the limits off, for replays of old data (default: 30 min, 7 days, 1 day)")
    parser.add_argument("--deadline-ms", type=_positive_int, default=1000, help="time budget per call in ms when the client sets none (default 1000)")
    parser.add_argument("--metrics-port", type=_port, help="Prometheus port on 127.0.0.1; 0 picks a free port (default: off)")
    parser.add_argument("--max-workers", type=_positive_int, default=16, help="threads that run calls (default 16)")
    parser.add_argument("--tls-cert", type=Path, help="PEM server certificate; with --tls-key turns TLS on")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", type=Path, help="PEM CA that client certificates must chain to (mutual TLS)")
    parser.add_argument("--grace-period-s", type=_non_negative_seconds, default=5.0,
                        help="seconds calls in flight get to finish on shutdown (default 5)")
    parser.set_defaults(handler=run)


def _age_limits(args: argparse.Namespace) -> dict[str, float]:
    """Return the FeatureSettings age limits that --feature-max-age-s sets; none when it is absent."""
    limit = args.feature_max_age_s
    if limit is None:
        return {}
    if limit < 0:
        raise ValueError(f"--feature-max-age-s is {limit}; pass a positive number of seconds, or 0 for no limit")
    seconds = math.inf if limit == 0 else limit
    return {"session_max_age_s": seconds, "transitions_max_age_s": seconds, "popularity_max_age_s": seconds}


def build_config(args: argparse.Namespace):
    """Turn the parsed options into a :class:`serving.config.ServingConfig`; the bearer token comes from the environment."""
    from serving.config import BlendWeights, EventSettings, FeatureSettings, ModelSettings, SecuritySettings, ServingConfig

    return ServingConfig(
        features=FeatureSettings(repo_path=args.feature_repo, profile=args.feature_profile, **_age_limits(args)),
        models=ModelSettings(registry_root=args.registry, model_name=args.model, snapshot_root=args.snapshots),
        blend=BlendWeights(**args.blend_weights) if args.blend_weights else BlendWeights(),
        security=SecuritySettings(
            bearer_token=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None,
            tls_cert_path=args.tls_cert,
            tls_key_path=args.tls_key,
            tls_client_ca_path=args.tls_client_ca,
        ),
        events=EventSettings(bootstrap_servers=args.bootstrap_servers, events_topic=args.events_topic,
                             dead_letter_topic=args.dead_letter_topic),
        rules_path=args.rules,
        deadline_ms=args.deadline_ms,
        max_workers=args.max_workers,
        metrics_port=args.metrics_port,
        grace_period_s=args.grace_period_s,
    )


def run(args: argparse.Namespace) -> int:
    from serving.rules import InvalidRules
    from serving.server import serve

    try:
        config = build_config(args)
        return serve(args.address, config)
    except (InvalidRules, ValueError, TypeError, OSError, RuntimeError) as error:
        raise SystemExit(f"seqrec serve: {error}") from None
