"""Versioned learner snapshots on disk, and a watcher that keeps the newest one loaded for serving.

The learner writes ``snapshot-<version>.pkl`` files into one directory with
:func:`write_snapshot`. Each file appears atomically (temporary file, fsync,
rename), so a reader sees either a whole snapshot or none. Only the newest
``keep`` files stay. Serving reads them with :func:`read_latest` or keeps a
:class:`SnapshotWatcher`, which loads new versions on its own thread.

A file is one header line, ``seqrec-snapshot <format> sha256=<hex digest>``,
followed by the pickle. The reader checks the SHA-256 digest of the pickle
bytes before unpickling, so a truncated or altered file is rejected, not
loaded. Snapshot files get mode 0644 whatever the umask, so a serving process
running as another user can read them. The directory itself is created with
the learner's umask and must also be readable by that user.

Snapshots are pickles. Unpickling runs code named in the file, and the digest
detects damage, not tampering, so load only snapshot directories that the
learner you trust writes to.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

from online_learning.atomic_files import write_atomically
from online_learning.scoring import LearnerSnapshot

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 2
"""Version of the file layout; files of another format are skipped with a warning.

Format 1 files were a bare pickle without a header or a digest.
"""
SNAPSHOT_FILE_MODE = 0o644
"""Permissions of snapshot files: the learner writes them, and serving may run as another user."""
DEFAULT_KEEP = 5
"""Snapshots kept on disk by default: the newest and a few to fall back on."""
DEFAULT_MAX_STALENESS = timedelta(seconds=10)
MIN_POLL_INTERVAL = timedelta(milliseconds=50)
POLLS_PER_STALENESS = 4
"""The watcher polls this many times per ``max_staleness``, so a new file is loaded well within it."""

_FILE_PATTERN = re.compile(r"^snapshot-(\d{12})\.pkl$")
_HEADER_PATTERN = re.compile(rb"^seqrec-snapshot (\d+) sha256=([0-9a-f]{64})\n")
_MAX_HEADER_BYTES = 128
_PAYLOAD_KEYS = ("version", "created_at_ms", "events_learned", "model")


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
        "version": snapshot.version,
        "created_at_ms": snapshot.created_at_ms,
        "events_learned": snapshot.events_learned,
        "model": snapshot.model,
    }
    pickled = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    header = f"seqrec-snapshot {SNAPSHOT_FORMAT} sha256={hashlib.sha256(pickled).hexdigest()}\n".encode()
    target = snapshot_path(root, snapshot.version)
    write_atomically(target, header + pickled, mode=SNAPSHOT_FILE_MODE)
    for version in list_versions(root)[:-keep]:
        try:
            snapshot_path(root, version).unlink()
        except FileNotFoundError:
            pass
    return target


def load_snapshot(path: Path) -> LearnerSnapshot:
    """Load one snapshot file. Only load files from a trusted directory, because this unpickles them.

    Raises :class:`SnapshotError` for every file that cannot be loaded: missing,
    unreadable, of another format, failing its SHA-256 check, or not unpicklable.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise SnapshotError(f"snapshot {path} was deleted before it could be read") from error
    except (OSError, MemoryError) as error:
        raise SnapshotError(
            f"snapshot {path} cannot be read ({type(error).__name__}: {error}); "
            f"check that this process may read it (the learner writes mode {SNAPSHOT_FILE_MODE:o})"
        ) from error
    pickled = _verified_pickle(path, data)
    try:
        payload = pickle.loads(pickled)
    except Exception as error:
        # The digest matched, so the bytes are what the learner wrote. Unpickling
        # can still fail in any class's reconstruction code, for example when the
        # file was written by another version of seqrec or River.
        raise SnapshotError(
            f"snapshot {path} cannot be unpickled ({type(error).__name__}: {error}); "
            "it was written by an incompatible version of seqrec or River"
        ) from error
    missing = [key for key in _PAYLOAD_KEYS if key not in payload] if isinstance(payload, dict) else list(_PAYLOAD_KEYS)
    if missing:
        raise SnapshotError(f"snapshot {path} lacks the fields {missing}; rewrite it with this version of seqrec")
    return LearnerSnapshot(
        model=payload["model"],
        version=payload["version"],
        created_at_ms=payload["created_at_ms"],
        events_learned=payload["events_learned"],
    )


