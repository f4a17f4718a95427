"""Partition history that changes under the daemon (issue 16, item 3).

- The topic is recreated (a broker restart on a memory-only broker) and its new log grows past
  the daemon's positions before the daemon reconnects: before the fix about 6,166 of 8,000 new
  records were silently skipped (the daemon only noticed a log end *below* its positions).
- A member paused longer than the session timeout while another member took its partition and
  advanced the checkpoint came back with its stale model ("assigned again: resuming"):
  published versions went 120 -> 11 on the output topic.

Both tests run brokers or members of their own.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config,
    produce,
    readings,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def own_broker(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    """A broker of this test only (``broker`` is requested so that Tansu's absence skips)."""
    with EmbeddedBroker() as server:
        yield server


def test_a_recreated_topic_grown_past_the_offsets_is_learned_exactly_once(
    own_broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(own_broker, topic_name)
    _, values = readings(11_000, rng)
    produce(own_broker.bootstrap_servers, topic_name, values[:3_000])
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
    )
    daemon = daemons(config)
    reader = SnapshotReader(own_broker.bootstrap_servers, f"{topic_name}.models")
    reader.wait_for(lambda s: s["n_seen"] == 3_000, 60, "with the first 3,000 readings")
    reader.close()

    own_broker.stop()
    own_broker.restart()  # same port, no topics, no data, no groups
    create_daemon_topics(own_broker, topic_name)
    # 2,667 records per partition: past the daemon's positions (1,000 per partition).
    produce(own_broker.bootstrap_servers, topic_name, values[3_000:])

    reader = SnapshotReader(own_broker.bootstrap_servers, f"{topic_name}.models")
    try:
        last = reader.wait_for(lambda s: s["n_seen"] >= 11_000, 90, "with every new record")
        time.sleep(3)  # nothing more may come: no record twice
        reader.poll()
        newest = max(reader.snapshots, key=lambda s: s["version"])
    finally:
        reader.close()
    assert last["n_seen"] == 11_000
    assert newest["n_seen"] == 11_000
    assert sum(o["offset"] for o in newest["source_offsets"]) == 8_000
    assert daemon.running
    assert "recreated" in daemon.log()


def test_a_paused_member_coming_back_never_publishes_a_lower_version(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    broker.create_topics([topic_name], partitions=1)
    broker.create_topics([f"{topic_name}.models", f"{topic_name}.dead"], partitions=1)
    _, values = readings(9_000, rng)
    produce(broker.bootstrap_servers, topic_name, values[:3_000], partitions=1)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
        output={"publish_every_batches": 1},
        state={"checkpoint_every_batches": 1, "checkpoint_every_seconds": 0.5},
    )
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    first = daemons(config, name="first")
    reader.wait_for(lambda s: s["n_seen"] == 3_000, 60, "from the first member")
    second = daemons(config, name="second")  # idle: one partition, owned by the first
    second.wait_for_log("no partition assigned", timeout=30)

    first.signal(signal.SIGSTOP)  # longer than the session timeout (2 s)
    try:
        second.wait_for_log("restored checkpoint", timeout=30)
        produce(broker.bootstrap_servers, topic_name, values[3_000:6_000], partitions=1)
        reader.wait_for(lambda s: s["n_seen"] == 6_000, 60, "from the second member")
    finally:
        first.signal(signal.SIGCONT)
    time.sleep(4)  # the first member rejoins
    produce(broker.bootstrap_servers, topic_name, values[6_000:], partitions=1)
    try:
        reader.wait_for(lambda s: s["n_seen"] == 9_000, 60, "with every record")
        time.sleep(2)
        reader.poll()
        versions = [s["version"] for s in reader.snapshots]
    finally:
        reader.close()
    print("versions in topic order:", versions)
    backwards = [(a, b) for a, b in itertools.pairwise(versions) if b <= a]
    assert not backwards, f"versions went backwards: {backwards}"
    assert max(reader.snapshots, key=lambda s: s["version"])["n_seen"] == 9_000
