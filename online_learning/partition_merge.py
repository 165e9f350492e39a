"""Merge the records of several Kafka partitions into one stream ordered by event time.

A consumer that reads a backlog gets each partition in large chunks, so one
partition can run days of event time ahead of another. The learner's windows
and its prequential metrics need event-time order across partitions, or the
events of one partition would be scored with counts from the future of another.

The merger keeps a queue per partition, in offset order. It releases the
queue head with the smallest event time, but only while every partition that
still has records in Kafka has a queued record. Ties go to the lower partition
number. An invalid record is released as soon as it reaches the head of its
queue, because it has no event time. Releasing each partition in offset order
keeps the learner's per-partition offsets contiguous.

>>> merger = PartitionMerger(partitions=[0, 1])
>>> for partition, offset, time_ms in [(0, 0, 30), (0, 1, 40), (1, 0, 10), (1, 1, 35)]:
...     merger.add(MergedRecord(partition, offset, time_ms, None))
>>> [(r.partition, r.offset) for r in merger.release(has_more=lambda partition: False)]
[(1, 0), (0, 0), (1, 1), (0, 1)]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from seqrec.events import Event, InvalidEvent


@dataclass(frozen=True)
class MergedRecord:
    """One decoded record; ``event_time_ms`` is None for an invalid record, whose ``error`` is set."""

    partition: int
    offset: int
    event_time_ms: int | None
    event: Event | None
    error: InvalidEvent | None = None


class PartitionMerger:
    """Per-partition queues released in event-time order, as the module docstring describes."""

    def __init__(self, partitions: Iterable[int] = ()) -> None:
        # Every assigned partition needs a queue from the start, or the merge would not
        # wait for a partition before its first records arrive.
        self._queues: dict[int, deque[MergedRecord]] = {partition: deque() for partition in partitions}

    def add(self, record: MergedRecord) -> None:
        """Queue ``record`` behind the earlier records of its partition."""
        self._queues.setdefault(record.partition, deque()).append(record)

    def queued(self, partition: int) -> int:
        """Return the number of records of ``partition`` waiting to be released."""
        queue = self._queues.get(partition)
        return 0 if queue is None else len(queue)

    def release(self, has_more: Callable[[int], bool]) -> Iterator[MergedRecord]:
        """Yield records in merged order until a partition for which ``has_more`` is true runs empty.

        ``has_more(partition)`` returns whether Kafka contains records of that
        partition beyond those already queued. It is called only for
        partitions whose queue is empty.
        """
        queues = self._queues
        while True:
            head_partition = None
            head_time = 0
            for partition, queue in queues.items():
                if not queue:
                    if has_more(partition):
                        return
                    continue
                record = queue[0]
                if record.event_time_ms is None:
                    head_partition = partition
                    break
                if head_partition is None or (record.event_time_ms, partition) < (head_time, head_partition):
                    head_partition = partition
                    head_time = record.event_time_ms
            if head_partition is None:
                return
            yield queues[head_partition].popleft()
