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

The package has four modules: ``storage`` (file operations), ``metadata``
(version names and ``metadata.json``), ``model_registry`` (:class:`ModelRegistry`)
and ``errors``. Import every public name from ``seqrec.registry`` itself.

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

from pathlib import Path  # noqa: F401 (the doctest above uses it)

from seqrec.registry.errors import (
    CorruptArtifact,
    IncompatibleArtifact,
    IncompleteVersion,
    NoPreviousVersion,
    RegistryError,
    VersionNotFound,
)
from seqrec.registry.metadata import (
    GIT_TIMEOUT_SECONDS,
    METADATA_FILE,
    METADATA_FORMAT,
    MODEL_NAME_PATTERN,
    VERSION_PATTERN,
    VERSION_STAMP_FORMAT,
    ArtifactFile,
    DataRange,
    ModelMetadata,
    Version,
    check_artifact_path,
    check_metrics,
    check_model_name,
    collect_artifacts,
    detect_code_version,
    isoformat_utc,
    utc_now,
)
from seqrec.registry.model_registry import (
    CLAIMS_DIRECTORY,
    CURRENT_FILE,
    DEFAULT_ROOT,
    HASH_CHUNK_BYTES,
    HISTORY_FILE,
    LOCK_FILE,
    ROOT_ENVIRONMENT_VARIABLE,
    Action,
    LoadTest,
    ModelRegistry,
    ModelVersion,
    PromotionDecision,
    VersionListing,
    default_root,
)
from seqrec.registry.storage import (
    LocalStorage,
    RegistryStorage,
)

__all__ = [
    "Action",
    "ArtifactFile",
    "CLAIMS_DIRECTORY",
    "CURRENT_FILE",
    "CorruptArtifact",
    "DEFAULT_ROOT",
    "DataRange",
    "GIT_TIMEOUT_SECONDS",
    "HASH_CHUNK_BYTES",
    "HISTORY_FILE",
    "IncompatibleArtifact",
    "IncompleteVersion",
    "LOCK_FILE",
    "LoadTest",
    "LocalStorage",
    "METADATA_FILE",
    "METADATA_FORMAT",
    "MODEL_NAME_PATTERN",
    "ModelMetadata",
    "ModelRegistry",
    "ModelVersion",
    "NoPreviousVersion",
    "PromotionDecision",
    "ROOT_ENVIRONMENT_VARIABLE",
    "RegistryError",
    "RegistryStorage",
    "VERSION_PATTERN",
    "VERSION_STAMP_FORMAT",
    "Version",
    "VersionListing",
    "VersionNotFound",
    "check_artifact_path",
    "check_metrics",
    "check_model_name",
    "collect_artifacts",
    "default_root",
    "detect_code_version",
    "isoformat_utc",
    "utc_now",
]
