"""Smoke tests of the real-server plumbing: Tansu broker, kcat and Prometheus."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry, Counter, start_http_server

from streamem.service.broker import EmbeddedBroker
from tests.integration.servers import Kcat, PrometheusServer, free_port, read_records


def _produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, value=value, key=key)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_broker_start_stop_and_restart_on_same_port() -> None:
    with EmbeddedBroker() as broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        first_pid = broker.pid
        assert first_pid is not None
        assert _alive(first_pid)
        broker.create_topics(["before"], partitions=2)
        broker.create_topics(["before"], partitions=2)  # already there: fine
        _produce(broker.bootstrap_servers, "before", [b"one", b"two"])
        assert sorted(r.value for r in read_records(broker.bootstrap_servers, "before", 2)) == [
            b"one",
            b"two",
        ]

        port = broker.port
        broker.restart()
        assert broker.port == port
        assert broker.pid is not None
        assert broker.pid != first_pid
        assert not _alive(first_pid)

        # Tansu keeps data in memory only: the topic is gone; a new producer works again.
        broker.create_topics(["after"])
        _produce(broker.bootstrap_servers, "after", [b"three"], key=b"k")
        (record,) = read_records(broker.bootstrap_servers, "after", 1)
        assert (record.key, record.value) == (b"k", b"three")

        last_pid = broker.pid
    assert broker.pid is None
    assert not _alive(last_pid)
    assert "ready in" in broker.log_path.read_text()


def test_broker_start_fails_clearly_when_port_is_taken() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = EmbeddedBroker(port=squatter.getsockname()[1], start_timeout=5)
        with pytest.raises(RuntimeError, match="Address in use"):
            broker.start()
        assert broker.pid is None


def test_kcat_produces_and_kafka_python_reads(
    broker: EmbeddedBroker, kcat: Kcat, topic_name: str
) -> None:
    broker.create_topics([topic_name], partitions=1)
    lines = ["plain", '{"x": 1.5, "y": -2}', "1.0,2.0,3.0"]
    kcat.produce(broker.bootstrap_servers, topic_name, lines, key="sensor-1")
    records = read_records(broker.bootstrap_servers, topic_name, 3)
    assert [r.value.decode() for r in records] == lines
    assert {r.key for r in records} == {b"sensor-1"}


def test_kafka_python_produces_and_kcat_reads(
    broker: EmbeddedBroker, kcat: Kcat, topic_name: str
) -> None:
    broker.create_topics([topic_name], partitions=3)
    values = [f"message {i} é" for i in range(10)]
    _produce(broker.bootstrap_servers, topic_name, [v.encode() for v in values])
    assert sorted(kcat.consume(broker.bootstrap_servers, topic_name, 10)) == sorted(values)


def test_prometheus_scrapes_a_prometheus_client_server(prometheus: PrometheusServer) -> None:
    registry = CollectorRegistry()
    counter = Counter(
        "streamem_smoke_events", "Events counted by the smoke test.", registry=registry
    )
    counter.inc(3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = f"smoke-{uuid.uuid4().hex[:8]}"
    try:
        prometheus.add_target(job, f"127.0.0.1:{port}")
        prometheus.wait_target_up(20, job=job)
        result = prometheus.wait_query(f'streamem_smoke_events_total{{job="{job}"}}')
        assert [float(r["value"][1]) for r in result] == [3.0]
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
    finally:
        prometheus.remove_target(job)
        server.shutdown()
        server.server_close()
        thread.join(5)
