"""Feast definitions of seqrec: entities, sources, feature views, feature services.

The Flink feature job computes every value; the feature writer
(``pipelines/feature_writer.py``) writes them to the online store through the
feature views below. Times are UTC epoch milliseconds stored as Int64, and each
view's ``event_timestamp`` is the time its row describes (the session's last
event, or the end of the item's window).

About the TTLs: in Feast 0.67 a feature view's TTL bounds how far back a
point-in-time join (``get_historical_features``) looks for a row. Online reads
return the stored row whatever its age, so serving must apply the same age
limits to ``last_event_time`` and ``window_end``, plus the pipeline's delay, so
that it reads what training reads.
The TTLs follow the windows of the Flink job (``pipelines/features_config.py``):
a 30-minute session gap, and 1-hour, 24-hour and 24-hour transition windows
that slide every 5 minutes.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Int64, String

# Entities

session = Entity(
    name="session",
    join_keys=["session_id"],
    value_type=ValueType.STRING,
    description="A browsing session, identified by the session_id that keys the events topic.",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item, identified by the events' item_id.",
)

scope = Entity(
    name="scope",
    join_keys=["scope"],
    value_type=ValueType.STRING,
    description='A slice of the catalogue with its own popularity list; the Flink job writes "all".',
)

# Sources: one push source per feature view, so that a push reaches exactly one
# view. Each wraps the Parquet files of that view, which training reads.


def _push_source(view_name: str) -> PushSource:
    batch_source = FileSource(
        name=f"{view_name}_parquet",
        path=f"data/offline/{view_name}/",
        timestamp_field="event_timestamp",
        description=f"Parquet history of {view_name}, one row per update.",
    )
    return PushSource(name=f"{view_name}_push", batch_source=batch_source)


session_features_source = _push_source("session_features")
item_stats_1h_source = _push_source("item_stats_1h")
item_stats_24h_source = _push_source("item_stats_24h")
item_transitions_source = _push_source("item_transitions")
popular_items_source = _push_source("popular_items")

# Feature views

session_features = FeatureView(
    name="session_features",
    entities=[session],
    # The job starts a new session segment, with fresh counts, after a 30-minute
    # gap without events. A row older than the gap belongs to a finished segment,
    # so the next event of the same session_id must not join to it.
    ttl=timedelta(minutes=30),
    schema=[
        Field(name="session_id", dtype=String),
        Field(name="event_count", dtype=Int64, description="events in the session so far"),
        Field(name="distinct_items", dtype=Int64, description="distinct item_ids in the session"),
        Field(
            name="last_items",
            dtype=Array(String),
            description="item_ids of the latest events, oldest first, at most the Flink job's limit",
        ),
        Field(name="first_event_time", dtype=Int64, description="first event time, UTC epoch ms"),
        Field(name="last_event_time", dtype=Int64, description="latest event time, UTC epoch ms"),
        Field(name="duration_ms", dtype=Int64, description="last_event_time - first_event_time, ms"),
        Field(name="view_count", dtype=Int64, description="view events in the session"),
        Field(name="click_count", dtype=Int64, description="click events in the session"),
        Field(name="add_to_cart_count", dtype=Int64, description="add_to_cart events in the session"),
        Field(name="purchase_count", dtype=Int64, description="purchase events in the session"),
        Field(name="last_event_type", dtype=String, description="event_type of the latest event"),
        Field(name="last_item_id", dtype=String, description="item_id of the latest event"),
    ],
    source=session_features_source,
    online=True,
    description="Running aggregates of one session, updated on every event.",
)


def _item_stats_view(name: str, window: str, ttl: timedelta, source: PushSource) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[item],
        ttl=ttl,
        schema=[
            Field(name="item_id", dtype=String),
            Field(name="views", dtype=Int64, description=f"view events in the last {window}"),
            Field(name="clicks", dtype=Int64, description=f"click events in the last {window}"),
            Field(name="add_to_carts", dtype=Int64, description=f"add_to_cart events in the last {window}"),
            Field(name="purchases", dtype=Int64, description=f"purchase events in the last {window}"),
            Field(name="distinct_sessions", dtype=Int64, description=f"sessions that touched the item in the last {window}"),
            Field(name="window_end", dtype=Int64, description="end of the counted window, UTC epoch ms, exclusive"),
        ],
        source=source,
        online=True,
        description=f"Event counts of one item over the {window} window that ends at window_end.",
    )


# The job emits a row for every 5-minute slide of the window in which the item
# had events. A row with no newer row one slide later means the item had no
# events in the newer window, whose counts are all zero. A TTL of one slide turns
# such rows into missing values, read as zero, so it must follow the job's slide.
ITEM_STATS_TTL = timedelta(minutes=5)
item_stats_1h = _item_stats_view("item_stats_1h", "1h", ITEM_STATS_TTL, item_stats_1h_source)
item_stats_24h = _item_stats_view("item_stats_24h", "24h", ITEM_STATS_TTL, item_stats_24h_source)

item_transitions = FeatureView(
    name="item_transitions",
    entities=[item],
    # Unlike the counts, an item's last list stays a useful guess of what follows
    # it after the item has had no transitions for 24 hours, because that changes
    # slowly. A week bounds the age of the lists in training data.
    ttl=timedelta(days=7),
    schema=[
        Field(name="item_id", dtype=String),
        Field(
            name="next_item_ids",
            dtype=Array(String),
            description="items viewed next in the same session, top K, by count descending, ties by item_id ascending",
        ),
        Field(
            name="next_item_counts",
            dtype=Array(Int64),
            description="transition counts, aligned with next_item_ids",
        ),
        Field(name="window_end", dtype=Int64, description="end of the counted window, UTC epoch ms, exclusive"),
    ],
    source=item_transitions_source,
    online=True,
    description="Top next items after one item within sessions, over the window that ends at window_end.",
)

popular_items = FeatureView(
    name="popular_items",
    entities=[scope],
    # Serving falls back to this list when it has nothing better, so an old list
    # is still better than none. A day bounds its age in training data.
    ttl=timedelta(days=1),
    schema=[
        Field(name="scope", dtype=String),
        Field(
            name="item_ids",
            dtype=Array(String),
            description="most frequent items of the scope (events of any type), top K, count descending, ties by item_id",
        ),
        Field(name="counts", dtype=Array(Int64), description="event counts, aligned with item_ids"),
        Field(name="window_end", dtype=Int64, description="end of the counted window, UTC epoch ms, exclusive"),
    ],
    source=popular_items_source,
    online=True,
    description="The most frequent items of a scope over the 1-hour window that ends at window_end.",
)

# Feature services: versioned names, so that a model keeps reading the feature
# set it was trained with while a new version is rolled out beside it.

session_recommendation_v1 = FeatureService(
    name="session_recommendation_v1",
    features=[session_features, item_transitions, item_stats_1h, item_stats_24h],
    description=(
        "Features to recommend the next items of a session. Each entity row needs "
        "session_id and item_id, usually the session's last_item_id."
    ),
)

item_ranking_v1 = FeatureService(
    name="item_ranking_v1",
    features=[item_stats_1h, item_stats_24h, item_transitions],
    description="Item features to score candidate items, one entity row (item_id) per candidate.",
)

popularity_v1 = FeatureService(
    name="popularity_v1",
    features=[popular_items],
    description='Popular items for fallbacks and cold starts; the entity row is {"scope": "all"}.',
)
