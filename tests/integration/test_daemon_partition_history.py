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
from collections.abc import Callable
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

    # The daemon is held while the broker restarts, so that the new log grows past its
    # positions before it reconnects (and so that its metadata requests cannot make Tansu
    # create the topic on its own, with another number of partitions, before the test does).
    daemon.signal(signal.SIGSTOP)
    try:
        own_broker.stop()
        own_broker.restart()  # same port, no topics, no data, no groups
        create_daemon_topics(own_broker, topic_name)
        # 2,667 records per partition: past the daemon's positions (1,000 per partition).
        produce(own_broker.bootstrap_servers, topic_name, values[3_000:])
    finally:
        daemon.signal(signal.SIGCONT)

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


def _owns(member: DaemonProcess) -> bool | None:
    """Whether the member's newest assignment gave it partitions (None: none yet)."""
    lines = [line for line in member.log().splitlines() if "assigned" in line]
    lines = [line for line in lines if "streamem.service." in line and "revoked" not in line]
    return None if not lines else "no partition assigned" not in lines[-1]


def _owner_and_idle(
    members: list[DaemonProcess], timeout: float
) -> tuple[DaemonProcess, DaemonProcess]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owns = [_owns(member) for member in members]
        if sorted(owns, key=str) == [False, True]:
            return members[owns.index(True)], members[owns.index(False)]
        time.sleep(0.2)
    raise AssertionError("the two members did not settle on one owner")


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
    members = [daemons(config, name="first")]
    reader.wait_for(lambda s: s["n_seen"] == 3_000, 60, "from the first member")
    members.append(daemons(config, name="second"))  # one partition: one member stays idle
    owner, idle = _owner_and_idle(members, timeout=30)

    owner.signal(signal.SIGSTOP)  # longer than the session timeout (2 s)
    try:
        deadline = time.monotonic() + 30
        while not _owns(idle):
            assert time.monotonic() < deadline, "the idle member did not take the partition"
            time.sleep(0.2)
        produce(broker.bootstrap_servers, topic_name, values[3_000:6_000], partitions=1)
        reader.wait_for(lambda s: s["n_seen"] == 6_000, 60, "from the member that took over")
    finally:
        owner.signal(signal.SIGCONT)
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
