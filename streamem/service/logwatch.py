"""Which log an offset belongs to: noticing a partition whose history changed under the daemon.

An offset means something only in the log it was read from. When a topic is deleted and
created again (or a memory-only broker restarts), its partitions start over at offset 0, and
once the new log grows past the stored positions nothing in the offsets says so: the daemon
would silently skip the new records below them. :class:`LogWatch` keeps, per partition, two
marks of the log, stored with the checkpoint's offsets:

- the broker's **topic id** (Kafka 2.8+ and Tansu give one): a different id at assignment, or
  while reading, is a recreated topic;
- the **fingerprint of the last settled record** (offset, timestamp, CRC-32 of the value),
  the one just below the stored offset: after an assignment the daemon reads from that record
  again (one record more) and compares. The same record: the log is the one the checkpoint
  read; another record at that offset: the log was recreated or rewritten; no record there
  any more (retention deleted it): nothing can be told, and reading goes on at the stored
  offset.

Policy on a mismatch (logged as a WARNING that says "recreated"): the stored offset of that
partition is discarded and the partition is read again from where
``kafka.consumer.auto_offset_reset`` says (``earliest``: every record of the new log is learned
once; ``latest``: only new ones); the model keeps what it learned from the old log.

Examples
--------
>>> from types import SimpleNamespace as Rec
>>> watch = LogWatch()
>>> old = [Rec(offset=i, timestamp=1000 + i, value=b"a%d" % i) for i in range(5)]
>>> watch.handled(("t", 0), old, None)
>>> marks = watch.marks({("t", 0): 5}, {}, {("t", 0): "id-1"})
>>> marks[("t", 0)]["last"][0]
4
>>> watch.expect(("t", 0), marks[("t", 0)], 5, "id-1")
4
>>> [r.offset for r in watch.check(("t", 0), old[4:], "id-1")]   # same record: go on at 5
[]
>>> watch.expect(("t", 0), marks[("t", 0)], 5, "id-1")
4
>>> new = [Rec(offset=i, timestamp=9000 + i, value=b"b%d" % i) for i in range(4, 8)]
>>> watch.check(("t", 0), new, "id-1")
Traceback (most recent call last):
...
streamem.service.logwatch.LogReplaced: the record at offset 4 is not the one read before ...
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from streamem.errors import StreamemError
from streamem.service.source import Partition, Record

__all__ = ["LogReplaced", "LogWatch", "fingerprint"]


class LogReplaced(StreamemError):  # noqa: N818 - an event, not a failure of the caller
    """The partition's log is not the one the stored offset belongs to; the message says why."""


def fingerprint(record: Record) -> list[int]:
    """``[offset, timestamp, crc32(value)]`` of a record (an empty value's CRC is 0)."""
    return [int(record.offset), int(record.timestamp), zlib.crc32(record.value or b"")]


class LogWatch:
    """Per partition: the log's topic id, the last records handled, and pending verifications."""

    def __init__(self) -> None:
        self._last: dict[Partition, Record] = {}
        self._before_batch: dict[Partition, Record | None] = {}
        self._restored: dict[Partition, list[int]] = {}
        self._topic_ids: dict[Partition, str] = {}
        self._verify: dict[Partition, tuple[list[int], int]] = {}

    def forget(self, partition: Partition) -> None:
        """Drop what is known of ``partition`` (its log was replaced, or it is read anew)."""
        self._last.pop(partition, None)
        self._before_batch.pop(partition, None)
        self._restored.pop(partition, None)
        self._verify.pop(partition, None)

    def handled(
        self, partition: Partition, records: Sequence[Record], batch_first: int | None
    ) -> None:
        """Note a chunk of ``partition`` handled; ``batch_first`` is the offset of the oldest
        record of the partition still in the open micro-batch (None: none is)."""
        if batch_first is not None and batch_first >= records[0].offset:
            i = bisect.bisect_left(records, batch_first, key=lambda r: r.offset)
            self._before_batch[partition] = records[i - 1] if i else self._last.get(partition)
        self._last[partition] = records[-1]

    def marks(
        self,
        offsets: Mapping[Partition, int],
        batch_first: Mapping[Partition, int],
        topic_ids: Mapping[Partition, str | None],
    ) -> dict[Partition, dict[str, Any]]:
        """The log marks of the checkpoint's ``offsets`` (see the module docstring)."""
        marks = {}
        for partition in offsets:
            if partition in batch_first:
                settled = self._before_batch.get(partition)
            else:
                settled = self._last.get(partition)
            last = fingerprint(settled) if settled is not None else self._restored.get(partition)
            topic_id = topic_ids.get(partition) or self._topic_ids.get(partition)
            marks[partition] = {"topic_id": topic_id, "last": last}
        return marks

    def expect(
        self,
        partition: Partition,
        mark: Mapping[str, Any] | None,
        stored: int,
        topic_id: str | None,
    ) -> int:
        """An assignment restores ``stored`` for ``partition``: return where to read from.

        Raises
        ------
        LogReplaced
            If the topic id differs from the mark's.
        """
        self._verify.pop(partition, None)
        if mark is None:
            return stored
        if topic_id is not None:
            self._topic_ids[partition] = topic_id
        known = mark.get("topic_id")
        if known is not None and topic_id is not None and known != topic_id:
            raise LogReplaced(f"its topic id is {topic_id}, the checkpoint's was {known}")
        last = mark.get("last")
        if last is None or last[0] >= stored:
            return stored
        self._restored[partition] = list(last)
        self._verify[partition] = (list(last), stored)
        return int(last[0])

    def current_mark(self, partition: Partition) -> dict[str, Any] | None:
        """The mark of what was handled of ``partition`` so far (for a resumed assignment)."""
        record = self._last.get(partition)
        last = fingerprint(record) if record is not None else self._restored.get(partition)
        if last is None:
            return None
        return {"topic_id": self._topic_ids.get(partition), "last": last}

    def check(
        self, partition: Partition, records: Sequence[Record], topic_id: str | None
    ) -> Sequence[Record]:
        """Return the records of a polled chunk to handle (a verification may drop some).

        Raises
        ------
        LogReplaced
            If the topic id changed, or the record read again is not the one read before.
        """
        if topic_id is not None:
            known = self._topic_ids.setdefault(partition, topic_id)
            if known != topic_id:
                raise LogReplaced(f"its topic id changed from {known} to {topic_id}")
        check = self._verify.pop(partition, None)
        if check is None:
            return records
        last, stored = check
        first = records[0]
        if first.offset == last[0] and fingerprint(first) != last:
            raise LogReplaced(
                f"the record at offset {first.offset} is not the one read before (timestamp "
                f"{first.timestamp}, not {last[1]}, or another value)"
            )
        return [record for record in records if record.offset >= stored]

    def replaced(self, partition: Partition, topic_id: str | None) -> None:
        """The log of ``partition`` was replaced: start over with it."""
        self.forget(partition)
        if topic_id is None:
            self._topic_ids.pop(partition, None)
        else:
            self._topic_ids[partition] = topic_id
