"""Benchmark: throughput and prequential quality of the online learner on a replayed dataset.

Usage: python benchmarks/online_learning.py DATA_PATH [--plot PNG] [--compare-models] [--bootstrap-servers HOST:PORT]

DATA_PATH is a dataset file that ``seqrec replay`` reads, e.g.
../shared/datasets/yoochoose-1-64/rec15_train_full.txt. Unless
--bootstrap-servers is given, the benchmark starts its own Kafka broker on free
127.0.0.1 ports in a temporary state directory and stops it at the end. Steps:

1. The replay code produces the file into a fresh events topic.
2. Baseline: a consumer in this process reads the topic and only decodes and
   validates each event.
3. The learner (:class:`online_learning.runner.LearnerRunner`, as run by
   ``seqrec learn``) reads the same topic from the start, with checkpoints and
   snapshots on, until it has consumed every record. It prints events/s, events
   per CPU second of this process, and the prequential Recall@20 and MRR@20.
4. A separate Python process loads the learner's newest snapshot and scores
   a fixed context, and the scores must equal those of this process.
5. With --compare-models, the events that the baseline read are sorted by
   event time and learned in this process, without Kafka, by the default
   logistic regression and by a factorization machine, for the model choice.

The prequential curve goes to the PNG given by --plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from ingest.replay import ReplaySettings, replay  # noqa: E402
from online_learning.config import LearnerRunConfig  # noqa: E402
from online_learning.learner import CurvePoint, LearnerConfig, PrequentialLearner  # noqa: E402
from online_learning.records import decode_record  # noqa: E402
from online_learning.merged_consumer import FETCH_MAX_BYTES  # noqa: E402
from online_learning.runner import LearnerRunner  # noqa: E402
from online_learning.scoring import CandidateContext  # noqa: E402
from online_learning.snapshots import read_latest  # noqa: E402
from seqrec.events import Event, InvalidEvent  # noqa: E402
from seqrec.publisher import PublisherSettings  # noqa: E402
from stack import kafka  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.process import free_port  # noqa: E402

logger = logging.getLogger("benchmarks.online_learning")

PARTITIONS = 4
CURVE_INTERVAL_EVENTS = 1_000
BASELINE_POLL_TIMEOUT_MS = 500
BASELINE_TIMEOUT_S = 300
SNAPSHOT_LOAD_TIMEOUT_S = 120
# A fixed context that both processes score with the snapshot. The item ids exist in YooChoose.
PROBE_CONTEXT = CandidateContext(
    session_id="probe",
    recent_items=("214536502", "214536500"),
    transitions={"214536506": 3, "214577561": 1},
    popularity={"214536502": 40, "214536506": 12, "214577561": 7},
    torch_scores={"214536506": 0.4},
)
PROBE_CANDIDATES = ("214536506", "214577561", "214536502", "214536500", "never-seen")

SNAPSHOT_PROBE = """
import json, sys
from pathlib import Path
from online_learning.scoring import CandidateContext
from online_learning.snapshots import read_latest
fields = json.loads(sys.argv[2])
fields["recent_items"] = tuple(fields["recent_items"])
context = CandidateContext(**fields)
snapshot = read_latest(Path(sys.argv[1]))
print(json.dumps({"version": snapshot.version, "events_learned": snapshot.events_learned,
                  "scores": snapshot.score(context, json.loads(sys.argv[3]))}))
