"""``seqrec registry list | verify VERSION | promote VERSION | rollback``."""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from seqrec.registry import ModelRegistry

DEFAULT_MODEL = "gru4rec"


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"invalid --tolerance {text}: expected a finite number >= 0")
    return value


def add_parser(commands) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        type=Path,
        help="registry directory (default $SEQREC_REGISTRY or ~/.cache/seqrec/registry)",
    )
    common.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    checks = argparse.ArgumentParser(add_help=False)
    checks.add_argument("--artifact-format", help="reject a version whose artifact format differs, e.g. gru4rec-torch-v1")
    checks.add_argument(
        "--load-test",
        metavar="MODULE:FUNCTION",
        help="function called with the version directory that raises if the model does not load",
    )

    parser = commands.add_parser(
        "registry",
        help="list, verify, promote or roll back trained models",
        description="Inspect and change the model registry that training writes to and serving reads from. "
        "A version is named by its full name (v000012-20261204T221500Z) or its number (12).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="list the versions, their metrics, and which one is current")

    verify = actions.add_parser("verify", parents=[common, checks], help="check a version's checksums and sizes")
    verify.add_argument("version", metavar="VERSION", help="version name or number, e.g. 12")

    promote = actions.add_parser(
        "promote",
        parents=[common, checks],
        help="make a version current if it verifies and scores no worse than the current one",
        description="Promote VERSION if it verifies and its validation metric is at least the current "
        "version's minus the tolerance. Exits with 1 if the promotion is rejected.",
    )
    promote.add_argument("version", metavar="VERSION", help="version name or number, e.g. 12")
    promote.add_argument("--metric", default="recall@20", help="validation metric to compare, higher is better (default recall@20)")
    promote.add_argument("--tolerance", type=_non_negative, default=0.0, help="allowed drop of the metric, absolute (default 0)")
    promote.add_argument("--force", action="store_true", help="skip the metric comparison (verification still applies)")

    actions.add_parser("rollback", parents=[common, checks], help="make the previously promoted version current again")
    parser.set_defaults(handler=run)


def registry_root(args: argparse.Namespace) -> Path:
    from seqrec.registry import default_root

    return args.root.expanduser() if args.root else default_root()


def load_test_hook(spec: str | None) -> Callable[[Path], None] | None:
    """Import the ``MODULE:FUNCTION`` that ``--load-test`` names."""
    if spec is None:
        return None
    module_name, separator, function_name = spec.partition(":")
    if not separator or not module_name or not function_name:
        raise SystemExit(f"--load-test {spec!r} is not MODULE:FUNCTION, for example mypackage.checks:load_model")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"--load-test {spec!r}: import of {module_name} failed: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SystemExit(f"--load-test {spec!r}: {module_name} has no function {function_name}")
    return function


def run(args: argparse.Namespace) -> int:
    from seqrec.registry import Action, ModelRegistry, RegistryError

    registry = ModelRegistry(registry_root(args))
    try:
        if args.action == "list":
            _print_versions(registry, args.model)
            return 0
        load_test = load_test_hook(args.load_test)
        if args.action == "verify":
            version = registry.resolve_version(args.model, args.version)
            metadata = registry.verify(args.model, version, artifact_format=args.artifact_format, load_test=load_test)
            print(f"verified {args.model} {version}: format {metadata.artifact_format}, {len(metadata.files)} artifact files")
            return 0
        if args.action == "promote":
            decision = registry.promote(
                args.model,
                registry.resolve_version(args.model, args.version),
                metric=args.metric,
                tolerance=args.tolerance,
                artifact_format=args.artifact_format,
                load_test=load_test,
                force=args.force,
            )
        else:
            decision = registry.rollback(args.model, artifact_format=args.artifact_format, load_test=load_test)
    except (RegistryError, ValueError) as error:
        raise SystemExit(f"seqrec registry {args.action}: {error}") from None
    print(f"{args.model} {decision.version}: {decision.reason}")
    return 1 if decision.action == Action.REJECT else 0


def _print_versions(registry: ModelRegistry, model: str) -> None:
    listings = registry.list_versions(model)
    incomplete = registry.incomplete_versions(model)
    if not listings and not incomplete:
        print(f"no versions of {model} in {registry.storage!r}")
        return
    print(f"  {'VERSION':26} {'CREATED':21} {'FORMAT':20} VALIDATION")
    for listing in listings:
        metadata = listing.metadata
        marker = "*" if listing.is_current else " "
        values = sorted(metadata.metrics.get("validation", {}).items())
        validation = " ".join(f"{name}={value:.4g}" for name, value in values)
        print(f"{marker} {listing.version:26} {metadata.created_at:21} {metadata.artifact_format:20} {validation or '-'}")
    for version in incomplete:
        print(f"  {version:26} incomplete: no metadata.json (registration running or failed)")
