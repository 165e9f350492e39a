"""Version names, artifact paths and the ``metadata.json`` stored with each registered version."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
METADATA_FORMAT = 1
"""Layout version of ``metadata.json``. Reading a file in a newer layout raises :class:`IncompatibleArtifact`."""

GIT_TIMEOUT_SECONDS = 5

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_PATTERN = re.compile(r"^v(?P<number>\d{6,})-(?P<stamp>\d{8}T\d{6}Z)$")
VERSION_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def isoformat_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, order=True)
class Version:
    """A version name such as ``v000012-20261204T221500Z``: a sequence number, then the UTC registration time.

    The number alone orders versions and identifies them. The time is for people reading the name.

    >>> version = Version.parse("v000012-20261204T221500Z")
    >>> version.number, str(version)
    (12, 'v000012-20261204T221500Z')
    >>> Version.parse("CURRENT") is None
    True
    """

    number: int
    stamp: str = field(compare=False)

    def __str__(self) -> str:
        return f"v{self.number:06d}-{self.stamp}"

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = VERSION_PATTERN.match(text)
        if match is None:
            return None
        return cls(int(match["number"]), match["stamp"])


@dataclass(frozen=True)
class ArtifactFile:
    """One stored artifact: its path inside the version directory (``/`` separators), SHA-256 in hex, size in bytes."""

    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class DataRange:
    """The training data of a model: first and last day (ISO ``YYYY-MM-DD``, both inclusive) and a free-text description."""

    start: str | None = None
    end: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                date.fromisoformat(value)
            except (TypeError, ValueError):
                raise ValueError(f"data range {name} {value!r} is not an ISO date; write it as YYYY-MM-DD") from None
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"data range starts on {self.start}, after its end {self.end}; swap them")


@dataclass(frozen=True)
class ModelMetadata:
    """The content of ``metadata.json``: what a version is, what it was trained on, and how well it scored.

    ``metrics`` maps a split (``validation``, ``test``) to metric values, for example
    ``{"validation": {"recall@20": 0.41}}``. Promotion compares validation metrics only.
    ``code_version`` is the git commit of the training code, with ``+dirty`` if it had
    uncommitted changes, or the package version outside a git checkout.
    """

    model_name: str
    version: str
    created_at: str
    artifact_format: str
    code_version: str
    files: tuple[ArtifactFile, ...]
    data_range: DataRange = DataRange()
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    metadata_format: int = METADATA_FORMAT

    def metric(self, name: str, split: str = "validation") -> float | None:
        """Return the value of metric ``name`` on ``split``, or None if it was not recorded."""
        return self.metrics.get(split, {}).get(name)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModelMetadata:
        """Parse ``metadata.json``, raising ValueError, KeyError or TypeError if it is malformed."""
        raw = json.loads(data)
        return cls(
            model_name=raw["model_name"],
            version=raw["version"],
            created_at=raw["created_at"],
            artifact_format=raw["artifact_format"],
            code_version=raw["code_version"],
            files=tuple(ArtifactFile(**entry) for entry in raw["files"]),
            data_range=DataRange(**raw.get("data_range") or {}),
            hyperparameters=raw.get("hyperparameters") or {},
            metrics=raw.get("metrics") or {},
            metadata_format=raw["metadata_format"],
        )


def check_metrics(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Return ``metrics`` as plain dicts, or raise ValueError unless every value is a finite number."""
    checked: dict[str, dict[str, float]] = {}
    for split, values in metrics.items():
        if not isinstance(values, Mapping):
            raise ValueError(
                f"metrics[{split!r}] is {type(values).__name__}, expected a dict of metric values, "
                'for example {"validation": {"recall@20": 0.41}}'
            )
        checked[split] = {}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"metric {split}/{name} is {value!r}, expected a finite number")
            checked[split][name] = float(value)
    return checked


def detect_code_version() -> str:
    """Return the git commit of this source tree (``+dirty`` with uncommitted changes), else the package version."""
    source_dir = Path(__file__).resolve().parent
    try:
        commit = _git(source_dir, "rev-parse", "HEAD").strip()
        dirty = bool(_git(source_dir, "status", "--porcelain", "--untracked-files=no").strip())
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError) as error:
        logger.debug("no git commit for %s (%s); using the package version", source_dir, error)
    try:
        return "seqrec " + package_metadata.version("seqrec")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def _git(directory: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_SECONDS,
    ).stdout


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid model name {name!r}; use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_artifact_path(name: str) -> str:
    """Return ``name`` normalized if it is a safe relative path inside a version directory, else raise ValueError."""
    path = PurePosixPath(name)
    parts = path.parts
    if not name or path.is_absolute() or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid artifact path {name!r}; use a relative path with '/' separators and no '..'")
    if any(part.startswith(".") for part in parts):
        raise ValueError(f"invalid artifact path {name!r}: hidden names (leading '.') are reserved for temporary files")
    if name == METADATA_FILE:
        raise ValueError(f"artifact path {name!r} is reserved for the registry's own metadata; rename the file")
    return path.as_posix()


def collect_artifacts(artifacts: Mapping[str, Path | str] | Path | str) -> dict[str, Path]:
    """Map each artifact's path in the registry to its local source file.

    ``artifacts`` is a mapping of registry path to source file, or a directory whose
    files (recursively) are all artifacts.
    """
    if isinstance(artifacts, Mapping):
        sources = {check_artifact_path(name): Path(source) for name, source in artifacts.items()}
        origin = "the artifacts mapping"
    else:
        directory = Path(artifacts)
        if not directory.is_dir():
            raise FileNotFoundError(f"artifact directory {directory} does not exist; pass a directory or a mapping of files")
        sources = {
            check_artifact_path(path.relative_to(directory).as_posix()): path
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }
        origin = str(directory)
    if not sources:
        raise ValueError(f"no artifact files in {origin}; a version needs at least one file")
    for name, source in sources.items():
        if not source.is_file():
            raise FileNotFoundError(f"artifact {name!r}: source {source} is not a file")
    return sources
