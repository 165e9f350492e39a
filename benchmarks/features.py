"""Benchmark: throughput and freshness of the feature pipeline (events -> Flink -> feature writer -> Feast).

Usage: python benchmarks/features.py DATASET_DIR [--rate EVENTS_PER_S] [--freshness-seconds S] [--profile PROFILE]

DATASET_DIR contains rec15_train_full.txt (YooChoose 1/64 in the session-rec
layout). The benchmark starts its own Kafka broker and Flink standalone cluster,
plus Redis for the Redis profile, on free 127.0.0.1 ports in a temporary state
directory, and stops them at the end. It has three stages:

1. Throughput. The replay code loads the file into a fresh events topic. Then
   the feature job (pipelines/features_job.py, submitted with `flink run -py`)
   reads it from the earliest offset while a feature writer writes the job's
   output into a fresh copy of the Feast repo. The Flink figure runs from the
   moment all job tasks run until the session topic contains one row per on-time
   event. The end-to-end figure runs until the writer has written all of those
   rows. A second writer then writes the finished session topic alone into
   another fresh repo, which times the Feast write path without Flink beside it.
2. Baseline. Events paced at --rate, with event_time set to the send time, go
   through a plain Kafka produce and consume. Latency = receive time - event_time.
3. Freshness. The same paced events go through the job with its default windows
   and the writer. A session row's freshness = the time its write call returned
   - the send time of its last event. A plain consumer of the session topic
   times the Flink part alone in the same run.

NOTE: the heap state backend (the local default) grows with every event id
and session it keeps for a day, so a long enough freshness run fills the 2 GB
TaskManager. With SEQREC_FLINK_STATE_BACKEND=rocksdb the job processed about
1,000 events/s on 2 cores, so a freshness run at 2,000 events/s then measures
a growing backlog.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from feast import FeatureStore  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from ingest.replay import ReplaySettings, replay  # noqa: E402
from pipelines import feature_writer  # noqa: E402
from pipelines import features_job  # noqa: E402
from pipelines.feast_store import DEFAULT_PROFILE, REDIS_PROFILE, open_store  # noqa: E402
from pipelines.feature_rows import SESSION_VIEW, FeatureTopics  # noqa: E402
from pipelines.feature_writer import FeatureWriter  # noqa: E402
from pipelines.features_config import FeatureJobConfig  # noqa: E402
from pipelines.writer_config import FeatureWriterConfig  # noqa: E402
from pipelines.writer_counters import WriterCounters  # noqa: E402
from seqrec.events import Event, validate_event  # noqa: E402
from seqrec.publisher import EventPublisher, PublisherSettings  # noqa: E402
from seqrec.readers import read_records  # noqa: E402
from stack import flink, kafka  # noqa: E402
from stack import redis as redis_server  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.process import free_port  # noqa: E402

logger = logging.getLogger("benchmarks.features")

ROOT = Path(__file__).resolve().parents[1]
FEATURE_REPO = ROOT / "feature_repo"
JOB = ROOT / "pipelines" / "features_job.py"
FEAST = Path(sys.executable).with_name("feast")
TRAIN_FILE = "rec15_train_full.txt"
PARTITIONS = 4

# With the job's default windows (1h and 24h, sliding every 5 minutes) an event
# falls into 12 + 288 item windows and 288 transition windows, and each window
# emits a row per item it saw. Tumbling windows of the same sizes put each event
# into one window of each kind. The names must stay 1h and 24h, because the
# writer maps them to the feature views item_stats_1h and item_stats_24h.
THROUGHPUT_WINDOW_OPTIONS = (
    "--item-window", "1h=1h/1h", "--item-window", "24h=24h/24h", "--transition-window", "24h/24h",
    "--popular-window", "1h/1h",
)
# Event time of the watermark flush events, after the last dataset event. More
# than the longest window, so every window of the dataset closes.
WATERMARK_FLUSH_DELAY = timedelta(days=2)
FLUSH_EVENT_TYPE = "view"

MONITOR_INTERVAL = timedelta(milliseconds=250)
JOB_SUBMIT_TIMEOUT = timedelta(minutes=5)
TASKS_RUNNING_TIMEOUT = timedelta(minutes=3)
THROUGHPUT_TIMEOUT = timedelta(minutes=30)
# Item and transition topics count as complete once their size has not changed for this long.
TOPIC_SETTLE_TIME = timedelta(seconds=15)
ALL_FEATURES_TIMEOUT = timedelta(minutes=10)
WRITER_STOP_TIMEOUT = timedelta(seconds=60)
JOB_CANCEL_TIMEOUT = timedelta(seconds=60)
REST_TIMEOUT = timedelta(seconds=10)
FAILURE_TEXT_LENGTH = 300
ENDED_STATES = ("FAILED", "CANCELED", "FINISHED")
# Operators listed with their state size after a run, and the length their names are cut to.
MAX_LISTED_OPERATORS = 4
VERTEX_NAME_LENGTH = 120
FEAST_TIMEOUT = timedelta(minutes=3)

# Paced runs: samples of the warm-up are dropped, and the tail keeps the
# watermark moving so that the last measured events get emitted too.
WARM_UP = timedelta(seconds=10)
TAIL = timedelta(seconds=5)
DRAIN_TIMEOUT = timedelta(seconds=120)
PACING_SLEEP = timedelta(milliseconds=1)
READBACK_SESSIONS = 200
FRESHNESS_BUCKET = timedelta(seconds=10)
# Time the baseline consumer keeps reading after the producer has finished.
BASELINE_DRAIN_TIME = timedelta(seconds=3)
CHILD_START_TIMEOUT = timedelta(seconds=60)
CHILD_JOIN_TIMEOUT = timedelta(seconds=30)


# Stack, topics and Feast repo.


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_average() -> str:
    last_minute, last_5_minutes, last_15_minutes = os.getloadavg()
    return f"{last_minute:.2f} {last_5_minutes:.2f} {last_15_minutes:.2f} (1, 5, 15 min)"


def create_topics(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names])
    finally:
        admin.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class TopicSizes:
    """Count the records of topics from their beginning and end offsets, without reading them."""

    def __init__(self, bootstrap: str):
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)

    def size(self, topic: str) -> int:
        partitions = [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise LookupError(f"topic {topic!r} has no partitions in the broker's metadata. Create it before counting it")
        end = self._consumer.end_offsets(partitions)
        beginning = self._consumer.beginning_offsets(partitions)
        return sum(end[p] - beginning[p] for p in partitions)

    def close(self) -> None:
        self._consumer.close()


def applied_repo(workspace: Path, name: str, profile: str) -> Path:
    """Copy the feature repo without its data folder and run `feast apply` in the copy."""
    repo = Path(shutil.copytree(FEATURE_REPO, workspace / name, ignore=shutil.ignore_patterns("data", "__pycache__")))
    result = subprocess.run(
        [str(FEAST), "-f", profile, "apply"],
        cwd=repo, capture_output=True, text=True, timeout=FEAST_TIMEOUT.total_seconds(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"feast -f {profile} apply failed in {repo} with exit code {result.returncode}:\n{result.stderr}")
    return repo


def job_topics(prefix: str) -> dict[str, str]:
    """Return the output topics that features_job.py derives from ``--topic-prefix``."""
    return {
        "session": f"{prefix}features-session",
        "item": f"{prefix}features-item",
        "transition": f"{prefix}features-transition",
        "popular": f"{prefix}features-popular",
        "late": f"{prefix}events-late",
    }


def duration_text(duration: timedelta) -> str:
    """Return ``duration`` in the job's option syntax, e.g. ``5m`` or ``24h``."""
    for unit, length in (("h", timedelta(hours=1)), ("m", timedelta(minutes=1)), ("s", timedelta(seconds=1))):
        if duration % length == timedelta(0):
            return f"{duration // length}{unit}"
    return f"{duration // timedelta(milliseconds=1)}ms"


