"""The demo's Markdown report with PNG plots, and the summary table it prints."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from demo.dataset import DemoData
from demo.live import CUTOFFS, STRATEGIES, LiveResult

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class WrittenReport:
    markdown: Path
    table: str


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def summary_table(live: LiveResult) -> str:
    """Return the Markdown table of streaming Recall@20 and MRR@20 per strategy, with latency and freshness."""
    latency = f"{_ms(percentile(live.latencies_ms, 50))} / {_ms(percentile(live.latencies_ms, 99))}"
    freshness = f"{_ms(percentile(live.freshness_ms, 50))} / {_ms(percentile(live.freshness_ms, 99))}"
    lines = [
        "| strategy | cases | Recall@20 (%) | MRR@20 (%) | serving latency p50 / p99 (ms) | feature freshness p50 / p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name in STRATEGIES:
        score = live.scores[name]
        lines.append(f"| {name} | {score.cases:,} | {100 * score.recall(20):.2f} | {100 * score.mrr(20):.2f} "
                     f"| {latency} | {freshness} |")
    return "\n".join(lines)


def _plot_metrics_by_k(live: LiveResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (recall_axis, mrr_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name in STRATEGIES:
        score = live.scores[name]
        recall_axis.plot(CUTOFFS, [100 * score.recall(k) for k in CUTOFFS], marker="o", label=name)
        mrr_axis.plot(CUTOFFS, [100 * score.mrr(k) for k in CUTOFFS], marker="o", label=name)
    recall_axis.set(title="Recall@K, live replay", xlabel="K", ylabel="%")
    mrr_axis.set(title="MRR@K, live replay", xlabel="K", ylabel="%")
    recall_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_latency(live: LiveResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    if live.latencies_ms:
        upper = max(percentile(live.latencies_ms, 99.5), 1.0)
        axis.hist(np.clip(live.latencies_ms, 0, upper), bins=60)
    axis.set(title="Recommend latency seen by the client", xlabel="ms (clipped at p99.5)", ylabel="calls")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_learner_curve(curve: list[dict[str, Any]], path: Path) -> bool:
    """Plot the learner's prequential Recall@20 and MRR@20 against scored events; return False without a curve."""
    if not curve:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    events = [point["events_scored"] for point in curve]
    axis.plot(events, [100 * point["recall"] for point in curve], label="Recall@20 since start")
    axis.plot(events, [100 * point["mrr"] for point in curve], label="MRR@20 since start")
    axis.plot(events, [100 * point["rolling_recall"] for point in curve], label="Recall@20, rolling", alpha=0.6)
    axis.set(title="River learner, prequential (history, then live test events)", xlabel="events scored", ylabel="%")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def summary_values(live: LiveResult, training: dict) -> dict[str, Any]:
    """Return the figures of the run as plain values, for ``summary.json``."""
    return {
        "events_sent": live.events_sent,
        "seconds": live.seconds,
        "recommend_failures": dict(live.recommend_failures),
        "send_failures": dict(live.send_failures),
        "cases": {name: live.scores[name].cases for name in STRATEGIES},
        "recall": {name: {k: live.scores[name].recall(k) for k in CUTOFFS} for name in STRATEGIES},
        "mrr": {name: {k: live.scores[name].mrr(k) for k in CUTOFFS} for name in STRATEGIES},
        "ndcg": {name: {k: live.scores[name].ndcg_at(k) for k in CUTOFFS} for name in STRATEGIES},
        "latency_ms": {"p50": percentile(live.latencies_ms, 50), "p99": percentile(live.latencies_ms, 99)},
        "freshness_ms": {"p50": percentile(live.freshness_ms, 50), "p99": percentile(live.freshness_ms, 99),
                         "samples": len(live.freshness_ms), "timeouts": live.freshness_timeouts},
        "paths": dict(live.paths),
        "fallback_reasons": dict(live.fallback_reasons),
        "torch_versions": dict(live.torch_versions),
        "river_versions_seen": len(live.river_versions),
        "registry_decision": training.get("decision"),
    }


def _counter_text(counter: Counter) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counter.most_common()) or "none"


