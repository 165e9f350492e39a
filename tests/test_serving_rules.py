"""The constraint layer: generated requests and rule files never get a response that breaks a rule."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.config import FeatureSettings, ModelSettings, ServingConfig
from serving.protos.seqrec.v1 import recommender_pb2 as pb
from serving.rules import InvalidRules, Rules, load_rules
from serving.rules_watcher import RulesWatcher
from tests.serving_helpers import (
    CATALOGUE,
    applied_feature_repo,
    running_server,
    store_of,
    train_and_register,
    write_popular,
    write_session,
    write_transitions,
)

pytestmark = pytest.mark.integration

CATEGORIES = ["shoes", "hats", "bags"]
SESSIONS = {
    "s-rules-1": ["item-1", "item-2", "item-3"],
    "s-rules-2": ["item-10", "item-11"],
    "s-rules-buy": ["item-20", "item-21"],
}
ITEMS = st.sampled_from(CATALOGUE)

rule_documents = st.fixed_dictionaries(
    {},
    optional={
        "blocklist": st.lists(ITEMS, max_size=15),
        "allow_list": st.lists(ITEMS, max_size=25),
        "exclude_seen": st.booleans(),
        "exclude_purchased": st.booleans(),
        "max_per_category": st.integers(min_value=1, max_value=4),
        "item_categories": st.dictionaries(ITEMS, st.sampled_from(CATEGORIES), max_size=30),
    },
)
requests = st.fixed_dictionaries(
    {
        "session_id": st.sampled_from([*SESSIONS, "s-rules-unknown"]),
        "k": st.integers(min_value=1, max_value=40),
    },
    optional={
        "recent_item_ids": st.lists(ITEMS, max_size=5),
        "excluded_item_ids": st.lists(ITEMS, max_size=10),
        "purchased_item_ids": st.lists(ITEMS, max_size=3),
        "filters": st.builds(lambda names: pb.Filters(categories=names), st.lists(st.sampled_from(CATEGORIES), max_size=2)),
    },
)


@pytest.fixture(scope="module")
def rules_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    repo = applied_feature_repo(root / "feature_repo")
    registry = root / "registry"
    train_and_register(registry)
    rules_path = root / "rules.yaml"
    rules_path.write_text("{}\n")
    config = ServingConfig(
        features=FeatureSettings(repo_path=repo),
        models=ModelSettings(registry_root=registry, popularity_candidates=30, torch_candidates=30),
        rules_path=rules_path,
        rules_poll_interval_s=0.1,
    )
    store = store_of(config)
    write_popular(store, [(item, 100 - index) for index, item in enumerate(CATALOGUE)])
    for session_id, items in SESSIONS.items():
        write_session(store, session_id, items, last_event_type="purchase" if session_id == "s-rules-buy" else "view")
        write_transitions(store, items[-1], [("item-5", 7), ("item-12", 3)])
    with running_server(config) as server:
        yield server, rules_path


def violations(document: dict, request: dict, response: pb.RecommendResponse) -> list[str]:
    """Return every rule the response breaks, as readable strings."""
    items = [item.item_id for item in response.items]
    categories = document.get("item_categories", {})
    seen = set(SESSIONS.get(request["session_id"], [])) | set(request.get("recent_item_ids", []))
    purchased = set(request.get("purchased_item_ids", []))
    if request["session_id"] == "s-rules-buy":
        purchased.add(SESSIONS["s-rules-buy"][-1])

    found = []
    if len(items) > request["k"]:
        found.append(f"{len(items)} items for k={request['k']}")
    if len(set(items)) != len(items):
        found.append(f"duplicates in {items}")
    for item in items:
        if item in document.get("blocklist", []):
            found.append(f"{item} is blocked")
        if "allow_list" in document and item not in document["allow_list"]:
            found.append(f"{item} is not on the allow list")
        if item in request.get("excluded_item_ids", []):
            found.append(f"{item} was excluded by the request")
        if document.get("exclude_seen") and item in seen:
            found.append(f"{item} was seen")
        if document.get("exclude_purchased") and item in purchased:
            found.append(f"{item} was purchased")
        wanted = set(request["filters"].categories) if "filters" in request else set()
        if wanted and categories.get(item) not in wanted:
            found.append(f"{item} is outside categories {sorted(wanted)}")

    limit = document.get("max_per_category")
    if limit is not None:
        counts = Counter(categories[item] for item in items if item in categories)
        found.extend(f"{count} items of {category}" for category, count in counts.items() if count > limit)
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=rule_documents, request=requests)
def test_no_response_breaks_a_rule(rules_server, document, request):
    server, rules_path = rules_server
    rules_path.write_text(yaml.safe_dump(document))
    server.server.parts.rules.reload_if_changed()

    response = server.recommend(**request)

    assert violations(document, request, response) == []


def test_rules_apply_on_every_path(tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump({"blocklist": ["item-0"], "allow_list": CATALOGUE[:6]}))
    config = ServingConfig(rules_path=rules_path)

    with running_server(config) as server:
        response = server.recommend("s-any", k=10, recent_item_ids=["item-3"])

    assert response.path == pb.SERVING_PATH_POPULARITY
    assert all(item.item_id in CATALOGUE[1:6] for item in response.items)


def test_rules_file_change_reloads(tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("blocklist: [a]\n")
    watcher = RulesWatcher(rules_path)
    assert watcher.current.blocklist == {"a"}

    rules_path.write_text("blocklist: [a, b]\n")

    assert watcher.reload_if_changed()
    assert watcher.current.blocklist == {"a", "b"}


def test_rules_reload_in_background(tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump({"allow_list": ["item-1"]}))
    config = ServingConfig(rules_path=rules_path, rules_poll_interval_s=0.1)

    with running_server(config) as server:
        rules_path.write_text(yaml.safe_dump({"allow_list": ["item-2"]}))
        deadline = time.monotonic() + 10
        while server.server.parts.rules.current.allow_list != {"item-2"} and time.monotonic() < deadline:
            time.sleep(0.05)

        assert server.server.parts.rules.current.allow_list == {"item-2"}


def test_invalid_rules_keep_last_good(tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("max_per_category: 2\n")
    failures = []
    watcher = RulesWatcher(rules_path, on_failure=lambda: failures.append(1))

    rules_path.write_text("max_per_category: zero\n")

    assert not watcher.reload_if_changed()
    assert watcher.current.max_per_category == 2
    assert failures == [1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blocklist: item-1\n", "blocklist"),
        ("exclude_seen: maybe\n", "exclude_seen"),
        ("max_per_category: 0\n", "max_per_category"),
        ("colour: red\n", "unknown keys colour"),
        ("- a\n", "mapping"),
        ("item_categories_file: missing.csv\n", "missing.csv"),
        ("allow_list:\n", "allow_list .* has no value"),
        ("blocklist: [item-1, yes]\n", "blocklist .* YAML boolean"),
    ],
)
def test_invalid_rules_name_the_key(tmp_path, text, message):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(text)

    with pytest.raises(InvalidRules, match=message):
        load_rules(rules_path)


def test_rules_files_are_read(tmp_path):
    (tmp_path / "blocked.txt").write_text("item-1\n\nitem-2\n")
    (tmp_path / "available.txt").write_text("item-3\n")
    (tmp_path / "categories.csv").write_text("item-3,shoes\nitem-4,hats\n")
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(
        "blocklist_file: blocked.txt\nallow_list_file: available.txt\nitem_categories_file: categories.csv\n"
    )

    rules = load_rules(rules_path)

    assert rules == Rules(
        blocklist=frozenset({"item-1", "item-2"}),
        allow_list=frozenset({"item-3"}),
        item_categories={"item-3": "shoes", "item-4": "hats"},
    )


def test_missing_rules_file_rejected(tmp_path):
    with pytest.raises(InvalidRules, match="not found"):
        RulesWatcher(Path(tmp_path / "absent.yaml"))
