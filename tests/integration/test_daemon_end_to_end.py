"""The daemon end to end on a real broker: 100k readings learned exactly once, metrics scraped by
Prometheus, and a graceful stop that publishes and checkpoints (issue 4, acceptance 1 and 5)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from streamem.service.checkpoint import CheckpointStore, partition_set_key
from streamem.service.snapshot import snapshot_schema
from streamem.synthetic import SensorModes
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config_with_metrics,
    http_get,
    metric_sample,
    produce,
    readings,
    standardised_errors,
    wait_consumed,
)
from tests.integration.servers import PrometheusServer, require

TRUTH = SensorModes.default()
VALIDATOR = jsonschema.Draft202012Validator(snapshot_schema())

pytestmark = pytest.mark.slow


def test_100k_readings_are_learned_exactly_once_and_recover_the_mixture(
    broker: EmbeddedBroker,
    prometheus: PrometheusServer,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    X, values = readings(100_000, rng)
    produce(broker.bootstrap_servers, topic_name, values)
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
    )
    daemon = daemons(config)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        last = reader.wait_for(lambda s: s["n_seen"] == 100_000, 90, "with n_seen = 100000")
        snapshots = list(reader.snapshots)
        keys = {record.key for record in reader.records}
    finally:
        reader.close()

    assert keys == {b"sensors"}
    for snapshot in snapshots:
        VALIDATOR.validate(snapshot)
    versions = [s["version"] for s in snapshots]
    assert versions == list(range(1, len(versions) + 1))
    assert max(s["n_seen"] for s in snapshots) == 100_000
    ends = {(topic_name, p): 100_000 // 3 + (p < 100_000 % 3) for p in range(3)}
    assert {(o["topic"], o["partition"]): o["offset"] for o in last["source_offsets"]} == ends
    mean_errors, weight_errors = standardised_errors(last, TRUTH, X)
    print(f"largest errors: means {mean_errors.max():.4f} sd, weights {weight_errors.max():.4f}")
    assert mean_errors.max() < 0.05
    assert weight_errors.max() < 0.02

    # Metrics: clean for promtool, and scraped by a real Prometheus.
    text = http_get(port, "/metrics")[1]
    assert metric_sample(port, "streamem_model_points_seen") == 100_000
    assert metric_sample(port, "streamem_records_consumed_total") == 100_000
    assert f'streamem_consumer_lag_records{{partition="0",topic="{topic_name}"}} 0.0' in text
    checked = subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    job = f"daemon-{group_id}"
    prometheus.add_target(job, f"127.0.0.1:{port}")
    try:
        prometheus.wait_target_up(timeout=30, job=job)
        result = prometheus.wait_query(f'streamem_model_points_seen{{job="{job}"}}', timeout=10)
        assert float(result[0]["value"][1]) == 100_000
        weights = prometheus.wait_query(f'streamem_component_weight{{job="{job}"}}')
        assert sorted(r["metric"]["component"] for r in weights) == ["0", "1", "2"]
    finally:
        prometheus.remove_target(job)

    # Graceful stop: exit 0 quickly, with a checkpoint at the end of every partition.
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert time.monotonic() - started < 5
    store = CheckpointStore(tmp_path / "state", partition_set_key("sensors", ends))
    checkpoint = store.load()
    assert checkpoint is not None
    assert checkpoint.offsets == ends
    assert checkpoint.version == versions[-1]


def test_sigterm_learns_the_open_batch_publishes_and_checkpoints_within_5_seconds(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    _, values = readings(6_000, rng)
    produce(broker.bootstrap_servers, topic_name, values[:5_000])
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        # Nothing closes a batch but the stop: everything read waits in the open batch.
        batching={"batch_size": 1_000_000, "max_wait_ms": 600_000},
    )
    daemon = daemons(config)
    wait_consumed(port, 5_000)
    assert metric_sample(port, "streamem_model_points_seen") == 0
    assert metric_sample(port, "streamem_model_version") == 0

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    elapsed = time.monotonic() - started
    print(f"stopped in {elapsed:.2f} s")
    assert elapsed < 5
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        final = reader.wait_for(lambda s: s["n_seen"] == 5_000, 10, "with n_seen = 5000")
        assert final["version"] == 1
        ends = {(topic_name, p): 5_000 // 3 + (p < 5_000 % 3) for p in range(3)}
        checkpoint = CheckpointStore(tmp_path / "state", partition_set_key("sensors", ends)).load()
        assert checkpoint is not None
        assert checkpoint.offsets == ends
        assert checkpoint.version == 1

        # A restart resumes exactly: no record twice, versions without a gap.
        produce(broker.bootstrap_servers, topic_name, values[5_000:])
        again = daemons(config)
        wait_consumed(port, 1_000)
        again.signal(signal.SIGTERM)
        assert again.wait(10) == 0
        final = reader.wait_for(lambda s: s["version"] == 2, 10, "of version 2")
        assert final["n_seen"] == 6_000
    finally:
        reader.close()
    assert " ERROR streamem." not in (tmp_path / "daemon.log").read_text()
