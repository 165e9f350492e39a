"""Reload the rules file when it changes, keeping the last good rules when a new version is invalid."""

from __future__ import annotations

import logging
import hashlib
import threading
from pathlib import Path
from typing import Callable

from serving.rules import InvalidRules, Rules, load_rules

logger = logging.getLogger(__name__)


def file_digest(path: Path) -> bytes | None:
    """Return the SHA-256 of the file's content, or None when it does not exist.

    The content is compared, not the modification time, because two writes
    within one kernel clock tick can leave the same time and size.
    """
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except FileNotFoundError:
        return None


class RulesWatcher:
    """The current :class:`Rules` of ``path``, reloaded by :meth:`reload_if_changed`.

    The first load raises :class:`InvalidRules`, so a server does not start with
    a broken file. Later, an invalid or missing file is logged and counted
    through ``on_failure``, and the last good rules stay in force.

    NOTE: only the rules file itself is watched. A change to a file it names
    (``blocklist_file`` and the like) is read when the rules file changes next.
    """

    def __init__(self, path: Path, on_failure: Callable[[], None] = lambda: None):
        self.path = Path(path)
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._digest = file_digest(self.path)
        if self._digest is None:
            raise InvalidRules(f"rules file {self.path} not found; create it or leave the rules path unset")
        self._rules = load_rules(self.path)
        logger.info("loaded rules from %s", self.path)

    @property
    def current(self) -> Rules:
        return self._rules

    def reload_if_changed(self) -> bool:
        """Reload the file if its content changed; returns True when new rules took effect."""
        with self._lock:
            digest = file_digest(self.path)
            if digest == self._digest:
                return False
            self._digest = digest
            if digest is None:
                logger.error("rules file %s was removed; keeping the last rules until it is back", self.path)
                self._on_failure()
                return False
            try:
                rules = load_rules(self.path)
            except InvalidRules as error:
                logger.error("%s; keeping the last valid rules", error)
                self._on_failure()
                return False
            self._rules = rules
            logger.info("reloaded rules from %s", self.path)
            return True
