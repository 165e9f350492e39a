"""The deployment files in docker/, checked without a Docker engine.

The compose file is read with PyYAML. Every ``seqrec`` command that a service
runs is parsed by the real CLI parser, and every ``flink run -py`` job must
exist in the repository. Checks of ``seqrec learn`` and ``seqrec serve`` are
expected to fail only while the parser lacks those subcommands.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path, PurePosixPath

import pytest
import yaml

from cli.main import build_parser
from stack.config import StackConfig

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
FLINK_DOCKERFILE = DOCKER_DIR / "flink" / "Dockerfile"
PYTHON_DOCKERFILE = DOCKER_DIR / "python" / "Dockerfile"
SUBMIT_SCRIPT = DOCKER_DIR / "flink" / "submit_if_absent.py"

PROJECT_DIR_IN_IMAGE = PurePosixPath("/opt/seqrec")
"""Where both Dockerfiles copy the repository."""
LOCALHOST = "127.0.0.1"
PLACEHOLDER_DATE = "2026-01-01"
"""Stands in for a shell's ``$(date ...)`` when a script's command is parsed."""

PENDING_SUBCOMMANDS = {
    "learn": "`seqrec learn` (the River learner) is still being built",
    "serve": "`seqrec serve` (the gRPC server) is still being built",
}
"""Subcommands whose checks are expected to fail while the parser lacks them."""

SOURCE_PACKAGES = ("seqrec", "stack", "cli", "ingest", "pipelines", "online_learning", "serving")
SHELL_SEPARATORS = {";", "&&", "||", "|", "&"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")
_DATE_SUBSTITUTION = re.compile(r"\$\(date [^()]*\)")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


COMPOSE = load_compose()
SERVICES: dict[str, dict] = COMPOSE["services"]
SUBCOMMANDS = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001


def interpolate(text: str) -> str:
    """Apply compose interpolation with every variable at its default: ``${X:-d}`` -> d, ``${X}`` -> '', ``$$`` -> ``$``."""
    escaped = text.replace("$$", "\0")
    expanded = _VARIABLE.sub(lambda match: match.group(2) or "", escaped)
    return expanded.replace("\0", "$")


def split_script(script: str) -> list[list[str]]:
    """Split a ``sh -c`` script into simple commands, with ``$(date ...)`` replaced by a fixed date."""
    script = _DATE_SUBSTITUTION.sub(PLACEHOLDER_DATE, script.replace("\\\n", " "))
    commands = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in SHELL_SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def unwrap(argv: list[str]) -> list[str]:
    """Drop a leading ``exec`` and the submit_if_absent.py wrapper, leaving the command that finally runs."""
    if argv[:1] == ["exec"]:
        argv = argv[1:]
    if len(argv) > 1 and argv[1].endswith(SUBMIT_SCRIPT.name):
        argv = argv[argv.index("--") + 1:]
    return argv


def service_commands(service: dict) -> list[list[str]]:
    """Return the argument vectors a service runs, after compose interpolation and shell splitting."""
    command = service.get("command")
    if command is None:
        return []
    argv = shlex.split(interpolate(command)) if isinstance(command, str) else [interpolate(str(a)) for a in command]
    if argv[:2] in (["sh", "-c"], ["bash", "-c"]):
        return [unwrap(simple) for simple in split_script(argv[2])]
    return [unwrap(argv)]


def commands_starting_with(*prefix: str) -> list[tuple[str, list[str]]]:
    return [
        (name, argv)
        for name, service in SERVICES.items()
        for argv in service_commands(service)
        if tuple(argv[: len(prefix)]) == prefix
    ]


def repo_path(path_in_image: str) -> Path:
    """Map a path under the image's project folder to the same file in this checkout."""
    return ROOT / PurePosixPath(path_in_image).relative_to(PROJECT_DIR_IN_IMAGE)


def seqrec_params():
    params = []
    for name, argv in commands_starting_with("seqrec"):
        subcommand = argv[1] if len(argv) > 1 else ""
        marks = []
        if subcommand in PENDING_SUBCOMMANDS and subcommand not in SUBCOMMANDS:
            marks.append(pytest.mark.xfail(strict=False, reason=PENDING_SUBCOMMANDS[subcommand]))
        params.append(pytest.param(argv[1:], id=f"{name}: {' '.join(argv[:2])}", marks=marks))
    return params


