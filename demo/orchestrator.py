"""The main job end to end: every part of the system on one dataset, then a live replay that scores it.

Steps, each shown as it runs:

1. start Kafka and Flink (``seqrec stack up``), copy and ``feast apply`` the feature repo;
2. start the feature writer, the event archiver and the River learner;
3. submit the Flink feature job with ``flink run -py``;
4. replay the history part into Kafka;
5. train GRU4Rec with the Beam pipeline on the archived history and promote it;
6. wait until the features and the learner have caught up with the history, start the gRPC server;
7. replay the test part as live traffic (:mod:`demo.live`);
8. write the report (:mod:`demo.report`) and stop every process it started.

Every topic, consumer group and folder of a run carries the run id, so runs do
not share state.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

from demo.dataset import DemoData, resolve

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8
POLL_INTERVAL = timedelta(seconds=2)
CATCH_UP_TIMEOUT = timedelta(minutes=15)
SERVER_START_TIMEOUT = timedelta(minutes=2)
STOP_TIMEOUT = timedelta(seconds=30)
# Replaying months of history through 5-minute slides would emit a row per item
# and slide. Hourly slides keep the volume small, and the test day still gets
# 24 popularity updates.
HISTORY_WINDOWS = (
    "--item-window", "1h=1h/1h", "--item-window", "24h=24h/1h", "--transition-window", "24h/1h",
    "--popular-window", "1h/1h",
)
# Flink's watermark is the minimum over the topic's partitions, and an event's
# session features leave the job once the watermark passes it. The live replay
# sends a few events per second, so each of several partitions would hold the
# watermark back until its own next event. With one partition, any later event
# releases the features.
EVENTS_PARTITIONS = 1
# Events arrive in time order, so a short watermark delay loses no event and
# brings features sooner.
OUT_OF_ORDERNESS_MS = 200
# GRU4Rec settings measured on yoochoose-1-64 (docs/benchmarks.md).
GRU4REC_HYPERPARAMETERS = {
    "constrained_embedding": True, "dropout_hidden": 0.2, "logq": 1.0, "learning_rate": 0.08,
    "batch_size": 64, "epochs": 5,
}


@dataclass
class DemoSettings:
    """Input, report folder and pace of a demo run."""

    data: Path
    report_dir: Path
    speedup: float = 120.0
    max_wait: timedelta = timedelta(milliseconds=500)
    epochs: int = 5
    batch_size: int = 64
    """GRU4Rec's session-parallel slots; the training part needs at least this many sessions."""
    curve_interval_events: int = 1000
    """Scored events between two points of the learner's prequential curve."""
    keep_stack: bool = False


