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
    origin
        The offset from which the partition's learner learned its records (None: unknown): a
        partition whose lineage loses the election is read again from there.
    lineage
        The id of the partition start its parameters descend from: the lineage of the first
        record with statistics in the topic wins the election of the first parameters
        (:mod:`streamem.service.shards`).
    writer
        The id of the channel that wrote it (:attr:`KafkaStatisticsChannel.writer`): the owner
        of a partition recognises a record of its partition written by someone else (a member
        that had not noticed yet that it lost the partition) and sends its own again.
    log
        The mark of the input log that ``offset`` belongs to (its topic id and the fingerprint
        of the last settled record, :mod:`streamem.service.logwatch`): a new owner notices a
        recreated input topic before it reads a record (None: unknown).

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
    origin: int | None = None
    lineage: str = ""
    writer: str = ""
    log: dict[str, Any] | None = None

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
                "origin": self.origin,
                "lineage": self.lineage,
                "writer": self.writer,
                "log": self.log,
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
                origin=None if data.get("origin") is None else int(data["origin"]),
                lineage=str(data.get("lineage", "")),
                writer=str(data.get("writer", "")),
                log=_log_mark(data.get("log")),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a statistics record: {error}") from error


def _log_mark(value: object) -> dict[str, Any] | None:
    """A record's log mark, checked for shape: ``{"topic_id": str | None, "last": [offset,
    timestamp, crc] | None}``."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"topic_id", "last"}:
        raise ValueError(f"log: expected {{topic_id, last}}, got {value!r}"[:200])
    topic_id, last = value["topic_id"], value["last"]
    if topic_id is not None and not isinstance(topic_id, str):
        raise ValueError(f"log.topic_id: expected a string or null, got {topic_id!r}"[:200])
    if last is not None and (
        not isinstance(last, list)
        or len(last) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in last)
    ):
        raise ValueError(f"log.last: expected [offset, timestamp, crc], got {last!r}"[:200])
    return {"topic_id": topic_id, "last": last}


CHUNK_HEADER = "chunk"
"""The header of a piece of a record too large for one message: ``<id>/<index>``."""

_HEADROOM = 64 * 1024  # room for the key, headers and batch overhead under max_request_size


def split(key: str, value: bytes, limit: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """The messages (key, value, headers) that carry a record of ``value`` under ``key``, none
    larger than ``limit`` bytes of value.

    A record that fits is one message. A larger one is sent as pieces under the keys
    ``<key>#0``, ``<key>#1``, ..., each with a :data:`CHUNK_HEADER`, followed by the message
    under ``key`` itself, whose value names the pieces: it comes last, so a reader that reads
    it has read every piece before it (the topic has one partition). On a compacted topic the
    pieces of an older, longer record may survive; the id tells them apart.

    Examples
    --------
    >>> messages = split("m/t/0", b"x" * 10, limit=4)
    >>> [(k, len(v)) for k, v, _ in messages[:-1]], messages[-1][0]
    ([(b'm/t/0#0', 4), (b'm/t/0#1', 4), (b'm/t/0#2', 2)], b'm/t/0')
    >>> join = Joiner()
    >>> [join.take(k, v, h) for k, v, h in messages][-1] == b"x" * 10
    True
    """
    if len(value) <= limit:
        return [(key.encode(), value, [])]
    piece_id = uuid.uuid4().hex
    pieces = [value[i : i + limit] for i in range(0, len(value), limit)]
    messages = [
        (f"{key}#{i}".encode(), piece, [(CHUNK_HEADER, f"{piece_id}/{i}".encode())])
        for i, piece in enumerate(pieces)
    ]
    head = json.dumps({"format": _PIECES_FORMAT, "id": piece_id, "count": len(pieces)})
    messages.append((key.encode(), head.encode(), []))
    return messages


_PIECES_FORMAT = "streamem.statistics.pieces"


class Joiner:
    """Puts together what :func:`split` cut: :meth:`take` each message read, in order."""

    def __init__(self) -> None:
        self._pieces: dict[str, dict[int, bytes]] = {}

    def take(
        self, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] | None
    ) -> bytes | None:
        """The whole record's value once ``value`` completes one (None: a piece, or a head
        whose pieces were not all read)."""
        piece = dict(headers or []).get(CHUNK_HEADER)
        if piece is not None:
            piece_id, index = piece.decode().split("/")
            self._pieces.setdefault(piece_id, {})[int(index)] = value
            return None
        if not value.startswith(b'{"format": "' + _PIECES_FORMAT.encode()):
            return value
        head = json.loads(value)
        found = self._pieces.pop(head["id"], {})
        if len(found) != head["count"]:
            log.warning("skipped a statistics record of key %r: pieces missing", key)
            return None
        return b"".join(found[i] for i in range(head["count"]))


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
        """Every record from the start of the topic to its end (waits up to ``timeout``
        seconds): also the others' records of partitions this replica owned, which ``read``
        skipped, so an assignment restores each partition from its newest record."""
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
        self._producer_kwargs = {**producer_kwargs, "acks": "all"}
        self._limit = int(producer_kwargs.get("max_request_size", 1024 * 1024)) - _HEADROOM
        self._joiner = Joiner()
        self._producer: KafkaProducer | None = KafkaProducer(**self._producer_kwargs)
        self._assigned: set[int] = set()
        self.writer = uuid.uuid4().hex
        self._writer_header = [(WRITER_HEADER, self.writer.encode())]
        self._overwritten: set[Partition] = set()
        self._last_replaced_check = time.monotonic()

    def _assign(self) -> bool:
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if len(partitions) > 1 and not self._assigned:
            log.warning(
                "the statistics topic %s has %d partitions: the election of the first "
                "parameters needs the total order of one (create it with one partition, as "
                "deploy/ does; docs/scale-out-protocol.md)",
                self.topic,
                len(partitions),
            )
        if partitions and set(partitions) != self._assigned:
            new = sorted(set(partitions) - self._assigned)
            self._assigned = set(partitions)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self._consumer.assign(tps)
            for p in new:
                self._consumer.seek_to_beginning(TopicPartition(self.topic, p))
        return bool(self._assigned)

    def send(self, records: Sequence[PartitionStatistics], timeout: float) -> bool:
        """Send ``records`` and wait for their acknowledgements; False (logged) on failure.

        A failed producer is closed and the next call creates a new one: after a broker
        restart an idempotent producer stays broken for good (its producer id is unknown).
        """
        try:
            if self._producer is None:
                self._producer = KafkaProducer(**self._producer_kwargs)
            producer = self._producer
            futures = [
                producer.send(self.topic, key=key, value=value, headers=self._writer_header + extra)
                for r in records
                for key, value, extra in split(r.key, r.encode(), self._limit)
            ]
            producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=max(0.1, timeout))
        except KafkaError as error:
            log.warning(
                "the statistics could not be sent to %s (%s); the next attempt uses a new producer",
                self.topic,
                error,
            )
            self._drop_producer()
            return False
        return True

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as error:  # a broken producer may fail to close
                log.debug("closing the failed statistics producer: %s", error)

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
                own = skipped.get((record.key or b"").split(b"#", 1)[0])
                if own is not None:
                    if (WRITER_HEADER, self.writer.encode()) in (record.headers or []):
                        self._overwritten.discard(own)
                    else:
                        self._overwritten.add(own)
                    continue
                value = self._joiner.take(record.key, record.value, record.headers)
                if value is None:
                    continue
                try:
                    statistics = PartitionStatistics.decode(value)
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
        ``ignore`` are skipped before they are decoded.

        A statistics log that ends below the read position was recreated (a broker that lost
        its data): it is read again from its start, and the partitions in ``ignore`` count as
        :meth:`overwritten` (their owner sends their records again).
        """
        if not self._assign():
            return []
        if self._replaced():
            self._overwritten.update(ignore)
        return self._poll(0, ignore)

    def _replaced(self) -> bool:
        """Whether a partition of the topic ends below the read position (checked at most
        once a second); such partitions are read again from their start."""
        now = time.monotonic()
        if now - self._last_replaced_check < 1.0:
            return False
        self._last_replaced_check = now
        replaced = False
        for p in self._assigned:
            tp = TopicPartition(self.topic, p)
            end = self._consumer.highwater(tp)
            if end is not None and self._consumer.position(tp) > end:
                log.warning(
                    "statistics topic %s partition %d ends at offset %d, below the read "
                    "position: it was recreated; reading it from its start, sending the owned "
                    "partitions' records again",
                    self.topic,
                    p,
                    end,
                )
                self._consumer.seek_to_beginning(tp)
                replaced = True
        return replaced

    def catch_up(self, timeout: float) -> list[PartitionStatistics]:
        """Every record from the start of each partition to its end: ``read`` skipped the
        records of this replica's partitions, and another member may have written newer ones
        of them since (on a compacted topic the start holds little).

        The log end is the high-water mark of a fetch response (``end_offsets`` is not reliable
        on every Kafka-compatible broker): the call polls until every partition's position
        reached the high-water mark that its last fetch reported, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        found: list[PartitionStatistics] = []
        if self._assigned:
            self._consumer.seek_to_beginning(
                *(TopicPartition(self.topic, p) for p in sorted(self._assigned))
            )
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
            if self._producer is not None:
                self._producer.close(timeout=2)
        finally:
            self._consumer.close()
