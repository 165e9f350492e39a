"""A Redis server for the Feast Redis online store, from Debian's ``redis-server``."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from pathlib import Path

from stack import process
from stack.config import StackConfig
from stack.system import ensure_debian_package

logger = logging.getLogger(__name__)

NAME = "redis"
START_TIMEOUT = timedelta(seconds=30)


def pid_file(config: StackConfig) -> Path:
    return config.pid_dir / f"{NAME}.pid"


def log_file(config: StackConfig) -> Path:
    return config.log_dir / f"{NAME}.log"


def ping(port: int) -> bool:
    """Return True if a Redis server on 127.0.0.1:``port`` replies PONG to PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(config: StackConfig) -> int:
    running = process.read_pid(pid_file(config))
    if running is not None:
        logger.info("redis already running (pid %d)", running)
        return running
    if process.port_open(config.redis_port):
        raise RuntimeError(
            f"port {config.redis_port} on 127.0.0.1 is taken by another process; "
            "stop it or set SEQREC_REDIS_PORT to a free port"
        )
    server = ensure_debian_package("redis-server", "redis-server")
    data_dir = config.state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    config.pid_dir.mkdir(parents=True, exist_ok=True)
    command = [
        server,
        "--bind", "127.0.0.1",
        "--port", str(config.redis_port),
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
    ]
    pid = process.start_process(NAME, command, pid_file(config), log_file(config))
    process.wait_until(
        f"redis on 127.0.0.1:{config.redis_port}",
        lambda: ping(config.redis_port),
        START_TIMEOUT,
        log_file(config),
        alive=lambda: process.pid_alive(pid),
    )
    logger.info("redis ready on 127.0.0.1:%d", config.redis_port)
    return pid


def stop(config: StackConfig) -> None:
    pid = process.read_pid(pid_file(config))
    if pid is not None:
        process.stop_pid(NAME, pid)
    pid_file(config).unlink(missing_ok=True)


def status(config: StackConfig) -> str:
    pid = process.read_pid(pid_file(config))
    if pid is None:
        return "stopped"
    return f"running (pid {pid}, 127.0.0.1:{config.redis_port})"
