"""The Flink SQL of the feature job, built from a :class:`FeatureJobConfig`.

Everything here runs in the JVM: no Python UDF is needed, so the job has no
Python workers on the TaskManager.

Data flow::

    events (Kafka) -> valid -> deduplicated (first arrival of each event_id)
        -> late events (at or behind the watermark) -> events-late topic
        -> on-time events -> session segments (a gap > session_gap starts anew)
            -> running session aggregates, one output row per event -> features-session
            -> previous item -> next item pairs -> top-K per item per window -> features-transition
        -> on-time events -> item counts per sliding window -> features-item
        -> on-time events -> top-K items of the whole catalogue per window -> features-popular
"""

from __future__ import annotations

from datetime import timedelta

from seqrec.events import EVENT_TYPES, flink_columns

from pipelines.feature_rows import POPULAR_SCOPE
from pipelines.features_config import FeatureJobConfig, SlidingWindow

MS = timedelta(milliseconds=1)
# Joins the recent item ids into one string inside Flink, and splits it again.
# NOTE: an item id that contains U+001F would be split in two.
ITEM_SEPARATOR = "U&'\\001F'"


def interval(duration: timedelta) -> str:
    """Return ``duration`` as a Flink SQL DAY TO SECOND interval literal (millisecond precision)."""
    total_ms = duration // MS
    days, rest = divmod(total_ms, 24 * 3600 * 1000)
    hours, rest = divmod(rest, 3600 * 1000)
    minutes, rest = divmod(rest, 60 * 1000)
    seconds, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY TO SECOND(3)"


def _epoch_ms(column: str) -> str:
    # Window bounds are TIMESTAMP(3) in the session time zone, which the job sets to UTC.
    # NOTE: TIMESTAMPDIFF returns INT seconds, which overflows in 2038.
    return f"(CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', {column}) AS BIGINT) * 1000)"


def source_table(config: FeatureJobConfig) -> str:
    options = {
        "connector": "kafka",
        "topic": config.events_topic,
        "properties.bootstrap.servers": config.bootstrap_servers,
        "properties.group.id": config.group_id,
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": config.startup_mode,
        "format": "json",
        # Producers validate events before they reach the topic; a record that is
        # not JSON is skipped here rather than failing the job.
        "json.ignore-parse-errors": "true",
        "scan.watermark.emit.strategy": "on-event" if config.watermark_emit == "on-event" else "on-periodic",
        "scan.watermark.idle-timeout": f"{config.idle_timeout // MS} ms",
    }
    if config.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return f"""
CREATE TABLE events (
{flink_columns()},
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  arrival AS PROCTIME(),
  WATERMARK FOR ts AS ts - {interval(config.out_of_orderness)}
) WITH ({_options(options)})"""


def _options(options: dict[str, str]) -> str:
    return ", ".join(f"'{key}' = '{value}'" for key, value in options.items())


def _kafka_sink(name: str, topic: str, key: str, columns: str, config: FeatureJobConfig) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": config.bootstrap_servers,
        "key.format": "raw",
        "key.fields": key,
        "value.format": "json",
        "value.fields-include": "ALL",
        # Feature rows are upserts of the latest value, so a row written twice
        # after a failover leaves the same final state; no transactions needed.
        "sink.delivery-guarantee": "at-least-once",
    }
    return f"CREATE TABLE {name} ({columns}) WITH ({_options(options)})"


