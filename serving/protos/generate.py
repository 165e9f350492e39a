"""Generate the Python modules of the serving protos with grpcio-tools.

The generated files are committed beside each ``.proto``. Run this (or
``make proto``) after changing a ``.proto``; a test fails while the committed
files differ from what this writes. Protos are compiled with the repository
root as the include path, so the generated modules import each other as
``serving.protos.seqrec.v1...`` and never shadow the top-level ``seqrec`` package.

Usage: python -m serving.protos.generate [OUTPUT_ROOT]   (default: the repository root)
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
PROTO_FILES = ("serving/protos/seqrec/v1/recommender.proto",)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(proto: str) -> list[str]:
    """Return the paths, relative to the output root, that protoc writes for ``proto``."""
    stem = proto.removesuffix(".proto")
    return [stem + suffix for suffix in GENERATED_SUFFIXES]


def generate(output_root: Path = REPOSITORY_ROOT) -> list[Path]:
    """Compile every proto of :data:`PROTO_FILES` into ``output_root``; returns the files written.

    Raises RuntimeError with protoc's exit code when compilation fails.
    """
    output_root.mkdir(parents=True, exist_ok=True)
    for proto in PROTO_FILES:
        arguments = [
            "grpc_tools.protoc",
            f"--proto_path={REPOSITORY_ROOT}",
            f"--python_out={output_root}",
            f"--pyi_out={output_root}",
            f"--grpc_python_out={output_root}",
            proto,
        ]
        exit_code = protoc.main(arguments)
        if exit_code != 0:
            raise RuntimeError(f"protoc failed on {proto} with exit code {exit_code}; see its message above")
    return [output_root / path for proto in PROTO_FILES for path in generated_files(proto)]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPOSITORY_ROOT
    for path in generate(root):
        print(path)
