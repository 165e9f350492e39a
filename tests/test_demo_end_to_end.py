"""The whole main job on a small fixture: Kafka, Flink, Feast, Beam training, River, gRPC and the report.

The fixture's sessions walk item chains (i1 -> i2 -> i3 ...), so every part has
something to learn. The test checks what can be counted independently: the
events sent, the next-item cases of every strategy, the model the server used,
the report files, and that no process outlives the run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from demo.orchestrator import DemoSettings, run
from stack.process import free_port

pytestmark = pytest.mark.integration

DAY0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
HISTORY_DAYS = 4
SESSIONS_PER_DAY = 30
CHAIN = 6
ITEMS = 12
TEST_SESSIONS = 4
TEST_EVENTS_PER_SESSION = 4
EVENT_GAP = timedelta(seconds=60)


def chain_session(start_item: int, length: int) -> list[str]:
    return [f"{100 + (start_item + step) % ITEMS}" for step in range(length)]


def write_fixture(folder: Path) -> tuple[int, int]:
    """Write tiny_train_full.txt and tiny_test.txt in the session-rec layout; return (test events, test cases)."""
    folder.mkdir()
    header = "SessionId\tItemId\tCatId\tTime\n"
    history, session_id = [], 1
    for day in range(HISTORY_DAYS):
        for number in range(SESSIONS_PER_DAY):
            start = DAY0 + timedelta(days=day, minutes=20 * number)
            for position, item in enumerate(chain_session(number, CHAIN)):
                moment = (start + position * EVENT_GAP).timestamp()
                history.append(f"{session_id}\t{item}\t0\t{moment:.3f}\n")
            session_id += 1
    (folder / "tiny_train_full.txt").write_text(header + "".join(history))

    # Test sessions interleave, so that other sessions' events move the watermark
    # past a session's event before that session's next event.
    test = []
    test_day = DAY0 + timedelta(days=HISTORY_DAYS)
    for number in range(TEST_SESSIONS):
        start = test_day + number * EVENT_GAP / TEST_SESSIONS
        for position, item in enumerate(chain_session(3 * number, TEST_EVENTS_PER_SESSION)):
            moment = (start + position * EVENT_GAP).timestamp()
            test.append(f"{session_id}\t{item}\t0\t{moment:.3f}\n")
        session_id += 1
    (folder / "tiny_test.txt").write_text(header + "".join(test))
    return len(test), TEST_SESSIONS * (TEST_EVENTS_PER_SESSION - 1)


def test_demo_runs_every_part_and_reports(tmp_path, monkeypatch, capsys):
    test_events, test_cases = write_fixture(tmp_path / "tiny")
    for name in ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "FLINK_REST_PORT", "FLINK_RPC_PORT", "REDIS_PORT"):
        monkeypatch.setenv(f"SEQREC_{name}", str(free_port()))
    monkeypatch.setenv("SEQREC_STATE_DIR", str(tmp_path / "stack"))
    children_before = {child.pid for child in psutil.Process().children(recursive=True)}

    code = run(DemoSettings(data=tmp_path / "tiny", report_dir=tmp_path / "report", speedup=60.0,
                            max_wait=timedelta(seconds=1), epochs=1, batch_size=8, curve_interval_events=50))

    output = capsys.readouterr().out
    assert code == 0, output
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["events_sent"] == test_events
    assert summary["recommend_failures"] == {}
    assert summary["send_failures"] == {}
    for strategy in ("popularity", "torch", "river", "blend"):
        assert summary["cases"][strategy] == test_cases, strategy
    assert summary["registry_decision"]["action"] == "promote"
    model_responses = summary["paths"].get("SERVING_PATH_MODEL", 0)
    assert model_responses >= 1
    assert summary["torch_versions"].get(summary["registry_decision"]["version"]) == model_responses
    for name in ("report.md", "metrics_by_k.png", "latency.png", "learner_prequential.png"):
        assert (tmp_path / "report" / name).is_file(), name
    leftovers = {child.pid for child in psutil.Process().children(recursive=True)} - children_before
    assert leftovers == set()