def window_description(config: FeatureJobConfig) -> str:
    items = ", ".join(f"{w.name}={duration_text(w.size)}/{duration_text(w.slide)}" for w in config.item_windows)
    transition = config.transition_window
    return (f"item windows {items}; transition window "
            f"{duration_text(transition.size)}/{duration_text(transition.slide)} (name=size/slide)")


def throughput_window_options() -> tuple[list[str], FeatureJobConfig] | None:
    """Return the job options for light windows and the config they give, or None if the job lacks them.

    The job passes unknown options on to the runner instead of failing, so the
    check compares the parsed windows with the defaults.
    """
    options = list(THROUGHPUT_WINDOW_OPTIONS)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            config, _, _ = features_job.parse_args(options)
    except SystemExit:
        return None
    defaults = FeatureJobConfig()
    if config.item_windows == defaults.item_windows and config.transition_window == defaults.transition_window:
        return None
    return options, config


# The Flink job, over the REST API of the benchmark's own cluster.


@dataclass
class FlinkJob:
    """A submitted feature job, read and cancelled through the cluster's REST API."""

    config: StackConfig
    job_id: str

    def _get(self, path: str) -> dict:
        url = f"{self.config.flink_rest_url}/jobs/{self.job_id}{path}"
        with urllib.request.urlopen(url, timeout=REST_TIMEOUT.total_seconds()) as reply:
            return json.load(reply)

    def state(self) -> str:
        return self._get("")["state"]

    def tasks_running(self) -> bool:
        details = self._get("")
        if details["state"] in ENDED_STATES:
            raise RuntimeError(f"Flink job {self.job_id} is {details['state']}. See the Flink logs in {self.config.log_dir}")
        return details["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in details["vertices"])

    def restarts(self) -> int:
        """Return how often the job has restarted after a failure (Flink's numRestarts metric)."""
        metrics = self._get("/metrics?get=numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def failures(self) -> Counter:
        """Return the job's latest failures, counted by the first line of their exception.

        Flink keeps only the latest few (web.exception-history-size, 16 by default in Flink 2.2).
        """
        history = self._get("/exceptions").get("exceptionHistory", {})
        causes: Counter = Counter()
        for entry in history.get("entries", []):
            lines = (entry.get("stacktrace") or entry.get("exceptionName") or "unknown").splitlines()
            causes[lines[0][:FAILURE_TEXT_LENGTH]] += 1
        return causes

    def checkpoints(self) -> str:
        """Return the size and duration of the latest completed checkpoint, and the completed and failed counts."""
        statistics = self._get("/checkpoints")
        counts = statistics.get("counts", {})
        latest = (statistics.get("latest") or {}).get("completed")
        text = f"checkpoints completed {counts.get('completed', 0)}, failed {counts.get('failed', 0)}"
        if not latest:
            return text
        text += (f"; latest completed: state {latest.get('state_size', 0) / 1e6:,.1f} MB, "
                 f"took {latest.get('end_to_end_duration', 0) / 1000:.1f} s")
        names = {vertex["id"]: vertex["name"] for vertex in self._get("").get("vertices", [])}
        tasks = self._get(f"/checkpoints/details/{latest['id']}").get("tasks", {})
        largest = sorted(tasks.items(), key=lambda task: task[1].get("state_size", 0), reverse=True)
        for vertex_id, task in largest[:MAX_LISTED_OPERATORS]:
            name = names.get(vertex_id, vertex_id)[:VERTEX_NAME_LENGTH]
            text += f"\n  {task.get('state_size', 0) / 1e6:8,.1f} MB  {name}"
        return text

    def cancel(self) -> None:
        """Cancel the job unless it has ended already, and wait until it has ended."""
        code = self._request_cancel()
        if code is not None:
            # Flink can respond with 409 Conflict, as it did in a run where the job kept failing and restarting.
            logger.warning("cancelling Flink job %s failed with HTTP %s while it was %s", self.job_id, code, self.state())
        wait_for(lambda: self.state() in ENDED_STATES, f"Flink job {self.job_id} to end", JOB_CANCEL_TIMEOUT,
                 self._cancel_if_running)

    def _request_cancel(self) -> int | None:
        """Ask Flink to cancel the job and return the HTTP error code, or None on success."""
        request = urllib.request.Request(f"{self.config.flink_rest_url}/jobs/{self.job_id}?mode=cancel", method="PATCH")
        try:
            with urllib.request.urlopen(request, timeout=REST_TIMEOUT.total_seconds()):
                return None
        except urllib.error.HTTPError as error:
            return error.code

    def _cancel_if_running(self) -> None:
        if self.state() == "RUNNING":
            self._request_cancel()


def submit_job(config: StackConfig, *job_args: str) -> FlinkJob:
    """Submit features_job.py detached with `flink run -py` and return the job."""
    command = flink.run_command(config, JOB, "--bootstrap-servers", config.bootstrap_servers, *job_args, detached=True)
    result = subprocess.run(
        command, env=flink.environment(config), capture_output=True, text=True,
        timeout=JOB_SUBMIT_TIMEOUT.total_seconds(),
    )
    match = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(
            f"flink run exited with {result.returncode} and printed no job id:\n"
            f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
    return FlinkJob(config, match.group(1))


def wait_for(condition: Callable[[], bool], description: str, timeout: timedelta,
             check: Callable[[], None] | None = None) -> float:
    """Poll ``condition`` every MONITOR_INTERVAL and return the monotonic time it held.

    ``check`` runs on every poll and may raise to abort the wait early.
    Raises TimeoutError after ``timeout``.
    """
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        if check is not None:
            check()
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} waiting for {description}")
        time.sleep(MONITOR_INTERVAL.total_seconds())


# The feature writer, in a thread, with its Feast calls timed.


@dataclass
class FeastCallTimes:
    """Seconds spent inside write_to_online_store, calls and rows written, per feature view."""

    seconds: Counter = field(default_factory=Counter)
    rows: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)

    def rows_per_second(self, view: str) -> float:
        return self.rows[view] / self.seconds[view] if self.seconds[view] else 0.0

    def copy(self) -> FeastCallTimes:
        return FeastCallTimes(Counter(self.seconds), Counter(self.rows), Counter(self.calls))

    def line(self, view: str) -> str:
        calls = self.calls[view]
        mean_ms = 1000 * self.seconds[view] / calls if calls else 0.0
        return (f"{self.rows[view]:,} rows in {calls:,} calls, {self.seconds[view]:.1f} s "
                f"({self.rows_per_second(view):,.0f} rows/s, {mean_ms:,.0f} ms per call)")


class _TimedStore:
    """A FeatureStore proxy that times write_to_online_store calls and passes every other attribute on."""

    def __init__(self, store, times: FeastCallTimes):
        self._store = store
        self._times = times

    def write_to_online_store(self, feature_view_name, df, *args, **kwargs):
        started = time.perf_counter()
        result = self._store.write_to_online_store(feature_view_name, df, *args, **kwargs)
        self._times.seconds[feature_view_name] += time.perf_counter() - started
        self._times.rows[feature_view_name] += len(df)
        self._times.calls[feature_view_name] += 1
        return result

    def __getattr__(self, name):
        return getattr(self._store, name)


@contextlib.contextmanager
def timed_feast_writes(times: FeastCallTimes) -> Iterator[None]:
    """Make FeatureWriter open timed stores while the block runs.

    NOTE: this replaces ``pipelines.feature_writer.open_store`` for the whole
    process, because the writer offers no other way to wrap its store.
    """
    original = feature_writer.open_store

    def open_timed_store(repo_path: Path | str, profile: str = DEFAULT_PROFILE) -> FeatureStore:
        return cast(FeatureStore, _TimedStore(original(repo_path, profile), times))

    feature_writer.open_store = open_timed_store
    try:
        yield
    finally:
        feature_writer.open_store = original


class WriterRun:
    """A FeatureWriter running in a daemon thread until :meth:`stop`."""

    def __init__(self, config: FeatureWriterConfig):
        self.counters = WriterCounters()
        self.feast_times = FeastCallTimes()
        self._config = config
        self._stop = threading.Event()
        self._errors: list[Exception] = []
        self._thread = threading.Thread(target=self._run, name="feature-writer", daemon=True)

    def _run(self) -> None:
        try:
            FeatureWriter(self._config, self.counters).run(self._stop)
        except Exception as error:  # The writer has logged it, and raise_if_failed re-raises it in the main thread.
            self._errors.append(error)

    def start(self) -> None:
        self._thread.start()

    def raise_if_failed(self) -> None:
        if self._errors:
            raise RuntimeError(f"the feature writer failed: {self._errors[0]!r}") from self._errors[0]

    def consumed(self, topic: str) -> int:
        return self.counters.snapshot().consumed[topic]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WRITER_STOP_TIMEOUT.total_seconds())
        if self._thread.is_alive():
            logger.warning("the feature writer did not stop within %s", WRITER_STOP_TIMEOUT)
        self.raise_if_failed()