def _verified_pickle(path: Path, data: bytes) -> bytes:
    """Return the pickle bytes after the header of ``data``, or raise SnapshotError if the header or digest is wrong."""
    match = _HEADER_PATTERN.match(data[:_MAX_HEADER_BYTES])
    if match is None:
        raise SnapshotError(
            f"snapshot {path} has no valid 'seqrec-snapshot' header line; it is damaged or was written "
            f"by a seqrec older than format {SNAPSHOT_FORMAT}, and the learner's next snapshot replaces it"
        )
    found_format = int(match.group(1))
    if found_format != SNAPSHOT_FORMAT:
        raise SnapshotError(
            f"snapshot {path} has format {found_format}, expected {SNAPSHOT_FORMAT}; "
            "run the learner and serving from the same version of seqrec"
        )
    pickled = data[match.end():]
    if hashlib.sha256(pickled).hexdigest() != match.group(2).decode():
        raise SnapshotError(
            f"snapshot {path} fails its SHA-256 check ({len(pickled)} bytes after the header); "
            "the file is damaged, and a newer or older snapshot is used instead"
        )
    return pickled


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
    """Keep the newest loadable snapshot of ``root`` loaded, polling on a daemon thread.

    A snapshot written to ``root`` becomes :attr:`current` within
    ``max_staleness`` unless loading it fails: the thread polls
    ``POLLS_PER_STALENESS`` times per ``max_staleness`` and loads the new file
    outside the lock that :meth:`wait_for_version` waits on. Reading
    :attr:`current` never blocks. A file that fails to load, whatever the
    error, is logged once with its path, counted in :attr:`load_failures` and
    skipped, and the next older file that is still newer than :attr:`current`
    is tried. An error while listing ``root`` is logged when it first occurs,
    and polling goes on.

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
        self.load_failures = 0
        """Snapshot files that failed to load since the watcher started; each file counts once."""
        self._failed_versions: set[int] = set()
        self._poll_lock = threading.Lock()
        self._poll_error: str | None = None
        """The last error that stopped a poll, so that a repeated one is logged once."""
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
            try:
                self.poll()
            except Exception as error:
                # Any error here would otherwise end the thread, and serving would keep
                # an old snapshot for good. The next poll tries again.
                self._log_poll_error(error)
            else:
                if self._poll_error is not None:
                    logger.info("polling %s for snapshots works again", self.root)
                self._poll_error = None
            self._stop.wait(self.poll_interval.total_seconds())
        logger.info("stopped watching %s for snapshots", self.root)

    def _log_poll_error(self, error: Exception) -> None:
        description = f"{type(error).__name__}: {error}"
        if description != self._poll_error:
            logger.warning(
                "polling %s for snapshots failed, retrying every %.2f s: %s",
                self.root, self.poll_interval.total_seconds(), description,
                exc_info=not isinstance(error, OSError),
            )
        self._poll_error = description

    def poll(self) -> None:
        """Load the newest loadable snapshot newer than :attr:`current`; the thread calls this itself.

        Raises OSError when ``root`` cannot be listed. Files that fail to load are
        logged, counted and skipped, never raised.
        """
        with self._poll_lock:
            versions = list_versions(self.root)
            # Forget deleted files, so that the set stays as small as the directory.
            self._failed_versions &= set(versions)
            current_version = -1 if self._current is None else self._current.version
            for version in reversed(versions):
                if version <= current_version:
                    return
                if version in self._failed_versions:
                    continue
                snapshot = self._try_load(version, current_version)
                if snapshot is not None:
                    self._publish(snapshot)
                    return

    def _try_load(self, version: int, current_version: int) -> LearnerSnapshot | None:
        path = snapshot_path(self.root, version)
        try:
            return load_snapshot(path)
        except Exception as error:
            # load_snapshot raises SnapshotError for every failure it knows of.
            # Anything else is a bug that still must not stop the watcher, so it
            # is skipped the same way and logged with its traceback.
            self._failed_versions.add(version)
            self.load_failures += 1
            logger.warning(
                "cannot load snapshot %s, keeping version %d (%d load failures so far): %s",
                path, current_version, self.load_failures, error,
                exc_info=not isinstance(error, SnapshotError),
            )
            return None

    def _publish(self, snapshot: LearnerSnapshot) -> None:
        with self._loaded:
            self._current = snapshot
            self._loaded.notify_all()
        logger.info("loaded snapshot version %d (%d events learned)", snapshot.version, snapshot.events_learned)
