"""Metrics: names, values read at scrape time, the HTTP endpoint and its probes."""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import streamem
from streamem.engine.monitor import MonitorRecord
from streamem.service.learner import LearnerStatus
from streamem.service.metrics import DaemonMetrics, MetricsServer

RECORD = MonitorRecord(
    batch=12,
    n_points=1000,
    mean_log_likelihood=-3.5,
    smoothed_log_likelihood=-3.6,
    change=0.01,
    parameter_change=0.02,
    step_size=0.1,
    converged=True,
)


def _filled() -> DaemonMetrics:
    metrics = DaemonMetrics()
    metrics.consumed.inc(1000)
    metrics.rejected.labels(reason="malformed").inc(3)
    metrics.learned.inc(997)
    metrics.points.inc(997)
    metrics.batches.inc()
    metrics.batch_duration.observe(0.004)
    metrics.state.status = LearnerStatus(
        initialized=True,
        n_seen=997,
        n_updates=12,
        weights=(0.2, 0.5, 0.3),
        record=RECORD,
        converged=True,
        drift_events=2,
        drift=True,
    )
    metrics.state.version = 12
    metrics.state.lag = {("sensors", 0): 5, ("sensors", 1): 0}
    metrics.state.last_checkpoint = 1_700_000_000.0
    metrics.state.last_publish = 1_700_000_001.0
    metrics.state.publishing = True
    return metrics


def test_model_values_are_read_at_scrape_time() -> None:
    metrics = _filled()
    get = metrics.registry.get_sample_value
    assert get("streamem_records_consumed_total") == 1000
    assert get("streamem_records_rejected_total", {"reason": "malformed"}) == 3
    assert get("streamem_records_rejected_total", {"reason": "too_large"}) == 0
    assert get("streamem_batch_duration_seconds_count") == 1
    assert get("streamem_batch_mean_log_likelihood") == -3.5
    assert get("streamem_smoothed_log_likelihood") == -3.6
    assert get("streamem_log_likelihood_change") == 0.01
    assert get("streamem_parameter_change") == 0.02
    assert get("streamem_step_size") == 0.1
    assert get("streamem_component_weight", {"component": "1"}) == 0.5
    assert get("streamem_converged") == 1
    assert get("streamem_drift") == 1
    assert get("streamem_drift_events_total") == 2
    assert get("streamem_model_points_seen") == 997
    assert get("streamem_model_version") == 12
    assert get("streamem_consumer_lag_records", {"topic": "sensors", "partition": "0"}) == 5
    assert get("streamem_assigned_partitions") == 2
    assert get("streamem_publishing_replica") == 1
    assert get("streamem_last_checkpoint_timestamp_seconds") == 1_700_000_000.0
    build = {"version": streamem.__version__, "python": platform.python_version()}
    assert get("streamem_build_info", build) == 1
    metrics.state.version = 13  # the daemon replaces values; the next scrape sees them
    assert get("streamem_model_version") == 13


def test_before_the_first_update_there_are_no_model_gauges() -> None:
    get = DaemonMetrics().registry.get_sample_value
    assert get("streamem_batch_mean_log_likelihood") is None
    assert get("streamem_component_weight", {"component": "0"}) is None
    assert get("streamem_last_checkpoint_timestamp_seconds") is None
    assert get("streamem_converged") == 0
    assert get("streamem_publishing_replica") == 0
    assert get("streamem_merged_statistics_age_seconds") is None


def test_a_nan_change_is_left_out() -> None:
    metrics = _filled()
    status = metrics.state.status
    first = MonitorRecord(**{**RECORD.__dict__, "change": float("nan")})
    metrics.state.status = LearnerStatus(**{**status.__dict__, "record": first})
    assert metrics.registry.get_sample_value("streamem_log_likelihood_change") is None