@contextlib.contextmanager
def running_writer(config: FeatureWriterConfig) -> Iterator[WriterRun]:
    run = WriterRun(config)
    with timed_feast_writes(run.feast_times):
        run.start()
        try:
            yield run
        finally:
            run.stop()


def writer_config(bootstrap: str, repo: Path, profile: str, topics: dict[str, str],
                  probe: Callable[[str, int], None] | None = None) -> FeatureWriterConfig:
    dead_letter = unique_name("bench-features-dead-letter")
    create_topics(bootstrap, dead_letter)
    return FeatureWriterConfig(
        bootstrap_servers=bootstrap,
        repo_path=repo,
        profile=profile,
        topics=FeatureTopics(topics["session"], topics["item"], topics["transition"], dead_letter, topics["popular"]),
        group_id=unique_name("bench-writer"),
        freshness_probe=probe,
    )


# Stage 1: throughput.


@dataclass
class ThroughputResult:
    """Figures of the throughput stage.

    Durations are in seconds. ``flink_s``, ``end_to_end_s`` and ``all_features_s``
    count from the moment all job tasks run, ``submit_s`` up to it.
    """

    events: int = 0
    replay_rate: float = 0.0
    windows: str = ""
    light_windows: bool = False
    submit_s: float = 0.0
    flink_s: float = 0.0
    end_to_end_s: float = 0.0
    all_features_s: float | None = None
    session_rows: int = 0
    late_rows: int = 0
    item_rows_at_flink_done: int = 0
    transition_rows_at_flink_done: int = 0
    item_rows: int | None = None
    transition_rows: int | None = None
    job_restarts: int = 0
    job_failures: Counter = field(default_factory=Counter)
    checkpoints: str = ""
    writer_summary: str = ""
    end_to_end_feast: FeastCallTimes = field(default_factory=FeastCallTimes)
    write_path_rows: int = 0
    write_path_rate: float = 0.0
    write_path_feast: FeastCallTimes = field(default_factory=FeastCallTimes)

    @property
    def flink_rate(self) -> float:
        return self.events / self.flink_s

    @property
    def end_to_end_rate(self) -> float:
        return self.events / self.end_to_end_s


