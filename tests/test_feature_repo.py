"""The Feast feature repo applies with Feast's own CLI, on SQLite and on a real Redis server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from pipelines.feast_store import DEFAULT_PROFILE, REDIS_PROFILE, open_store
from stack import redis as redis_server
from tests.conftest import stack_config

FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
FEAST = Path(sys.executable).with_name("feast")
FEAST_TIMEOUT = timedelta(minutes=2)
VIEWS = {"session_features", "item_stats_1h", "item_stats_24h", "item_transitions", "popular_items"}
SERVICES = {"session_recommendation_v1", "item_ranking_v1", "popularity_v1"}
WINDOW_END_MS = 1_733_300_000_000  # 2024-12-04T08:13:20Z


def copy_feature_repo(destination: Path) -> Path:
    """Copy the feature repo without its data folder, so that tests never touch the real one."""
    return Path(shutil.copytree(FEATURE_REPO, destination, ignore=shutil.ignore_patterns("data", "__pycache__")))


def run_feast(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the virtualenv's ``feast`` in ``repo`` and return its output, failing the test if it fails."""
    result = subprocess.run(
        [str(FEAST), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=FEAST_TIMEOUT.total_seconds(),
    )
    assert result.returncode == 0, f"feast {' '.join(args)} exited with {result.returncode}:\n{result.stderr}"
    return result.stdout


def listed_names(output: str) -> set[str]:
    """Return the first column of a ``feast ... list`` table, without the header."""
    return {line.split()[0] for line in output.splitlines()[1:] if line.strip()}


@pytest.fixture
def redis_port(tmp_path):
    config = stack_config(tmp_path / "stack")
    redis_server.start(config)
    yield config.redis_port
    redis_server.stop(config)


def test_apply_lists_views_and_services(tmp_path):
    repo = copy_feature_repo(tmp_path / "feature_repo")

    run_feast(repo, "apply")

    assert listed_names(run_feast(repo, "feature-views", "list")) == VIEWS
    assert listed_names(run_feast(repo, "feature-services", "list")) == SERVICES
    assert (repo / "data" / "registry.db").is_file()
    assert (repo / "data" / "online_store.db").is_file()

    second_apply = run_feast(repo, "apply")
    assert "Created" not in second_apply
    assert "Deleted" not in second_apply


def test_feature_views_list_schema(tmp_path):
    repo = copy_feature_repo(tmp_path / "feature_repo")
    run_feast(repo, "apply")
    store = open_store(repo, DEFAULT_PROFILE)

    features = {view.name: {f.name: str(f.dtype) for f in view.features} for view in store.list_feature_views()}

    assert features["session_features"]["last_items"] == "Array(String)"
    assert features["session_features"]["last_event_time"] == "Int64"
    assert features["item_transitions"]["next_item_counts"] == "Array(Int64)"
    assert set(features["item_stats_1h"]) == {
        "views", "clicks", "add_to_carts", "purchases", "distinct_sessions", "window_end",
    }
    assert features["item_stats_1h"] == features["item_stats_24h"]


def test_redis_profile_applies_and_serves(tmp_path, redis_port, monkeypatch):
    repo = copy_feature_repo(tmp_path / "feature_repo")
    connection = f"127.0.0.1:{redis_port}"
    monkeypatch.setenv("SEQREC_REDIS_CONNECTION_STRING", connection)

    run_feast(repo, "-f", REDIS_PROFILE, "apply")
    views = listed_names(run_feast(repo, "-f", REDIS_PROFILE, "feature-views", "list"))

    assert views == VIEWS
    assert (repo / "data" / "registry.redis.db").is_file()
    assert not (repo / "data" / "online_store.db").exists()

    store = open_store(repo, REDIS_PROFILE)
    assert store.config.online_store.connection_string == connection
    store.write_to_online_store(
        "item_transitions",
        pd.DataFrame(
            {
                "item_id": ["i1"],
                "next_item_ids": [["i2", "i3"]],
                "next_item_counts": [[5, 2]],
                "window_end": [WINDOW_END_MS],
                "event_timestamp": pd.to_datetime([WINDOW_END_MS], unit="ms", utc=True),
            }
        ),
    )
    values = store.get_online_features(
        features=["item_transitions:next_item_ids", "item_transitions:next_item_counts"],
        entity_rows=[{"item_id": "i1"}],
    ).to_dict()
    assert values["next_item_ids"] == [["i2", "i3"]]
    assert values["next_item_counts"] == [[5, 2]]
    assert redis.Redis(host="127.0.0.1", port=redis_port).dbsize() == 1


def test_redis_profile_defaults_to_localhost(tmp_path, monkeypatch):
    repo = copy_feature_repo(tmp_path / "feature_repo")
    monkeypatch.delenv("SEQREC_REDIS_CONNECTION_STRING", raising=False)

    store = open_store(repo, REDIS_PROFILE)

    assert store.config.online_store.connection_string == "127.0.0.1:6379"


def test_open_store_missing_profile(tmp_path):
    repo = copy_feature_repo(tmp_path / "feature_repo")

    with pytest.raises(FileNotFoundError, match="feature_store.nowhere.yaml not found"):
        open_store(repo, "feature_store.nowhere.yaml")
