"""A sequential family in the real daemon: five sensors' series, interleaved on a 3-partition
topic, each sensor's readings one sequence with its own filter state (``input.sequence_key``),
learned across three SIGKILLs (issue 12, acceptance 6: the noise covariances of a local-level
model per sensor)."""

from __future__ import annotations

import json
import threading
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
)

pytestmark = pytest.mark.slow

N_SENSORS = 5
N_STEPS = 20_000  # per sensor: 100,000 readings in all
LEVEL_SD = np.array([0.5, 0.3])  # Q = diag(LEVEL_SD^2): how far a sensor's true level moves
NOISE_SD = np.array([1.0, 0.6])  # R = diag(NOISE_SD^2): the measurement noise
FEATURES = ("temp", "hum")


def sensor_records(rng: np.random.Generator) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every reading, in time order, sensors interleaved; a sensor's
    readings all go to one partition (its key decides), as a keyed producer sends them."""
    levels = np.cumsum(rng.normal(0.0, LEVEL_SD, size=(N_SENSORS, N_STEPS, 2)), axis=1)
    readings = levels + rng.normal(0.0, NOISE_SD, size=levels.shape)
    records = []
    for t in range(N_STEPS):
        for s in range(N_SENSORS):
            value = {"sensor": f"s{s}", **dict(zip(FEATURES, readings[s, t].tolist(), strict=True))}
            records.append((s % 3, f"s{s}".encode(), json.dumps(value).encode()))
    return records


def produce_keyed(
    bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes]], rate: float
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    try:
        started = time.monotonic()
        for i, (partition, key, value) in enumerate(records):
            producer.send(topic, key=key, value=value, partition=partition)
            if i % 500 == 499:
                ahead = started + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def test_five_sensor_series_learn_their_noise_covariances_across_three_sigkills(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    records = sensor_records(rng)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        input={"features": list(FEATURES), "sequence_key": "sensor"},
        model={
            "family": "linear_gaussian_ssm",
            "covariance_type": "diag",
            "init_size": None,
            "n_init": None,
        },
        drift={"enabled": False},
    )
    quarters = np.array_split(np.arange(len(records)), 4)
    crashed = [threading.Event() for _ in quarters]
    crashed[0].set()

    def stream_in_quarters() -> None:
        for quarter, crash in zip(quarters, crashed, strict=True):
            crash.wait(120)
            chunk = [records[i] for i in quarter]
            produce_keyed(broker.bootstrap_servers, topic_name, chunk, rate=10_000)

    producer = threading.Thread(target=stream_in_quarters)
    producer.start()
    try:
        daemon = daemons(config)
        for crash in range(1, 4):
            daemon.wait_for_log(" assigned; ", timeout=30, count=crash)
            time.sleep(float(rng.uniform(0.5, 2.0)))
            daemon.kill()
            crashed[crash].set()
            daemon = daemons(config)
        daemon.wait_for_log(" assigned; ", timeout=30, count=4)
    finally:
        for event in crashed:
            event.set()
        producer.join()

    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        final = reader.wait_for(lambda s: s["n_seen"] >= len(records), 120, "complete")
        versions = [s["version"] for s in reader.snapshots]
    finally:
        reader.close()
    assert final["n_seen"] == len(records)
    assert versions == sorted(set(versions)), "versions must increase strictly"
    assert daemon.log().count("restored checkpoint") == 3
    assert final["family"] == "linear_gaussian_ssm"
    learned_q = np.diag(final["transition_covariance"])
    learned_r = np.diag(final["observation_covariance"])
    print(f"Q {learned_q} (true {LEVEL_SD**2}), R {learned_r} (true {NOISE_SD**2})")
    np.testing.assert_allclose(learned_q, LEVEL_SD**2, rtol=0.05)
    np.testing.assert_allclose(learned_r, NOISE_SD**2, rtol=0.05)
