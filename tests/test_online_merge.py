"""The event-time merge of partitions: order, waiting for lagging partitions, invalid records."""

from __future__ import annotations

from online_learning.partition_merge import MergedRecord, PartitionMerger
from seqrec.events import InvalidEvent, Reason


def queue(merger: PartitionMerger, partition: int, times: list[int | None], first_offset: int = 0) -> None:
    for offset, time_ms in enumerate(times, start=first_offset):
        error = None if time_ms is not None else InvalidEvent(Reason.UNPARSEABLE, "bad")
        merger.add(MergedRecord(partition, offset, time_ms, None, error))


def released(merger: PartitionMerger, lagging: set[int] = frozenset()) -> list[tuple[int, int]]:
    return [(record.partition, record.offset) for record in merger.release(lambda partition: partition in lagging)]


def test_merge_orders_by_event_time():
    merger = PartitionMerger()
    queue(merger, 0, [5, 20, 21])
    queue(merger, 1, [1, 6, 30])
    queue(merger, 2, [10])
    assert released(merger) == [(1, 0), (0, 0), (1, 1), (2, 0), (0, 1), (0, 2), (1, 2)]


def test_merge_breaks_ties_by_partition():
    merger = PartitionMerger()
    queue(merger, 1, [7])
    queue(merger, 0, [7])
    assert released(merger) == [(0, 0), (1, 0)]


def test_merge_waits_for_lagging_partition():
    merger = PartitionMerger()
    queue(merger, 0, [1, 2, 3])
    queue(merger, 1, [2])
    # Partition 1 has more records in Kafka, so the merge stops once its queue is empty.
    assert released(merger, lagging={1}) == [(0, 0), (0, 1), (1, 0)]
    assert merger.queued(0) == 1
    queue(merger, 1, [None, 9], first_offset=1)
    # Partition 0 has nothing more in Kafka, so partition 1 runs on until its queue is empty.
    assert released(merger, lagging={1}) == [(1, 1), (0, 2), (1, 2)]
    assert merger.queued(0) == 0
    assert merger.queued(1) == 0


def test_invalid_record_leaves_at_queue_head():
    merger = PartitionMerger()
    queue(merger, 0, [50, None, 60])
    queue(merger, 1, [10, 55])
    assert released(merger) == [(1, 0), (0, 0), (0, 1), (1, 1), (0, 2)]


def test_merge_waits_for_partition_without_records_yet():
    merger = PartitionMerger(partitions=[0, 1])
    queue(merger, 0, [1, 2])
    assert released(merger, lagging={1}) == []
    assert released(merger) == [(0, 0), (0, 1)]
