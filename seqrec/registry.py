"""A versioned model registry in a directory: register, verify, promote and roll back models.

The Beam training pipeline registers each trained model here, and the gRPC server
loads the version that ``CURRENT`` names. Artifacts are opaque files to the
registry. It stores them, records their SHA-256 and size, and leaves loading to a
``load_test`` hook that the caller passes. Layout under the root::

    ROOT/models/<model>/<version>/         artifact files, then metadata.json
    ROOT/models/<model>/CURRENT            the promoted version, replaced atomically
    ROOT/models/<model>/history.jsonl      one JSON line per promotion decision and rollback
    ROOT/models/<model>/.claims/<number>   one directory per version number handed out

``register`` writes ``metadata.json`` last, so a version directory without it is
incomplete: listings skip it and ``promote`` raises :class:`IncompleteVersion`.
All file operations go through :class:`RegistryStorage`, so an object-store
backend can replace :class:`LocalStorage`, the only backend so far.

>>> import tempfile
>>> workdir = Path(tempfile.mkdtemp())
>>> weights = workdir / "model.pt"
>>> _ = weights.write_bytes(b"weights")
>>> registry = ModelRegistry(workdir / "registry")
>>> registered = registry.register("gru4rec", {"model.pt": weights}, artifact_format="gru4rec-torch-v1",
...                                metrics={"validation": {"recall@20": 0.41}}, code_version="test")
>>> registered.version.startswith("v000001-")
True
>>> decision = registry.promote("gru4rec", registered.version)
>>> decision.promoted, decision.reason
(True, 'promoted: first promotion of gru4rec')
>>> registry.current("gru4rec").version == registered.version
True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, ContextManager, Iterator, Mapping, NamedTuple, Protocol

logger = logging.getLogger(__name__)

ROOT_ENVIRONMENT_VARIABLE = "SEQREC_REGISTRY"
DEFAULT_ROOT = Path("~/.cache/seqrec/registry")
METADATA_FILE = "metadata.json"
CURRENT_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
CLAIMS_DIRECTORY = ".claims"
LOCK_FILE = ".lock"

METADATA_FORMAT = 1
"""Layout version of ``metadata.json``. Reading a file in a newer layout raises :class:`IncompatibleArtifact`."""

HASH_CHUNK_BYTES = 1 << 20
GIT_TIMEOUT_SECONDS = 5

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_PATTERN = re.compile(r"^v(?P<number>\d{6,})-(?P<stamp>\d{8}T\d{6}Z)$")
VERSION_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"

LoadTest = Callable[[Path], None]
"""A caller's check that a version directory loads, for example by building the torch model from it.

It raises any exception to mark the artifact as unusable."""


def default_root() -> Path:
    """Return the registry root: ``$SEQREC_REGISTRY`` if set, else ``~/.cache/seqrec/registry``."""
    return Path(os.environ.get(ROOT_ENVIRONMENT_VARIABLE) or DEFAULT_ROOT).expanduser()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def isoformat_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- errors -----------------------------------------------------------------------------------


class RegistryError(Exception):
    """Base class of the registry's errors."""


class VersionNotFound(RegistryError, LookupError):
    """A version name that is not in the registry."""


class IncompleteVersion(VersionNotFound):
    """A version directory without ``metadata.json``: a registration still running, or one that failed."""


class CorruptArtifact(RegistryError):
    """A stored file that is missing, unexpected, or differs from what ``metadata.json`` records."""

    def __init__(self, model_name: str, version: str, file: str, problem: str):
        super().__init__(
            f"corrupt artifact in {model_name} {version}: {file} {problem}; "
            "register the model again from its training output"
        )
        self.model_name = model_name
        self.version = version
        self.file = file
        self.problem = problem


class IncompatibleArtifact(RegistryError):
    """A version that the loader cannot read: another artifact format, or a failing load test."""

    def __init__(self, model_name: str, version: str, problem: str):
        super().__init__(f"incompatible artifact in {model_name} {version}: {problem}")
        self.model_name = model_name
        self.version = version
        self.problem = problem


