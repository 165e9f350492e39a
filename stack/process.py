"""Start, watch and stop background server processes through PID files."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

STOP_GRACE = timedelta(seconds=20)
POLL_INTERVAL = timedelta(milliseconds=200)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Signal 0 still succeeds on a zombie child, so reap it if it is ours.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return finished == 0


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def read_pid(pid_file: Path) -> int | None:
    """Return the PID in ``pid_file`` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def start_process(
    name: str,
    command: Sequence[str],
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``command`` detached from this process group and record its PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting %s: %s (log %s)", name, " ".join(command), log_file)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop_pid(name: str, pid: int, grace: timedelta = STOP_GRACE) -> None:
    """Send SIGTERM to ``pid``, then SIGKILL if it is still alive after ``grace``."""
    if not pid_alive(pid):
        return
    logger.info("stopping %s (pid %d)", name, pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace.total_seconds()
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(POLL_INTERVAL.total_seconds())
    logger.warning("%s (pid %d) ignored SIGTERM for %s, sending SIGKILL", name, pid, grace)
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(POLL_INTERVAL.total_seconds())


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    description: str,
    check: Callable[[], bool],
    timeout: timedelta,
    log_file: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` until it returns True; raise TimeoutError after ``timeout``.

    ``alive`` lets the wait fail fast when the server process has already died.
    """
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{description}: the process exited; see {log_file} ({_tail(log_file)})")
        time.sleep(POLL_INTERVAL.total_seconds())
    raise TimeoutError(f"{description}: not ready after {timeout}; see {log_file} ({_tail(log_file)})")


def _tail(log_file: Path | None, lines: int = 5) -> str:
    if log_file is not None and log_file.is_dir():
        logs = sorted(log_file.glob("*.log"), key=lambda path: path.stat().st_mtime)
        log_file = logs[-1] if logs else None
    if log_file is None or not log_file.exists():
        return "no log"
    text = log_file.read_text(errors="replace").splitlines()
    return " | ".join(text[-lines:])