"""


def create_topics(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names])
    finally:
        admin.close()


def replay_file(path: Path, bootstrap: str) -> tuple[str, int]:
    """Produce the dataset into a fresh topic; return the topic and the number of events produced."""
    suffix = uuid.uuid4().hex[:8]
    events_topic, dead_letter_topic = f"bench-learn-{suffix}", f"bench-learn-dead-{suffix}"
    create_topics(bootstrap, events_topic, dead_letter_topic)
    summary = replay(ReplaySettings(path=path, progress=False, publisher=PublisherSettings(bootstrap, events_topic, dead_letter_topic)))
    print(f"replayed {summary.produced:,} events into {events_topic} ({dict(summary.rejected) or 'no rejections'})")
    return events_topic, summary.produced


def decode_only(bootstrap: str, topic: str, expected: int) -> tuple[float, float, list[Event]]:
    """Consume ``expected`` records and only decode them.

    Returns events/s, events per CPU second of this process, and the events in consumption order.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=2_000,
        fetch_max_bytes=FETCH_MAX_BYTES, receive_message_max_bytes=FETCH_MAX_BYTES,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        events: list[Event] = []
        consumed = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        deadline = time.monotonic() + BASELINE_TIMEOUT_S
        while consumed < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=BASELINE_POLL_TIMEOUT_MS).values():
                for record in records:
                    consumed += 1
                    try:
                        events.append(decode_record(record.value))
                    except InvalidEvent:
                        pass
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        consumer.close()
    if consumed < expected:
        raise RuntimeError(f"baseline consumer read {consumed} of {expected} records within {BASELINE_TIMEOUT_S} s")
    return consumed / seconds, consumed / cpu_seconds, events


def run_learner(bootstrap: str, topic: str, expected: int, work_dir: Path) -> tuple[float, float, PrequentialLearner]:
    """Run the learner over the whole topic; return events/s, events per CPU second, and the learner."""
    config = LearnerRunConfig(
        bootstrap_servers=bootstrap,
        topic=topic,
        checkpoint_dir=work_dir / "checkpoint",
        snapshot_dir=work_dir / "snapshots",
        max_records=expected,
        log_interval_s=5.0,
        learner=LearnerConfig(curve_interval_events=CURVE_INTERVAL_EVENTS),
    )
    cpu_started = time.process_time()
    summary = LearnerRunner(config).run()
    cpu_seconds = time.process_time() - cpu_started
    return summary.records_this_run / summary.seconds_this_run, summary.records_this_run / cpu_seconds, summary.checkpoint.learner


def probe_snapshot(snapshot_dir: Path) -> None:
    """Load the newest snapshot in a separate process and check that it scores like this process."""
    context = {
        "session_id": PROBE_CONTEXT.session_id,
        "recent_items": list(PROBE_CONTEXT.recent_items),
        "transitions": dict(PROBE_CONTEXT.transitions),
        "popularity": dict(PROBE_CONTEXT.popularity),
        "torch_scores": dict(PROBE_CONTEXT.torch_scores),
    }
    output = subprocess.run(
        [sys.executable, "-c", SNAPSHOT_PROBE, str(snapshot_dir), json.dumps(context), json.dumps(list(PROBE_CANDIDATES))],
        check=True, capture_output=True, text=True, timeout=SNAPSHOT_LOAD_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[1],
    )
    loaded = json.loads(output.stdout)
    local = read_latest(snapshot_dir)
    expected = local.score(PROBE_CONTEXT, PROBE_CANDIDATES)
    same = loaded["version"] == local.version and loaded["scores"] == expected
    print(f"snapshot version {loaded['version']} ({loaded['events_learned']:,} events learned) loaded in a separate "
          f"process: scores {'equal' if same else 'DIFFER from'} this process's {expected}")
    if not same:
        raise RuntimeError(
            f"the snapshot scored {loaded['scores']} in another process but {expected} here; "
            "check that both processes import the same seqrec and River versions"
        )


def compare_models(events: list[Event]) -> None:
    """Learn the same events with each candidate model, in this process, and print quality and speed."""
    from river import facto

    variants = [
        ("logistic regression, 1 candidate + 1 random negative (default)", LearnerConfig(), None),
        ("logistic regression, 1 candidate negative", LearnerConfig(random_negatives_per_event=0), None),
        ("logistic regression, 3 candidate negatives", LearnerConfig(negatives_per_event=3, random_negatives_per_event=0), None),
        ("logistic regression, 10 candidate negatives", LearnerConfig(negatives_per_event=10, random_negatives_per_event=0), None),
        # With a step size of 0 the weights stay 0, so all candidates tie: the
        # quality of the candidate lists in random order.
        ("no learning (step size 0, candidates tie)", LearnerConfig(learning_rate=0.0), None),
        ("factorization machine, 4 factors, default negatives", LearnerConfig(), facto.FMClassifier(n_factors=4, seed=0)),
    ]
    for name, config, model in variants:
        learner = PrequentialLearner(config, model=model)
        started = time.perf_counter()
        cpu_started = time.process_time()
        for event in events:
            learner.process(event.session_id, event.item_id, event.event_time)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        print(f"  {name}: Recall@20 {learner.recall.get():.4f}  MRR@20 {learner.mrr.get():.4f}  "
              f"{len(events) / seconds:,.0f} events/s, {len(events) / cpu_seconds:,.0f} per CPU second, without Kafka")


