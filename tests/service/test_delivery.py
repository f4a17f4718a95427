"""What the daemon says about its outputs is true (issue 15, acceptance 1, on in-memory stages):
``streamem_published_total`` counts acknowledged snapshots only, a producer that cannot be
created or deliveries that fail show in ``streamem_delivery_failures_total``, in ``/readyz`` and
in one log line, and a codec the installation lacks is refused before any producer exists."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from streamem.errors import ValidationError
from streamem.service.app import Daemon
from streamem.service.config import Settings
from streamem.service.metrics import MetricsServer
from streamem.service.publisher import KafkaSink, Publisher, check_compression
from streamem.synthetic import FEATURES
from tests.service.fakes import FakeLog, FakeSink, FakeSource, SinkFactory
from tests.service.test_app import Clock, _fill


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "kafka": {"topics": ["sensors"]},
            "input": {"format": "json", "features": list(FEATURES)},
            "batching": {"batch_size": 200, "max_wait_ms": 100},
            "model": {"name": "sensors", "n_components": 3, "init_size": 300, "n_init": 2},
            "state": {"dir": str(tmp_path / "state")},
            "output": {"publish_every_batches": 1},
        }
    )


def _publisher(sink: FakeSink, clock: Clock) -> Publisher:
    return Publisher(
        lambda: sink,
        output_topic="models",
        dead_letter_topic="dead",
        key="sensors",
        dead_letter_max_bytes=100,
        clock=clock,
    )


def test_a_snapshot_counts_as_delivered_only_once_acknowledged() -> None:
    clock = Clock()
    sink = FakeSink(hang=True)
    publisher = _publisher(sink, clock)
    publisher.publish(b"v1")
    publisher.poll()
    assert publisher.delivered == 0  # in flight
    publisher.publish(b"v2")  # v1 is still in flight: superseded, but it may still arrive
    sink.deliveries[0].is_done = True
    publisher.poll()
    assert publisher.delivered == 1
    sink.deliveries[1].is_done = True
    sink.deliveries[1].exception = TimeoutError("broker away")
    publisher.poll()
    assert publisher.delivered == 1  # v2 failed: not delivered
    assert publisher.failures == 1
    assert publisher.problem is not None
    assert "delivery of a model snapshot failed: broker away" in publisher.problem[1]


def test_a_producer_that_cannot_be_created_is_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    attempts: list[int] = []

    def broken() -> FakeSink:
        attempts.append(1)
        raise RuntimeError("Libraries for lz4 compression codec not found")

    publisher = Publisher(
        broken,
        output_topic="models",
        dead_letter_topic=None,
        key="sensors",
        dead_letter_max_bytes=100,
        backoff=(0.5, 2.0),
        clock=clock,
    )
    with caplog.at_level(logging.DEBUG, logger="streamem.service.publisher"):
        for _ in range(40):
            clock.now += 1.0
            publisher.publish(b"snapshot")
            publisher.poll()
    assert len(attempts) > 10
    assert publisher.failures == len(attempts)
    assert publisher.delivered == 0
    lines = [r for r in caplog.records if "cannot create the Kafka producer" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.ERROR
    assert publisher.problem is not None
    assert publisher.problem[0] == 1000.0  # since the first failure, at construction


def test_the_daemon_publishes_nothing_it_could_not_deliver_and_says_so(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    clock, log, sinks = Clock(), FakeLog(), SinkFactory()
    _fill(log, rng, 1500)
    daemon = Daemon(
        _settings(tmp_path),
        source_factory=lambda handler: FakeSource(log, handler),
        sink_factory=sinks,
        clock=clock,
        wall_clock=lambda: clock.now + 1.7e9,
    )
    server = MetricsServer(daemon.metrics, "127.0.0.1", 0, unreachable_after=2.0, clock=clock)
    registry = daemon.metrics.registry
    try:
        daemon.start()
        for _ in range(200):  # learn and publish while the broker acknowledges
            daemon.turn()
            clock.now += 0.05
        published = registry.get_sample_value("streamem_published_total")
        assert published is not None
        assert published >= 1
        assert published == len(sinks.on("streamem.models"))
        assert server.ready() == (True, "ready")

        sinks.fail = True  # the broker goes away: every delivery fails from now on
        for sink in sinks.sinks:
            sink.fail = True
        _fill(log, rng, 1500)
        versions_before = daemon.version
        for _ in range(200):
            daemon.turn()
            clock.now += 0.05
        assert daemon.version > versions_before  # the daemon tried to publish new versions
        assert registry.get_sample_value("streamem_published_total") == published
        failures = registry.get_sample_value("streamem_delivery_failures_total")
        assert failures is not None
        assert failures > 0
        ready, reason = server.ready()
        assert not ready
        assert reason.startswith("not ready: no snapshot delivered for")
        assert "broker away" in reason
    finally:
        server.close()


def test_a_codec_that_is_not_installed_is_refused_before_any_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kafka import codec

    monkeypatch.setattr(codec, "has_zstd", lambda: False)
    with pytest.raises(ValidationError) as refused:
        check_compression("zstd")
    message = str(refused.value)
    assert "kafka.producer.compression_type is 'zstd'" in message
    assert 'pip install "streamem[service]"' in message
    assert "zstandard" in message
    with pytest.raises(ValidationError, match="compression_type is 'zstd'"):
        KafkaSink({"bootstrap_servers": "127.0.0.1:1", "compression_type": "zstd"})


@pytest.mark.parametrize("codec_name", ["gzip", "lz4", "snappy", "zstd"])
def test_every_codec_the_config_accepts_is_installed_with_the_service_extra(
    codec_name: str,
) -> None:
    check_compression(codec_name)