def load_dataset(path: Path, bootstrap: str, topic: str) -> tuple[int, float, int]:
    """Replay ``path`` into ``topic`` and return (events produced, events/s, greatest event time in epoch ms)."""
    dead_letter = unique_name("bench-events-dead-letter")
    create_topics(bootstrap, dead_letter)
    summary = replay(ReplaySettings(path=path, progress=False, publisher=PublisherSettings(bootstrap, topic, dead_letter)))
    if not summary.reconciled or summary.rejected_total:
        raise RuntimeError(f"the replay of {path} did not reconcile or rejected rows:\n" + "\n".join(summary.lines()))
    last_event_time = max(validate_event(r.fields).event_time for r in read_records(path) if r.fields is not None)
    return summary.produced, summary.produced / summary.seconds, last_event_time


def send_watermark_flush(bootstrap: str, topic: str, event_time: int) -> None:
    """Send one event at ``event_time`` to every partition of ``topic``.

    The job runs unbounded with periodic watermarks, so it emits a session row
    only once the watermark passes that row's event, and windows only once it
    passes their end. After the last dataset event the watermark would stop
    short of both. These events move it past every dataset event and window.
    They yield no rows themselves, because the watermark stays behind them.
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition in range(PARTITIONS):
            event = validate_event({
                "event_id": f"watermark-flush-{partition}",
                "session_id": f"watermark-flush-{partition}",
                "item_id": "watermark-flush",
                "event_type": FLUSH_EVENT_TYPE,
                "event_time": event_time,
            })
            producer.send(topic, key=event.session_id.encode(), value=event.to_json(), partition=partition)
        producer.flush()
    finally:
        producer.close()


def choose_throughput_windows(result: ThroughputResult) -> list[str]:
    """Return the job options of the throughput run's windows, and record and print which windows run."""
    light = throughput_window_options()
    if light is None:
        window_args: list[str] = []
        job_config = FeatureJobConfig()
        print("NOTE: pipelines/features_job.py has no window options, so the default windows run. "
              "Only the session topic is timed, and the item and transition topic sizes are reported")
    else:
        window_args, job_config = light
    result.light_windows = light is not None
    result.windows = window_description(job_config)
    print(f"throughput job windows: {result.windows}")
    return window_args


