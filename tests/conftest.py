"""Real servers for integration tests: one Kafka broker per test session, on free ports."""

from __future__ import annotations

import pytest

from stack import kafka
from stack.config import StackConfig
from stack.process import free_port


def stack_config(state_dir) -> StackConfig:
    """A stack config on free 127.0.0.1 ports inside ``state_dir``."""
    return StackConfig.from_env(
        state_dir=state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        flink_rest_port=free_port(),
        flink_rpc_port=free_port(),
        redis_port=free_port(),
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> StackConfig:
    """A running Kafka broker; stopped at the end of the test session."""
    config = stack_config(tmp_path_factory.mktemp("stack"))
    kafka.start(config)
    yield config
    kafka.stop(config)


@pytest.fixture(scope="session")
def flink_cluster(kafka_broker) -> StackConfig:
    """A Flink standalone cluster beside the Kafka broker; stopped at the end of the session."""
    from stack import flink

    flink.start(kafka_broker)
    yield kafka_broker
    flink.stop(kafka_broker)