def write_report(
    report_dir: Path, *, live: LiveResult, training: dict, timings: dict[str, float], data: DemoData,
    history_events: int, test_rejected: Counter, learner_curve: list[dict], wall_seconds: float,
) -> WrittenReport:
    """Write ``report.md`` and its plots into ``report_dir``; return its path and the summary table."""
    report_dir.mkdir(parents=True, exist_ok=True)
    table = summary_table(live)
    _plot_metrics_by_k(live, report_dir / "metrics_by_k.png")
    _plot_latency(live, report_dir / "latency.png")
    has_curve = _plot_learner_curve(learner_curve, report_dir / "learner_prequential.png")
    by_k = ["| strategy | " + " | ".join(f"R@{k}" for k in CUTOFFS) + " | " + " | ".join(f"MRR@{k}" for k in CUTOFFS) + " |",
            "|---|" + "---|" * (2 * len(CUTOFFS))]
    for name in STRATEGIES:
        score = live.scores[name]
        by_k.append(f"| {name} | " + " | ".join(f"{100 * score.recall(k):.2f}" for k in CUTOFFS) + " | "
                    + " | ".join(f"{100 * score.mrr(k):.2f}" for k in CUTOFFS) + " |")
    decision = training.get("decision") or {}
    offline = {training.get("model", "model"): training.get("metrics", {}), **training.get("baselines", {})}
    offline_rows = ["| model | validation R@20 | validation MRR@20 | test R@20 | test MRR@20 |", "|---|---|---|---|---|"]
    for name, metrics in offline.items():
        cells = []
        for split in ("validation", "test"):
            values = metrics.get(split, {})
            cells += [f"{100 * values['recall@20']:.2f}" if "recall@20" in values else "n/a",
                      f"{100 * values['mrr@20']:.2f}" if "mrr@20" in values else "n/a"]
        offline_rows.append(f"| {name} | " + " | ".join(cells) + " |")
    lines = [
        "# seqrec demo report",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; whole run {wall_seconds:,.0f} s.",
        f"History: `{data.history}` ({history_events:,} events replayed). Test: `{data.test}` "
        f"({live.events_sent:,} events sent live in {live.seconds:,.0f} s; invalid rows left out: "
        f"{_counter_text(test_rejected)}).",
        "",
        "## Live replay",
        "",
        "For every test event the client calls Recommend with the session id only, then SendEvent. "
        "A next-item case is an event that continues a session with earlier test events. Each strategy ranks the "
        "items of the same response (see `demo/live.py`); popularity is the `popular_items` list in Feast.",
        "",
        table,
        "",
        "![metrics by K](metrics_by_k.png)",
        "",
        "\n".join(by_k),
        "",
        f"Serving paths: {_counter_text(live.paths)}. Fallback reasons: {_counter_text(live.fallback_reasons)}.",
        f"Torch model versions used: {_counter_text(live.torch_versions)}. River snapshot versions seen: "
        f"{len(live.river_versions)}.",
        f"Failures: Recommend {_counter_text(live.recommend_failures)}; SendEvent {_counter_text(live.send_failures)}.",
        f"Feature freshness: time from SendEvent until the session's Feast row has the event, sampled on "
        f"{len(live.freshness_ms):,} events ({live.freshness_timeouts} timed out).",
        "",
        "![latency](latency.png)",
        "",
        "## Nightly training (offline, on the history's last days)",
        "",
        "\n".join(offline_rows),
        "",
        f"Registry decision: {json.dumps(decision)}",
        "",
        "## River learner",
        "",
        "![prequential curve](learner_prequential.png)" if has_curve else "The learner wrote no prequential curve.",
        "",
        "## Timings (s)",
        "",
        "\n".join(f"- {name}: {seconds:,.1f}" for name, seconds in timings.items()),
        "",
    ]
    markdown = report_dir / REPORT_FILE
    markdown.write_text("\n".join(lines))
    (report_dir / SUMMARY_FILE).write_text(json.dumps(summary_values(live, training), indent=2) + "\n")
    return WrittenReport(markdown, table)
