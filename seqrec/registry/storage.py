"""File operations of the model registry: the :class:`RegistryStorage` protocol and its local backend."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator, Protocol


class RegistryStorage(Protocol):
    """File operations of the registry, on keys relative to its root such as ``models/gru4rec/CURRENT``.

    Keys use ``/`` separators. An object-store backend would implement
    ``create_exclusive`` and ``write_atomic`` with conditional writes, ``lock``
    with a lease object, and ``local_path`` with a download cache.
    """

    def create_exclusive(self, key: str) -> bool:
        """Create the directory ``key`` atomically, and return False if it already exists."""

    def list_children(self, key: str) -> list[str]:
        """Return the sorted names directly under ``key``, or an empty list if it does not exist."""

    def list_files(self, key: str) -> list[str]:
        """Return the sorted paths of all regular files under ``key``, relative to it."""

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``, or raise FileNotFoundError if it does not exist."""

    def write_atomic(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` so that readers see the old or the new content, never a part."""

    def append_line(self, key: str, line: str) -> None:
        """Append ``line`` and a newline to ``key``, creating it if needed."""

    def put_file(self, key: str, source: Path, move: bool) -> None:
        """Copy (or move) the local file ``source`` to ``key``."""

    def open_read(self, key: str) -> BinaryIO:
        """Open ``key`` for binary reading."""

    def size(self, key: str) -> int:
        """Return the size of ``key`` in bytes."""

    def remove_tree(self, key: str) -> None:
        """Delete ``key`` and everything under it."""

    def local_path(self, key: str) -> Path:
        """Return a local filesystem path with the content of ``key``."""

    def lock(self, key: str) -> ContextManager[None]:
        """Hold an exclusive lock named ``key`` across processes and threads."""


class LocalStorage:
    """:class:`RegistryStorage` on a local directory, with ``os.mkdir`` claims, ``os.replace`` and ``flock``."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def create_exclusive(self, key: str) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            return False
        return True

    def list_children(self, key: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(key)))
        except FileNotFoundError:
            return []

    def list_files(self, key: str) -> list[str]:
        base = self._path(key)
        if not base.is_dir():
            return []
        return sorted(path.relative_to(base).as_posix() for path in base.rglob("*") if path.is_file())

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_atomic(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file sits in the same directory, so os.replace is a rename within one filesystem.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_directory(path.parent)

    def append_line(self, key: str, line: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as handle:
            # A crash can leave a last line without its newline, so end that line before appending.
            if handle.tell() > 0 and _last_byte(path) != b"\n":
                handle.write(b"\n")
            handle.write(line.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def put_file(self, key: str, source: Path, move: bool) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(os.fspath(source), path)
        else:
            shutil.copyfile(source, path)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def remove_tree(self, key: str) -> None:
        shutil.rmtree(self._path(key))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # flock locks belong to an open file description, so two threads of one process also exclude each other.
        # NOTE: tested on local filesystems only. Over NFS, whether flock excludes other hosts depends on the client.
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
