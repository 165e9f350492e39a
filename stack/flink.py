"""A Flink standalone cluster (one JobManager, one TaskManager) from PyFlink's own ``bin/``.

The cluster reads a configuration directory of this project's (``FLINK_CONF_DIR``)
made from the distribution's ``config.yaml`` with every bind and advertised address
on 127.0.0.1, a checkpoint directory, the Kafka SQL connector on ``pipeline.jars``,
and this virtualenv's Python for the client and the Python workers.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import yaml

from stack import maven, process
from stack.config import StackConfig

logger = logging.getLogger(__name__)

START_TIMEOUT = timedelta(seconds=120)
REST_TIMEOUT = timedelta(seconds=3)
DAEMONS = ("standalonesession", "taskexecutor")
# Flink's scripts name PID and log files after FLINK_IDENT_STRING (default $USER).
IDENT = "seqrec"


def flink_home() -> Path:
    """Return the Flink distribution inside the installed PyFlink package."""
    import pyflink

    return Path(pyflink.__file__).parent


def connector_jar(config: StackConfig) -> Path:
    """Fetch (once) and return the Flink Kafka SQL connector jar."""
    artifact = maven.Artifact("org.apache.flink", "flink-sql-connector-kafka", config.flink_kafka_connector_version)
    jars = maven.fetch(
        f"flink-sql-connector-kafka-{config.flink_kafka_connector_version}",
        [artifact],
        config.cache_dir,
        transitive=False,
    )
    return jars[0]


def _nest(flat: dict[str, object]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def write_conf_dir(config: StackConfig, jar: Path) -> Path:
    """Write ``config.yaml``, ``masters``, ``workers`` and the log4j files into the conf dir."""
    source = flink_home() / "conf"
    conf_dir = config.flink_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties", "log4j-session.properties"):
        (conf_dir / name).write_text((source / name).read_text())

    base = yaml.safe_load((source / "config.yaml").read_text()) or {}
    host = "127.0.0.1"
    overrides = {
        "jobmanager.bind-host": host,
        "jobmanager.rpc.address": host,
        "jobmanager.rpc.port": config.flink_rpc_port,
        "jobmanager.memory.process.size": f"{config.flink_jobmanager_memory_mb}m",
        "taskmanager.bind-host": host,
        "taskmanager.host": host,
        "taskmanager.numberOfTaskSlots": config.flink_task_slots,
        "taskmanager.memory.process.size": f"{config.flink_taskmanager_memory_mb}m",
        "rest.address": host,
        "rest.bind-address": host,
        "rest.port": config.flink_rest_port,
        "state.backend.type": config.flink_state_backend,
        # RocksDB uploads only the files that are new since the last checkpoint.
        "execution.checkpointing.incremental": config.flink_state_backend == "rocksdb",
        "execution.checkpointing.dir": config.checkpoint_dir.resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": (config.state_dir / "flink-savepoints").resolve().as_uri(),
        "pipeline.jars": jar.resolve().as_uri(),
        "python.executable": config.python_executable,
        "python.client.executable": config.python_executable,
        "env.pid.dir": str(config.pid_dir.resolve()),
        "env.log.dir": str(config.log_dir.resolve()),
        # Notice a dead TaskManager within seconds rather than the default 50 s.
        "heartbeat.interval": 2000,
        "heartbeat.timeout": 10000,
    }
    merged = _merge(base, _nest(overrides))
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(merged, sort_keys=True))
    (conf_dir / "masters").write_text(f"{host}:{config.flink_rest_port}\n")
    (conf_dir / "workers").write_text(f"{host}\n")
    return conf_dir


def environment(config: StackConfig) -> dict[str, str]:
    """Return the environment that Flink's scripts and ``flink run`` need."""
    home = flink_home()
    env = dict(os.environ)
    env["FLINK_HOME"] = str(home)
    env["FLINK_CONF_DIR"] = str(config.flink_conf_dir.resolve())
    env["FLINK_LOG_DIR"] = str(config.log_dir.resolve())
    env["FLINK_PID_DIR"] = str(config.pid_dir.resolve())
    env["FLINK_IDENT_STRING"] = IDENT
    # The client runs the job script with this interpreter, so PyFlink and the
    # project's packages must be importable from it.
    env["PYFLINK_CLIENT_EXECUTABLE"] = config.python_executable
    # The client-side planner of a Python job does not read pipeline.jars from
    # config.yaml; the feature job adds this jar itself.
    env["SEQREC_FLINK_KAFKA_JAR"] = str(connector_jar(config))
    return env


def pid_files(config: StackConfig) -> list[Path]:
    return [config.pid_dir / f"flink-{IDENT}-{daemon}.pid" for daemon in DAEMONS]


