"""A broker outage: the broker stops for 5 s and starts again on the same port with no data; the
daemon keeps its model, reconnects, recreates its producer and learns what comes after
(issue 4, acceptance 6). The test runs its own broker: the session broker must not restart."""

from __future__ import annotations

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


def _latest(broker: EmbeddedBroker, topic: str, n_seen: int, timeout: float) -> dict:
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic}.models")
    try:
        return reader.wait_for(lambda s: s["n_seen"] == n_seen, timeout, f"with n_seen={n_seen}")
    finally:
        reader.close()


def test_the_daemon_survives_a_broker_restart_and_keeps_its_model(
    own_broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(own_broker, topic_name)
    _, values = readings(4_000, rng)
    produce(own_broker.bootstrap_servers, topic_name, values[:3_000])
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
    )
    daemon = daemons(config)
    before = _latest(own_broker, topic_name, 3_000, 60)

    own_broker.stop()
    time.sleep(5)
    own_broker.restart()  # same port, no topics, no data, no groups
    create_daemon_topics(own_broker, topic_name)
    produce(own_broker.bootstrap_servers, topic_name, [*values[3_000:], b"not json"])

    after = _latest(own_broker, topic_name, 4_000, 90)
    assert after["version"] > before["version"]
    assert after["n_batches"] > before["n_batches"]
    assert sum(o["offset"] for o in after["source_offsets"]) == 1_001  # the new topic's offsets
    assert daemon.running
    log = daemon.log()
    assert "recreated or truncated" in log
    assert "recreating the producer" in log
    assert " ERROR streamem." not in log  # kafka-python may log tracebacks; the daemon did not
