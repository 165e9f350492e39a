"""Atomic file replacement, shared by the learner's checkpoint and its snapshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(target: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` so that readers see the old file or the whole new one.

    The data goes to a temporary file in the same directory, which is fsynced
    and renamed over ``target``. The directory is fsynced too, so the rename
    survives a power loss. The file gets permission bits ``mode`` (such as
    0o644), set with ``fchmod`` and so not reduced by the umask. The default
    None keeps the 0600 of :func:`tempfile.mkstemp`.
    """
    directory = target.parent
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            if mode is not None:
                os.fchmod(file.fileno(), mode)
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