def run_throughput(stack: StackConfig, dataset: Path, workspace: Path, profile: str) -> ThroughputResult:
    """Load the dataset, run the job over it from the earliest offset with a writer beside it, and time both."""
    bootstrap = stack.bootstrap_servers
    result = ThroughputResult()
    events_topic = unique_name("bench-events")
    create_topics(bootstrap, events_topic)
    logger.info("loading %s into %s", dataset, events_topic)
    result.events, result.replay_rate, last_event_time = load_dataset(dataset, bootstrap, events_topic)
    send_watermark_flush(bootstrap, events_topic, last_event_time + WATERMARK_FLUSH_DELAY // timedelta(milliseconds=1))
    print(f"loaded {result.events:,} events into Kafka at {result.replay_rate:,.0f} events/s (replay code)")
    window_args = choose_throughput_windows(result)

    prefix = unique_name("bench-throughput") + "-"
    topics = job_topics(prefix)
    create_topics(bootstrap, *topics.values())
    repo = applied_repo(workspace, "repo-throughput", profile)
    sizes = TopicSizes(bootstrap)
    try:
        with running_writer(writer_config(bootstrap, repo, profile, topics)) as writer:
            submitted = time.monotonic()
            job = submit_job(
                stack, "--events-topic", events_topic, "--topic-prefix", prefix,
                "--group-id", unique_name("bench-flink"), "--startup-mode", "earliest-offset", *window_args,
            )
            running = wait_for(job.tasks_running, "the job's tasks to run", TASKS_RUNNING_TIMEOUT, writer.raise_if_failed)
            result.submit_s = running - submitted
            logger.info("job %s running %.1f s after submission", job.job_id, result.submit_s)

            # Dataset event ids are "file:line", so every event is unique and each
            # one yields either a session row or a late record.
            def flink_done() -> bool:
                return sizes.size(topics["session"]) + sizes.size(topics["late"]) >= result.events

            flink_finished = wait_for(flink_done, "one session row per on-time event", THROUGHPUT_TIMEOUT,
                                      writer.raise_if_failed)
            result.flink_s = flink_finished - running
            result.session_rows = sizes.size(topics["session"])
            result.late_rows = sizes.size(topics["late"])
            result.item_rows_at_flink_done = sizes.size(topics["item"])
            result.transition_rows_at_flink_done = sizes.size(topics["transition"])
            logger.info("session topic complete after %.1f s", result.flink_s)

            writer_finished = wait_for(lambda: writer.consumed(topics["session"]) >= result.session_rows,
                                       "the writer to write every session row", THROUGHPUT_TIMEOUT, writer.raise_if_failed)
            result.end_to_end_s = writer_finished - running
            result.end_to_end_feast = writer.feast_times.copy()
            if result.light_windows:
                settled = wait_for_all_features(sizes, topics, writer)
                result.all_features_s = settled - running
                result.item_rows = sizes.size(topics["item"])
                result.transition_rows = sizes.size(topics["transition"])
            result.job_restarts = job.restarts()
            result.job_failures = job.failures()
            result.checkpoints = job.checkpoints()
            result.writer_summary = writer.counters.summary()
            job.cancel()
        measure_write_path(result, stack, workspace, profile, topics["session"])
    finally:
        sizes.close()
    return result


def wait_for_all_features(sizes: TopicSizes, topics: dict[str, str], writer: WriterRun) -> float:
    """Wait until the item and transition topics stop growing and the writer has consumed them.

    Return the monotonic time at which the writer was first seen caught up
    with the final sizes, within one MONITOR_INTERVAL.
    """
    watched = (topics["item"], topics["transition"])
    last: dict[str, int] = {}
    last_change = time.monotonic()
    caught_up_at: float | None = None

    def settled() -> bool:
        nonlocal last_change, caught_up_at
        current = {topic: sizes.size(topic) for topic in watched}
        if current != last:
            last.update(current)
            last_change = time.monotonic()
            caught_up_at = None
        if caught_up_at is None and all(writer.consumed(topic) >= current[topic] for topic in watched):
            caught_up_at = time.monotonic()
        return caught_up_at is not None and time.monotonic() - last_change >= TOPIC_SETTLE_TIME.total_seconds()

    wait_for(settled, "the item and transition topics to settle", ALL_FEATURES_TIMEOUT, writer.raise_if_failed)
    assert caught_up_at is not None
    return caught_up_at


def measure_write_path(result: ThroughputResult, stack: StackConfig, workspace: Path, profile: str,
                       session_topic: str) -> None:
    """Write the finished session topic alone into a fresh repo and time the writer."""
    bootstrap = stack.bootstrap_servers
    empty = {"item": unique_name("bench-empty-item"), "transition": unique_name("bench-empty-transition"),
             "popular": unique_name("bench-empty-popular")}
    create_topics(bootstrap, *empty.values())
    repo = applied_repo(workspace, "repo-write-path", profile)
    topics = {"session": session_topic, **empty}
    rows = result.session_rows
    with running_writer(writer_config(bootstrap, repo, profile, topics)) as writer:
        first_batch = wait_for(lambda: writer.counters.snapshot().batches >= 1, "the first written batch",
                               THROUGHPUT_TIMEOUT, writer.raise_if_failed)
        first_rows = writer.consumed(session_topic)
        done = wait_for(lambda: writer.consumed(session_topic) >= rows, "the writer to write the session topic",
                        THROUGHPUT_TIMEOUT, writer.raise_if_failed)
        result.write_path_rows = rows
        result.write_path_rate = (rows - first_rows) / (done - first_batch) if done > first_batch else 0.0
        result.write_path_feast = writer.feast_times


# Stages 2 and 3: paced events, for the baseline and for freshness.


def read_events(dataset: Path) -> list[Event]:
    """Return the valid events of ``dataset`` in event-time order (ties keep file order), as the replay sends them."""
    records = [(r.line, validate_event(r.fields)) for r in read_records(dataset) if r.fields is not None]
    records.sort(key=lambda entry: (entry[1].event_time, entry[0]))
    return [event for _, event in records]


def produce_paced(bootstrap: str, topic: str, dataset: Path, rate: float, measured_s: float,
                  results: multiprocessing.Queue) -> None:
    """Send dataset events at ``rate`` events/s with event_time = send time, in a child process.

    Sending lasts WARM_UP + ``measured_s`` + TAIL. The dataset repeats if it
    runs out, with the pass number added to the event ids so that none is
    dropped as a duplicate. Puts a dict of counts and the measured window, as
    event times in epoch ms, on ``results``.
    """
    events = read_events(dataset)
    publisher = EventPublisher(PublisherSettings(bootstrap, topic, unique_name("bench-paced-unused")))
    duration_s = (WARM_UP + TAIL).total_seconds() + measured_s
    sent = 0
    in_window = 0
    max_behind_s = 0.0
    first_ms = now_ms() + WARM_UP // timedelta(milliseconds=1)
    end_ms = first_ms + int(measured_s * 1000)
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= duration_s:
                break
            due = int(elapsed * rate) + 1
            max_behind_s = max(max_behind_s, (due - 1 - sent) / rate)
            while sent < due:
                source = events[sent % len(events)]
                repeat = sent // len(events)
                event_id = source.event_id if repeat == 0 else f"{source.event_id}:{repeat}"
                event_time = now_ms()
                publisher.send_event(dataclasses.replace(source, event_id=event_id, event_time=event_time))
                sent += 1
                in_window += first_ms <= event_time < end_ms
            time.sleep(PACING_SLEEP.total_seconds())
        elapsed = time.monotonic() - started
    finally:
        publisher.close()
    results.put({
        "sent": sent,
        "delivered": publisher.counts.delivered[topic],
        "first_ms": first_ms,
        "end_ms": end_ms,
        "in_window": in_window,
        "rate": sent / elapsed,
        "max_behind_s": max_behind_s,
    })


def paced_run(bootstrap: str, topic: str, dataset: Path, rate: float, measured: timedelta) -> dict:
    """Run :func:`produce_paced` in a spawned process and return its result dict.

    A separate process keeps the producer off the interpreter lock of the
    writer or consumer that this process runs meanwhile.
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=produce_paced, args=(bootstrap, topic, dataset, rate, measured.total_seconds(), results),
        name="paced-producer",
    )
    child.start()
    return child_result(child, results)


@dataclass
class Latencies:
    """Latencies in milliseconds of the samples inside the measured window."""

    label: str
    values: list[int]
    expected: int
    note: str = ""

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.values, q)) if self.values else float("nan")

    def compact(self) -> str:
        if not self.values:
            return "no samples"
        return (f"{self.percentile(50):,.0f} / {self.percentile(95):,.0f} / {self.percentile(99):,.0f} / "
                f"{max(self.values):,} ms ({len(self.values):,} rows)")

    def line(self) -> str:
        if not self.values:
            return f"{self.label}: no samples"
        return (
            f"{self.label}: p50 {self.percentile(50):,.0f} ms  p95 {self.percentile(95):,.0f} ms  "
            f"p99 {self.percentile(99):,.0f} ms  max {max(self.values):,} ms  "
            f"count {len(self.values):,} ({self.expected:,} events sent in the window){self.note}"
        )


def measured_window(outcome: dict) -> tuple[int, int, int]:
    """Return the measured window of a paced run as (first, end) event times in epoch ms, and the events sent in it."""
    return outcome["first_ms"], outcome["end_ms"], outcome["in_window"]


def consume_latencies(bootstrap: str, topic: str, time_field: str, started: multiprocessing.synchronize.Event,
                      stop: multiprocessing.synchronize.Event, results: multiprocessing.Queue) -> None:
    """Read ``topic`` from offset 0 until ``stop`` is set, in a child process.

    Puts the list of (event time, receive time - event time) in ms, one per
    record, on ``results``. ``time_field`` names the JSON field with the event
    time: ``event_time`` on events, ``last_event_time`` on session rows.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    # The topic is new and empty, so offset 0 is its start. With kafka-python
    # 2.2.21, position() after seek_to_end() on a just-created topic hung in a test run.
    for partition in partitions:
        consumer.seek(partition, 0)
    samples: list[tuple[int, int]] = []
    started.set()
    try:
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=100)
            received = now_ms()
            for records in polled.values():
                for record in records:
                    event_time = json.loads(record.value)[time_field]
                    samples.append((event_time, received - event_time))
    finally:
        consumer.close()
    results.put(samples)


