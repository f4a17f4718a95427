"""The publish stage: dead-letter headers, truncation, acknowledgements and producer recovery."""

from __future__ import annotations

import pytest

from streamem.service.codecs import RecordRejected, RejectReason, decode
from streamem.service.config import InputSettings
from streamem.service.publisher import DETAIL_MAX_CHARS, Publisher, dead_letter_headers
from tests.service.fakes import FakeRecord, SinkFactory


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(value: bytes | None, offset: int = 5, partition: int = 1) -> FakeRecord:
    return FakeRecord("sensors", partition, offset, 1_700_000_000_123, b"s1", value)


def _publisher(factory: SinkFactory, clock: Clock, **kwargs: object) -> Publisher:
    options: dict = {
        "output_topic": "models",
        "dead_letter_topic": "dead",
        "key": "sensors",
        "dead_letter_max_bytes": 1000,
        "backoff": (1.0, 4.0),
        "clock": clock,
    }
    options.update(kwargs)
    return Publisher(factory, **options)


BAD_VALUES = {
    RejectReason.EMPTY: b"",
    RejectReason.MALFORMED: b"{not json",
    RejectReason.WRONG_DIMENSION: b"[1.0]",
    RejectReason.NON_NUMERIC: b'{"temp": true, "hum": 1}',
    RejectReason.NON_FINITE: b'{"temp": NaN, "hum": 1}',
    RejectReason.MISSING_FEATURE: b'{"temp": 1}',
    RejectReason.TOO_LARGE: b"[" + b" " * 2000 + b"]",
}


@pytest.mark.parametrize("reason", list(BAD_VALUES))
def test_every_rejection_becomes_a_dead_letter_with_its_reason(reason: RejectReason) -> None:
    spec = InputSettings(
        format="json_array" if reason is RejectReason.WRONG_DIMENSION else "json",
        features=["temp", "hum"],
        max_record_bytes=1500,
    )
    value = BAD_VALUES[reason]
    with pytest.raises(RecordRejected) as caught:
        decode(value, spec)
    assert caught.value.reason is reason
    factory = SinkFactory()
    publisher = _publisher(factory, Clock())
    publisher.reject(_record(value), caught.value)
    assert publisher.settle(1.0)
    ((key, sent, headers),) = factory.on("dead")
    assert key == b"s1"
    assert headers["reason"] == reason.value.encode()
    assert headers["detail"] == caught.value.detail.encode()
    assert headers["source.topic"] == b"sensors"
    assert headers["source.partition"] == b"1"
    assert headers["source.offset"] == b"5"
    assert headers["source.timestamp"] == b"1700000000123"
    if reason is RejectReason.TOO_LARGE:
        assert sent == value[:1000]
        assert headers["truncated"] == b"true"
        assert headers["original.size"] == b"2002"
    else:
        assert sent == value
        assert "truncated" not in headers


def test_a_tombstone_is_dead_lettered_with_a_null_value() -> None:
    factory = SinkFactory()
    publisher = _publisher(factory, Clock())
    publisher.dead_letter(_record(None), "empty", "the record has no value")
    publisher.settle(1.0)
    assert factory.on("dead")[0][1] is None


def test_long_details_are_cut() -> None:
    headers = dict(dead_letter_headers(_record(b"x"), "malformed", "é" * 2000))
    assert headers["detail"].decode() == "é" * DETAIL_MAX_CHARS


def test_snapshots_are_keyed_by_model_name() -> None:
    factory = SinkFactory()
    publisher = _publisher(factory, Clock())
    publisher.publish(b'{"version":1}')
    assert publisher.settle(1.0)
    assert factory.on("models") == [(b"sensors", b'{"version":1}', {})]


def test_without_a_dead_letter_topic_nothing_is_sent_or_pending() -> None:
    factory = SinkFactory()
    publisher = _publisher(factory, Clock(), dead_letter_topic=None)
    publisher.dead_letter(_record(b"x"), "malformed", "bad")
    assert publisher.settle(1.0)
    assert factory.sent == []
    assert publisher.unsettled_offsets() == {}


def test_a_failed_delivery_recreates_the_producer_after_a_backoff_and_sends_again() -> None:
    factory, clock = SinkFactory(), Clock()
    publisher = _publisher(factory, clock)
    factory.sinks[0].fail = True
    publisher.dead_letter(_record(b"a", offset=7), "malformed", "bad")
    publisher.dead_letter(_record(b"b", offset=9), "malformed", "bad")
    publisher.dead_letter(_record(b"c", offset=3, partition=2), "malformed", "bad")
    assert not publisher.settle(1.0)
    assert publisher.failures == 1
    assert factory.sinks[0].closed
    assert publisher.unsettled_offsets() == {("sensors", 1): 7, ("sensors", 2): 3}
    clock.now += 0.5
    publisher.poll()
    assert len(factory.sinks) == 1  # still waiting for the backoff
    clock.now += 0.6
    publisher.poll()
    assert len(factory.sinks) == 2
    assert publisher.settle(1.0)
    assert [v for _, v, _ in factory.on("dead")] == [b"a", b"b", b"c"]
    assert publisher.unsettled_offsets() == {}