@dataclass
class Background:
    """The processes a run started, stopped in reverse order."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        logger.info("started %s (pid %d, log %s)", name, process.pid, log_path)
        self.processes.append((name, process))
        return process

    def check(self) -> None:
        """Raise RuntimeError naming the first process that exited early, with its log."""
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.log_dir / (name + '.log')}")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=STOP_TIMEOUT.total_seconds())
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %s after SIGTERM, killing it", name, STOP_TIMEOUT)
                process.kill()
                process.wait()


def step(number: int, text: str) -> None:
    print(f"[{number}/{STEPS}] {text}", flush=True)


def wait_until(condition: Callable[[], bool], description: str, timeout: timedelta,
               check: Callable[[], None] = lambda: None, report: Callable[[], str] | None = None) -> float:
    """Poll ``condition`` until it holds; return the seconds waited, or raise TimeoutError naming ``description``."""
    started = time.monotonic()
    last_report = started
    while not condition():
        check()
        now = time.monotonic()
        if now - started > timeout.total_seconds():
            raise TimeoutError(f"timed out after {timeout} waiting for {description}")
        if report is not None and now - last_report >= 10:
            print(f"      {report()}", flush=True)
            last_report = now
        time.sleep(POLL_INTERVAL.total_seconds())
    return time.monotonic() - started


def seqrec_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *arguments]


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
    finally:
        admin.close()


def submit_feature_job(config, events_topic: str, prefix: str, group: str) -> str:
    """Submit ``pipelines/features_job.py`` with ``flink run -py`` and return the job id."""
    from stack import flink

    command = flink.run_command(
        config, ROOT / "pipelines" / "features_job.py", "--bootstrap-servers", config.bootstrap_servers,
        "--events-topic", events_topic, "--topic-prefix", prefix, "--group-id", group,
        "--out-of-orderness-ms", str(OUT_OF_ORDERNESS_MS), *HISTORY_WINDOWS,
    )
    submitted = subprocess.run(command, env=flink.environment(config), capture_output=True, text=True)
    match = re.search(r"JobID ([0-9a-f]{32})", submitted.stdout)
    if submitted.returncode != 0 or match is None:
        raise RuntimeError(f"flink run failed:\n{submitted.stdout[-3000:]}\n{submitted.stderr[-3000:]}")
    return match.group(1)


def cancel_job(config, job_id: str) -> None:
    request = urllib.request.Request(f"{config.flink_rest_url}/jobs/{job_id}?mode=cancel", method="PATCH")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except OSError as error:
        logger.warning("could not cancel Flink job %s: %s", job_id, error)


def sessions_up_to_date(store, expected: dict[str, int]) -> int:
    """Count the sessions of ``expected`` (session id -> last event time) whose Feast row has that time."""
    ids = sorted(expected)
    rows = store.get_online_features(
        features=["session_features:last_event_time"], entity_rows=[{"session_id": s} for s in ids]
    ).to_dict()["last_event_time"]
    return sum(1 for session_id, stored in zip(ids, rows) if stored == expected[session_id])


def archived_events(root: Path) -> int:
    from seqrec.archive import list_archive_files

    import pyarrow.parquet as pq

    # Temporary files are still being written; only renamed files are complete.
    return sum(pq.ParquetFile(entry.path).metadata.num_rows for entry in list_archive_files(root)
               if not entry.temporary)


def learner_events(snapshot_dir: Path) -> int:
    from online_learning.snapshots import read_latest

    snapshot = read_latest(snapshot_dir)
    return 0 if snapshot is None else snapshot.events_learned


def train_model(history_dates: tuple[str, str], archive: Path, registry: Path, settings: DemoSettings,
                log_dir: Path) -> dict:
    """Run ``seqrec train`` on the archived history and return its JSON report."""
    report_path = log_dir / "training-report.json"
    hyperparameters = dict(GRU4REC_HYPERPARAMETERS, epochs=settings.epochs, batch_size=settings.batch_size)
    command = seqrec_command(
        "train", "--archive", str(archive), "--start-date", history_dates[0], "--end-date", history_dates[1],
        "--model", "gru4rec", "--hyperparameters", json.dumps(hyperparameters),
        "--registry", str(registry), "--report", str(report_path),
    )
    with open(log_dir / "train.log", "ab") as log:
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if finished.returncode not in (0, 1) or not report_path.is_file():
        raise RuntimeError(f"seqrec train failed with code {finished.returncode}; see {log_dir / 'train.log'}")
    return json.loads(report_path.read_text())


def run(settings: DemoSettings) -> int:
    from feast import FeatureStore  # noqa: F401  (fail early when Feast is missing)

    from demo.live import LiveSettings, replay_live
    from demo.report import write_report
    from ingest.replay import ReplaySettings, replay
    from pipelines.feast_store import open_store
    from seqrec.archive import event_date
    from seqrec.publisher import PublisherSettings
    from stack import manager
    from stack.config import StackConfig
    from stack.process import free_port

    config = StackConfig.from_env()
    run_id = time.strftime("demo%Y%m%d%H%M%S")
    work_dir = (config.state_dir / run_id).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    data: DemoData = resolve(settings.data, work_dir / "data")
    test_events, test_rejected = data.test_events()
    background = Background(work_dir / "logs")
    prefix = f"{run_id}-"
    events_topic = f"{prefix}events"
    dead_letter_topic = f"{prefix}events-dead-letter"
    snapshot_dir = work_dir / "learner" / "snapshots"
    archive = work_dir / "archive"
    registry = work_dir / "registry"
    started = time.monotonic()
    timings: dict[str, float] = {}
    job_id = None

    step(1, f"starting Kafka and Flink, applying the Feast repo (run {run_id}, files in {work_dir})")
    started_components = manager.up(config, with_flink=True)
    try:
        repo = work_dir / "feature_repo"
        shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
        subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=repo, check=True, capture_output=True)
        create_topics(config.bootstrap_servers, [events_topic, dead_letter_topic, f"{prefix}features-dead-letter"],
                      EVENTS_PARTITIONS)

        step(2, "starting the feature writer, the event archiver and the River learner")
        background.start("feature-writer", seqrec_command(
            "features", "write", "--", "--bootstrap-servers", config.bootstrap_servers, "--repo", str(repo),
            "--group-id", f"{prefix}writer", "--session-topic", f"{prefix}features-session",
            "--item-topic", f"{prefix}features-item", "--transition-topic", f"{prefix}features-transition",
            "--popular-topic", f"{prefix}features-popular", "--dead-letter-topic", f"{prefix}features-dead-letter",
            "--batch-interval-ms", "50",
        ))
        background.start("event-archive", seqrec_command(
            "archive", "--", "--bootstrap-servers", config.bootstrap_servers, "--topic", events_topic,
            "--root", str(archive), "--group-id", f"{prefix}archive", "--dead-letter-topic", dead_letter_topic,
            "--max-age-s", "5",
        ))
        background.start("learner", seqrec_command(
            "learn", "--bootstrap-servers", config.bootstrap_servers, "--topic", events_topic,
            "--checkpoint-dir", str(work_dir / "learner" / "checkpoint"), "--snapshot-dir", str(snapshot_dir),
            "--snapshot-interval-s", "2", "--curve-interval-events", str(settings.curve_interval_events),
        ))

        step(3, "submitting the Flink feature job (flink run -py pipelines/features_job.py)")
        job_id = submit_feature_job(config, events_topic, prefix, f"{prefix}flink")

        step(4, f"replaying the history {data.history} into {events_topic}")
        summary = replay(ReplaySettings(
            path=data.history, format=data.format, reader_options=data.reader_options,
            publisher=PublisherSettings(config.bootstrap_servers, events_topic, dead_letter_topic),
        ))
        for line in summary.lines():
            print(f"      {line}", flush=True)
        if not summary.reconciled:
            raise RuntimeError("the history replay did not reconcile; see the lines above")
        history_events = summary.produced

        step(5, "training GRU4Rec with the Beam pipeline on the archived history")
        timings["archive"] = wait_until(
            lambda: archived_events(archive) >= history_events, "the archive to hold the history",
            CATCH_UP_TIMEOUT, background.check,
            lambda: f"archived {archived_events(archive):,} of {history_events:,} events",
        )
        frame_dates = _archive_dates(archive)
        training_started = time.monotonic()
        training = train_model(frame_dates, archive, registry, settings, background.log_dir)
        timings["training"] = time.monotonic() - training_started
        print(f"      {_training_line(training)}", flush=True)

        step(6, "waiting for features and learner to catch up, starting the gRPC server")
        store = open_store(repo)
        expected = _history_sessions(data)
        timings["features"] = wait_until(
            lambda: sessions_up_to_date(store, expected) == len(expected), "the history's session features",
            CATCH_UP_TIMEOUT, background.check,
            lambda: f"{sessions_up_to_date(store, expected)}/{len(expected)} sampled sessions up to date in Feast",
        )
        timings["learner"] = wait_until(
            lambda: learner_events(snapshot_dir) >= history_events, "the learner to learn the history",
            CATCH_UP_TIMEOUT, background.check,
            lambda: f"learner snapshot at {learner_events(snapshot_dir):,} of {history_events:,} events",
        )
        port = free_port()
        address = f"127.0.0.1:{port}"
        background.start("serve", seqrec_command(
            "serve", "--address", address, "--feature-repo", str(repo), "--registry", str(registry),
            "--snapshots", str(snapshot_dir), "--bootstrap-servers", config.bootstrap_servers,
            "--events-topic", events_topic, "--dead-letter-topic", dead_letter_topic, "--feature-max-age-s", "0",
        ))
        _wait_for_server(address, background)

        step(7, f"replaying {len(test_events):,} test events as live traffic (Recommend, then SendEvent)")
        from tqdm import tqdm

        with tqdm(total=len(test_events), unit="event", mininterval=2.0) as bar:
            live = replay_live(
                test_events, LiveSettings(address, speedup=settings.speedup, max_wait=settings.max_wait), store,
                progress=lambda done: bar.update(done - bar.n),
            )

        step(8, f"stopping the services and writing the report to {settings.report_dir}")
        background.stop()
        report = write_report(
            settings.report_dir, live=live, training=training, timings=timings, data=data,
            history_events=history_events, test_rejected=test_rejected,
            learner_curve=_learner_curve(work_dir / "learner" / "checkpoint", events_topic),
            wall_seconds=time.monotonic() - started,
        )
        print(report.table, flush=True)
        print(f"report: {report.markdown}", flush=True)
        ok = not live.send_failures and not live.recommend_failures
    finally:
        if job_id is not None:
            cancel_job(config, job_id)
        background.stop()
        if settings.keep_stack:
            print("stack left running; stop it with `seqrec stack down`", flush=True)
        else:
            # A stack that ran before the demo keeps running.
            manager.stop(config, started_components)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return 0 if ok else 1


def _archive_dates(archive: Path) -> tuple[str, str]:
    from seqrec.archive import list_archive_files

    days = sorted({entry.day for entry in list_archive_files(archive) if not entry.temporary})
    return days[0].isoformat(), days[-1].isoformat()


def _history_sessions(data: DemoData, sample: int = 500) -> dict[str, int]:
    """Return a sample of history sessions with their last event time, leaving out the last second's."""
    from demo.dataset import read_events

    events, _ = read_events(data.history, data.format, data.reader_options)
    last: dict[str, int] = {}
    for event in events:
        last[event.session_id] = event.event_time
    # The watermark trails the newest event, so the last moments stay pending until newer events come.
    horizon = events[-1].event_time - 1000 - OUT_OF_ORDERNESS_MS
    candidates = sorted(s for s, t in last.items() if t < horizon)
    chosen = candidates[:: max(1, len(candidates) // sample)]
    return {s: last[s] for s in chosen}


def _wait_for_server(address: str, background: Background) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def serving() -> bool:
        try:
            with grpc.insecure_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    wait_until(serving, f"the gRPC server on {address}", SERVER_START_TIMEOUT, background.check)


def _training_line(training: dict) -> str:
    decision = training.get("decision", {})
    return f"training: {json.dumps(decision)[:300]}"


def _learner_curve(checkpoint_dir: Path, topic: str) -> list[dict]:
    """Return the prequential curve kept in the learner's last checkpoint, oldest point first."""
    import dataclasses

    from online_learning.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_dir, topic)
    if checkpoint is None:
        return []
    return [dataclasses.asdict(point) for point in checkpoint.learner.curve]
