"""A state directory that cannot be written (issue 16, item 5): refused at start; a disk that
fails mid-run turns ``/readyz`` 503, shows in a metric, and SIGTERM exits non-zero.

Before the fix a daemon with an unwritable state directory learned, checkpointed and published
nothing, logged an ERROR every 10 s with ``/healthz`` and ``/readyz`` 200, and SIGTERM exited 0
saying "dead letters not acknowledged". The fault is made with ``chattr +i`` (root on these
machines; ``chmod`` does not stop root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config,
    daemon_config_with_metrics,
    http_get,
    metric_sample,
    produce,
    readings,
    wait_consumed,
)
from tests.integration.servers import unavailable


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Make a directory immutable with ``chattr +i``; undone at the end of the test."""
    chattr = shutil.which("chattr")
    if chattr is None or os.geteuid() != 0:
        unavailable("chattr as root is needed to make a directory unwritable")
    made: list[Path] = []

    def make(path: Path) -> None:
        subprocess.run([chattr, "+i", str(path)], check=True)
        made.append(path)

    yield make
    for path in made:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_an_unwritable_state_directory_is_refused_at_start(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    immutable: Callable[[Path], None],
) -> None:
    create_daemon_topics(broker, topic_name)
    state = tmp_path / "state"
    state.mkdir()
    immutable(state)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
    )
    daemon = daemons(config)
    try:
        code = daemon.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon started with an unwritable state directory")
    assert code != 0
    (line,) = [x for x in daemon.log().splitlines() if x.startswith("streamem: error")]
    assert str(state) in line, line
    assert "state.dir" in line, line


def test_a_state_directory_that_fails_mid_run_turns_readyz_503_and_sigterm_exits_non_zero(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
    immutable: Callable[[Path], None],
) -> None:
    create_daemon_topics(broker, topic_name)
    state = tmp_path / "state"
    state.mkdir()
    orphan = state / ".sensors.sensors-0-1-2.abcdef.tmp"  # a write killed long ago
    orphan.write_bytes(b'{"schema_version": 1, "ke')
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    _, values = readings(6_000, rng)
    produce(broker.bootstrap_servers, topic_name, values[:3_000])
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        state={"checkpoint_every_seconds": 0.5},
    )
    daemon = daemons(config)
    wait_consumed(port, 3_000)
    assert not orphan.exists()
    deadline = time.monotonic() + 20
    while http_get(port, "/readyz")[0] != 200 or not list(state.glob("*.checkpoint.json")):
        assert time.monotonic() < deadline, http_get(port, "/readyz")
        time.sleep(0.2)
    assert metric_sample(port, "streamem_checkpoint_failures_total") == 0

    immutable(state)  # the disk fails
    produce(broker.bootstrap_servers, topic_name, values[3_000:], first=3_000)
    wait_consumed(port, 6_000)
    deadline = time.monotonic() + 20
    while True:
        code, body = http_get(port, "/readyz")
        if code == 503:
            break
        assert time.monotonic() < deadline, f"/readyz still {code} {body}"
        time.sleep(0.2)
    assert "checkpoint" in body, body
    assert str(state) in body, body
    assert http_get(port, "/healthz")[0] == 200  # a restart would not mend the disk
    failures = metric_sample(port, "streamem_checkpoint_failures_total")
    assert failures is not None
    assert failures >= 1

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(20) == 3  # streamem.service.app.EXIT_CHECKPOINT_FAILED
    log = daemon.log()
    assert "the state directory failed" in log
    assert "dead letters not acknowledged" not in log
