"""Go command-line gRPC tools (grpcurl, ghz), installed once with `go install` into ~/.cache/seqrec/bin."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BIN_DIRECTORY = Path(os.environ.get("SEQREC_CACHE_DIR", "~/.cache/seqrec")).expanduser() / "bin"
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
INSTALL_TIMEOUT_S = 900
PACKAGES = {
    "grpcurl": "github.com/fullstorydev/grpcurl/cmd/grpcurl@latest",
    "ghz": "github.com/bojand/ghz/cmd/ghz@latest",
}


def find_go() -> str | None:
    for candidate in GO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def go_tool(name: str) -> Path | None:
    """Return the path of ``name`` (grpcurl or ghz), building it with `go install` on first use.

    Returns None when the tool is not cached and Go is not installed. Raises
    CalledProcessError when `go install` fails, for example without network.
    """
    binary = BIN_DIRECTORY / name
    if binary.is_file():
        return binary
    go = find_go()
    if go is None:
        return None
    BIN_DIRECTORY.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "install", PACKAGES[name]],
        env={**os.environ, "GOBIN": str(BIN_DIRECTORY)},
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    return binary