class LatencyConsumer:
    """A child process that runs :func:`consume_latencies`.

    A separate process keeps its decoding off the interpreter lock of the
    feature writer, which runs in this process.
    """

    def __init__(self, bootstrap: str, topic: str, time_field: str):
        context = multiprocessing.get_context("spawn")
        self._started = context.Event()
        self._stop = context.Event()
        self._results = context.Queue()
        self._child = context.Process(
            target=consume_latencies,
            args=(bootstrap, topic, time_field, self._started, self._stop, self._results),
            name=f"latency-{topic}",
        )
        self._child.start()
        if not self._started.wait(CHILD_START_TIMEOUT.total_seconds()):
            self._child.terminate()
            raise TimeoutError(f"the latency consumer of {topic} did not start within {CHILD_START_TIMEOUT}")

    def stop(self) -> list[tuple[int, int]]:
        """Stop the child and return its samples."""
        self._stop.set()
        return child_result(self._child, self._results)


def child_result(child: multiprocessing.process.BaseProcess, results: multiprocessing.Queue):
    """Return what ``child`` puts on ``results`` and join it. Raise RuntimeError if it exits without a result."""
    try:
        while True:
            try:
                return results.get(timeout=MONITOR_INTERVAL.total_seconds())
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"child process {child.name} exited with {child.exitcode} before reporting") from None
    finally:
        child.join(CHILD_JOIN_TIMEOUT.total_seconds())
        if child.is_alive():
            child.terminate()


def run_baseline(stack: StackConfig, dataset: Path, rate: float, seconds: float) -> Latencies:
    """Measure produce -> consume latency of a plain consumer at ``rate`` events/s."""
    bootstrap = stack.bootstrap_servers
    topic = unique_name("bench-baseline")
    create_topics(bootstrap, topic)
    consumer = LatencyConsumer(bootstrap, topic, "event_time")
    try:
        outcome = paced_run(bootstrap, topic, dataset, rate, timedelta(seconds=seconds))
        time.sleep(BASELINE_DRAIN_TIME.total_seconds())
    finally:
        samples = consumer.stop()
    if len(samples) < outcome["delivered"]:
        logger.warning("the baseline consumer read %d of %d events", len(samples), outcome["delivered"])
    first, end, expected = measured_window(outcome)
    values = [lag for event_time, lag in samples if first <= event_time < end]
    return Latencies("baseline, plain Kafka produce -> consume", values, expected, pacing_note(outcome, rate))


def pacing_note(outcome: dict, rate: float) -> str:
    note = f"; producer {outcome['rate']:,.0f} events/s"
    if outcome["max_behind_s"] > 1.0:
        note += f", up to {outcome['max_behind_s']:.1f} s behind the {rate:,.0f}/s schedule"
    return note


@dataclass
class FreshnessProbe:
    """Collector of (event time, freshness) in ms for each written session row, called by the writer."""

    samples: list[tuple[int, int]] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    latest_event_time: int = 0

    def __call__(self, session_id: str, lag_ms: int) -> None:
        # The writer computes lag_ms from one clock reading per batch, just
        # before these calls, so now - lag is the row's last event time within a few ms.
        event_time = now_ms() - lag_ms
        self.samples.append((event_time, lag_ms))
        self.latest_event_time = max(self.latest_event_time, event_time)
        if len(self.session_ids) < READBACK_SESSIONS:
            self.session_ids.append(session_id)


@dataclass
class FreshnessResult:
    """Figures of the freshness stage."""

    freshness: Latencies
    session_topic: Latencies
    windows: str
    readable: str
    feast: FeastCallTimes
    writer_summary: str
    timeline: list[str]
    """Freshness per FRESHNESS_BUCKET of event time, and where window slides fall."""
    job_restarts: int
    job_failures: Counter
    checkpoints: str
    events_sent: int