class NoPreviousVersion(RegistryError):
    """A rollback with no earlier promoted version to return to."""


# --- storage ----------------------------------------------------------------------------------


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


# --- versions and metadata --------------------------------------------------------------------


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


# --- registry ---------------------------------------------------------------------------------


class ModelVersion(NamedTuple):
    """A complete registered version: its name, local directory and metadata."""

    version: str
    path: Path
    metadata: ModelMetadata


@dataclass(frozen=True)
class VersionListing:
    """One line of :meth:`ModelRegistry.list_versions`."""

    version: str
    path: Path
    metadata: ModelMetadata
    is_current: bool


class Action:
    """Kinds of :class:`PromotionDecision`, stored as these strings in ``history.jsonl``."""

    PROMOTE = "promote"
    REJECT = "reject"
    UNCHANGED = "unchanged"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of a promotion or rollback, as logged and appended to ``history.jsonl``.

    ``version`` is the candidate (or the rollback target) and ``previous`` the version
    that was current before. ``candidate_value`` and ``current_value`` are their
    validation values of ``metric``, where known.
    """

    model_name: str
    version: str
    action: str
    reason: str
    previous: str | None
    decided_at: str
    metric: str | None = None
    candidate_value: float | None = None
    current_value: float | None = None
    tolerance: float | None = None
    forced: bool = False

    @property
    def promoted(self) -> bool:
        """Whether ``version`` became current."""
        return self.action in (Action.PROMOTE, Action.ROLLBACK)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)


class ModelRegistry:
    """A versioned model registry on ``root`` (a local directory) or on any :class:`RegistryStorage`.

    Safe for concurrent use by threads and processes on one machine: version numbers
    are claimed atomically, and promotions and rollbacks hold a per-model lock.
    """

    def __init__(self, root: Path | str | RegistryStorage):
        self.storage: RegistryStorage = LocalStorage(root) if isinstance(root, (str, os.PathLike)) else root

    def __repr__(self) -> str:
        return f"ModelRegistry({self.storage!r})"

    # Keys of one model's files.

    @staticmethod
    def _model_key(name: str) -> str:
        return f"models/{check_model_name(name)}"

    def _version_key(self, name: str, version: str) -> str:
        return f"{self._model_key(name)}/{version}"

    # Registration.

    def register(
        self,
        name: str,
        artifacts: Mapping[str, Path | str] | Path | str,
        *,
        artifact_format: str,
        metrics: Mapping[str, Mapping[str, float]] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        data_range: DataRange | None = None,
        code_version: str | None = None,
        move: bool = False,
    ) -> ModelVersion:
        """Store ``artifacts`` as the next version of model ``name`` and return it.

        ``artifacts`` is a mapping of path in the registry to local file, or a
        directory. Files are copied, or moved with ``move=True``. ``metadata.json``
        is written last, after every file is stored and hashed. ``code_version``
        defaults to :func:`detect_code_version`. Raises ValueError for invalid input before
        a version number is used.
        """
        check_model_name(name)
        if not artifact_format or not isinstance(artifact_format, str):
            raise ValueError(f"artifact_format {artifact_format!r} is empty; name the loader's format, e.g. 'gru4rec-torch-v1'")
        sources = collect_artifacts(artifacts)
        checked_metrics = check_metrics(metrics or {})
        checked_hyperparameters = dict(hyperparameters or {})
        try:
            json.dumps(checked_hyperparameters, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"hyperparameters of {name} are not JSON: {error}; pass strings, numbers, lists and dicts") from None
        version = self._claim_version(name)
        version_key = self._version_key(name, version)
        logger.info("registering %s %s: %d artifact files", name, version, len(sources))
        try:
            files = []
            for path, source in sorted(sources.items()):
                key = f"{version_key}/{path}"
                self.storage.put_file(key, source, move=move)
                files.append(ArtifactFile(path=path, sha256=self._sha256(key), size_bytes=self.storage.size(key)))
            metadata = ModelMetadata(
                model_name=name,
                version=version,
                created_at=isoformat_utc(utc_now()),
                artifact_format=artifact_format,
                code_version=code_version if code_version is not None else detect_code_version(),
                files=tuple(files),
                data_range=data_range or DataRange(),
                hyperparameters=checked_hyperparameters,
                metrics=checked_metrics,
            )
            self.storage.write_atomic(f"{version_key}/{METADATA_FILE}", metadata.to_json())
        except BaseException:
            self._abandon(name, version, moved=move)
            raise
        logger.info("registered %s %s: format %s, %d artifact files", name, version, artifact_format, len(files))
        return ModelVersion(version, self.storage.local_path(version_key), metadata)

    def _claim_version(self, name: str) -> str:
        model_key = self._model_key(name)
        claims = self.storage.list_children(f"{model_key}/{CLAIMS_DIRECTORY}")
        claimed = [int(entry) for entry in claims if entry.isdigit()]
        existing = [version.number for version in self._version_names(name)]
        number = max(claimed + existing, default=0) + 1
        # The claim is on the number alone, because two registrations a second apart
        # would otherwise get distinct directory names with the same number.
        while not self.storage.create_exclusive(f"{model_key}/{CLAIMS_DIRECTORY}/{number:06d}"):
            number += 1
        version = str(Version(number, utc_now().strftime(VERSION_STAMP_FORMAT)))
        if not self.storage.create_exclusive(self._version_key(name, version)):
            raise RegistryError(
                f"version directory {name}/{version} was created outside the registry while registering; "
                f"remove it if it is not a real version, then register again"
            )
        return version

    def _abandon(self, name: str, version: str, moved: bool) -> None:
        if moved:
            # Deleting would lose the caller's only copy of the files already moved in.
            logger.error("registration of %s %s failed; its moved files stay in %s", name, version,
                         self.storage.local_path(self._version_key(name, version)))
            return
        logger.error("registration of %s %s failed; removing the partial version", name, version)
        try:
            self.storage.remove_tree(self._version_key(name, version))
        except OSError as error:
            logger.error("could not remove partial version %s %s: %s", name, version, error)

    def _sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.storage.open_read(key) as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    # Reading.

    def _version_names(self, name: str) -> list[Version]:
        parsed = (Version.parse(entry) for entry in self.storage.list_children(self._model_key(name)))
        return sorted(version for version in parsed if version is not None)

    def _is_complete(self, name: str, version: str) -> bool:
        return METADATA_FILE in self.storage.list_children(self._version_key(name, version))

    def _read_metadata(self, name: str, version: str) -> ModelMetadata:
        if Version.parse(version) is None or version not in self.storage.list_children(self._model_key(name)):
            raise VersionNotFound(f"{name} has no version {version!r}; `seqrec registry list` shows the versions")
        try:
            data = self.storage.read_bytes(f"{self._version_key(name, version)}/{METADATA_FILE}")
        except FileNotFoundError:
            raise IncompleteVersion(
                f"{name} {version} has no {METADATA_FILE}: its registration is still running or failed; register the model again"
            ) from None
        try:
            metadata = ModelMetadata.from_json(data)
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptArtifact(name, version, METADATA_FILE, f"is malformed ({type(error).__name__}: {error})") from None
        if metadata.metadata_format > METADATA_FORMAT:
            raise IncompatibleArtifact(
                name, version, f"{METADATA_FILE} has layout {metadata.metadata_format}, this code reads up to "
                f"{METADATA_FORMAT}; upgrade seqrec"
            )
        return metadata

    def current_version(self, name: str) -> str | None:
        """Return the version that ``CURRENT`` names, or None before the first promotion."""
        try:
            return self.storage.read_bytes(f"{self._model_key(name)}/{CURRENT_FILE}").decode().strip() or None
        except FileNotFoundError:
            return None

    def current(self, name: str) -> ModelVersion | None:
        """Return the current version of ``name`` as (version, path, metadata), or None before the first promotion.

        Raises :class:`VersionNotFound` if ``CURRENT`` names a version that is missing or incomplete.
        """
        version = self.current_version(name)
        if version is None:
            return None
        metadata = self._read_metadata(name, version)
        return ModelVersion(version, self.storage.local_path(self._version_key(name, version)), metadata)

    def get(self, name: str, version: str) -> ModelVersion:
        """Return a complete version, or raise :class:`VersionNotFound` or :class:`IncompleteVersion`."""
        metadata = self._read_metadata(name, version)
        return ModelVersion(version, self.storage.local_path(self._version_key(name, version)), metadata)

    def list_versions(self, name: str) -> list[VersionListing]:
        """Return the complete versions of ``name``, oldest first, and mark the current one.

        Incomplete versions are left out and logged. :meth:`incomplete_versions` lists them.
        """
        current = self.current_version(name)
        listings = []
        for version in map(str, self._version_names(name)):
            if not self._is_complete(name, version):
                logger.warning("skipping incomplete version %s %s (no %s)", name, version, METADATA_FILE)
                continue
            listings.append(
                VersionListing(
                    version=version,
                    path=self.storage.local_path(self._version_key(name, version)),
                    metadata=self._read_metadata(name, version),
                    is_current=version == current,
                )
            )
        return listings

    def incomplete_versions(self, name: str) -> list[str]:
        """Return the version directories of ``name`` that have no ``metadata.json``."""
        return [str(version) for version in self._version_names(name) if not self._is_complete(name, str(version))]

    def resolve_version(self, name: str, text: str) -> str:
        """Return the full version name for ``text``: the name itself, its number (``12``) or ``v000012``.

        >>> import tempfile
        >>> ModelRegistry(tempfile.mkdtemp()).resolve_version("gru4rec", "v000012-20261204T221500Z")
        'v000012-20261204T221500Z'
        """
        if Version.parse(text) is not None:
            return text
        digits = text[1:] if text.startswith("v") else text
        if digits.isdigit():
            for version in self._version_names(name):
                if version.number == int(digits):
                    return str(version)
        raise VersionNotFound(f"{name} has no version {text!r}; `seqrec registry list` shows the versions")

    def history(self, name: str) -> list[PromotionDecision]:
        """Return every recorded decision for ``name``, oldest first.

        Malformed lines are skipped with a warning. The usual cause is a crash during
        an append, which leaves a partial line that the next append ends with a newline.
        """
        try:
            text = self.storage.read_bytes(f"{self._model_key(name)}/{HISTORY_FILE}").decode()
        except FileNotFoundError:
            return []
        decisions = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                decisions.append(PromotionDecision(**json.loads(line)))
            except (ValueError, TypeError) as error:
                logger.warning("skipping malformed line %d of %s/%s: %s", number, name, HISTORY_FILE, error)
        return decisions

    # Verification.

    def verify(
        self,
        name: str,
        version: str,
        *,
        artifact_format: str | None = None,
        load_test: LoadTest | None = None,
    ) -> ModelMetadata:
        """Check that every stored file matches ``metadata.json`` and return the metadata.

        Compares each file's size and SHA-256, rejects files that ``metadata.json`` does
        not list, checks the format against ``artifact_format`` when given, and finally
        calls ``load_test`` with the version directory. Raises :class:`CorruptArtifact`
        or :class:`IncompatibleArtifact` naming the file and the difference.
        """
        metadata = self._read_metadata(name, version)
        if metadata.model_name != name or metadata.version != version:
            raise CorruptArtifact(
                name, version, METADATA_FILE, f"describes {metadata.model_name} {metadata.version} instead"
            )
        if artifact_format is not None and metadata.artifact_format != artifact_format:
            raise IncompatibleArtifact(
                name, version, f"artifact format is {metadata.artifact_format!r}, the loader reads {artifact_format!r}; "
                "register a model trained by code that writes that format"
            )
        version_key = self._version_key(name, version)
        stored = set(self.storage.list_files(version_key)) - {METADATA_FILE}
        for artifact in metadata.files:
            key = f"{version_key}/{artifact.path}"
            if artifact.path not in stored:
                raise CorruptArtifact(name, version, artifact.path, "is missing")
            size = self.storage.size(key)
            if size != artifact.size_bytes:
                raise CorruptArtifact(
                    name, version, artifact.path, f"has {size} bytes, {METADATA_FILE} records {artifact.size_bytes}"
                )
            digest = self._sha256(key)
            if digest != artifact.sha256:
                raise CorruptArtifact(
                    name, version, artifact.path, f"has SHA-256 {digest}, {METADATA_FILE} records {artifact.sha256}"
                )
        unexpected = sorted(stored - {artifact.path for artifact in metadata.files})
        if unexpected:
            raise CorruptArtifact(name, version, unexpected[0], f"is not listed in {METADATA_FILE}")
        if load_test is not None:
            hook = getattr(load_test, "__qualname__", repr(load_test))
            try:
                load_test(self.storage.local_path(version_key))
            except Exception as error:  # the hook is caller code; any failure marks the artifact unusable
                raise IncompatibleArtifact(
                    name, version, f"load test {hook} failed: {type(error).__name__}: {error}"
                ) from error
        logger.info("verified %s %s: format %s, %d artifact files", name, version, metadata.artifact_format, len(metadata.files))
        return metadata

    # Promotion and rollback.

    def promote(
        self,
        name: str,
        version: str,
        *,
        metric: str = "recall@20",
        tolerance: float = 0.0,
        artifact_format: str | None = None,
        load_test: LoadTest | None = None,
        force: bool = False,
    ) -> PromotionDecision:
        """Make ``version`` current if it verifies and scores no worse than the current model.

        The gate is: candidate validation ``metric`` >= current validation ``metric``
        minus ``tolerance`` (an absolute difference; higher is better, as for recall,
        MRR and NDCG). A missing metric on either side rejects. ``force=True`` skips
        the metric gate but never verification: a corrupt or incompatible version is
        always rejected. Returns the decision, which is also logged and appended to
        the history. Raises :class:`VersionNotFound` for an unknown or incomplete version.
        """
        if not math.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance {tolerance!r} must be a finite number >= 0")
        with self.storage.lock(f"{self._model_key(name)}/{LOCK_FILE}"):
            previous = self.current_version(name)

            def decide(action: str, reason: str, candidate_value: float | None = None,
                       current_value: float | None = None) -> PromotionDecision:
                return PromotionDecision(
                    model_name=name,
                    version=version,
                    action=action,
                    reason=reason,
                    previous=previous,
                    decided_at=isoformat_utc(utc_now()),
                    metric=metric,
                    candidate_value=candidate_value,
                    current_value=current_value,
                    tolerance=tolerance,
                    forced=force,
                )

            try:
                candidate = self.verify(name, version, artifact_format=artifact_format, load_test=load_test)
            except (CorruptArtifact, IncompatibleArtifact) as error:
                return self._record(decide(Action.REJECT, f"rejected: {error}"))
            if version == previous:
                return self._record(decide(Action.UNCHANGED, f"unchanged: {version} is already current"))

            accepted, reason, candidate_value, current_value = self._compare(name, candidate, previous, metric, tolerance)
            if accepted:
                reason = f"promoted: {reason}"
            elif force:
                accepted = True
                reason = f"promoted (forced): {reason}"
            else:
                reason = f"rejected: {reason}"
            decision = decide(Action.PROMOTE if accepted else Action.REJECT, reason, candidate_value, current_value)
            if accepted:
                self._point_current(name, version)
            return self._record(decision)

    def _compare(
        self, name: str, candidate: ModelMetadata, previous: str | None, metric: str, tolerance: float
    ) -> tuple[bool, str, float | None, float | None]:
        """Apply the metric gate and return (accepted, reason, candidate value, current value)."""
        candidate_value = candidate.metric(metric)
        if previous is None:
            return True, f"first promotion of {name}", candidate_value, None
        if candidate_value is None:
            known = sorted(candidate.metrics.get("validation", {}))
            return False, (f"{candidate.version} has no validation {metric} (it has {known}); "
                           "pass force=True to promote without comparing"), None, None
        try:
            current_value = self._read_metadata(name, previous).metric(metric)
        except RegistryError as error:
            return False, (f"current version {previous} is unreadable ({error}); "
                           "pass force=True to replace it"), candidate_value, None
        if current_value is None:
            return False, (f"current version {previous} has no validation {metric}; "
                           "pass force=True to promote without comparing"), candidate_value, None
        threshold = current_value - tolerance
        # isclose accepts a candidate exactly at the threshold, which rounding can put just below it:
        # 0.45 - 0.03 is 0.42000000000000004 in binary floating point.
        if candidate_value < threshold and not math.isclose(candidate_value, threshold, rel_tol=1e-9, abs_tol=1e-12):
            return False, (f"worse than current {previous} by {current_value - candidate_value:.6g} on validation "
                           f"{metric} ({candidate_value:.6g} < {current_value:.6g} - tolerance {tolerance:.6g})"
                           ), candidate_value, current_value
        return True, (f"validation {metric} {candidate_value:.6g} >= current {previous} {current_value:.6g} "
                      f"- tolerance {tolerance:.6g}"), candidate_value, current_value

    def rollback(
        self,
        name: str,
        *,
        artifact_format: str | None = None,
        load_test: LoadTest | None = None,
    ) -> PromotionDecision:
        """Make the previously promoted version current again, after verifying it.

        The history works as a stack: each promotion pushes its version and each
        rollback unwinds it to its target, so repeated rollbacks walk further back. Raises
        :class:`NoPreviousVersion` if there is none, and :class:`CorruptArtifact` or
        :class:`IncompatibleArtifact` if the target fails verification (then nothing changes).
        """
        with self.storage.lock(f"{self._model_key(name)}/{LOCK_FILE}"):
            current = self.current_version(name)
            if current is None:
                raise NoPreviousVersion(f"{name} has no current version to roll back from; promote one first")
            stack = self._promotion_stack(name, current)
            if len(stack) < 2:
                raise NoPreviousVersion(
                    f"{name} has no version promoted before {current}; promote another version instead"
                )
            target = stack[-2]
            self.verify(name, target, artifact_format=artifact_format, load_test=load_test)
            self._point_current(name, target)
            return self._record(PromotionDecision(
                model_name=name,
                version=target,
                action=Action.ROLLBACK,
                reason=f"rolled back from {current} to {target}",
                previous=current,
                decided_at=isoformat_utc(utc_now()),
            ))

    def _promotion_stack(self, name: str, current: str) -> list[str]:
        """Return the promoted versions that rollbacks can return to, oldest first, ending with ``current``."""
        stack: list[str] = []
        for decision in self.history(name):
            if decision.action == Action.PROMOTE:
                stack.append(decision.version)
            elif decision.action == Action.ROLLBACK:
                _unwind_to(stack, decision.version)
        if stack and stack[-1] == current:
            return stack
        # CURRENT disagrees with the history when a crash came between the pointer write and the
        # history append, or when someone edited CURRENT by hand. Either way, CURRENT wins.
        logger.warning("history of %s does not end at CURRENT %s; treating %s as the latest change",
                       name, current, current)
        _unwind_to(stack, current)
        return stack

    def _point_current(self, name: str, version: str) -> None:
        self.storage.write_atomic(f"{self._model_key(name)}/{CURRENT_FILE}", f"{version}\n".encode())

    def _record(self, decision: PromotionDecision) -> PromotionDecision:
        self.storage.append_line(f"{self._model_key(decision.model_name)}/{HISTORY_FILE}", decision.to_json())
        level = logging.WARNING if decision.action == Action.REJECT else logging.INFO
        logger.log(level, "%s %s: %s", decision.model_name, decision.version, decision.reason)
        return decision


def _unwind_to(stack: list[str], version: str) -> None:
    """Drop the entries above the last occurrence of ``version``, or push it if the stack has none."""
    if version in stack:
        del stack[len(stack) - stack[::-1].index(version):]
    else:
        stack.append(version)
