"""Features computed with pandas, independently of Flink, from events in arrival order.

The rules mirror the job's documented semantics: the first arrival of an
event_id wins; the watermark before an event is the greatest earlier event time
minus the out-of-orderness bound (on-event emission, one partition); an event at
or behind it is late and left out; a gap longer than the session gap starts a
new segment; sliding windows are aligned to the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Window:
    size_ms: int
    slide_ms: int


def split_late(events: list[dict], out_of_orderness: timedelta) -> tuple[pd.DataFrame, list[str]]:
    """Return (on-time unique events, ids of late unique events) from events in arrival order."""
    bound = out_of_orderness // MS
    seen: set[str] = set()
    max_time = None
    on_time, late = [], []
    for event in events:
        watermark = None if max_time is None else max_time - bound
        max_time = event["event_time"] if max_time is None else max(max_time, event["event_time"])
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        if watermark is not None and event["event_time"] <= watermark:
            late.append(event["event_id"])
        else:
            on_time.append(event)
    return pd.DataFrame(on_time), late


def _last_segment(group: pd.DataFrame, gap_ms: int) -> pd.DataFrame:
    group = group.sort_values("event_time")
    new_segment = group["event_time"].diff() > gap_ms
    return group[new_segment.cumsum() == new_segment.cumsum().iloc[-1]]


def session_features(on_time: pd.DataFrame, session_gap: timedelta, last_items: int) -> dict[str, dict]:
    features = {}
    for session_id, group in on_time.groupby("session_id"):
        segment = _last_segment(group, session_gap // MS)
        types = segment["event_type"].value_counts()
        features[session_id] = {
            "event_count": len(segment),
            "distinct_items": segment["item_id"].nunique(),
            "last_items": list(segment["item_id"].iloc[-last_items:]),
            "first_event_time": int(segment["event_time"].iloc[0]),
            "last_event_time": int(segment["event_time"].iloc[-1]),
            "duration_ms": int(segment["event_time"].iloc[-1] - segment["event_time"].iloc[0]),
            "view_count": int(types.get("view", 0)),
            "click_count": int(types.get("click", 0)),
            "add_to_cart_count": int(types.get("add_to_cart", 0)),
            "purchase_count": int(types.get("purchase", 0)),
            "last_event_type": segment["event_type"].iloc[-1],
            "last_item_id": segment["item_id"].iloc[-1],
        }
    return features


def _latest_window_end(latest_time: int, window: Window) -> int:
    return latest_time // window.slide_ms * window.slide_ms + window.size_ms


def item_stats(on_time: pd.DataFrame, window: Window) -> dict[str, dict]:
    """Counts of each item in the last window that contains one of its events."""
    stats = {}
    for item_id, group in on_time.groupby("item_id"):
        end = _latest_window_end(int(group["event_time"].max()), window)
        inside = group[(group["event_time"] >= end - window.size_ms) & (group["event_time"] < end)]
        types = inside["event_type"].value_counts()
        stats[item_id] = {
            "views": int(types.get("view", 0)),
            "clicks": int(types.get("click", 0)),
            "add_to_carts": int(types.get("add_to_cart", 0)),
            "purchases": int(types.get("purchase", 0)),
            "distinct_sessions": inside["session_id"].nunique(),
            "window_end": end,
        }
    return stats


def transitions(on_time: pd.DataFrame, session_gap: timedelta, window: Window, top_k: int) -> dict[str, dict]:
    """Top-K next items of each item in the last window that contains one of its transitions."""
    pairs = []
    gap_ms = session_gap // MS
    for _, group in on_time.groupby("session_id"):
        group = group.sort_values("event_time")
        segment_ids = (group["event_time"].diff() > gap_ms).cumsum()
        for _, segment in group.groupby(segment_ids):
            items = list(segment["item_id"])
            times = list(segment["event_time"])
            for previous, following, at in zip(items, items[1:], times[1:]):
                if previous != following:
                    pairs.append({"item_id": previous, "next_item_id": following, "event_time": at})
    if not pairs:
        return {}
    frame = pd.DataFrame(pairs)
    result = {}
    for item_id, group in frame.groupby("item_id"):
        end = _latest_window_end(int(group["event_time"].max()), window)
        inside = group[(group["event_time"] >= end - window.size_ms) & (group["event_time"] < end)]
        counts = inside.groupby("next_item_id").size().reset_index(name="count")
        counts = counts.sort_values(["count", "next_item_id"], ascending=[False, True]).head(top_k)
        result[item_id] = {
            "next_item_ids": list(counts["next_item_id"]),
            "next_item_counts": [int(c) for c in counts["count"]],
            "window_end": end,
        }
    return result


def popular_items(on_time: pd.DataFrame, window: Window, top_k: int) -> dict[str, dict]:
    """Top-K items by events of any type in the last window that contains an event, under the scope "all"."""
    end = _latest_window_end(int(on_time["event_time"].max()), window)
    inside = on_time[(on_time["event_time"] >= end - window.size_ms) & (on_time["event_time"] < end)]
    counts = inside.groupby("item_id").size().reset_index(name="count")
    counts = counts.sort_values(["count", "item_id"], ascending=[False, True]).head(top_k)
    return {
        "all": {
            "item_ids": list(counts["item_id"]),
            "counts": [int(c) for c in counts["count"]],
            "window_end": end,
        }
    }
