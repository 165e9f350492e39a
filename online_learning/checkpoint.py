"""The learner's checkpoint: model, stream state, counters and Kafka offsets, written together in one file.

Because one atomic rename replaces the whole file, the offsets always belong to
the state they were saved with. A restart seeks to the saved offsets and goes
on with the saved state, so every event is learned exactly once even when the
process is killed between checkpoints. The events after the last checkpoint
are then read again and learned from the saved state.

The file is a pickle, so only load checkpoint directories that this learner writes.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from online_learning.learner import PrequentialLearner
from online_learning.atomic_files import write_atomically

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "learner-checkpoint.pkl"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and what to do."""


@dataclass
class Checkpoint:
    """Everything a restart needs. ``offsets`` maps each partition of ``topic`` to the next offset to read."""

    topic: str
    learner: PrequentialLearner
    offsets: dict[int, int] = field(default_factory=dict)
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    snapshot_version: int = 0
    """Version of the last snapshot written before this checkpoint."""

    @property
    def records_consumed(self) -> int:
        """Valid and invalid records read since the first start."""
        return self.learner.counters.events_learned + sum(self.invalid_by_reason.values())


def checkpoint_path(directory: Path) -> Path:
    return Path(directory) / CHECKPOINT_FILE


def save_checkpoint(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically into ``directory``, replacing the previous one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "checkpoint": checkpoint}
    path = checkpoint_path(directory)
    write_atomically(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_checkpoint(directory: Path, topic: str) -> Checkpoint | None:
    """Load the checkpoint in ``directory``, or return None when there is none yet.

    Raises :class:`CheckpointError`, whatever the underlying error, when the
    file cannot be read, is damaged, has another format, or belongs to another topic.
    """
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
    except (OSError, MemoryError) as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
            "check that this user may read it, or move it away to learn the topic again from the start"
        ) from error
    try:
        payload = pickle.loads(data)
    except Exception as error:
        # A damaged pickle can fail in many ways (UnpicklingError, KeyError,
        # OverflowError, MemoryError, errors in a class's reconstruction code),
        # and every one of them means the same to the caller.
        raise CheckpointError(
            f"checkpoint {path} cannot be unpickled ({type(error).__name__}: {error}); "
            "restore it from a backup, or move it away to learn the topic again from the start"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has an unknown format; expected format {CHECKPOINT_FORMAT}. "
            "Move it away to learn the topic again from the start"
        )
    checkpoint = payload.get("checkpoint")
    if not isinstance(checkpoint, Checkpoint):
        raise CheckpointError(
            f"checkpoint {path} contains {type(checkpoint).__name__}, not a learner checkpoint; "
            "restore it from a backup, or move it away to learn the topic again from the start"
        )
    if checkpoint.topic != topic:
        raise CheckpointError(
            f"checkpoint {path} belongs to topic {checkpoint.topic!r}, not {topic!r}; "
            "give each topic its own --checkpoint-dir"
        )
    return checkpoint
