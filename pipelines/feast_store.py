"""Open the Feast feature store of ``feature_repo/`` and read back what the writer stored.

A profile is a ``feature_store*.yaml`` file of the repo: ``feature_store.yaml``
(SQLite) or ``feature_store.redis.yaml`` (Redis). Feast 0.67 expands ``${VAR}``
in these files but has no default-value syntax, so :func:`open_store` fills in
the defaults of :data:`ENV_DEFAULTS` for variables that are unset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from pipelines.feature_batch import StoredTransitions
from pipelines.feature_rows import ITEM_STATS_VIEWS, POPULAR_VIEW, SESSION_VIEW, TRANSITIONS_VIEW

DEFAULT_PROFILE = "feature_store.yaml"
REDIS_PROFILE = "feature_store.redis.yaml"

ENV_DEFAULTS = {"SEQREC_REDIS_CONNECTION_STRING": "127.0.0.1:6379"}
"""Values used for variables of a profile that are unset in the environment."""

_VARIABLE = re.compile(r"\$\{(\w+)\}")


def expand_variables(text: str) -> str:
    """Replace ``${VAR}`` with the environment's value, else the :data:`ENV_DEFAULTS` one.

    Like Feast's own loading, a variable with neither stays as written.

    >>> expand_variables("path: ${SEQREC_TEST_UNSET_VARIABLE}")
    'path: ${SEQREC_TEST_UNSET_VARIABLE}'
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return os.environ.get(name, ENV_DEFAULTS.get(name, match.group(0)))

    return _VARIABLE.sub(value, text)


def open_store(repo_path: Path | str, profile: str = DEFAULT_PROFILE) -> FeatureStore:
    """Open the feature store of ``repo_path`` with the settings file ``profile`` inside it.

    Raises FileNotFoundError when the profile file does not exist.
    """
    repo_path = Path(repo_path).resolve()
    profile_path = repo_path / profile
    if not profile_path.is_file():
        raise FileNotFoundError(
            f"feature store settings {profile_path} not found. Pass the feature_repo folder "
            f"and a profile such as {DEFAULT_PROFILE} or {REDIS_PROFILE}"
        )
    settings = yaml.safe_load(expand_variables(profile_path.read_text()))
    config = RepoConfig(**settings)
    config.repo_path = repo_path
    return FeatureStore(repo_path=str(repo_path), config=config)


def check_feature_views(store: FeatureStore, profile: str = DEFAULT_PROFILE) -> None:
    """Raise LookupError unless the registry has every feature view that the writer writes.

    Feast 0.67's ``write_to_online_store`` raises a bare KeyError for an unknown
    view, so the writer checks once at start and names the fix.
    """
    required = {SESSION_VIEW, TRANSITIONS_VIEW, POPULAR_VIEW, *ITEM_STATS_VIEWS.values()}
    missing = required - {view.name for view in store.list_feature_views()}
    if missing:
        raise LookupError(
            f"feature views {', '.join(sorted(missing))} are not in the registry of {store.repo_path}. "
            f"Run `feast -f {profile} apply` in that folder first"
        )


def read_transitions(store: FeatureStore, item_ids: list[str]) -> dict[str, StoredTransitions]:
    """Return the stored ``item_transitions`` lists of ``item_ids``, leaving out items without one."""
    return _read_ranked_lists(store, TRANSITIONS_VIEW, "item_id", item_ids, "next_item_ids", "next_item_counts")


def read_popular(store: FeatureStore, scopes: list[str]) -> dict[str, StoredTransitions]:
    """Return the stored ``popular_items`` lists of ``scopes``, leaving out scopes without one."""
    return _read_ranked_lists(store, POPULAR_VIEW, "scope", scopes, "item_ids", "counts")


def _read_ranked_lists(
    store: FeatureStore, view: str, key: str, keys: list[str], ids_field: str, counts_field: str
) -> dict[str, StoredTransitions]:
    if not keys:
        return {}
    features = [f"{view}:{name}" for name in (ids_field, counts_field, "window_end")]
    values = store.get_online_features(features=features, entity_rows=[{key: value} for value in keys]).to_dict()
    stored = {}
    for value, ids, counts, window_end in zip(values[key], values[ids_field], values[counts_field], values["window_end"]):
        if window_end is None:
            continue
        stored[value] = StoredTransitions(
            window_end=int(window_end),
            next_item_ids=list(ids or []),
            next_item_counts=[int(count) for count in counts or []],
        )
    return stored
