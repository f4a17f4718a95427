"""The consume stage: a Kafka consumer group member that starts from the checkpoint's offsets.

:class:`KafkaSource` subscribes to the configured topics with a rebalance listener. When the group
assigns partitions, the listener asks an :class:`AssignmentHandler` (the daemon) where to start
each partition, typically the next offset stored in the checkpoint, and seeks there; a partition
without a stored offset starts where ``auto_offset_reset`` says (the group's committed offsets
are never used: the checkpoint is the source of truth). Before partitions are taken away the
handler is told, so it can write a checkpoint.

The listener runs on kafka-python's network thread while the daemon's thread waits inside
:meth:`KafkaSource.poll`, so the handler may touch the daemon's state but must not call blocking
consumer methods (commit, position); seeking is allowed.

Anything that has ``poll``, ``commit``, ``highwater``, ``seek``, ``connected`` and ``close`` like
:class:`Source` can replace it (the tests use an in-memory one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaConfigurationError, KafkaError
from kafka.structs import MemberState, OffsetAndMetadata

from streamem.errors import ValidationError

__all__ = [
    "AssignmentHandler",
    "KafkaSource",
    "Partition",
    "Record",
    "Source",
]

log = logging.getLogger(__name__)

Partition: TypeAlias = tuple[str, int]
"""A ``(topic, partition)`` pair."""


class Record(Protocol):
    """What the daemon reads from a consumed record (kafka-python's ``ConsumerRecord`` is one)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class AssignmentHandler(Protocol):
    """What the source tells the daemon about the partitions it owns."""

    def on_assigned(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        """Partitions were assigned; return the next offset to read of those that have one.

        Partitions left out start where ``auto_offset_reset`` says.
        """
        ...

    def on_revoked(self, partitions: Sequence[Partition]) -> None:
        """Partitions are about to be taken away: save what must be saved."""
        ...

    def on_lost(self, partitions: Sequence[Partition]) -> None:
        """The group expelled this member (its session expired): ``partitions`` already belong
        to others. Nothing of them may be learned, published, stored or committed any more."""
        ...


class Source(Protocol):
    """The consume stage as the daemon uses it."""

    def poll(self, timeout_ms: int) -> Mapping[Partition, Sequence[Record]]:
        """Return the next records of each partition, in offset order (may be empty)."""
        ...

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit next offsets to the consumer group (for lag monitoring only)."""
        ...

    def commit_sync(self, offsets: Mapping[Partition, int]) -> None:
        """Commit next offsets and wait for the answer (at shutdown)."""
        ...

    def highwater(self, partition: Partition) -> int | None:
        """The partition's last known log end offset, or None."""
        ...

    def seek(self, partition: Partition, offset: int | None) -> None:
        """Read ``partition`` from ``offset`` next; None means ``auto_offset_reset``."""
        ...

    def connected(self) -> bool:
        """Whether the consumer is connected to at least one broker now."""
        ...

    def generation(self) -> int | None:
        """The group generation in which this member owns its partitions, or None when it
        cannot be sure it still owns them (rebalancing, or no heartbeat answered within the
        session timeout, e.g. after the process was paused): write nothing for them then."""
        ...

    def holds_lease(self) -> bool:
        """Whether a heartbeat was answered (or partitions assigned) within the session
        timeout. A revocation without it is an expulsion the member was not told of yet (it
        was paused): its partitions are lost, not revoked."""
        ...

    def close(self) -> None:
        """Leave the group and release the connections."""
        ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Adapts kafka-python's rebalance callbacks to an :class:`AssignmentHandler`."""

    def __init__(self, source: KafkaSource, handler: AssignmentHandler) -> None:
        self._source = source
        self._handler = handler

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if revoked:
            self._handler.on_revoked(sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_lost(self, lost: Collection[TopicPartition]) -> None:
        if lost:
            self._handler.on_lost(sorted((tp.topic, tp.partition) for tp in lost))

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._source.confirmed()
        partitions = sorted((tp.topic, tp.partition) for tp in assigned)
        offsets = self._handler.on_assigned(partitions)
        for partition in partitions:
            self._source.seek(partition, offsets.get(partition))


class KafkaSource:
    """A kafka-python consumer group member that seeks to the offsets the daemon gives it.

    Parameters
    ----------
    topics
        The topics to subscribe to.
    consumer_kwargs
        Keyword arguments of :class:`kafka.KafkaConsumer`
        (:meth:`streamem.service.config.Settings.consumer_kwargs`).
    handler
        Where to start each assigned partition, and what to do before partitions are revoked.
    retry_backoff_s
        First and largest pause between attempts to reach the brokers at start.
    stop_requested
        Stops those attempts (raising ``InterruptedError``) once it returns True.
    """

    def __init__(
        self,
        topics: Sequence[str],
        consumer_kwargs: Mapping[str, Any],
        handler: AssignmentHandler,
        *,
        retry_backoff_s: tuple[float, float] = (0.5, 10.0),
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        # An input topic that does not exist is waited for, never created by reading it.
        # A short first contact (kafka-python waits 30 s by default): this class retries with
        # its own backoff and looks at stop requests in between.
        self._kwargs = {
            "allow_auto_create_topics": False,
            "bootstrap_timeout_ms": 5_000,
            **consumer_kwargs,
        }
        self._reset = self._kwargs.get("auto_offset_reset", "latest")
        self._assigned_at = -float("inf")
        self._consumer = self._connect(retry_backoff_s, stop_requested)
        self._consumer.subscribe(list(topics), listener=_Listener(self, handler))

    def _connect(
        self, backoff: tuple[float, float], stop_requested: Callable[[], bool] | None
    ) -> KafkaConsumer:
        pause, attempt = backoff[0], 1
        while True:
            try:
                return KafkaConsumer(**self._kwargs)
            except KafkaConfigurationError as error:  # a setting, not an outage: fatal
                raise ValidationError(f"kafka.consumer: {error}") from error
            except KafkaError as error:  # NoBrokersAvailable and friends
                log.warning(
                    "cannot reach the Kafka brokers %s (attempt %d: %s); retrying in %.1f s",
                    self._kwargs.get("bootstrap_servers"),
                    attempt,
                    error,
                    pause,
                )
                resume = time.monotonic() + pause
                while time.monotonic() < resume:
                    if stop_requested is not None and stop_requested():
                        raise InterruptedError("stopped before the brokers were reached") from error
                    time.sleep(0.1)
                pause, attempt = min(pause * 2, backoff[1]), attempt + 1

    def confirmed(self) -> None:
        """The group just assigned this member its partitions (the lease starts now)."""
        self._assigned_at = time.monotonic()

    @property
    def consumer(self) -> KafkaConsumer:
        """The underlying kafka-python consumer."""
        return self._consumer

    def poll(self, timeout_ms: int) -> dict[Partition, list[Any]]:
        """Fetch records; see :meth:`Source.poll`. Rebalance callbacks run inside this call."""
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        return {(tp.topic, tp.partition): records for tp, records in polled.items()}

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit ``offsets`` asynchronously; a failure is logged, never raised."""
        if not offsets:
            return
        table = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
        }

        def _done(_: Any, response: Any) -> None:
            if isinstance(response, Exception):
                log.warning("offset commit failed (the checkpoint is unaffected): %s", response)

        try:
            self._consumer.commit_async(table, callback=_done)
        except KafkaError as error:
            log.warning("offset commit failed (the checkpoint is unaffected): %s", error)

    def commit_sync(self, offsets: Mapping[Partition, int], timeout_ms: int = 2_000) -> None:
        """Commit ``offsets`` and wait up to ``timeout_ms``; a failure is logged, never raised."""
        if not offsets:
            return
        table = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
        }
        try:
            self._consumer.commit(table, timeout_ms=timeout_ms)
        except KafkaError as error:
            log.warning("offset commit failed (the checkpoint is unaffected): %s", error)

    def highwater(self, partition: Partition) -> int | None:
        """The log end offset from the last fetch response of ``partition`` (None if unknown)."""
        try:
            value = self._consumer.highwater(TopicPartition(*partition))
        except KafkaError:  # not assigned any more
            return None
        return None if value is None else int(value)

    def log_id(self, partition: Partition) -> str | None:
        """The topic id of ``partition``'s topic in the newest metadata (None if the broker
        gives none): a recreated topic has a new one (see :mod:`streamem.service.logwatch`).

        kafka-python keeps it in its cluster metadata, which has no public accessor.
        """
        cluster = getattr(getattr(self._consumer, "_client", None), "cluster", None)
        topic_id = getattr(cluster, "topic_id", None)
        value = topic_id(partition[0]) if callable(topic_id) else None
        return None if value is None else str(value)

    def seek(self, partition: Partition, offset: int | None) -> None:
        """Read ``partition`` from ``offset`` next; None means ``auto_offset_reset``."""
        tp = TopicPartition(*partition)
        if offset is not None:
            self._consumer.seek(tp, offset)
        elif self._reset == "earliest":
            self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek_to_end(tp)

    def connected(self) -> bool:
        """Whether kafka-python's ``connection-count`` metric is above 0 (True if unreported).

        The count drops to 0 at once when every broker is gone, while kafka-python keeps the
        partitions assigned and reconnects by itself.
        """
        count = (self._consumer.metrics() or {}).get("consumer-metrics", {}).get("connection-count")
        return count is None or count > 0

    def generation(self) -> int | None:
        """The group generation of this member while the group is stable and its heartbeats
        are answered; see :meth:`Source.generation`.

        The lease: the newest answered heartbeat (or the assignment itself) is at most the
        session timeout old. A member paused past the session timeout resumes without one, so
        it writes nothing until the group has it join again; kafka-python's own state is not
        enough there (after the pause it finds the coordinator again, restarts its session
        clock and stays "stable" until the next heartbeat's answer expels it). A heartbeat
        answered with "rebalance in progress" asks the member to join again.
        kafka-python exposes the generation (``group_metadata``) but keeps the heartbeat clock
        and the request to join again in its coordinator.
        """
        metadata = self._consumer.group_metadata()
        if metadata.state != MemberState.STABLE or metadata.generation_id < 0:
            return None
        rejoin = getattr(self._coordinator, "need_rejoin", None)
        if (callable(rejoin) and rejoin()) or not self.holds_lease():
            return None
        return int(metadata.generation_id)

    def holds_lease(self) -> bool:
        """See :meth:`Source.holds_lease` (True where kafka-python keeps no heartbeat clock)."""
        heartbeat = getattr(self._coordinator, "heartbeat", None)
        answered = getattr(heartbeat, "last_receive", None)
        if answered is None:
            return True
        timeout = heartbeat.config["session_timeout_ms"] / 1000  # type: ignore[union-attr]
        return bool(time.monotonic() - max(answered, self._assigned_at) <= timeout)

    @property
    def _coordinator(self) -> Any:
        return getattr(self._consumer, "_coordinator", None)

    def close(self) -> None:
        """Leave the group (the revocation callback runs first) and close the connections."""
        try:
            self._consumer.close(autocommit=False, timeout_ms=3_000)
        except KafkaError as error:
            log.warning("closing the consumer: %s", error)
