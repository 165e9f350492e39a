"""The local stack: real Kafka, Flink and Redis come up on 127.0.0.1 and go away on `down`."""

from __future__ import annotations

import json

import psutil
import pytest

from stack import flink, kafka, manager, maven, redis
from stack.process import pid_alive
from tests.conftest import stack_config

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def listening_addresses(pid: int) -> set[str]:
    """Return the local addresses of every listening TCP socket of ``pid`` and its children."""
    processes = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    addresses = set()
    for proc in processes:
        for conn in proc.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                addresses.add(conn.laddr.ip)
    return addresses


@pytest.mark.integration
def test_stack_up_status_down(tmp_path):
    config = stack_config(tmp_path / "state")
    try:
        manager.up(config, with_flink=True, with_redis=True)
        states = manager.status(config)
        assert states["kafka"].startswith("running")
        assert states["flink"].startswith("running")
        assert "1 taskmanager(s)" in states["flink"]
        assert states["redis"].startswith("running")

        pids = [int((config.pid_dir / "kafka.pid").read_text()), int((config.pid_dir / "redis.pid").read_text())]
        pids += flink.running_pids(config)
        assert len(pids) == 4
        for pid in pids:
            addresses = listening_addresses(pid)
            assert addresses, f"pid {pid} listens on nothing"
            assert addresses <= LOOPBACK, f"pid {pid} listens on {addresses}"

        conf = (config.flink_conf_dir / "config.yaml").read_text()
        assert config.python_executable in conf
        assert config.checkpoint_dir.resolve().as_uri() in conf

        # A second `up` starts nothing new.
        manager.up(config, with_flink=True, with_redis=True)
        again = [int((config.pid_dir / "kafka.pid").read_text()), int((config.pid_dir / "redis.pid").read_text())]
        assert again + flink.running_pids(config) == pids
    finally:
        manager.down(config)
    assert all(not pid_alive(pid) for pid in pids)
    assert set(manager.status(config).values()) == {"stopped"}


def test_cached_jar_with_changed_checksum_is_refetched(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    jar = bundle / "a.jar"
    jar.write_bytes(b"original")
    (bundle / maven.MANIFEST).write_text(json.dumps({"artifacts": [], "sha256": {"a.jar": maven.sha256(jar)}}))
    assert maven._verified(bundle) == [jar]
    jar.write_bytes(b"tampered")
    assert maven._verified(bundle) is None


def test_cluster_id_never_starts_with_dash(monkeypatch):
    """An id starting with "-" would be read as an option by Kafka's storage tool, so it is drawn again."""
    import uuid as uuid_module

    # In URL-safe base64, bytes fb e0 00 begin "--A" and zero bytes give "A".
    draws = iter([uuid_module.UUID(bytes=b"\xfb\xe0" + b"\x00" * 14), uuid_module.UUID(bytes=b"\x00" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))

    assert kafka._cluster_id() == "A" * 22
