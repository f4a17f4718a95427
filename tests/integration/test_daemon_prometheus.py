"""A real Prometheus scrapes a daemon that is learning a live stream; PromQL through its HTTP API
returns the batch log-likelihood and a records counter that grows (issue 5, acceptance 2)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config_with_metrics,
    produce,
    readings,
)
from tests.integration.servers import PrometheusServer

pytestmark = pytest.mark.slow


def _value(prometheus: PrometheusServer, promql: str) -> float:
    result = prometheus.wait_query(promql, timeout=15)
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_sees_the_live_log_likelihood_and_a_growing_records_counter(
    broker: EmbeddedBroker,
    prometheus: PrometheusServer,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    _, values = readings(30_000, rng)
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
        batching={"batch_size": 500, "max_wait_ms": 200},
    )
    daemons(config)
    # A live stream: 2,000 readings a second for 15 s while Prometheus scrapes every second.
    producer = threading.Thread(
        target=produce, args=(broker.bootstrap_servers, topic_name, values), kwargs={"rate": 2_000}
    )
    producer.start()
    job = f"daemon-{group_id}"
    prometheus.add_target(job, f"127.0.0.1:{port}")
    try:
        prometheus.wait_target_up(timeout=30, job=job)
        consumed = f'streamem_records_consumed_total{{job="{job}"}}'
        first = _value(prometheus, f"{consumed} > 0")
        log_likelihood = _value(prometheus, f'streamem_batch_mean_log_likelihood{{job="{job}"}}')
        print(f"records consumed {first:.0f}, batch mean log-likelihood {log_likelihood:.3f}")
        assert math.isfinite(log_likelihood)
        assert -20 < log_likelihood < 10  # three sensor features, per point
        time.sleep(2.5)  # two more scrapes
        second = _value(prometheus, consumed)
        print(f"records consumed 2.5 s later: {second:.0f}")
        assert second > first
        assert _value(prometheus, f'rate(streamem_records_consumed_total{{job="{job}"}}[5s])') > 0
    finally:
        prometheus.remove_target(job)
        producer.join(30)
    assert not producer.is_alive()
