"""The statistics topic: each replica's partition statistics, for the others to merge.

With ``output.statistics_topic`` set, every replica of a consumer group publishes, for each
input partition it owns, a :class:`PartitionStatistics` record (key ``<model>/<topic>/<p>``):
the partition's learner state (its running statistics, its sequences' carry, its counters),
its :class:`~streamem.models.sharing.Share`, the offset below which its records are in them,
and, in the lowest partition's record, the model versions reserved by the replica that
publishes the global model. A record is the partition's checkpoint: state and offset in one
message. On a compacted topic the newest record per key is kept; a broker that does not compact
is read whole, and the last record per key wins (:meth:`KafkaStatisticsChannel.catch_up`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from streamem.models.sharing import Share
from streamem.service.source import Partition

__all__ = [
    "KafkaStatisticsChannel",
    "PartitionStatistics",
    "StatisticsChannel",
    "statistics_key",
]

log = logging.getLogger(__name__)

WRITER_HEADER = "writer"
"""The header that names the channel which sent a record (its :attr:`writer` id)."""

FORMAT = "streamem.statistics"
FORMAT_VERSION = 1


def statistics_key(model: str, partition: Partition) -> str:
    """The record key of ``partition``'s statistics of ``model``.

    Examples
    --------
    >>> statistics_key("sensors", ("readings", 4))
    'sensors/readings/4'
    """
    return f"{model}/{partition[0]}/{partition[1]}"


@dataclass(frozen=True)
class PartitionStatistics:
    """One partition's statistics record.

    Attributes
    ----------
    model
        ``model.name``.
    partition
        The input partition.
    offset
        Next offset to read: every valid record below it is in ``learner`` (None: none read).
    version
        Versions reserved for the global model (meaningful in the lowest partition's record).
    created_at
        Unix time the record was made.
    share
        The partition's statistics (None while it warms up or waits for the first parameters).
    learner
        The partition's :meth:`~streamem.service.learner.Learner.state_dict` (None: no model).
    writer
        The id of the channel that wrote it (:attr:`KafkaStatisticsChannel.writer`): the owner
        of a partition recognises a record of its partition written by someone else (a member
        that had not noticed yet that it lost the partition) and sends its own again.

    Examples
    --------
    >>> record = PartitionStatistics("m", ("t", 1), 10, 0, 5.0, None, None)
    >>> PartitionStatistics.decode(record.encode()) == record
    True
    """

    model: str
    partition: Partition
    offset: int | None
    version: int
    created_at: float
    share: Share | None
    learner: dict[str, Any] | None
    writer: str = ""

    @property
    def key(self) -> str:
        """The record key."""
        return statistics_key(self.model, self.partition)

    def encode(self) -> bytes:
        """The record's JSON value."""
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": self.model,
                "topic": self.partition[0],
                "partition": self.partition[1],
                "offset": self.offset,
                "version": self.version,
                "created_at": self.created_at,
                "share": None if self.share is None else self.share.to_dict(),
                "learner": self.learner,
                "writer": self.writer,
            },
            allow_nan=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> PartitionStatistics:
        """Read :meth:`encode`'s output.

        Raises
        ------
        ValueError
            If the value is not a statistics record of this format.
        """
        try:
            data = json.loads(value)
            if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"expected format {FORMAT!r} version {FORMAT_VERSION}, got "
                    f"{data.get('format')!r} version {data.get('format_version')!r}"
                )
            offset = data["offset"]
            return cls(
                model=str(data["model"]),
                partition=(str(data["topic"]), int(data["partition"])),
                offset=None if offset is None else int(offset),
                version=int(data["version"]),
                created_at=float(data["created_at"]),
                share=None if data["share"] is None else Share.from_dict(data["share"]),
                learner=data["learner"],
                writer=str(data.get("writer", "")),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a statistics record: {error}") from error


class StatisticsChannel(Protocol):
    """The statistics topic as the daemon uses it."""

    writer: str
    """This channel's id, which the records it sends carry (:attr:`PartitionStatistics.writer`)."""

    def send(self, records: Sequence[PartitionStatistics], timeout: float) -> bool:
        """Send ``records`` and wait up to ``timeout`` seconds for all acknowledgements."""
        ...

    def read(self, ignore: Collection[Partition] = ()) -> list[PartitionStatistics]:
        """The records that arrived since the last call (no wait); those of the partitions in
        ``ignore`` (this replica's own) are skipped undecoded."""
        ...

    def catch_up(self, timeout: float) -> list[PartitionStatistics]:
        """Every record not read yet up to the log end (waits up to ``timeout`` seconds)."""
        ...

    def overwritten(self) -> set[Partition]:
        """The partitions among those ``read`` ignored whose newest record read since the last
        call was written by another channel (they must be sent again by their owner)."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


class KafkaStatisticsChannel:
    """The statistics topic through a kafka-python producer and a group-less consumer.

    Parameters
    ----------
    topic
        ``output.statistics_topic``.
    model
        ``model.name``: records of other models in the topic are skipped.
    consumer_kwargs, producer_kwargs
        Connection settings (the group, offsets and partition settings are replaced).
    """

    def __init__(
        self,
        topic: str,
        model: str,
        consumer_kwargs: Mapping[str, Any],
        producer_kwargs: Mapping[str, Any],
    ) -> None:
        self.topic = topic
        self.model = model
        reader = {
            key: value
            for key, value in consumer_kwargs.items()
            if key
            not in {
                "group_id",
                "enable_auto_commit",
                "auto_offset_reset",
                "partition_assignment_strategy",
                "session_timeout_ms",
                "heartbeat_interval_ms",
                "max_poll_interval_ms",
                "max_poll_records",
                "value_deserializer",
                "key_deserializer",
            }
        }
        self._consumer = KafkaConsumer(
            **reader, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._producer = KafkaProducer(**{**producer_kwargs, "acks": "all"})
        self._assigned: set[int] = set()
        self.writer = uuid.uuid4().hex
        self._writer_header = [(WRITER_HEADER, self.writer.encode())]
        self._overwritten: set[Partition] = set()

    def _assign(self) -> bool:
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if partitions and set(partitions) != self._assigned:
            new = sorted(set(partitions) - self._assigned)
            self._assigned = set(partitions)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self._consumer.assign(tps)
            for p in new:
                self._consumer.seek_to_beginning(TopicPartition(self.topic, p))
        return bool(self._assigned)

    def send(self, records: Sequence[PartitionStatistics], timeout: float) -> bool:
        """Send ``records`` and wait for their acknowledgements; False (logged) on failure."""
        try:
            futures = [
                self._producer.send(
                    self.topic, key=r.key.encode(), value=r.encode(), headers=self._writer_header
                )
                for r in records
            ]
            self._producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=max(0.1, timeout))
        except KafkaError as error:
            log.warning("the statistics could not be sent to %s: %s", self.topic, error)
            return False
        return True

    def _poll(
        self, timeout_ms: int, ignore: Collection[Partition] = ()
    ) -> list[PartitionStatistics]:
        skipped = {
            statistics_key(self.model, partition).encode(): partition for partition in ignore
        }
        found = []
        for batch in self._consumer.poll(timeout_ms=timeout_ms).values():
            for record in batch:
                if record.value is None:
                    continue
                own = skipped.get(record.key)
                if own is not None:
                    if (WRITER_HEADER, self.writer.encode()) in (record.headers or []):
                        self._overwritten.discard(own)
                    else:
                        self._overwritten.add(own)
                    continue
                try:
                    statistics = PartitionStatistics.decode(record.value)
                except ValueError as error:
                    log.warning(
                        "skipped record %s/%d@%d of the statistics topic: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        error,
                    )
                    continue
                if statistics.model == self.model:
                    found.append(statistics)
        return found

    def read(self, ignore: Collection[Partition] = ()) -> list[PartitionStatistics]:
        """The records that arrived since the last call (no wait); those of the partitions in
        ``ignore`` are skipped before they are decoded."""
        if not self._assign():
            return []
        return self._poll(0, ignore)

    def catch_up(self, timeout: float) -> list[PartitionStatistics]:
        """Every record not read yet up to the log end of each partition.

        The log end is the high-water mark of a fetch response (``end_offsets`` is not reliable
        on every Kafka-compatible broker): the call polls until every partition's position
        reached the high-water mark that its last fetch reported, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        found: list[PartitionStatistics] = []
        while time.monotonic() < deadline:
            if not self._assign():
                self._consumer.poll(timeout_ms=100)  # refreshes the metadata
                if not self._assign():
                    return found  # no statistics topic yet: nothing to restore
            found.extend(self._poll(100))
            behind = False
            for p in self._assigned:
                tp = TopicPartition(self.topic, p)
                end = self._consumer.highwater(tp)
                if end is None or self._consumer.position(tp) < end:
                    behind = True
            if not behind:
                return found
        log.warning("statistics topic %s not read to its end in %.1f s", self.topic, timeout)
        return found

    def overwritten(self) -> set[Partition]:
        """See :meth:`StatisticsChannel.overwritten`."""
        found, self._overwritten = self._overwritten, set()
        return found

    def close(self) -> None:
        """Close the producer and the consumer."""
        try:
            self._producer.close(timeout=2)
        finally:
            self._consumer.close()
