"""Errors of the model registry; every one derives from :class:`RegistryError`."""

from __future__ import annotations


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
