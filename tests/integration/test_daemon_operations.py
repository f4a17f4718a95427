"""Ordinary operations against scale-out replicas on the real broker (issue 26): a replica
paused past the session timeout, and a rolling restart right after traffic ends.

The invariants: the final published ``n_seen`` equals the valid records produced, no published
model counts a record twice (``n_seen`` never above the records produced), and the versions on
the output topic increase strictly.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    daemon_config,
    produce,
    readings,
)

N_PARTITIONS = 4

pytestmark = pytest.mark.slow


def _replicas(tmp_path: Path, broker: EmbeddedBroker, topic: str, group: str, n: int) -> list[Path]:
    broker.create_topics([topic], partitions=N_PARTITIONS)
    broker.create_topics([f"{topic}.models", f"{topic}.dead", f"{topic}.statistics"], partitions=1)
    return [
        daemon_config(
            tmp_path / f"replica{i}" / "daemon.yaml",
            bootstrap=broker.bootstrap_servers,
            topic=topic,
            group=group,
            output={"statistics_topic": f"{topic}.statistics"},
            state={"checkpoint_every_seconds": 1.0},
        )
        for i in range(n)
    ]


def _owns_leader(daemon: DaemonProcess, topic: str) -> bool:
    lines = [line for line in daemon.log().splitlines() if " assigned; " in line]
    return bool(lines) and f"{topic}/0," in lines[-1].replace(" assigned", ", assigned")


def _check_lineage(reader: SnapshotReader, n_records: int, paused_at: float | None = None) -> None:
    """Versions increase strictly on the topic, except for snapshots that a paused member had
    handed to its producer before the pause (built before ``paused_at``, Unix time, and
    delivered after it): readers skip those as older than the newest version they read."""
    reader.poll()
    versions = [snapshot["version"] for snapshot in reader.snapshots]
    counts = [snapshot["n_seen"] for snapshot in reader.snapshots]
    print(f"{len(versions)} versions, {versions[0]}..{versions[-1]}; n_seen max {max(counts)}")
    newest, late = 0, []
    for snapshot in reader.snapshots:
        if snapshot["version"] <= newest:
            late.append(snapshot)
        newest = max(newest, snapshot["version"])
    print(f"delivered late: {[(s['version'], s['timestamp']) for s in late]}")
    if paused_at is None:
        assert not late, f"versions not strictly increasing: {versions}"
    else:
        print(f"paused at {paused_at}")
        assert all(snapshot["timestamp"] < paused_at for snapshot in late), versions
    assert max(counts) <= n_records, "a published model counted a record twice"


def test_a_replica_paused_past_the_session_timeout_publishes_nothing_stale(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    """SIGSTOP of the publishing replica for 8 s (session timeout 2 s), then SIGCONT: the
    resumed member learns its partitions are lost and writes nothing for them."""
    n_records = 60_000
    configs = _replicas(tmp_path, broker, topic_name, group_id, 2)
    _, values = readings(n_records, rng)
    running = [daemons(config, name=f"replica{i}") for i, config in enumerate(configs)]
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    producer = threading.Thread(
        target=produce,
        args=(broker.bootstrap_servers, topic_name, values),
        kwargs={"partitions": N_PARTITIONS, "rate": 4_000},
    )
    try:
        for daemon in running:
            daemon.wait_for_log(" assigned; ", timeout=60)
        producer.start()
        reader.wait_for(lambda s: s["n_seen"] > 10_000, 60, "with 10,000 records")
        paused = next(d for d in running if _owns_leader(d, topic_name))
        paused_at = time.time()
        paused.signal(signal.SIGSTOP)
        time.sleep(8.0)  # the fault itself: a pause 4x the session timeout
        paused.signal(signal.SIGCONT)
        paused.wait_for_log(" lost: the group expelled this member", timeout=30)
        producer.join(120)
        reader.wait_for(lambda s: s["n_seen"] == n_records, 120, "with every record")
        time.sleep(2.0)  # a late write of the resumed member would come now
        _check_lineage(reader, n_records, paused_at)
    finally:
        reader.close()


def test_a_rolling_restart_right_after_traffic_ends_publishes_every_record(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    """SIGTERM each of 3 replicas in turn, a new one started after each exit, as soon as the
    last record was produced: the replica that takes over the leader partition publishes the
    restored global model without waiting for new records."""
    n_records = 60_000
    configs = _replicas(tmp_path, broker, topic_name, group_id, 3)
    _, values = readings(n_records, rng)
    running = [daemons(config, name=f"replica{i}") for i, config in enumerate(configs)]
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        for daemon in running:
            daemon.wait_for_log(" assigned; ", timeout=60)
        produce(broker.bootstrap_servers, topic_name, values, partitions=N_PARTITIONS, rate=20_000)
        for i, config in enumerate(configs):
            running[i].signal(signal.SIGTERM)
            assert running[i].wait(30) == 0
            running[i] = daemons(config, name=f"replica{i}-restarted")
            running[i].wait_for_log(" assigned; ", timeout=60)
        reader.wait_for(lambda s: s["n_seen"] == n_records, 90, "with every record")
        _check_lineage(reader, n_records)
    finally:
        reader.close()


@pytest.mark.parametrize("n_replicas", [1, 2], ids=["one-daemon", "scale-out"])
def test_a_broker_restart_refilled_beyond_the_stored_offsets_loses_and_repeats_nothing(
    own_broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
    n_replicas: int,
) -> None:
    """The broker loses every topic (a memory-only broker restarts), and the new input log
    grows past the offsets the daemons stored before they read it: each record of the new log
    is learned once, on every partition, the producers recover, and (scale-out) the replicas
    keep the model that only their memory still holds."""
    before, after = 20_000, 40_000
    broker = own_broker
    if n_replicas == 1:
        configs = [
            daemon_config(
                tmp_path / "daemon.yaml",
                bootstrap=broker.bootstrap_servers,
                topic=topic_name,
                group=group_id,
                state={"checkpoint_every_seconds": 1.0},
            )
        ]
        topics = [f"{topic_name}.models", f"{topic_name}.dead"]
        broker.create_topics([topic_name], partitions=N_PARTITIONS)
        broker.create_topics(topics, partitions=1)
    else:
        configs = _replicas(tmp_path, broker, topic_name, group_id, n_replicas)
        topics = [f"{topic_name}.models", f"{topic_name}.dead", f"{topic_name}.statistics"]
    _, values = readings(before + after, rng)
    running = [daemons(config, name=f"replica{i}") for i, config in enumerate(configs)]
    for daemon in running:
        daemon.wait_for_log(" assigned; ", timeout=60)
    produce(broker.bootstrap_servers, topic_name, values[:before], partitions=N_PARTITIONS)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        reader.wait_for(lambda s: s["n_seen"] == before, 90, "with the first records")
    finally:
        reader.close()
    broker.stop()
    broker.restart()  # same port, no topics, no data, no groups
    broker.create_topics([topic_name], partitions=N_PARTITIONS)
    broker.create_topics(topics, partitions=1)
    produce(broker.bootstrap_servers, topic_name, values[before:], partitions=N_PARTITIONS)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        reader.wait_for(lambda s: s["n_seen"] >= before + after, 120, "with every record")
        time.sleep(3.0)  # a record learned twice would show now
        reader.poll()
        counts = [snapshot["n_seen"] for snapshot in reader.snapshots]
        print(f"n_seen after the restart: {counts[-5:]}")
        assert counts[-1] == before + after
        assert max(counts) == before + after, "a record of the new log was learned twice"
    finally:
        reader.close()
    assert all(daemon.running for daemon in running)


def test_the_group_learns_when_the_leader_partition_never_gets_a_record(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    """Keyed input that never lands on partition 0 (the leader partition): the other partitions
    elect the first parameters among themselves, and partition 0's owner publishes every
    record."""
    from kafka import KafkaProducer

    n_records = 30_000
    configs = _replicas(tmp_path, broker, topic_name, group_id, 2)
    _, values = readings(n_records, rng)
    running = [daemons(config, name=f"replica{i}") for i, config in enumerate(configs)]
    for daemon in running:
        daemon.wait_for_log(" assigned; ", timeout=60)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
    try:
        for i, value in enumerate(values):
            producer.send(topic_name, value=value, partition=1 + i % (N_PARTITIONS - 1))
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        reader.wait_for(lambda s: s["n_seen"] == n_records, 120, "with every record")
        _check_lineage(reader, n_records)
    finally:
        reader.close()