def freshness_timeline(samples: list[tuple[int, int]], first: int, end: int, slide: timedelta) -> list[str]:
    """Return one line of freshness p50 and max per FRESHNESS_BUCKET of the window [first, end).

    A line is marked where a multiple of ``slide`` falls in its bucket. At that
    moment the job emits every item and transition window that just ended.
    """
    bucket_ms = FRESHNESS_BUCKET // timedelta(milliseconds=1)
    slide_ms = slide // timedelta(milliseconds=1)
    lines = []
    for start in range(first, end, bucket_ms):
        stop = min(start + bucket_ms, end)
        values = [lag for event_time, lag in samples if start <= event_time < stop]
        slides = (stop - 1) // slide_ms - (start - 1) // slide_ms
        mark = "  <- window slide" if slides else ""
        if values:
            lines.append(f"  t+{(start - first) / 1000:5.0f} s: p50 {np.percentile(values, 50):7,.0f} ms  "
                         f"max {max(values):7,} ms  rows {len(values):6,}{mark}")
        else:
            lines.append(f"  t+{(start - first) / 1000:5.0f} s: no rows{mark}")
    return lines


def run_freshness(stack: StackConfig, dataset: Path, workspace: Path, profile: str, rate: float,
                  seconds: float) -> FreshnessResult:
    """Measure session-row freshness through the job (its default windows) and the writer.

    A plain consumer of the session topic measures the Flink part alone in
    the same run: event sent -> session row readable in Kafka.
    """
    bootstrap = stack.bootstrap_servers
    events_topic = unique_name("bench-fresh-events")
    prefix = unique_name("bench-fresh") + "-"
    topics = job_topics(prefix)
    create_topics(bootstrap, events_topic, *topics.values())
    repo = applied_repo(workspace, "repo-freshness", profile)
    probe = FreshnessProbe()
    sizes = TopicSizes(bootstrap)
    session_consumer = LatencyConsumer(bootstrap, topics["session"], "last_event_time")
    try:
        with running_writer(writer_config(bootstrap, repo, profile, topics, probe)) as writer:
            job = submit_job(stack, "--events-topic", events_topic, "--topic-prefix", prefix,
                             "--group-id", unique_name("bench-flink"), "--startup-mode", "earliest-offset")
            wait_for(job.tasks_running, "the job's tasks to run", TASKS_RUNNING_TIMEOUT, writer.raise_if_failed)
            outcome = paced_run(bootstrap, events_topic, dataset, rate, timedelta(seconds=seconds))
            first, end, expected = measured_window(outcome)

            def drained() -> bool:
                caught_up = writer.consumed(topics["session"]) >= sizes.size(topics["session"])
                return caught_up and probe.latest_event_time >= end

            note = pacing_note(outcome, rate)
            try:
                wait_for(drained, "the writer to write the measured session rows", DRAIN_TIMEOUT, writer.raise_if_failed)
            except TimeoutError as error:
                logger.warning("%s. The figures cover only the rows written so far", error)
                note += f"; NOT drained within {DRAIN_TIMEOUT}"
            restarts = job.restarts()
            failures = job.failures()
            if restarts:
                note += f"; the job failed and restarted {restarts} times"
            checkpoints = job.checkpoints()
            job.cancel()
            writer_summary = writer.counters.summary()
            late_events = sizes.size(topics["late"])
    finally:
        session_samples = session_consumer.stop()
        sizes.close()
    in_window = [lag for event_time, lag in probe.samples if first <= event_time < end]
    in_topic = [lag for event_time, lag in session_samples if first <= event_time < end]
    readable = f"{count_readable(repo, profile, probe.session_ids)} of {len(probe.session_ids)} sampled sessions"
    job_config, _, _ = features_job.parse_args([])
    slide = min(window.slide for window in (*job_config.item_windows, job_config.transition_window))
    return FreshnessResult(
        freshness=Latencies("freshness, event sent -> session row written to Feast", in_window, expected, note),
        session_topic=Latencies("Flink part, event sent -> session row readable in Kafka", in_topic, expected,
                                f"; {late_events:,} events late, so without a session row"),
        windows=window_description(job_config),
        readable=readable,
        feast=writer.feast_times,
        writer_summary=writer_summary,
        timeline=freshness_timeline(probe.samples, first, end, slide),
        job_restarts=restarts,
        job_failures=failures,
        checkpoints=checkpoints,
        events_sent=outcome["sent"],
    )


def count_readable(repo: Path, profile: str, session_ids: list[str]) -> int:
    """Return how many of ``session_ids`` the online store returns a session row for."""
    if not session_ids:
        return 0
    values = open_store(repo, profile).get_online_features(
        features=[f"{SESSION_VIEW}:last_event_time"], entity_rows=[{"session_id": s} for s in session_ids]
    ).to_dict()
    return sum(value is not None for value in values["last_event_time"])


# Report.