def setup_extras() -> dict[str, list[str]]:
    """Read the ``EXTRAS`` dictionary literal of setup.py (plus its computed "all") without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["EXTRAS"]:
            extras = ast.literal_eval(node.value)
            extras["all"] = []
            return extras
    raise AssertionError("setup.py has no EXTRAS = {...} assignment")


def build_args(service: dict) -> dict[str, str]:
    build = service.get("build") or {}
    return {key: interpolate(str(value)) for key, value in (build.get("args") or {}).items()}


def dockerfile_arg(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile} has no `ARG {name}=...` line"
    return match.group(1)


# Compose structure


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_image_or_build(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service, f"service {name} has neither image nor build"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "build" in s))
def test_build_context_and_dockerfile_exist(name):
    build = SERVICES[name]["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context.is_dir(), f"service {name}: build context {context} does not exist"
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file(), f"service {name}: Dockerfile {dockerfile} does not exist"
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore_file.is_file(), f"service {name}: {ignore_file} is missing, so .venv and .git would be sent"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_targets_exist(name):
    depends_on = SERVICES[name].get("depends_on") or {}
    targets = depends_on if isinstance(depends_on, list) else list(depends_on)
    for target in targets:
        assert target in SERVICES, f"service {name} depends on unknown service {target}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependency_conditions_hold(name):
    depends_on = SERVICES[name].get("depends_on") or {}
    if isinstance(depends_on, list):
        return
    for target, spec in depends_on.items():
        condition = spec.get("condition", "service_started")
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy, which has no healthcheck"
        if condition == "service_completed_successfully":
            assert SERVICES[target].get("restart", "no") == "no", f"{name} waits for one-shot {target}, which restarts"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if s.get("ports")))
def test_published_ports_bind_localhost(name):
    for port in SERVICES[name]["ports"]:
        if isinstance(port, dict):
            assert port.get("host_ip") == LOCALHOST, f"service {name}: port {port} is not bound to {LOCALHOST}"
        else:
            assert interpolate(str(port)).startswith(f"{LOCALHOST}:"), f"service {name}: port {port!r} is not bound to {LOCALHOST}"


def test_named_volumes_declared():
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/", "~")):
                continue
            assert source in declared, f"service {name} mounts volume {source}, which the top-level volumes do not declare"


def test_shared_volumes_reach_their_readers():
    mounts = {
        name: {str(v).split(":")[0] for v in service.get("volumes") or []} for name, service in SERVICES.items()
    }
    assert "event-archive" in mounts["archive-writer"] & mounts["trainer"]
    assert "model-registry" in mounts["trainer"] & mounts["serving"]
    assert "learner-snapshots" in mounts["learner"] & mounts["serving"]
    assert "learner-checkpoint" in mounts["learner"]
    assert "feast-registry" in mounts["feast-apply"] & mounts["feature-writer"] & mounts["serving"]
    assert "flink-data" in mounts["jobmanager"] & mounts["taskmanager"]


def test_trainer_runs_only_in_nightly_profile():
    assert SERVICES["trainer"].get("profiles") == ["nightly"]


def test_seqrec_variables_are_known():
    stack_names = {f"SEQREC_{name.upper()}" for name in StackConfig.__dataclass_fields__}
    code_names = set()
    for package in SOURCE_PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            code_names.update(re.findall(r"SEQREC_[A-Z_]+", source.read_text()))
    docker_readme = (DOCKER_DIR / "README.md").read_text()
    for name in sorted(set(re.findall(r"SEQREC_[A-Z_]+", COMPOSE_FILE.read_text()))):
        known = name in stack_names or name in code_names
        assert known or name in docker_readme, f"{name} is neither a local stack setting nor documented in docker/README.md"


# Images


def test_images_install_with_constraints():
    for dockerfile in (FLINK_DOCKERFILE, PYTHON_DOCKERFILE):
        assert "-c constraints.txt" in dockerfile.read_text(), f"{dockerfile} installs without constraints.txt"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if build_args(s).get("EXTRAS")))
def test_build_extras_exist_in_setup(name):
    extras = setup_extras()
    for extra in build_args(SERVICES[name])["EXTRAS"].split(","):
        assert extra in extras, f"service {name} installs extra {extra!r}, which setup.py does not define"


def test_serving_image_has_no_flink_or_beam():
    args = build_args(SERVICES["serving"])
    extras = set(args["EXTRAS"].split(","))
    assert not extras & {"stream", "train", "all"}, f"serving installs {extras}, which bring PyFlink or Beam"
    assert {"pyflink", "apache_beam"} <= set(args.get("ABSENT_MODULES", "").split())


def test_flink_image_matches_pins():
    flink_pin = re.search(r'"apache-flink==([\d.]+)"', (ROOT / "setup.py").read_text()).group(1)
    assert dockerfile_arg(FLINK_DOCKERFILE, "FLINK_IMAGE").startswith(f"flink:{flink_pin}-")
    assert dockerfile_arg(FLINK_DOCKERFILE, "KAFKA_CONNECTOR_VERSION") == StackConfig().flink_kafka_connector_version
    assert re.fullmatch(r"[0-9a-f]{64}", dockerfile_arg(FLINK_DOCKERFILE, "KAFKA_CONNECTOR_SHA256"))


def test_kafka_image_matches_local_stack():
    assert interpolate(SERVICES["kafka"]["image"]) == f"apache/kafka:{StackConfig().kafka_version}"


def test_images_copy_project_to_expected_dir():
    for dockerfile in (FLINK_DOCKERFILE, PYTHON_DOCKERFILE):
        assert f"COPY . {PROJECT_DIR_IN_IMAGE}" in dockerfile.read_text()


# Commands


@pytest.mark.parametrize("argv", seqrec_params())
def test_seqrec_command_parses(argv):
    try:
        build_parser().parse_args(argv)
    except SystemExit as error:
        pytest.fail(f"`seqrec {' '.join(argv)}` does not parse (exit {error.code})")


def test_every_long_running_part_runs_seqrec():
    subcommands = {name: argv[1] for name, argv in commands_starting_with("seqrec")}
    assert subcommands == {
        "feature-writer": "features",
        "archive-writer": "archive",
        "learner": "learn",
        "serving": "serve",
        "trainer": "train",
    }


def test_feature_writer_options_parse():
    from pipelines.writer_config import parse_args

    [(_, argv)] = commands_starting_with("seqrec", "features", "write")
    config, _ = parse_args(argv[argv.index("--") + 1:])
    assert config.bootstrap_servers == "kafka:19092"
    assert repo_path(str(config.repo_path)).is_dir()
    assert (repo_path(str(config.repo_path)) / config.profile).is_file()


def test_archive_writer_options_parse():
    from pipelines.event_archive import parse_args

    [(_, argv)] = commands_starting_with("seqrec", "archive")
    config, _, _ = parse_args(argv[argv.index("--") + 1:])
    assert config.bootstrap_servers == "kafka:19092"


def test_flink_run_jobs_exist():
    runs = commands_starting_with("flink", "run")
    assert runs, "no service runs `flink run`"
    for name, argv in runs:
        job = argv[argv.index("-py") + 1]
        assert repo_path(job).is_file(), f"service {name} runs {job}, which is not in the repository"


def test_feature_job_options_parse():
    from pipelines.features_job import parse_args

    [(_, argv)] = commands_starting_with("flink", "run")
    job_argv = argv[argv.index("-py") + 2:]
    config, _, unknown = parse_args(job_argv)
    assert unknown == [], f"the feature job does not know the options {unknown}"
    assert config.bootstrap_servers == "kafka:19092"


def test_submit_wrapper_exists():
    command = [str(part) for part in SERVICES["feature-job"]["command"]]
    assert repo_path(command[1]) == SUBMIT_SCRIPT
    assert SUBMIT_SCRIPT.is_file()


def test_feast_profiles_exist():
    for name, service in SERVICES.items():
        for argv in service_commands(service):
            if argv[:1] != ["feast"] or "-f" not in argv:
                continue
            profile = argv[argv.index("-f") + 1]
            assert (repo_path(service["working_dir"]) / profile).is_file(), f"service {name}: no Feast profile {profile}"


# The submit wrapper


def load_submit_script():
    spec = importlib.util.spec_from_file_location("submit_if_absent", SUBMIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def jobs_overview():
    """A REST endpoint on 127.0.0.1 that serves the ``/jobs/overview`` document put into the returned list."""
    document: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"jobs": document}).encode()
            self.send_response(200 if self.path == "/jobs/overview" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer((LOCALHOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOCALHOST}:{server.server_port}", document
    server.shutdown()
    server.server_close()


def test_submit_wrapper_finds_active_job(jobs_overview):
    url, document = jobs_overview
    document += [
        {"jid": "a", "name": "seqrec-features", "state": "CANCELED"},
        {"jid": "b", "name": "seqrec-features", "state": "RESTARTING"},
        {"jid": "c", "name": "other", "state": "RUNNING"},
    ]
    active = load_submit_script().active_jobs(url, "seqrec-features")
    assert [job["jid"] for job in active] == ["b"]


def test_submit_wrapper_skips_active_job(jobs_overview):
    url, document = jobs_overview
    document.append({"jid": "b", "name": "seqrec-features", "state": "RUNNING"})
    exit_code = load_submit_script().main(["--rest-url", url, "--job-name", "seqrec-features", "--", "false"])
    assert exit_code == 0


def test_submit_wrapper_fails_without_rest_api():
    exit_code = load_submit_script().main(["--rest-url", f"http://{LOCALHOST}:9", "--job-name", "x", "--", "true"])
    assert exit_code == 1
