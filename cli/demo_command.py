"""``seqrec demo``: the main job end to end on a dataset, at the stage the system has reached.

It starts the local stack, applies the Feast repo, submits the Flink feature
job, runs the feature writer and the event archiver, replays the dataset into
Kafka, waits until the features of the replayed sessions are in the Feast
online store, prints what it measured, and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SETTLE_TIMEOUT = timedelta(minutes=10)
POLL_INTERVAL = timedelta(seconds=2)
# Replaying days of history at full speed through 5-minute slides would emit a
# row per item for every slide; hourly slides keep the demo's volume small.
HISTORY_WINDOWS = ["--item-window", "1h=1h/1h", "--item-window", "24h=24h/1h", "--transition-window", "24h/1h"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the system end to end on a dataset file",
        description="Start the stack, run the feature pipeline over DATA and report what reached Feast.",
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset file (any format `seqrec replay` reads)")
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running at the end")
    parser.set_defaults(handler=run)


def _step(number: int, text: str) -> None:
    print(f"[{number}/6] {text}", flush=True)


def _topic_size(bootstrap: str, topic: str) -> int:
    """Return the number of records in ``topic``, from its partitions' offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        beginning = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        return sum(end[p] - beginning[p] for p in partitions)
    finally:
        consumer.close()


def _start_background(name: str, command: list[str], log_dir: Path) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"demo-{name}.log", "ab")
    logger.info("starting %s (log %s)", name, log.name)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _stop_background(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _cancel_job(config, job_id: str) -> None:
    request = urllib.request.Request(f"{config.flink_rest_url}/jobs/{job_id}?mode=cancel", method="PATCH")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _expected_sessions(path: Path) -> dict[str, tuple[int, int]]:
    """Return each session's (event count, last event time) in the dataset, as the replay validates it."""
    from seqrec.events import InvalidEvent, validate_event
    from seqrec.readers import read_records

    sessions: dict[str, tuple[int, int]] = {}
    for record in read_records(path):
        if record.fields is None:
            continue
        try:
            event = validate_event(record.fields)
        except InvalidEvent:
            continue
        count, last = sessions.get(event.session_id, (0, 0))
        sessions[event.session_id] = (count + 1, max(last, event.event_time))
    return sessions


def _settled_sessions(store, sessions: dict[str, tuple[int, int]], sample: list[str]) -> int:
    rows = store.get_online_features(
        features=["session_features:event_count", "session_features:last_event_time"],
        entity_rows=[{"session_id": s} for s in sample],
    ).to_dict()
    return sum(1 for i, s in enumerate(sample) if rows["last_event_time"][i] == sessions[s][1])


def run(args: argparse.Namespace) -> int:
    from ingest.replay import ReplaySettings, replay
    from pipelines.feast_store import open_store
    from seqrec.publisher import PublisherSettings
    from stack import flink, manager
    from stack.config import StackConfig

    if not args.data.exists():
        raise SystemExit(f"dataset {args.data} not found; pass DATA=PATH (see the README for downloads)")
    config = StackConfig.from_env()
    run_id = time.strftime("demo%Y%m%d%H%M%S")
    events_topic = f"{run_id}-events"
    work_dir = config.state_dir / run_id
    started = time.monotonic()
    background: list[subprocess.Popen] = []
    job_id = None

    _step(1, f"starting Kafka and Flink (state in {config.state_dir})")
    manager.up(config, with_flink=True)
    try:
        _step(2, "applying the Feast repo and starting the feature writer and the event archiver")
        repo = work_dir / "feature_repo"
        shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
        subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=repo, check=True,
                       capture_output=True)
        _create_topic(config, events_topic)
        prefix = f"{run_id}-"
        background.append(_start_background("feature-writer", [
            sys.executable, "-m", "pipelines.feature_writer", "--bootstrap-servers", config.bootstrap_servers,
            "--repo", str(repo), "--group-id", f"{run_id}-writer",
            "--session-topic", f"{prefix}features-session", "--item-topic", f"{prefix}features-item",
            "--transition-topic", f"{prefix}features-transition", "--popular-topic", f"{prefix}features-popular",
        ], config.log_dir))
        background.append(_start_background("event-archive", [
            sys.executable, "-m", "pipelines.event_archive", "--bootstrap-servers", config.bootstrap_servers,
            "--topic", events_topic, "--root", str(work_dir / "archive"), "--group-id", f"{run_id}-archive",
            "--max-age-s", "5",
        ], config.log_dir))

        _step(3, "submitting the Flink feature job (flink run -py pipelines/features_job.py)")
        job = flink.run_command(config, ROOT / "pipelines" / "features_job.py", "--bootstrap-servers",
                                config.bootstrap_servers, "--events-topic", events_topic, "--topic-prefix", prefix,
                                "--group-id", f"{run_id}-flink", *HISTORY_WINDOWS)
        submitted = subprocess.run(job, env=flink.environment(config), capture_output=True, text=True)
        match = re.search(r"JobID ([0-9a-f]{32})", submitted.stdout)
        if submitted.returncode != 0 or match is None:
            raise RuntimeError(f"flink run failed:\n{submitted.stdout[-3000:]}\n{submitted.stderr[-3000:]}")
        job_id = match.group(1)

        _step(4, f"replaying {args.data} into {events_topic}")
        summary = replay(ReplaySettings(
            path=args.data,
            publisher=PublisherSettings(config.bootstrap_servers, events_topic, config.dead_letter_topic),
        ))
        for line in summary.lines():
            print(f"      {line}")

        _step(5, "waiting until the replayed sessions' features are in the Feast online store")
        sessions = _expected_sessions(args.data)
        # The watermark trails the newest event, so the last second of the replay stays
        # pending until newer events arrive; check sessions that ended before it.
        horizon = max(last for _, last in sessions.values()) - 1000
        sample = sorted(s for s, (_, last) in sessions.items() if last < horizon)[:: max(1, len(sessions) // 500)]
        store = open_store(repo)
        replay_done = time.monotonic()
        deadline = replay_done + SETTLE_TIMEOUT.total_seconds()
        settled = 0
        while time.monotonic() < deadline:
            settled = _settled_sessions(store, sessions, sample)
            print(f"      {settled}/{len(sample)} sampled sessions up to date", flush=True)
            if settled == len(sample):
                break
            time.sleep(POLL_INTERVAL.total_seconds())
        waited = time.monotonic() - replay_done

        _step(6, "results")
        example = sample[len(sample) // 2]
        features = store.get_online_features(
            features=["session_features:event_count", "session_features:last_items",
                      "session_features:duration_ms", "session_features:last_event_type"],
            entity_rows=[{"session_id": example}],
        ).to_dict()
        print(f"      sessions in the data: {len(sessions)}; sampled {len(sample)}, up to date: {settled}")
        print(f"      features caught up {waited:.1f} s after the replay ended")
        print(f"      session {example}: {json.dumps({k: v[0] for k, v in features.items()})}")
        print(f"      feature rows on Kafka: session {_topic_size(config.bootstrap_servers, prefix + 'features-session')}, "
              f"item {_topic_size(config.bootstrap_servers, prefix + 'features-item')}, "
              f"transition {_topic_size(config.bootstrap_servers, prefix + 'features-transition')}, "
              f"late {_topic_size(config.bootstrap_servers, prefix + 'events-late')}")
        ok = summary.reconciled and settled == len(sample)
    finally:
        if job_id is not None:
            _cancel_job(config, job_id)
        _stop_background(background)
        if args.keep_stack:
            print("stack left running; stop it with `seqrec stack down`")
        else:
            manager.down(config)
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


def _create_topic(config, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=config.topic_partitions, replication_factor=1)])
    finally:
        admin.close()
