"""Versioned learner snapshots on disk, and a watcher that keeps the newest one loaded for serving.

The learner writes ``snapshot-<version>.pkl`` files into one directory with
:func:`write_snapshot`. Each file appears atomically (temporary file, fsync,
rename), so a reader sees either a whole snapshot or none. Only the newest
``keep`` files stay. Serving reads them with :func:`read_latest` or keeps a
:class:`SnapshotWatcher`, which loads new versions on its own thread.

Snapshots are pickles. Unpickling runs code named in the file, so load only
snapshot directories that the learner you trust writes to.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from online_learning.scoring import LearnerSnapshot

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
"""Version of the file layout; files of another format are skipped with a warning."""
DEFAULT_KEEP = 5
"""Snapshots kept on disk by default: the newest and a few to fall back on."""
DEFAULT_MAX_STALENESS = timedelta(seconds=10)
MIN_POLL_INTERVAL = timedelta(milliseconds=50)
POLLS_PER_STALENESS = 4
"""The watcher polls this many times per ``max_staleness``, so a new file is loaded well within it."""

_FILE_PATTERN = re.compile(r"^snapshot-(\d{12})\.pkl$")


class SnapshotError(Exception):
    """A snapshot file that cannot be loaded; the message names the file and the reason."""


def snapshot_path(root: Path, version: int) -> Path:
    """Return the file name of snapshot ``version`` inside ``root``."""
    return Path(root) / f"snapshot-{version:012d}.pkl"


def list_versions(root: Path) -> list[int]:
    """Return the versions of the snapshot files in ``root``, oldest first, or [] if ``root`` does not exist."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    versions = []
    for name in names:
        match = _FILE_PATTERN.match(name)
        if match:
            versions.append(int(match.group(1)))
    return sorted(versions)


def write_snapshot(root: Path, snapshot: LearnerSnapshot, keep: int = DEFAULT_KEEP) -> Path:
    """Write ``snapshot`` atomically as ``root/snapshot-<version>.pkl`` and delete all but the newest ``keep``.

    Creates ``root`` if needed. Raises ``ValueError`` when ``keep`` < 1 or when
    a snapshot of the same or a newer version already exists, because readers
    take the highest version as the newest.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 snapshot, got {keep}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = list_versions(root)
    if existing and existing[-1] >= snapshot.version:
        raise ValueError(
            f"snapshot version {snapshot.version} is not newer than version {existing[-1]} in {root}; "
            "give each snapshot a higher version, or write to an empty directory"
        )
    payload = {
        "format": SNAPSHOT_FORMAT,
        "version": snapshot.version,
        "created_at_ms": snapshot.created_at_ms,
        "events_learned": snapshot.events_learned,
        "model": snapshot.model,
    }
    target = snapshot_path(root, snapshot.version)
    write_atomically(target, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    for version in list_versions(root)[:-keep]:
        try:
            snapshot_path(root, version).unlink()
        except FileNotFoundError:
            pass
    return target


def write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so that readers see the old file or the whole new one.

    The data goes to a temporary file in the same directory, which is fsynced
    and renamed over ``target``. The directory is fsynced too, so the rename
    survives a power loss.
    """
    directory = target.parent
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)


def load_snapshot(path: Path) -> LearnerSnapshot:
    """Load one snapshot file. Only load files from a trusted directory, because this unpickles them.

    Raises :class:`SnapshotError` when the file is missing, damaged or of another format.
    """
    try:
        payload = pickle.loads(Path(path).read_bytes())
    except FileNotFoundError as error:
        raise SnapshotError(f"snapshot {path} was deleted before it could be read") from error
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as error:
        raise SnapshotError(
            f"snapshot {path} cannot be unpickled ({type(error).__name__}: {error}); "
            "it is damaged or was written by an incompatible version of seqrec or River"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != SNAPSHOT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise SnapshotError(f"snapshot {path} has format {found!r}, expected {SNAPSHOT_FORMAT}; rewrite it with this version")
    return LearnerSnapshot(
        model=payload["model"],
        version=payload["version"],
        created_at_ms=payload["created_at_ms"],
        events_learned=payload["events_learned"],
    )


def read_latest(root: Path) -> LearnerSnapshot | None:
    """Load the newest loadable snapshot in ``root``, or return None when there is none.

    A newest file that cannot be loaded is logged and the next older one is tried.
    """
    for version in reversed(list_versions(root)):
        try:
            return load_snapshot(snapshot_path(root, version))
        except SnapshotError as error:
            logger.warning("skipping snapshot version %d: %s", version, error)
    return None


class SnapshotWatcher:
    """Keep the newest snapshot of ``root`` loaded, polling on a daemon thread.

    A snapshot written to ``root`` becomes :attr:`current` within
    ``max_staleness`` unless loading it fails: the thread polls
    ``POLLS_PER_STALENESS`` times per ``max_staleness`` and loads the new file
    outside any lock. Reading :attr:`current` never blocks. A file that fails to
    load is logged once and skipped until a newer version appears.

    >>> import tempfile
    >>> watcher = SnapshotWatcher(Path(tempfile.mkdtemp()), max_staleness=timedelta(seconds=1))
    >>> watcher.current is None
    True
    >>> watcher.close()
    """

    def __init__(self, root: Path, max_staleness: timedelta = DEFAULT_MAX_STALENESS):
        if max_staleness <= timedelta(0):
            raise ValueError(f"max_staleness must be positive, got {max_staleness}")
        self.root = Path(root)
        self.max_staleness = max_staleness
        self.poll_interval = max(max_staleness / POLLS_PER_STALENESS, MIN_POLL_INTERVAL)
        self._current: LearnerSnapshot | None = None
        self._failed_version: int | None = None
        self._loaded = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"snapshot-watcher:{self.root}", daemon=True)
        self._thread.start()

    @property
    def current(self) -> LearnerSnapshot | None:
        """The newest snapshot loaded so far, or None before the first one."""
        return self._current

    def wait_for_version(self, version: int, timeout: timedelta) -> LearnerSnapshot | None:
        """Block until a snapshot of at least ``version`` is loaded or ``timeout`` passes; return :attr:`current`."""
        deadline = time.monotonic() + timeout.total_seconds()
        with self._loaded:
            while self._current is None or self._current.version < version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._loaded.wait(remaining)
            return self._current

    def close(self) -> None:
        """Stop the polling thread and wait for it; :attr:`current` keeps the last snapshot."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        logger.info("watching %s for snapshots every %.2f s", self.root, self.poll_interval.total_seconds())
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_interval.total_seconds())

    def poll(self) -> None:
        """Load the newest snapshot if it is newer than :attr:`current`; the thread calls this itself."""
        versions = list_versions(self.root)
        if not versions:
            return
        newest = versions[-1]
        current_version = -1 if self._current is None else self._current.version
        if newest <= current_version or newest == self._failed_version:
            return
        try:
            snapshot = load_snapshot(snapshot_path(self.root, newest))
        except SnapshotError as error:
            self._failed_version = newest
            logger.warning("cannot load snapshot version %d, keeping version %d: %s", newest, current_version, error)
            return
        with self._loaded:
            self._current = snapshot
            self._loaded.notify_all()
        logger.info("loaded snapshot version %d (%d events learned)", snapshot.version, snapshot.events_learned)
