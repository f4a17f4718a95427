"""In-memory stand-ins for Kafka: a log of partitions, a source over it and a producer sink.

They implement the small protocols of :mod:`streamem.service.source`,
:mod:`streamem.service.publisher` and :mod:`streamem.service.statistics`, so the daemon's loop
runs on them unchanged, crashes included (drop a daemon without shutting it down and start
another one on the same log and state dir).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamem.service.source import AssignmentHandler, Partition
from streamem.service.statistics import PartitionStatistics


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass
class FakeLog:
    """The broker: records per partition, and the group's committed offsets."""

    partitions: dict[Partition, list[bytes | None]] = field(default_factory=dict)
    committed: dict[Partition, int] = field(default_factory=dict)

    def append(self, partition: Partition, values: Sequence[bytes | None]) -> None:
        self.partitions.setdefault(partition, []).extend(values)

    def size(self) -> int:
        return sum(len(values) for values in self.partitions.values())


class FakeSource:
    """A consumer over a :class:`FakeLog` that assigns every partition at the first poll."""

    def __init__(self, log: FakeLog, handler: AssignmentHandler, max_records: int = 300) -> None:
        self.log = log
        self.handler = handler
        self.max_records = max_records
        self.positions: dict[Partition, int] = {}
        self.assigned: list[Partition] | None = None
        self.closed = False
        self.polls = 0
        self.reachable = True  # False: a broker outage (polls return nothing)
        self.member = 0  # the group generation; None: unsure of its partitions (see expel)

    def assign(self, partitions: Sequence[Partition]) -> None:
        if self.assigned:
            self.handler.on_revoked(self.assigned)
        self.member = (self.member or 0) + 1
        self.assigned = sorted(partitions)
        offsets = self.handler.on_assigned(self.assigned)
        self.positions = {p: offsets.get(p, 0) for p in self.assigned}

    def poll(self, timeout_ms: int) -> dict[Partition, list[FakeRecord]]:
        self.polls += 1
        if not self.reachable:
            return {}
        if self.assigned is None:
            self.assign(sorted(self.log.partitions))
        out: dict[Partition, list[FakeRecord]] = {}
        budget = self.max_records
        for partition in self.assigned or []:
            values = self.log.partitions.get(partition, [])
            start = self.positions[partition]
            end = min(len(values), start + max(1, budget // max(1, len(self.assigned or []))))
            if end > start:
                out[partition] = [
                    FakeRecord(
                        partition[0],
                        partition[1],
                        offset,
                        1_700_000_000_000 + offset,
                        b"k",
                        values[offset],
                    )
                    for offset in range(start, end)
                ]
                self.positions[partition] = end
        return out

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        self.log.committed.update(offsets)

    def commit_sync(self, offsets: Mapping[Partition, int]) -> None:
        self.commit(offsets)

    def highwater(self, partition: Partition) -> int | None:
        return len(self.log.partitions.get(partition, []))

    def seek(self, partition: Partition, offset: int | None) -> None:
        self.positions[partition] = 0 if offset is None else offset

    def connected(self) -> bool:
        return self.reachable

    def generation(self) -> int | None:
        return self.member

    def holds_lease(self) -> bool:
        return self.member is not None

    def expel(self) -> None:
        """The session expired (the member was paused): unsure until :meth:`lose` runs."""
        self.member = None

    def lose(self) -> None:
        """The expelled member learns it at its next poll: its partitions are lost."""
        lost, self.assigned = self.assigned or [], []
        self.handler.on_lost(lost)

    def close(self) -> None:
        if self.assigned:
            self.handler.on_revoked(self.assigned)
        self.closed = True

    @property
    def exhausted(self) -> bool:
        return all(
            self.positions.get(p, 0) == len(values) for p, values in self.log.partitions.items()
        )


@dataclass
class FakeDelivery:
    is_done: bool = True
    exception: BaseException | None = None


@dataclass
class FakeSink:
    """A producer whose deliveries succeed at once, unless ``fail`` is set."""

    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    fail: bool = False
    hang: bool = False
    closed: bool = False
    deliveries: list[FakeDelivery] = field(default_factory=list)

    def send(self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any) -> Any:
        if self.closed:
            raise RuntimeError("the producer is closed")
        if self.hang:
            delivery = FakeDelivery(is_done=False)
        elif self.fail:
            delivery = FakeDelivery(exception=RuntimeError("broker away"))
        else:
            self.sent.append((topic, key, value, list(headers)))
            delivery = FakeDelivery()
        self.deliveries.append(delivery)
        return delivery

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        self.closed = True

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(k, v, dict(h)) for t, k, v, h in self.sent if t == topic]


class SinkFactory:
    """Builds sinks; every sink it built shares the ``sent`` list (one broker)."""

    def __init__(self) -> None:
        self.sinks: list[FakeSink] = []
        self.sent: list[Any] = []
        self.fail = False

    def __call__(self) -> FakeSink:
        sink = FakeSink(sent=self.sent, fail=self.fail)
        self.sinks.append(sink)
        return sink

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(k, v, dict(h)) for t, k, v, h in self.sent if t == topic]


class FakeStatisticsTopic:
    """The statistics topic: the encoded records, in order; every channel reads them all."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.held = False  # True: sends are stored, reads see nothing new (records in flight)

    def channel(self) -> FakeStatisticsChannel:
        return FakeStatisticsChannel(self)

    def records(self) -> list[PartitionStatistics]:
        return [PartitionStatistics.decode(value) for value in self.values]


class FakeStatisticsChannel:
    """One replica's reader and writer of a :class:`FakeStatisticsTopic`."""

    def __init__(self, topic: FakeStatisticsTopic) -> None:
        self.topic = topic
        self.position = 0
        self.closed = False
        self.writer = f"channel-{id(self)}"
        self._overwritten: set[Partition] = set()

    def send(self, records: Sequence[PartitionStatistics], timeout: float) -> bool:
        self.topic.values.extend(record.encode() for record in records)
        return True

    def read(self, ignore: Collection[Partition] = ()) -> list[PartitionStatistics]:
        if self.topic.held:
            return []
        values = self.topic.values[self.position :]
        self.position = len(self.topic.values)
        records = [PartitionStatistics.decode(value) for value in values]
        for record in records:
            if record.partition in ignore:
                if record.writer == self.writer:
                    self._overwritten.discard(record.partition)
                else:
                    self._overwritten.add(record.partition)
        return [record for record in records if record.partition not in ignore]

    def overwritten(self) -> set[Partition]:
        found, self._overwritten = self._overwritten, set()
        return found

    def catch_up(self, timeout: float) -> list[PartitionStatistics]:
        self.position = 0
        return self.read()

    def close(self) -> None:
        self.closed = True
