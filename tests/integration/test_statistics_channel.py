"""The statistics topic's channel on a real broker: what one replica sends, another reads."""

from __future__ import annotations

import time
from collections.abc import Collection

from streamem.models.sharing import Share
from streamem.service.broker import EmbeddedBroker
from streamem.service.source import Partition
from streamem.service.statistics import KafkaStatisticsChannel, PartitionStatistics

MODEL = "sensors"


def _channel(broker: EmbeddedBroker, topic: str, model: str = MODEL) -> KafkaStatisticsChannel:
    connection = {"bootstrap_servers": broker.bootstrap_servers}
    return KafkaStatisticsChannel(topic, model, connection, connection)


def _record(partition: int, offset: int, model: str = MODEL) -> PartitionStatistics:
    share = Share({"weights": [float(offset)]}, n_seen=offset, effective_count=float(offset))
    return PartitionStatistics(model, ("sensors", partition), offset, 0, 1.7e9, share, None)


def _read_until(
    channel: KafkaStatisticsChannel, count: int, ignore: Collection[Partition] = ()
) -> list[PartitionStatistics]:
    """Read until ``count`` records came (or 20 s passed)."""
    found: list[PartitionStatistics] = []
    deadline = time.monotonic() + 20.0
    while len(found) < count and time.monotonic() < deadline:
        found.extend(channel.read(ignore))
        time.sleep(0.05)
    return found


def test_a_replica_catches_up_on_every_record_and_then_reads_the_new_ones(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    broker.create_topics([topic_name])
    writer, reader = _channel(broker, topic_name), _channel(broker, topic_name)
    other_model = _channel(broker, topic_name, model="another")
    try:
        assert writer.send([_record(0, 10), _record(1, 20)], timeout=10.0)
        assert other_model.send([_record(0, 99, model="another")], timeout=10.0)
        assert writer.send([_record(0, 30)], timeout=10.0)
        caught_up = reader.catch_up(timeout=20.0)
        # the topic read to its end, another model's record skipped, the newest per key last
        assert [(r.partition[1], r.offset) for r in caught_up] == [(0, 10), (1, 20), (0, 30)]
        assert caught_up[1].share == _record(1, 20).share
        assert writer.send([_record(1, 40), _record(2, 50)], timeout=10.0)
        new = _read_until(reader, 2)
        assert [(r.partition[1], r.offset) for r in new] == [(1, 40), (2, 50)]
    finally:
        for channel in (writer, reader, other_model):
            channel.close()


def test_a_replica_skips_the_records_of_its_own_partitions(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    broker.create_topics([topic_name])
    writer, reader = _channel(broker, topic_name), _channel(broker, topic_name)
    try:
        assert reader.catch_up(timeout=20.0) == []
        assert writer.send([_record(0, 10), _record(1, 20), _record(2, 30)], timeout=10.0)
        found = _read_until(reader, 2, ignore=[("sensors", 1)])
        assert [(r.partition[1], r.offset) for r in found] == [(0, 10), (2, 30)]
        time.sleep(0.5)
        assert reader.read(ignore=[("sensors", 1)]) == []  # nothing left, the skipped one either
    finally:
        writer.close()
        reader.close()


def test_a_record_larger_than_a_message_goes_in_pieces_and_comes_back_whole(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    """A partition's record of many keys' filters (here 600 KB) under a producer limit of
    128 KiB: sent as pieces, read back as the one record, followed by a small one."""
    broker.create_topics([topic_name])
    small = {"bootstrap_servers": broker.bootstrap_servers}
    limited = {**small, "max_request_size": 128 * 1024}
    writer = KafkaStatisticsChannel(topic_name, MODEL, small, limited)
    reader = _channel(broker, topic_name)
    filters = {f"sensor-{i}": [float(i)] * 8 for i in range(8_000)}
    large = PartitionStatistics(MODEL, ("sensors", 0), 10, 0, 1.7e9, None, {"carry": filters})
    try:
        assert len(large.encode()) > 500_000
        assert writer.send([large, _record(1, 20)], timeout=10.0)
        found = _read_until(reader, 2)
        assert [(r.partition[1], r.offset) for r in found] == [(0, 10), (1, 20)]
        assert found[0].learner == {"carry": filters}
    finally:
        writer.close()
        reader.close()
