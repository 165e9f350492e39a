"""Bring the whole local stack up or down in dependency order."""

from __future__ import annotations

import logging

from stack import flink, kafka, redis
from stack.config import StackConfig

logger = logging.getLogger(__name__)

COMPONENTS = {"kafka": kafka, "flink": flink, "redis": redis}


def up(config: StackConfig, with_flink: bool = True, with_redis: bool = False) -> list[str]:
    """Start Kafka, then Flink and Redis if asked; return the components this call started.

    On failure it stops what this call started and raises.
    """
    requested = ["kafka"]
    if with_flink:
        requested.append("flink")
    if with_redis:
        requested.append("redis")
    started = []
    try:
        for name in requested:
            was_running = COMPONENTS[name].status(config) != "stopped"
            COMPONENTS[name].start(config)
            if not was_running:
                started.append(name)
    except BaseException:
        logger.error("stack up failed; stopping %s", ", ".join(started) or "nothing")
        for name in reversed(started):
            COMPONENTS[name].stop(config)
        raise
    return started


def stop(config: StackConfig, names: list[str]) -> None:
    """Stop the components ``names`` (as :func:`up` returns them), the last started first."""
    for name in reversed(names):
        COMPONENTS[name].stop(config)


def down(config: StackConfig) -> None:
    """Stop every component whose PID file is in the state directory."""
    for name in ("redis", "flink", "kafka"):
        COMPONENTS[name].stop(config)


def status(config: StackConfig) -> dict[str, str]:
    return {name: module.status(config) for name, module in COMPONENTS.items()}