def running_pids(config: StackConfig) -> list[int]:
    pids = []
    for pid_file in pid_files(config):
        if not pid_file.exists():
            continue
        for line in pid_file.read_text().split():
            if line.isdigit() and process.pid_alive(int(line)):
                pids.append(int(line))
    return pids


def overview(config: StackConfig) -> dict | None:
    """Return the JobManager's ``/overview`` document, or None if the REST API does not respond."""
    try:
        with urllib.request.urlopen(f"{config.flink_rest_url}/overview", timeout=REST_TIMEOUT.total_seconds()) as reply:
            return json.load(reply)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def _ready(config: StackConfig) -> bool:
    info = overview(config)
    return bool(info) and info.get("taskmanagers", 0) >= 1 and info.get("slots-total", 0) >= 1


def start(config: StackConfig) -> list[int]:
    """Start the JobManager and TaskManager unless they run already."""
    running = running_pids(config)
    if len(running) == len(DAEMONS) and _ready(config):
        logger.info("flink already running (pids %s)", running)
        return running
    if running:
        raise RuntimeError(
            f"flink is half running (pids {running}); run `seqrec stack down` and then `seqrec stack up`"
        )
    for port in (config.flink_rest_port, config.flink_rpc_port):
        if process.port_open(port):
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                "SEQREC_FLINK_REST_PORT / SEQREC_FLINK_RPC_PORT to free ports"
            )
    jar = connector_jar(config)
    write_conf_dir(config, jar)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    script = flink_home() / "bin" / "start-cluster.sh"
    logger.info("starting flink with %s (conf %s)", script, config.flink_conf_dir)
    result = subprocess.run(["bash", str(script)], env=environment(config), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed: {result.stdout}{result.stderr}")
    process.wait_until(
        f"flink cluster at {config.flink_rest_url}",
        lambda: _ready(config),
        START_TIMEOUT,
        config.log_dir,
    )
    pids = running_pids(config)
    logger.info("flink ready at %s (pids %s)", config.flink_rest_url, pids)
    return pids


def stop(config: StackConfig) -> None:
    """Stop the cluster with ``stop-cluster.sh``, then any of its PIDs still alive."""
    if not config.flink_conf_dir.exists():
        return
    pids = running_pids(config)
    if not pids:
        return
    script = flink_home() / "bin" / "stop-cluster.sh"
    subprocess.run(["bash", str(script)], env=environment(config), capture_output=True, text=True)
    for pid in pids:
        process.stop_pid("flink", pid)
    for pid_file in pid_files(config):
        pid_file.unlink(missing_ok=True)


def status(config: StackConfig) -> str:
    pids = running_pids(config)
    if not pids:
        return "stopped"
    info = overview(config)
    if info is None:
        return f"starting or unhealthy (pids {pids}, REST {config.flink_rest_url} not answering)"
    return (
        f"running (pids {pids}, {config.flink_rest_url}, {info.get('taskmanagers')} taskmanager(s), "
        f"{info.get('slots-available')}/{info.get('slots-total')} slots free, {info.get('jobs-running')} job(s) running)"
    )


def taskmanager_pids(config: StackConfig) -> list[int]:
    pid_file = config.pid_dir / f"flink-{IDENT}-taskexecutor.pid"
    if not pid_file.exists():
        return []
    return [int(p) for p in pid_file.read_text().split() if p.isdigit() and process.pid_alive(int(p))]


def _taskmanager_ids(config: StackConfig) -> set[str]:
    try:
        with urllib.request.urlopen(f"{config.flink_rest_url}/taskmanagers", timeout=REST_TIMEOUT.total_seconds()) as reply:
            return {tm["id"] for tm in json.load(reply)["taskmanagers"]}
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError, KeyError):
        return set()


def start_taskmanager(config: StackConfig) -> None:
    """Start one more TaskManager, e.g. after one died, and wait until it has registered."""
    before = _taskmanager_ids(config)
    script = flink_home() / "bin" / "taskmanager.sh"
    result = subprocess.run(["bash", str(script), "start"], env=environment(config), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{script} start failed: {result.stdout}{result.stderr}")
    process.wait_until(
        "a new flink taskmanager",
        lambda: bool(_taskmanager_ids(config) - before),
        START_TIMEOUT,
        config.log_dir,
    )


def run_command(config: StackConfig, job: Path, *job_args: str, detached: bool = True) -> list[str]:
    """Return the ``flink run`` command that submits a PyFlink job to this cluster."""
    command = [
        str(flink_home() / "bin" / "flink"), "run",
        "-pyexec", config.python_executable,
        "-pyclientexec", config.python_executable,
    ]
    if detached:
        command.append("--detached")
    command += ["-py", str(job), *job_args]
    return command
