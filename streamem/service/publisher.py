"""The publish stage: model snapshots to the output topic, rejected records to the dead letters.

:class:`Publisher` sends through a :class:`Sink` (a kafka-python producer, :class:`KafkaSink`, or
an in-memory one in tests) and keeps every dead letter until the broker acknowledged it. The
daemon asks :meth:`Publisher.unsettled_offsets` before it writes a checkpoint: a rejected record
whose dead letter is not yet durable keeps the checkpoint's offset of its partition at or below
its own, so a crash re-reads it instead of losing it (dead letters are delivered at least once).

When a delivery fails (the broker went away, or the idempotent producer was broken by a broker
restart) the publisher closes the producer, waits a backoff that doubles up to a limit, builds a
new producer and sends the failed dead letters, and the newest snapshot if it failed, again.

A snapshot counts as published (:attr:`Publisher.delivered`) only once the broker acknowledged
it. While the producer cannot be created or deliveries fail, :attr:`Publisher.problem` says why
and since when (the daemon turns it into a ``/readyz`` condition); a producer that cannot be
created is logged once, not at every retry. A compression codec that this installation lacks is
refused before any producer is built (:func:`check_compression`).

A dead letter keeps the rejected record's key and value and says why in its headers
(:func:`dead_letter_headers`); a value longer than the limit is truncated, and the headers say
that too.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamem.errors import StreamemError, ValidationError
from streamem.service.codecs import RecordRejected
from streamem.service.source import Partition, Record

__all__ = [
    "CODEC_PACKAGES",
    "DETAIL_MAX_CHARS",
    "DeadLetter",
    "Delivery",
    "KafkaSink",
    "Publisher",
    "Sink",
    "check_compression",
    "dead_letter_headers",
    "is_permanent",
]

log = logging.getLogger(__name__)

DETAIL_MAX_CHARS = 500
"""The ``detail`` header is cut to this many characters."""

Headers = list[tuple[str, bytes]]


class Delivery(Protocol):
    """The pending result of one send (kafka-python's ``FutureRecordMetadata`` is one)."""

    is_done: bool
    exception: BaseException | None


class Sink(Protocol):
    """Where records go: a producer."""

    def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Headers
    ) -> Delivery:
        """Queue one record; raise on an immediate failure."""
        ...

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every queued record to be acknowledged or fail."""
        ...

    def close(self, timeout: float) -> None:
        """Release the producer, waiting up to ``timeout`` seconds for queued records."""
        ...


CODEC_PACKAGES = {"lz4": "lz4", "snappy": "python-snappy", "zstd": "zstandard"}
"""The package that kafka-python needs for each compression codec (gzip is built in); the
service extra installs all three."""


def check_compression(compression_type: str | None) -> None:
    """Refuse a ``kafka.producer.compression_type`` whose codec library is not installed.

    Raises
    ------
    ValidationError
        Naming the setting, the codec and what to install.

    Examples
    --------
    >>> check_compression("gzip"), check_compression(None)
    (None, None)
    """
    if compression_type is None or compression_type not in CODEC_PACKAGES:
        return
    from kafka import codec

    installed = {"lz4": codec.has_lz4, "snappy": codec.has_snappy, "zstd": codec.has_zstd}
    if not installed[compression_type]():
        package = CODEC_PACKAGES[compression_type]
        raise ValidationError(
            f"kafka.producer.compression_type is {compression_type!r}, but its codec is not "
            f'installed: pip install "streamem[service]" (it brings {package}), or '
            f"pip install {package}"
        )


class KafkaSink:
    """A :class:`Sink` backed by :class:`kafka.KafkaProducer`.

    Parameters
    ----------
    producer_kwargs
        Keyword arguments of the producer
        (:meth:`streamem.service.config.Settings.producer_kwargs`).
    """

    def __init__(self, producer_kwargs: Mapping[str, Any]) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaConfigurationError

        check_compression(producer_kwargs.get("compression_type"))
        # A short first contact: the publisher retries with its own backoff, and a stop request
        # is not stuck behind kafka-python's default of 30 s.
        kwargs = {"bootstrap_timeout_ms": 5_000, **producer_kwargs}
        try:
            self._producer = KafkaProducer(**kwargs)
        except KafkaConfigurationError as error:  # a setting, not an outage: fatal
            raise ValidationError(f"kafka.producer: {error}") from error

    def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Headers
    ) -> Delivery:
        delivery: Delivery = self._producer.send(topic, value=value, key=key, headers=headers)
        return delivery

    def flush(self, timeout: float) -> None:
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as error:  # a timeout: the deliveries say what failed
            log.debug("producer flush: %s", error)

    def close(self, timeout: float) -> None:
        self._producer.close(timeout=timeout)


def dead_letter_headers(
    record: Record,
    reason: str,
    detail: str,
    *,
    original_size: int | None = None,
) -> Headers:
    """Return the headers of the dead letter of ``record``.

    Parameters
    ----------
    record
        The rejected record.
    reason
        The machine-readable reason (:class:`~streamem.service.codecs.RejectReason` value).
    detail
        The human-readable explanation (cut to :data:`DETAIL_MAX_CHARS` characters).
    original_size
        The value's length if the dead letter carries a truncated copy of it.

    Returns
    -------
    list of (str, bytes)
        ``reason``, ``detail``, ``source.topic``, ``source.partition``, ``source.offset``,
        ``source.timestamp`` (milliseconds, as in the record) and, for a truncated value,
        ``truncated`` (``true``) and ``original.size`` (bytes). Values are UTF-8 text.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> record = SimpleNamespace(topic="sensors", partition=2, offset=41, timestamp=1700000000000,
    ...                          key=None, value=b"")
    >>> dict(dead_letter_headers(record, "empty", "the value is empty"))
    {'reason': b'empty', 'detail': b'the value is empty', 'source.topic': b'sensors',
     'source.partition': b'2', 'source.offset': b'41', 'source.timestamp': b'1700000000000'}
    >>> dict(dead_letter_headers(record, "too_large", "...", original_size=2_000_000))["truncated"]
    b'true'
    """
    headers: Headers = [
        ("reason", reason.encode()),
        ("detail", detail[:DETAIL_MAX_CHARS].encode("utf-8", "replace")),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
        ("source.timestamp", str(record.timestamp).encode()),
    ]
    if original_size is not None:
        headers += [("truncated", b"true"), ("original.size", str(original_size).encode())]
    return headers


_PERMANENT_ERRNOS = frozenset({10, 18, 87})  # MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE,
# INVALID_RECORD: Kafka error codes of a record that no retry can deliver


def is_permanent(error: BaseException) -> bool:
    """Whether a send failed because of the record itself, so that no new producer can help.

    That is a Kafka error whose code says the record is too large or invalid, or a
    ``TypeError`` from the client; anything else (timeouts, lost connections, a topic without
    partitions for a moment, a producer broken by a broker restart) is worth a retry with a
    new producer.

    Examples
    --------
    >>> class MessageSizeTooLargeError(Exception):
    ...     errno = 10
    >>> is_permanent(MessageSizeTooLargeError()), is_permanent(TimeoutError())
    (True, False)
    """
    if isinstance(error, TypeError):
        return True
    return getattr(error, "errno", None) in _PERMANENT_ERRNOS


@dataclass
class DeadLetter:
    """A dead letter (or a result) on its way: what to send, where it came from, and its
    delivery; ``topic`` None is the dead-letter topic."""

    partition: Partition
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    delivery: Delivery | None = None
    topic: str | None = None

    @property
    def kind(self) -> str:
        """``dead letter`` or ``result`` (for the logs)."""
        return "dead letter" if self.topic is None else "result"

    @property
    def acknowledged(self) -> bool:
        """Whether the broker acknowledged it."""
        return self.delivery is not None and self.delivery.is_done and not self.failed

    @property
    def failed(self) -> bool:
        """Whether its last send failed (it will be sent again)."""
        return self.delivery is None or (
            self.delivery.is_done and self.delivery.exception is not None
        )


class Publisher:
    """Sends snapshots and dead letters; recreates the producer after a failed delivery.

    Parameters
    ----------
    sink_factory
        Builds a new producer (called at once, and again after a failure).
    output_topic
        Where snapshots go.
    dead_letter_topic
        Where rejected records go; None drops them (they are still counted by the caller).
    key
        The key of the snapshots (the model name).
    dead_letter_max_bytes
        Longer rejected values are truncated in their dead letter.
    backoff
        First and largest pause, in seconds, before a new producer retries failed deliveries.
    clock
        Monotonic clock in seconds (injectable for tests).
    connect
        Build the producer at once; with False, :meth:`connect` does (so that building the
        publisher never waits for a broker).

    Examples
    --------
    With an in-memory sink whose deliveries succeed at once:

    >>> from types import SimpleNamespace
    >>> class MemorySink:
    ...     def __init__(self): self.sent = []
    ...     def send(self, topic, *, value, key, headers):
    ...         self.sent.append((topic, key, value, headers))
    ...         return SimpleNamespace(is_done=True, exception=None)
    ...     def flush(self, timeout): pass
    ...     def close(self, timeout): pass
    >>> sink = MemorySink()
    >>> publisher = Publisher(lambda: sink, output_topic="models", dead_letter_topic="dead",
    ...                       key="sensors", dead_letter_max_bytes=4)
    >>> record = SimpleNamespace(topic="in", partition=0, offset=9, timestamp=0, key=b"k",
    ...                          value=b"not json")
    >>> publisher.dead_letter(record, "malformed", "not valid JSON")
    >>> publisher.settle(timeout=1.0)
    True
    >>> topic, key, value, headers = sink.sent[0]
    >>> topic, key, value, dict(headers)["original.size"]
    ('dead', b'k', b'not ', b'8')
    """

    def __init__(
        self,
        sink_factory: Callable[[], Sink],
        *,
        output_topic: str,
        dead_letter_topic: str | None,
        key: str,
        dead_letter_max_bytes: int,
        backoff: tuple[float, float] = (0.5, 30.0),
        clock: Callable[[], float] = time.monotonic,
        connect: bool = True,
    ) -> None:
        self._factory = sink_factory
        self.output_topic = output_topic
        self.dead_letter_topic = dead_letter_topic
        self.key = key.encode()
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._backoff = backoff
        self._pause = backoff[0]
        self._clock = clock
        self._retry_at: float | None = None  # set while a failure waits for its retry
        self._pending: deque[DeadLetter] = deque()
        self._snapshot: bytes | None = None  # the newest snapshot, kept until acknowledged
        self._snapshot_version = 0
        self._snapshot_delivery: Delivery | None = None
        self._superseded: list[tuple[Delivery, int]] = []  # sent snapshots replaced by newer
        self.delivered = 0
        """Snapshots acknowledged by the broker so far."""
        self.acknowledged_version = 0
        """The highest version among the snapshots acknowledged so far (0: none)."""
        self._snapshot_dropped = False  # the newest snapshot could not be sent at all
        self.failures = 0
        """Failed deliveries and failed attempts to create the producer so far."""
        self.problem: tuple[float, str] | None = None
        """Since when (the clock's time) and why snapshots and dead letters are not being
        delivered: the producer cannot be created or a delivery failed; None once a delivery
        is acknowledged, or a new producer has nothing left to send."""
        self._creation_failures = 0
        self.given_up = 0
        """Records dropped because no producer can send them (too large, invalid)."""
        self.results_delivered = 0
        """Results (:meth:`result`) acknowledged by the broker so far."""
        self._sink: Sink | None = None
        if connect:
            self.connect()

    def connect(self) -> None:
        """Build the producer if there is none and no retry is scheduled."""
        if self._sink is None and self._retry_at is None:
            self._sink = self._new_sink()

    # ---- producer life cycle ------------------------------------------------------------------

    def _new_sink(self) -> Sink | None:
        try:
            sink = self._factory()
        except StreamemError:  # a configuration error: retrying cannot help
            raise
        except Exception as error:  # kafka-python raises many types while brokers are away
            self.failures += 1
            self._creation_failures += 1
            reason = f"cannot create the Kafka producer: {error}"
            if self.problem is None or self.problem[1] != reason:  # once, not at every retry
                log.error(
                    "%s; retrying with a backoff of up to %.0f s (counted in "
                    "streamem_delivery_failures_total; /readyz fails while it lasts)",
                    reason,
                    self._backoff[1],
                )
            self._note_problem(reason, replace=True)
            self._schedule_retry()
            return None
        if self._creation_failures:
            log.info(
                "the Kafka producer was created after %d failed attempts", self._creation_failures
            )
            self._creation_failures = 0
        return sink

    def _note_problem(self, reason: str, *, replace: bool = False) -> None:
        if self.problem is None:
            self.problem = (self._clock(), reason)
        elif replace:
            self.problem = (self.problem[0], reason)

    def _delivered_something(self) -> None:
        self._pause = self._backoff[0]  # a success ends the backoff
        self.problem = None

    def _schedule_retry(self) -> None:
        if self._retry_at is None:
            self._retry_at = self._clock() + self._pause
            self._pause = min(self._pause * 2, self._backoff[1])

    def _fail(self, what: str, error: BaseException | None) -> None:
        self.failures += 1
        self._note_problem(f"delivery of {what} failed: {error}")
        if self._retry_at is None:
            log.warning(
                "delivery of %s failed (%s); recreating the producer in %.1f s",
                what,
                error,
                self._pause,
            )
        if self._sink is not None:
            sink, self._sink = self._sink, None
            try:
                sink.close(timeout=0.0)
            except Exception as close_error:  # a broken producer may fail to close
                log.debug("closing the failed producer: %s", close_error)
        self._schedule_retry()

    def _retry_due(self) -> bool:
        return self._retry_at is not None and self._clock() >= self._retry_at

    def _recover(self) -> None:
        """Build a new producer and send what failed again."""
        self._retry_at = None
        self._sink = self._new_sink()
        if self._sink is None:
            return
        # Everything not acknowledged goes again: a delivery in flight on the closed producer
        # may never complete (dead letters are at least once).
        for letter in self._pending:
            if not letter.acknowledged:
                self._send_dead_letter(letter)
        if self._snapshot is not None:
            self._send_snapshot()
        if self._retry_at is None:
            log.info("the Kafka producer was recreated; failed deliveries were sent again")

    # ---- sending ------------------------------------------------------------------------------

    def _send_dead_letter(self, letter: DeadLetter) -> None:
        topic = letter.topic or self.dead_letter_topic
        if self._sink is None or topic is None:
            return
        try:
            letter.delivery = self._sink.send(
                topic, value=letter.value, key=letter.key, headers=letter.headers
            )
        except Exception as error:  # KafkaTimeoutError, IllegalStateError, ...
            letter.delivery = None
            if is_permanent(error):
                self._give_up(letter, error)
                self._pending = deque(p for p in self._pending if p is not letter)
            else:
                self._fail(f"a {letter.kind} of {letter.partition}@{letter.offset}", error)

    def _send_snapshot(self) -> None:
        if self._sink is None:
            return
        try:
            self._snapshot_delivery = self._sink.send(
                self.output_topic, value=self._snapshot, key=self.key, headers=[]
            )
        except Exception as error:
            self._snapshot_delivery = None
            if is_permanent(error):
                self._drop_snapshot(error)
            else:
                self._fail("a model snapshot", error)

    def publish(self, value: bytes, version: int = 0) -> None:
        """Send a snapshot of ``version``; it replaces any earlier one that still waits for a
        retry.

        It counts in :attr:`delivered` (and :attr:`acknowledged_version`) once the broker
        acknowledged it (an earlier snapshot still in flight counts too if it is acknowledged).
        """
        if self._snapshot_delivery is not None and not self._snapshot_delivery.is_done:
            self._superseded.append((self._snapshot_delivery, self._snapshot_version))
        elif self._snapshot_delivery is not None:
            self._check_snapshot()  # done: count it before it is replaced
        self._snapshot = value
        self._snapshot_version = version
        self._snapshot_delivery = None
        self._send_snapshot()

    def dead_letter(self, record: Record, reason: str, detail: str) -> None:
        """Send ``record`` to the dead-letter topic with the reason in its headers."""
        if self.dead_letter_topic is None:
            return
        value = record.value
        if value is None and record.key is None:
            value = b""  # Kafka refuses a record without key and value; the headers say why
        original_size = None
        if value is not None and len(value) > self.dead_letter_max_bytes:
            original_size = len(value)
            value = value[: self.dead_letter_max_bytes]
        letter = DeadLetter(
            partition=(record.topic, record.partition),
            offset=record.offset,
            key=record.key,
            value=value,
            headers=dead_letter_headers(record, reason, detail, original_size=original_size),
        )
        self._pending.append(letter)
        self._send_dead_letter(letter)

    def result(self, topic: str, record: Record, value: bytes) -> None:
        """Send the result ``value`` of ``record`` to ``topic``, keyed like the record; like a
        dead letter, it is kept (and sent again after a failure) until acknowledged, and
        :meth:`unsettled_offsets` counts it."""
        letter = DeadLetter(
            (record.topic, record.partition), record.offset, record.key, value, [], topic=topic
        )
        self._pending.append(letter)
        self._send_dead_letter(letter)

    def reject(self, record: Record, error: RecordRejected) -> None:
        """:meth:`dead_letter` with the reason and detail of a decoding error."""
        self.dead_letter(record, error.reason.value, error.detail)

    # ---- acknowledgements ---------------------------------------------------------------------

    def poll(self) -> None:
        """Forget acknowledged deliveries, notice failures, retry when the backoff is over.

        Cheap enough to call at every loop iteration: acknowledged deliveries leave from the
        oldest on, and only the few still waiting are looked at.
        """
        pending = self._pending
        while pending and pending[0].acknowledged:
            self._letter_delivered(pending.popleft())
        if pending:
            self._review()
        self._check_snapshot()
        if self._retry_due():
            self._recover()
        self._clear_problem_if_idle()

    def _clear_problem_if_idle(self) -> None:
        """A producer that exists and has nothing left to deliver has no problem to report."""
        if (
            self.problem is not None
            and self._sink is not None
            and self._retry_at is None
            and not self._pending
            and self._snapshot is None
            and not self._snapshot_dropped
        ):
            self.problem = None

    def _review(self) -> None:
        """Drop acknowledged and unsendable dead letters; start a retry if one failed."""
        kept: deque[DeadLetter] = deque()
        failed: DeadLetter | None = None
        for letter in self._pending:
            if letter.acknowledged:
                self._letter_delivered(letter)
                continue
            error = letter.delivery.exception if letter.delivery is not None else None
            if letter.failed and error is not None and is_permanent(error):
                self._give_up(letter, error)
                continue
            if letter.failed and failed is None:
                failed = letter
            kept.append(letter)
        self._pending = kept
        if failed is not None and self._retry_at is None:
            error = failed.delivery.exception if failed.delivery is not None else None
            self._fail(f"a {failed.kind} of {failed.partition}@{failed.offset}", error)

    def _letter_delivered(self, letter: DeadLetter) -> None:
        if letter.topic is not None:
            self.results_delivered += 1
        self._delivered_something()

    def _give_up(self, letter: DeadLetter, error: BaseException) -> None:
        self.given_up += 1
        log.error(
            "the %s of %s/%d@%d cannot be sent and is dropped: %s",
            letter.kind,
            letter.partition[0],
            letter.partition[1],
            letter.offset,
            error,
        )

    def _check_snapshot(self) -> None:
        if self._superseded:
            for old in [pair for pair in self._superseded if pair[0].is_done]:
                self._superseded.remove(old)
                if old[0].exception is None:
                    self._acknowledged(old[1])
        delivery = self._snapshot_delivery
        if delivery is None or not delivery.is_done:
            return
        if delivery.exception is None:
            self._snapshot, self._snapshot_delivery = None, None
            self._acknowledged(self._snapshot_version)
            self._delivered_something()
        elif is_permanent(delivery.exception):
            self._drop_snapshot(delivery.exception)
        else:
            self._snapshot_delivery = None
            self._fail("a model snapshot", delivery.exception)

    def _acknowledged(self, version: int) -> None:
        self._snapshot_dropped = False
        self.delivered += 1
        self.acknowledged_version = max(self.acknowledged_version, version)

    def _drop_snapshot(self, error: BaseException) -> None:
        """The snapshot cannot be sent by any producer (too large): dropped, counted as a
        failed delivery, and the delivery problem stands until a later snapshot goes out."""
        size = len(self._snapshot) if self._snapshot is not None else 0
        self._snapshot, self._snapshot_delivery = None, None
        self.given_up += 1
        self.failures += 1
        self._snapshot_dropped = True
        self._note_problem(f"a model snapshot of {size} bytes is too large to send: {error}")
        log.error(
            "a model snapshot of %d bytes cannot be sent and is dropped (raise "
            "kafka.producer.max_request_size, and the topic's max.message.bytes, if the model "
            "is that large): %s",
            size,
            error,
        )

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every delivery; return True if all are acknowledged.

        Failed deliveries are retried (after the backoff, with a new producer) by later calls
        of :meth:`poll` or :meth:`settle`.
        """
        deadline = self._clock() + timeout
        if self._retry_due():
            self._recover()
        if self._sink is not None:
            self._sink.flush(timeout=max(0.0, deadline - self._clock()))
        self._review()
        self._check_snapshot()
        self._clear_problem_if_idle()
        return not self._pending and self._snapshot is None

    def unsettled_offsets(self) -> dict[Partition, int]:
        """For each partition, the offset of the oldest dead letter not yet acknowledged."""
        oldest: dict[Partition, int] = {}
        for letter in self._pending:
            if not letter.acknowledged and letter.offset < oldest.get(letter.partition, 1 << 62):
                oldest[letter.partition] = letter.offset
        return oldest

    @property
    def n_pending(self) -> int:
        """Dead letters not yet known to be acknowledged."""
        return len(self._pending)

    @property
    def snapshot_pending(self) -> bool:
        """Whether the newest snapshot is not acknowledged yet."""
        return self._snapshot is not None

    def close(self, timeout: float) -> None:
        """Close the producer, waiting up to ``timeout`` seconds for queued records."""
        if self._snapshot is not None:
            reason = f" ({self.problem[1]})" if self.problem is not None else ""
            log.warning("the newest model snapshot was not acknowledged by the broker%s", reason)
        if self._sink is not None:
            sink, self._sink = self._sink, None
            try:
                sink.close(timeout=timeout)
            except Exception as error:
                log.warning("closing the producer: %s", error)

    def forget(self, partitions: Sequence[Partition]) -> None:
        """Drop the pending dead letters of ``partitions`` (they will be read again)."""
        wanted = set(partitions)
        self._pending = deque(p for p in self._pending if p.partition not in wanted)
