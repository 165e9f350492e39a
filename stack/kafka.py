"""A single-node Kafka broker in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

from stack import maven, process
from stack.config import StackConfig

logger = logging.getLogger(__name__)

NAME = "kafka"
START_TIMEOUT = timedelta(seconds=90)
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def artifacts(config: StackConfig) -> list[maven.Artifact]:
    return [
        maven.Artifact("org.apache.kafka", "kafka_2.13", config.kafka_version),
        # Kafka 4.x logs through SLF4J 1.7 to Log4j 2, as its own distribution does.
        maven.Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
    ]


def fetch(config: StackConfig) -> list[Path]:
    return maven.fetch(f"kafka-{config.kafka_version}", artifacts(config), config.cache_dir)


def _server_properties(config: StackConfig, data_dir: Path) -> str:
    host = "127.0.0.1"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{config.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{host}:{config.kafka_port},CONTROLLER://{host}:{config.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{config.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(config.topic_partitions),
        # One broker: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Local runs and tests should not wait 3 s before the first group rebalance.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _java(config: StackConfig, jars: list[Path], main: str, *args: str) -> list[str]:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    classpath = ":".join(str(jar) for jar in jars)
    return [
        java,
        f"-Xmx{config.kafka_heap_mb}m",
        f"-Dlog4j2.configurationFile={config.state_dir / 'kafka' / 'log4j2.properties'}",
        "-cp", classpath, main, *args,
    ]


def pid_file(config: StackConfig) -> Path:
    return config.pid_dir / f"{NAME}.pid"


def log_file(config: StackConfig) -> Path:
    return config.log_dir / f"{NAME}.log"


def start(config: StackConfig) -> int:
    """Start the broker unless it runs already; format its storage on first start."""
    running = process.read_pid(pid_file(config))
    if running is not None:
        logger.info("kafka already running (pid %d)", running)
        return running
    if process.port_open(config.kafka_port):
        raise RuntimeError(
            f"port {config.kafka_port} on 127.0.0.1 is taken by another process; "
            "stop it or set SEQREC_KAFKA_PORT to a free port"
        )
    jars = fetch(config)
    home = config.state_dir / "kafka"
    data_dir = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    config.pid_dir.mkdir(parents=True, exist_ok=True)
    (home / "log4j2.properties").write_text(LOG4J2)
    properties = home / "server.properties"
    properties.write_text(_server_properties(config, data_dir))

    if not (data_dir / "meta.properties").exists():
        cluster_id = _cluster_id()
        logger.info("formatting KRaft storage in %s (cluster id %s)", data_dir, cluster_id)
        subprocess.run(
            _java(config, jars, STORAGE_TOOL, "format", "--standalone", "-t", cluster_id, "-c", str(properties)),
            check=True, capture_output=True,
        )

    pid = process.start_process(NAME, _java(config, jars, MAIN_CLASS, str(properties)), pid_file(config), log_file(config))
    process.wait_until(
        f"kafka broker on 127.0.0.1:{config.kafka_port}",
        lambda: _broker_ready(config),
        START_TIMEOUT,
        log_file(config),
        alive=lambda: process.pid_alive(pid),
    )
    ensure_topics(config)
    logger.info("kafka ready on %s", config.bootstrap_servers)
    return pid


def _cluster_id() -> str:
    # A KRaft cluster id is a UUID in URL-safe base64 without padding (22 characters).
    # The storage tool would read an id that starts with "-" as an option and
    # fail, so such ids are drawn again, as Kafka's own generator does.
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _broker_ready(config: StackConfig) -> bool:
    if not process.port_open(config.kafka_port):
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers, request_timeout_ms=5000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def ensure_topics(config: StackConfig) -> None:
    """Create the events and dead-letter topics if they do not exist yet."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(topic, num_partitions=config.topic_partitions, replication_factor=1)
            for topic in (config.events_topic, config.dead_letter_topic)
            if topic not in existing
        ]
        if missing:
            admin.create_topics(missing)
            logger.info("created topics %s", ", ".join(t.name for t in missing))
    finally:
        admin.close()


def stop(config: StackConfig) -> None:
    pid = process.read_pid(pid_file(config))
    if pid is not None:
        process.stop_pid(NAME, pid)
    pid_file(config).unlink(missing_ok=True)


def status(config: StackConfig) -> str:
    pid = process.read_pid(pid_file(config))
    if pid is None:
        return "stopped"
    return f"running (pid {pid}, {config.bootstrap_servers})"