def plot_curve(curve: list[CurvePoint], path: Path, rolling_window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [point.events_scored for point in curve]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.plot(scored, [p.recall for p in curve], label="Recall@20 since start")
    axes.plot(scored, [p.rolling_recall for p in curve], label=f"Recall@20, last {rolling_window:,} events", alpha=0.6)
    axes.plot(scored, [p.mrr for p in curve], label="MRR@20 since start")
    axes.plot(scored, [p.rolling_mrr for p in curve], label=f"MRR@20, last {rolling_window:,} events", alpha=0.6)
    axes.set_xlabel("scored events")
    axes.set_ylabel("prequential metric")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title("Online learner, prequential quality over the replay")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"plot written to {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="dataset file, e.g. ../shared/datasets/yoochoose-1-64/rec15_train_full.txt")
    parser.add_argument("--plot", type=Path, default=Path("online_learning_curve.png"), help="PNG of the prequential curve (default online_learning_curve.png)")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--compare-models", action="store_true", help="also learn the events in process with each candidate model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cores: {os.cpu_count()}  machine: {platform.machine()}  python: {platform.python_version()}")
    print("load average (1, 5, 15 min) at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    config = None
    bootstrap = args.bootstrap_servers
    work_dir = Path(tempfile.mkdtemp(prefix="bench-learn-"))
    if bootstrap is None:
        config = StackConfig.from_env(state_dir=work_dir / "stack", kafka_port=free_port(), kafka_controller_port=free_port())
        kafka.start(config)
        bootstrap = config.bootstrap_servers
    try:
        topic, produced = replay_file(args.path, bootstrap)
        baseline_rate, baseline_cpu_rate, events = decode_only(bootstrap, topic, produced)
        learner_rate, cpu_rate, learner = run_learner(bootstrap, topic, produced, work_dir)
        counters = learner.counters
        print(f"baseline (consume + decode + validate): {baseline_rate:,.0f} events/s, "
              f"{baseline_cpu_rate:,.0f} events per CPU second of this process")
        print(f"learner (consume + decode + score + learn + checkpoints + snapshots): {learner_rate:,.0f} events/s, "
              f"{cpu_rate:,.0f} events per CPU second of this process")
        print(f"ratio learner / baseline: {learner_rate / baseline_rate:.2f} in events/s, "
              f"{cpu_rate / baseline_cpu_rate:.2f} in events per CPU second")
        print(f"events learned {counters.events_learned:,}, scored {counters.events_scored:,}, "
              f"unknown items {counters.unknown_items:,}, drift events {counters.drift_events}")
        print(f"prequential Recall@20 {learner.recall.get():.4f}  MRR@20 {learner.mrr.get():.4f}")
        print("curve (scored events: Recall@20 / MRR@20 since start):")
        for point in learner.curve[9::10]:
            print(f"  {point.events_scored:>7,}: {point.recall:.4f} / {point.mrr:.4f}")
        plot_curve(learner.curve, args.plot, learner.config.rolling_window_events)
        print("load average (1, 5, 15 min) after the learner: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
        probe_snapshot(work_dir / "snapshots")
        if args.compare_models:
            # A stable sort keeps each session's order, so it matches the learner's event-time merge.
            in_time_order = sorted(events, key=lambda event: event.event_time)
            print(f"model comparison on the {len(events):,} events in event-time order:")
            compare_models(in_time_order)
    finally:
        if config is not None:
            kafka.stop(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
