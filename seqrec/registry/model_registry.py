"""The :class:`ModelRegistry`: register, verify, promote and roll back model versions."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from seqrec.registry.errors import (
    CorruptArtifact,
    IncompatibleArtifact,
    IncompleteVersion,
    NoPreviousVersion,
    RegistryError,
    VersionNotFound,
)
from seqrec.registry.metadata import (
    METADATA_FILE,
    METADATA_FORMAT,
    VERSION_STAMP_FORMAT,
    ArtifactFile,
    DataRange,
    ModelMetadata,
    Version,
    check_metrics,
    check_model_name,
    collect_artifacts,
    detect_code_version,
    isoformat_utc,
    utc_now,
)
from seqrec.registry.storage import LocalStorage, RegistryStorage

logger = logging.getLogger(__name__)

ROOT_ENVIRONMENT_VARIABLE = "SEQREC_REGISTRY"
DEFAULT_ROOT = Path("~/.cache/seqrec/registry")
CURRENT_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
CLAIMS_DIRECTORY = ".claims"
LOCK_FILE = ".lock"

HASH_CHUNK_BYTES = 1 << 20

LoadTest = Callable[[Path], None]
"""A caller's check that a version directory loads, for example by building the torch model from it.

It raises any exception to mark the artifact as unusable."""


def default_root() -> Path:
    """Return the registry root: ``$SEQREC_REGISTRY`` if set, else ``~/.cache/seqrec/registry``."""
    return Path(os.environ.get(ROOT_ENVIRONMENT_VARIABLE) or DEFAULT_ROOT).expanduser()


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