def test_names_follow_prometheus_conventions() -> None:
    families = list(text_string_to_metric_families(_filled().exposition().decode()))
    for family in families:
        assert family.name.startswith("streamem_"), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        assert not family.name.endswith(("_ms", "_milliseconds", "_bytes_total"))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_finds_no_problem() -> None:
    import prometheus_client

    prometheus_client.disable_created_metrics()
    try:
        text = _filled().exposition()
    finally:
        prometheus_client.enable_created_metrics()
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_endpoint_serves_metrics_and_probes() -> None:
    metrics = _filled()
    server = MetricsServer(metrics, "127.0.0.1", 0, stale_after=0.5)
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert b"streamem_model_version 12.0" in body
        assert _get(f"{base}/readyz") == (503, b"not ready: no partitions assigned (yet)\n")
        metrics.state.ready = True
        metrics.state.broker_contact = time.monotonic()
        assert _get(f"{base}/readyz") == (200, b"ready\n")
        metrics.state.broker_contact = time.monotonic() - 40.0
        assert _get(f"{base}/readyz") == (503, b"not ready: no broker connection for 40 s\n")
        metrics.state.heartbeat = time.monotonic()
        assert _get(f"{base}/healthz") == (200, b"ok\n")
        metrics.state.heartbeat = time.monotonic() - 1.0
        assert _get(f"{base}/healthz") == (503, b"loop stalled: no turn for 1 s\n")
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        server.close()


def test_readyz_fails_while_updates_or_checkpoints_fail() -> None:
    metrics = DaemonMetrics()
    now = [100.0]
    server = MetricsServer(metrics, "127.0.0.1", 0, clock=lambda: now[0])
    try:
        state = metrics.state
        state.ready, state.broker_contact = True, now[0]
        assert server.ready() == (True, "ready")
        state.failed_batches = state.unready_after_failed_batches
        assert server.ready() == (False, "not ready: the last 3 updates of the model failed")
        state.failed_batches = 0
        state.checkpoint_error = "cannot write checkpoint file 'x': Operation not permitted"
        ok, reason = server.ready()
        assert not ok
        assert "checkpoint cannot be written" in reason
        assert "'x'" in reason
    finally:
        server.close()


def test_healthz_fails_when_a_producer_stays_broken_while_the_brokers_answer() -> None:
    metrics = DaemonMetrics()
    now = [1000.0]
    server = MetricsServer(
        metrics, "127.0.0.1", 0, stale_after=60.0, unreachable_after=2.0, clock=lambda: now[0]
    )
    try:
        state = metrics.state
        state.heartbeat = state.broker_contact = now[0]
        state.statistics_problem = (now[0] - 59.0, "the statistics topic did not acknowledge")
        assert server.healthy() == (True, "ok")  # not for long enough yet
        state.statistics_problem = (now[0] - 61.0, "the statistics topic did not acknowledge")
        ok, reason = server.healthy()
        assert not ok
        assert "stays broken while the brokers answer, for 61 s" in reason
        state.broker_contact = now[0] - 5.0  # an outage: a restart cannot bring brokers back
        assert server.healthy() == (True, "ok")
        state.broker_contact, state.statistics_problem = now[0], None
        state.delivery_problem = (now[0] - 90.0, "delivery of a snapshot failed")
        assert not server.healthy()[0]
    finally:
        server.close()


def test_a_port_in_use_names_the_address() -> None:
    server = MetricsServer(DaemonMetrics(), "127.0.0.1", 0)
    try:
        with pytest.raises(streamem.StreamemError, match=f"127.0.0.1:{server.port}"):
            MetricsServer(DaemonMetrics(), "127.0.0.1", server.port)
    finally:
        server.close()


def test_connections_beyond_the_cap_get_no_thread() -> None:
    import socket
    import threading

    from streamem.service.metrics import MAX_CONNECTIONS

    server = MetricsServer(DaemonMetrics(), "127.0.0.1", 0)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
    try:
        time.sleep(0.5)
        assert threading.active_count() <= before + MAX_CONNECTIONS
    finally:
        for connection in idle:
            connection.close()
        server.close()