def sink_tables(config: FeatureJobConfig) -> list[str]:
    session_columns = """
  session_id STRING, event_count BIGINT, distinct_items BIGINT, last_items ARRAY<STRING>,
  first_event_time BIGINT, last_event_time BIGINT, duration_ms BIGINT,
  view_count BIGINT, click_count BIGINT, add_to_cart_count BIGINT, purchase_count BIGINT,
  last_event_type STRING, last_item_id STRING"""
    item_columns = """
  item_id STRING, `window` STRING, window_start BIGINT, window_end BIGINT,
  `views` BIGINT, `clicks` BIGINT, `add_to_carts` BIGINT, `purchases` BIGINT, `distinct_sessions` BIGINT"""
    transition_columns = """
  item_id STRING, next_item_id STRING, `count` BIGINT, `rank` BIGINT, window_start BIGINT, window_end BIGINT"""
    popular_columns = """
  `scope` STRING, item_id STRING, `count` BIGINT, `rank` BIGINT, window_start BIGINT, window_end BIGINT"""
    late_columns = f"{flink_columns()}, `watermark` BIGINT"
    return [
        _kafka_sink("session_features", config.session_topic, "session_id", session_columns, config),
        _kafka_sink("item_features", config.item_topic, "item_id", item_columns, config),
        _kafka_sink("transition_features", config.transition_topic, "item_id", transition_columns, config),
        _kafka_sink("popular_features", config.popular_topic, "scope", popular_columns, config),
        _kafka_sink("late_events", config.late_topic, "session_id", late_columns, config),
    ]


def views(config: FeatureJobConfig) -> list[str]:
    required = " AND ".join(
        f"{name} IS NOT NULL" for name in ("event_id", "session_id", "item_id", "event_type", "event_time")
    )
    event_types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    gap_ms = config.session_gap // MS
    type_counts = ",\n  ".join(
        f"SUM(CASE WHEN event_type = '{t}' THEN 1 ELSE 0 END) OVER w AS {t}_count" for t in EVENT_TYPES
    )
    return [
        f"""
CREATE TEMPORARY VIEW valid_events AS
SELECT * FROM events WHERE {required} AND event_type IN ({event_types})""",
        # Keep the first arrival of each event_id. Ordering on processing time
        # makes this an append-only stream that keeps the event-time attribute.
        """
CREATE TEMPORARY VIEW unique_events AS
SELECT event_id, session_id, user_id, item_id, event_type, event_time, category, price, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY arrival ASC) AS arrival_rank
  FROM valid_events
) WHERE arrival_rank = 1""",
        # Late-event policy: an event at or behind the current watermark is left
        # out of every feature and written to the late topic, which counts it.
        # Rowtime OVER and window operators drop such rows anyway, so this makes
        # the drop visible. Downstream watermarks never run ahead of this one, so
        # a row that passes here is on time downstream too.
        """
CREATE TEMPORARY VIEW on_time_events AS
SELECT * FROM unique_events
WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts)""",
        # NOTE: the reported watermark is cut to whole seconds.
        """
CREATE TEMPORARY VIEW late_unique_events AS
SELECT *, CAST(TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ(0, 3), CURRENT_WATERMARK(ts)) AS BIGINT) * 1000 AS `watermark`
FROM unique_events
WHERE CURRENT_WATERMARK(ts) IS NOT NULL AND ts <= CURRENT_WATERMARK(ts)""",
        # MIN over the previous and the current row is the previous event time,
        # because rows arrive in event-time order here (the current one on the first row).
        """
CREATE TEMPORARY VIEW with_previous_time AS
SELECT *, MIN(event_time) OVER (
  PARTITION BY session_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS previous_time
FROM on_time_events""",
        f"""
CREATE TEMPORARY VIEW segmented_events AS
SELECT *, SUM(CASE WHEN event_time - previous_time > {gap_ms} THEN 1 ELSE 0 END) OVER (
  PARTITION BY session_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS segment
FROM with_previous_time""",
        f"""
CREATE TEMPORARY VIEW session_totals AS
SELECT session_id, segment, item_id, event_type, event_time, ts,
  COUNT(*) OVER w AS event_count,
  COUNT(DISTINCT item_id) OVER w AS distinct_items,
  MIN(event_time) OVER w AS first_event_time,
  {type_counts}
FROM segmented_events
WINDOW w AS (PARTITION BY session_id, segment ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""",
        f"""
CREATE TEMPORARY VIEW session_rows AS
SELECT *, SPLIT(LISTAGG(item_id, {ITEM_SEPARATOR}) OVER (
  PARTITION BY session_id, segment ORDER BY ts ROWS BETWEEN {config.last_items - 1} PRECEDING AND CURRENT ROW),
  {ITEM_SEPARATOR}) AS last_items
FROM session_totals""",
        # The previous item of the session is the next-to-last recent item.
        # Repeated events on one item are not transitions.
        """
CREATE TEMPORARY VIEW transitions AS
SELECT item_id AS next_item_id, last_items[CARDINALITY(last_items) - 1] AS item_id, ts FROM session_rows
WHERE CARDINALITY(last_items) >= 2 AND last_items[CARDINALITY(last_items) - 1] <> item_id""",
    ]


