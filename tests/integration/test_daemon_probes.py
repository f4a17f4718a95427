"""``/healthz`` and ``/readyz`` of a running daemon as documented in :mod:`streamem.service.metrics`
(issue 5, acceptance 5): at start before the brokers and the assignment, in normal operation, and
through a broker outage. The test runs its own broker, which it starts late and restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config_with_metrics,
    http_get,
    produce,
    readings,
    wait_consumed,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def late_broker(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    """A broker of this test only, not started yet (``broker`` makes Tansu's absence skip)."""
    server = EmbeddedBroker()
    try:
        yield server
    finally:
        server.stop()


class Probes:
    """Polls both probes; every answer of ``/healthz`` seen so far is kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.health: list[tuple[int, str]] = []

    def ready(self) -> tuple[int, str]:
        self.health.append(http_get(self.port, "/healthz"))
        return http_get(self.port, "/readyz")

    def wait_ready(self, status: int, timeout: float) -> str:
        """Poll until ``/readyz`` answers ``status``; return its body."""
        deadline = time.monotonic() + timeout
        answer = (0, "")
        while time.monotonic() < deadline:
            answer = self.ready()
            if answer[0] == status:
                return answer[1]
            time.sleep(0.2)
        raise AssertionError(f"/readyz did not answer {status} in {timeout} s; last: {answer}")

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.ready()
                return
            except OSError:
                time.sleep(0.1)  # the endpoint is not listening yet
        raise AssertionError(f"the metrics endpoint on port {self.port} did not come up")


def test_probes_at_start_in_operation_and_through_a_broker_outage(
    late_broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    _, values = readings(3_000, rng)
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=late_broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
    )
    daemon = daemons(config)
    probes = Probes(port)

    # Start, no broker: alive but not ready.
    probes.wait_up()
    for _ in range(10):
        assert probes.ready() == (503, "not ready: no partitions assigned (yet)\n")
        time.sleep(0.2)

    # Normal operation: ready once the group assigned the partitions; records are learned.
    late_broker.start()
    create_daemon_topics(late_broker, topic_name)
    produce(late_broker.bootstrap_servers, topic_name, values[:2_000])
    assert probes.wait_ready(200, timeout=30) == "ready\n"
    wait_consumed(port, 2_000)
    assert probes.ready() == (200, "ready\n")

    # Outage: not ready after the session timeout (2 s here); alive throughout.
    started = time.monotonic()
    late_broker.stop()
    body = probes.wait_ready(503, timeout=15)
    print(f"/readyz failed {time.monotonic() - started:.1f} s into the outage: {body.strip()}")
    assert body.startswith("not ready: no broker connection for ")
    # Not before the session timeout, less the half second between two looks at the consumer.
    assert time.monotonic() - started >= 1.5

    # Recovery: ready again once the broker is back and the group assigned the partitions.
    late_broker.restart()
    create_daemon_topics(late_broker, topic_name)
    produce(late_broker.bootstrap_servers, topic_name, values[2_000:])
    assert probes.wait_ready(200, timeout=30) == "ready\n"

    assert daemon.running
    assert len(probes.health) > 20
    assert set(probes.health) == {(200, "ok\n")}