def test_the_backoff_doubles_up_to_its_limit_and_resets_after_a_success() -> None:
    factory, clock = SinkFactory(), Clock()
    factory.fail = True
    publisher = _publisher(factory, clock)
    publisher.dead_letter(_record(b"a"), "malformed", "bad")
    waits = []
    for _ in range(4):
        publisher.settle(0.0)
        start = clock.now
        while len(factory.sinks) == len(waits) + 1:
            clock.now += 0.25
            publisher.poll()
        waits.append(clock.now - start)
    assert waits == [1.0, 2.0, 4.0, 4.0]
    factory.fail = False  # the broker is back: the next new producer delivers
    for _ in range(40):
        clock.now += 0.25
        publisher.poll()
    assert publisher.settle(1.0)
    assert publisher._pause == 1.0


def test_deliveries_hanging_on_a_dead_producer_are_sent_again() -> None:
    factory, clock = SinkFactory(), Clock()
    publisher = _publisher(factory, clock)
    factory.sinks[0].hang = True
    publisher.dead_letter(_record(b"a", offset=1), "malformed", "bad")
    publisher.publish(b"snapshot-1")
    assert not publisher.settle(0.0)
    factory.sinks[0].hang, factory.sinks[0].fail = False, True  # only a new producer delivers
    publisher.dead_letter(_record(b"b", offset=2), "malformed", "bad")
    publisher.poll()
    assert publisher.failures == 1
    clock.now += 1.5
    publisher.poll()
    assert publisher.settle(1.0)
    assert [v for _, v, _ in factory.on("dead")] == [b"a", b"b"]
    assert [v for _, v, _ in factory.on("models")] == [b"snapshot-1"]


def test_a_newer_snapshot_replaces_one_waiting_for_its_retry() -> None:
    factory, clock = SinkFactory(), Clock()
    publisher = _publisher(factory, clock)
    factory.sinks[0].fail = True
    publisher.publish(b"v1")
    publisher.poll()
    publisher.publish(b"v2")  # no producer now: kept for the retry
    clock.now += 1.5
    publisher.poll()
    assert publisher.settle(1.0)
    assert [v for _, v, _ in factory.on("models")] == [b"v2"]


def test_a_producer_that_cannot_be_built_is_retried() -> None:
    calls = []
    clock = Clock()
    good = SinkFactory()

    def flaky() -> object:
        calls.append(clock.now)
        if len(calls) == 1:
            raise RuntimeError("NoBrokersAvailable")
        return good()

    publisher = _publisher(flaky, clock)  # type: ignore[arg-type]
    publisher.dead_letter(_record(b"a"), "malformed", "bad")
    assert not publisher.settle(0.0)
    clock.now += 1.0
    publisher.poll()
    assert publisher.settle(1.0)
    assert len(calls) == 2


class TooLargeError(Exception):
    errno = 10  # Kafka's MESSAGE_TOO_LARGE


def test_an_unsendable_dead_letter_is_dropped_not_retried_forever() -> None:
    factory, clock = SinkFactory(), Clock()
    publisher = _publisher(factory, clock)
    sink = factory.sinks[0]

    def refuse(topic: str, *, value: bytes | None, key: bytes | None, headers: object) -> object:
        raise TooLargeError("MESSAGE_SIZE_TOO_LARGE")

    sink.send = refuse  # type: ignore[method-assign]
    publisher.dead_letter(_record(b"x" * 10), "malformed", "bad")
    publisher.publish(b"a huge model")
    assert publisher.settle(1.0)
    assert publisher.given_up == 2
    assert len(factory.sinks) == 1
    # a model that cannot be published is a delivery failure that /readyz reports
    assert publisher.failures == 1
    assert publisher.problem is not None
    assert "too large to send" in publisher.problem[1]


def test_a_delivery_refused_by_the_broker_for_its_size_is_dropped() -> None:
    factory, clock = SinkFactory(), Clock()
    publisher = _publisher(factory, clock)
    publisher.dead_letter(_record(b"x"), "malformed", "bad")
    factory.sinks[0].deliveries[-1].exception = TooLargeError("MESSAGE_SIZE_TOO_LARGE")
    assert publisher.settle(1.0)
    assert publisher.given_up == 1
    assert publisher.unsettled_offsets() == {}


def test_a_record_without_key_and_value_is_dead_lettered_with_an_empty_value() -> None:
    factory = SinkFactory()
    publisher = _publisher(factory, Clock())
    publisher.dead_letter(FakeRecord("sensors", 0, 3, 0, None, None), "empty", "no value")
    assert publisher.settle(1.0)
    assert factory.on("dead")[0][:2] == (None, b"")