def inserts(config: FeatureJobConfig) -> list[str]:
    statements = [
        """
INSERT INTO session_features
SELECT session_id, event_count, distinct_items, last_items, first_event_time, event_time,
  event_time - first_event_time, CAST(view_count AS BIGINT), CAST(click_count AS BIGINT),
  CAST(add_to_cart_count AS BIGINT), CAST(purchase_count AS BIGINT), event_type, item_id
FROM session_rows""",
        """
INSERT INTO late_events
SELECT event_id, session_id, user_id, item_id, event_type, event_time, category, price, `watermark`
FROM late_unique_events""",
    ]
    statements += [_item_window_insert(window) for window in config.item_windows]
    statements.append(_transition_insert(config.transition_window, config.transition_top_k))
    statements.append(_popular_insert(config.popular_window, config.popular_top_k))
    return statements


def _hop(table: str, window: SlidingWindow) -> str:
    return f"TABLE(HOP(TABLE {table}, DESCRIPTOR(ts), {interval(window.slide)}, {interval(window.size)}))"


def _item_window_insert(window: SlidingWindow) -> str:
    return f"""
INSERT INTO item_features
SELECT item_id, '{window.name}', {_epoch_ms('window_start')}, {_epoch_ms('window_end')},
  SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END),
  SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END),
  SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END),
  SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END),
  COUNT(DISTINCT session_id)
FROM {_hop('on_time_events', window)}
GROUP BY window_start, window_end, item_id"""


def _transition_insert(window: SlidingWindow, top_k: int) -> str:
    return f"""
INSERT INTO transition_features
SELECT item_id, next_item_id, transition_count, next_rank, {_epoch_ms('window_start')}, {_epoch_ms('window_end')}
FROM (
  SELECT *, ROW_NUMBER() OVER (
    PARTITION BY window_start, window_end, item_id ORDER BY transition_count DESC, next_item_id ASC) AS next_rank
  FROM (
    SELECT window_start, window_end, item_id, next_item_id, COUNT(*) AS transition_count
    FROM {_hop('transitions', window)}
    GROUP BY window_start, window_end, item_id, next_item_id
  )
) WHERE next_rank <= {top_k}"""


def _popular_insert(window: SlidingWindow, top_k: int) -> str:
    # A window Top-N without a partition key runs on one task, which is fine
    # for one row per item and window.
    return f"""
INSERT INTO popular_features
SELECT '{POPULAR_SCOPE}', item_id, item_count, item_rank, {_epoch_ms('window_start')}, {_epoch_ms('window_end')}
FROM (
  SELECT *, ROW_NUMBER() OVER (
    PARTITION BY window_start, window_end ORDER BY item_count DESC, item_id ASC) AS item_rank
  FROM (
    SELECT window_start, window_end, item_id, COUNT(*) AS item_count
    FROM {_hop('on_time_events', window)}
    GROUP BY window_start, window_end, item_id
  )
) WHERE item_rank <= {top_k}"""


def statements(config: FeatureJobConfig) -> tuple[list[str], list[str]]:
    """Return (DDL and view statements, INSERT statements) of the whole job."""
    return [source_table(config), *sink_tables(config), *views(config)], inserts(config)