def print_summary(throughput: ThroughputResult, baseline: Latencies, fresh: FreshnessResult) -> None:
    t = throughput
    write_path = t.write_path_feast
    rows = [
        ("replay into the events topic", f"{t.replay_rate:,.0f} events/s"),
        ("job submission until all tasks run", f"{t.submit_s:.1f} s"),
        ("Flink: tasks running -> one session row per event", f"{t.flink_rate:,.0f} events/s ({t.flink_s:.1f} s)"),
        ("end to end: tasks running -> all session rows in Feast",
         f"{t.end_to_end_rate:,.0f} events/s ({t.end_to_end_s:.1f} s)"),
    ]
    if t.all_features_s is not None:
        rows.append(("end to end: all feature topics settled and in Feast",
                     f"{t.events / t.all_features_s:,.0f} events/s ({t.all_features_s:.1f} s)"))
    rows += [
        ("writer alone: session topic -> Feast", f"{t.write_path_rate:,.0f} consumed rows/s ({t.write_path_rows:,} rows)"),
        ("writer alone: inside write_to_online_store",
         f"{write_path.rows_per_second(SESSION_VIEW):,.0f} written rows/s "
         f"({write_path.rows[SESSION_VIEW]:,} rows after coalescing, {write_path.seconds[SESSION_VIEW]:.1f} s)"),
    ]
    for name, latencies in (("freshness: sent -> session row in Feast", fresh.freshness),
                            ("Flink part: sent -> session row in Kafka", fresh.session_topic),
                            ("baseline: plain Kafka produce -> consume", baseline)):
        rows.append((f"{name}, p50 / p95 / p99 / max", latencies.compact()))
    for q in (50, 99):
        ratio = fresh.freshness.percentile(q) / baseline.percentile(q) if baseline.values else float("nan")
        rows.append((f"freshness / baseline, p{q}", f"{ratio:,.1f}"))
    print()
    print("| measure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def print_failures(restarts: int, failures: Counter) -> None:
    print(f"job restarts after failures: {restarts}")
    for cause, count in failures.items():
        print(f"  {count} x {cause}")


def print_throughput(t: ThroughputResult) -> None:
    print(f"job submission until all tasks run: {t.submit_s:.1f} s (client start, planning, deployment)")
    print(f"Flink: {t.events:,} events -> {t.session_rows:,} session rows and {t.late_rows:,} late events "
          f"in {t.flink_s:.1f} s: {t.flink_rate:,.0f} events/s")
    print(f"  item rows then: {t.item_rows_at_flink_done:,}  transition rows then: {t.transition_rows_at_flink_done:,}")
    print(f"end to end: all session rows in Feast after {t.end_to_end_s:.1f} s: {t.end_to_end_rate:,.0f} events/s")
    feast = t.end_to_end_feast
    for view in sorted(feast.rows):
        print(f"  writer's Feast calls for {view}: {feast.line(view)}")
    if t.all_features_s is not None:
        print(f"all feature topics settled and written after {t.all_features_s:.1f} s: "
              f"{t.item_rows:,} item rows, {t.transition_rows:,} transition rows")
    print_failures(t.job_restarts, t.job_failures)
    print(f"Flink {t.checkpoints}")
    print(f"writer counters: {t.writer_summary}")
    feast = t.write_path_feast
    print(f"writer alone: {t.write_path_rows:,} session rows consumed at {t.write_path_rate:,.0f} rows/s, "
          f"written as {feast.rows[SESSION_VIEW]:,} rows after coalescing per batch; "
          f"write_to_online_store took {feast.seconds[SESSION_VIEW]:.1f} s "
          f"({feast.rows_per_second(SESSION_VIEW):,.0f} written rows/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help=f"folder with {TRAIN_FILE}, e.g. ../shared/datasets/yoochoose-1-64")
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second of the baseline and freshness runs (default 2000)")
    parser.add_argument("--freshness-seconds", type=float, default=60.0,
                        help="seconds of the measured freshness window, after a 10 s warm-up (default 60)")
    parser.add_argument("--profile", choices=(DEFAULT_PROFILE, REDIS_PROFILE), default=DEFAULT_PROFILE,
                        help=f"Feast settings file of the feature repo (default {DEFAULT_PROFILE})")
    args = parser.parse_args()
    train_file = args.dataset / TRAIN_FILE
    if not train_file.is_file():
        parser.error(f"{train_file} not found; pass the folder that contains {TRAIN_FILE}")
    if args.rate <= 0 or args.freshness_seconds <= 0:
        parser.error(f"--rate is {args.rate} and --freshness-seconds is {args.freshness_seconds}; both must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}  "
          f"profile: {args.profile}  Flink state backend: {StackConfig.from_env().flink_state_backend}")
    print(f"load average at start: {load_average()}")
    workspace = Path(tempfile.mkdtemp(prefix="bench-features-"))
    stack = StackConfig.from_env(
        state_dir=workspace / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        flink_rest_port=free_port(),
        flink_rpc_port=free_port(),
        redis_port=free_port(),
    )
    saved_connection = os.environ.get("SEQREC_REDIS_CONNECTION_STRING")
    try:
        kafka.start(stack)
        flink.start(stack)
        if args.profile == REDIS_PROFILE:
            redis_server.start(stack)
            os.environ["SEQREC_REDIS_CONNECTION_STRING"] = f"127.0.0.1:{stack.redis_port}"

        print("\n== throughput ==")
        throughput = run_throughput(stack, train_file, workspace, args.profile)
        print_throughput(throughput)
        print(f"load average after the throughput run: {load_average()}")

        print(f"\n== freshness at {args.rate:,.0f} events/s, {args.freshness_seconds:g} s measured after "
              f"{WARM_UP.total_seconds():g} s warm-up ==")
        baseline = run_baseline(stack, train_file, args.rate, args.freshness_seconds)
        print(baseline.line())
        fresh = run_freshness(stack, train_file, workspace, args.profile, args.rate, args.freshness_seconds)
        print(f"freshness job windows (the job's defaults): {fresh.windows}")
        print(fresh.session_topic.line())
        print(fresh.freshness.line())
        print(f"freshness per {FRESHNESS_BUCKET.total_seconds():g} s of event time in the measured window:")
        print("\n".join(fresh.timeline))
        for view in sorted(fresh.feast.rows):
            print(f"  writer's Feast calls for {view}: {fresh.feast.line(view)}")
        print(f"writer counters: {fresh.writer_summary}")
        print_failures(fresh.job_restarts, fresh.job_failures)
        print(f"Flink {fresh.checkpoints} (after {fresh.events_sent:,} events)")
        print(f"read back from the online store: {fresh.readable}")
        print(f"load average at the end: {load_average()}")
        print_summary(throughput, baseline, fresh)
    finally:
        if saved_connection is None:
            os.environ.pop("SEQREC_REDIS_CONNECTION_STRING", None)
        else:
            os.environ["SEQREC_REDIS_CONNECTION_STRING"] = saved_connection
        redis_server.stop(stack)
        flink.stop(stack)
        kafka.stop(stack)
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
