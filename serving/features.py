"""Read session, transition and popularity features from the Feast online store.

Feast 0.67 returns a stored row whatever its age, so this module drops rows
older than the limits of :class:`serving.config.FeatureSettings`. Every
failure of the store (a missing SQLite file, a stopped Redis) surfaces as
:class:`FeatureStoreUnavailable`, which sends the request down the fallback path.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from feast import FeatureStore
from feast.errors import FeastError
from feast.repo_config import RepoConfig

from serving.config import FeatureSettings

logger = logging.getLogger(__name__)

SESSION_VIEW = "session_features"
TRANSITIONS_VIEW = "item_transitions"
POPULAR_VIEW = "popular_items"
POPULAR_SCOPE = "all"
SESSION_FEATURES = [f"{SESSION_VIEW}:{name}" for name in ("last_items", "last_event_type", "last_item_id", "last_event_time")]
TRANSITION_FEATURES = [f"{TRANSITIONS_VIEW}:{name}" for name in ("next_item_ids", "next_item_counts", "window_end")]
POPULAR_FEATURES = [f"{POPULAR_VIEW}:{name}" for name in ("item_ids", "counts", "window_end")]

REDIS_DEFAULT_ADDRESS = "127.0.0.1:6379"
_VARIABLE = re.compile(r"\$\{(\w+)\}")


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, sqlite3.Error, FeastError, KeyError]
    try:
        import redis

        errors.append(redis.RedisError)
    except ImportError:
        pass
    return tuple(errors)


STORE_ERRORS = _store_errors()
"""Exceptions of a failing online store: I/O, SQLite, Redis and Feast errors, and KeyError for a view not applied."""


class FeatureStoreUnavailable(RuntimeError):
    """A read from the online store failed; the message names the store and the error."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_feature_store(settings: FeatureSettings) -> FeatureStore:
    """Open the Feast store of ``settings.repo_path`` with its profile file.

    ``${VAR}`` in the profile takes the environment's value. An unset
    ``SEQREC_REDIS_CONNECTION_STRING`` becomes 127.0.0.1:6379, as for the feature writer.
    """
    repo_path = Path(settings.repo_path).resolve()
    profile_path = repo_path / settings.profile
    if not profile_path.is_file():
        raise FileNotFoundError(
            f"feature store settings {profile_path} not found; pass the feature_repo folder and a profile "
            "such as feature_store.yaml or feature_store.redis.yaml"
        )
    defaults = {"SEQREC_REDIS_CONNECTION_STRING": REDIS_DEFAULT_ADDRESS}

    def value(match: re.Match[str]) -> str:
        return os.environ.get(match.group(1), defaults.get(match.group(1), match.group(0)))

    config = RepoConfig(**yaml.safe_load(_VARIABLE.sub(value, profile_path.read_text(encoding="utf-8"))))
    config.repo_path = repo_path
    return FeatureStore(repo_path=str(repo_path), config=config)


@dataclass(frozen=True)
class SessionFeatures:
    """The stored state of one session."""

    last_items: tuple[str, ...]
    """Latest item ids, oldest first."""
    last_event_type: str | None
    last_item_id: str | None
    age_ms: int


@dataclass(frozen=True)
class RankedList:
    """Items with counts, best first, and the age of the window they were counted in."""

    counts: dict[str, int]
    age_ms: int


@dataclass(frozen=True)
class Popularity:
    """The last popularity list read, kept for when the store fails."""

    items: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    window_end_ms: int | None = None

    def age_ms(self, at_ms: int) -> int | None:
        return None if self.window_end_ms is None else at_ms - self.window_end_ms


class FeatureReader:
    """Session, transition and popularity reads with the age limits applied.

    The popularity list is read by :meth:`refresh_popularity`, which the server
    calls on a background thread, and requests use the copy in memory.
    """

    def __init__(self, store: FeatureStore, settings: FeatureSettings):
        self.store = store
        self.settings = settings
        self._popularity = Popularity()
        self._popularity_lock = threading.Lock()

    def _read(self, features: list[str], entity_rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        try:
            return self.store.get_online_features(features=features, entity_rows=entity_rows).to_dict()
        except STORE_ERRORS as error:
            raise FeatureStoreUnavailable(
                f"online store of {self.settings.repo_path} ({self.settings.profile}) failed: "
                f"{type(error).__name__}: {error}"
            ) from error

    def read_session(self, session_id: str, item_id: str | None) -> tuple[SessionFeatures | None, RankedList | None]:
        """Read the session's row, and the transitions of ``item_id`` in the same call when it is given.

        Returns None for a row that is missing or older than its limit.
        Raises :class:`FeatureStoreUnavailable`.
        """
        features = SESSION_FEATURES + (TRANSITION_FEATURES if item_id is not None else [])
        row = {"session_id": session_id, **({"item_id": item_id} if item_id is not None else {})}
        values = self._read(features, [row])
        at_ms = now_ms()
        session = self._session(values, at_ms)
        transitions = self._transitions(values, at_ms) if item_id is not None else None
        return session, transitions

    def read_transitions(self, item_id: str) -> RankedList | None:
        """Read the transitions after ``item_id``; raises :class:`FeatureStoreUnavailable`."""
        values = self._read(TRANSITION_FEATURES, [{"item_id": item_id}])
        return self._transitions(values, now_ms())

    def _session(self, values: dict[str, list[Any]], at_ms: int) -> SessionFeatures | None:
        last_time = values["last_event_time"][0]
        if last_time is None:
            return None
        age_ms = at_ms - int(last_time)
        if age_ms > self.settings.session_max_age_s * 1000:
            return None
        return SessionFeatures(
            last_items=tuple(values["last_items"][0] or ()),
            last_event_type=values["last_event_type"][0],
            last_item_id=values["last_item_id"][0],
            age_ms=age_ms,
        )

    def _transitions(self, values: dict[str, list[Any]], at_ms: int) -> RankedList | None:
        window_end = values["window_end"][0]
        if window_end is None:
            return None
        age_ms = at_ms - int(window_end)
        if age_ms > self.settings.transitions_max_age_s * 1000:
            return None
        ids = values["next_item_ids"][0] or []
        counts = values["next_item_counts"][0] or []
        return RankedList(dict(zip(ids, (int(count) for count in counts))), age_ms)

    @property
    def popularity(self) -> Popularity:
        """The last popularity list read; empty until the first successful read."""
        return self._popularity

    def refresh_popularity(self) -> Popularity:
        """Read the popularity list; raises :class:`FeatureStoreUnavailable` and keeps the old list then.

        A list older than its limit replaces the old one with an empty list.
        """
        values = self._read(POPULAR_FEATURES, [{"scope": POPULAR_SCOPE}])
        window_end = values["window_end"][0]
        popularity = Popularity()
        if window_end is not None and now_ms() - int(window_end) <= self.settings.popularity_max_age_s * 1000:
            ids = values["item_ids"][0] or []
            counts = [int(count) for count in values["counts"][0] or []]
            popularity = Popularity(tuple(ids), dict(zip(ids, counts)), int(window_end))
        with self._popularity_lock:
            self._popularity = popularity
        return popularity
