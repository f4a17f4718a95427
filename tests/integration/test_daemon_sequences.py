"""Sequential families in the real daemon: five sensors' series, interleaved on a 3-partition
topic, each sensor's readings one sequence with its own filter state (``input.sequence_key``),
one shared model, learned across three SIGKILLs: a hidden Markov model of three regimes
(issue 11, acceptance 4) and the noise covariances of a local-level model per sensor (issue 12,
acceptance 6)."""

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
N_STEPS = 40_000  # per sensor: 200,000 readings in all
LEVEL_SD = np.array([0.8, 0.5])  # Q = diag(LEVEL_SD^2): how far a sensor's true level moves
NOISE_SD = np.array([1.0, 0.6])  # R = diag(NOISE_SD^2): the measurement noise
FEATURES = ("temp", "hum")


def sensor_records(readings: np.ndarray) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every reading of ``readings`` (sensors, steps, 2), in time
    order, sensors interleaved; a sensor's readings all go to one partition (its key decides),
    as a keyed producer sends them."""
    n_sensors, n_steps, _ = readings.shape
    records = []
    for t in range(n_steps):
        for s in range(n_sensors):
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


def learn_across_three_sigkills(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    config: Path,
    topic: str,
    records: list[tuple[int, bytes, bytes]],
    rng: np.random.Generator,
) -> dict:
    """Stream ``records`` in four quarters, SIGKILL the daemon after each of the first three
    and restart it; return the first published snapshot holding every record, after checking
    that the versions only increase and that every restart restored the checkpoint."""
    quarters = np.array_split(np.arange(len(records)), 4)
    crashed = [threading.Event() for _ in quarters]
    crashed[0].set()

    def stream_in_quarters() -> None:
        for quarter, crash in zip(quarters, crashed, strict=True):
            crash.wait(120)
            produce_keyed(broker.bootstrap_servers, topic, [records[i] for i in quarter], 10_000)

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

    reader = SnapshotReader(broker.bootstrap_servers, f"{topic}.models")
    try:
        final = reader.wait_for(lambda s: s["n_seen"] >= len(records), 180, "complete")
        versions = [s["version"] for s in reader.snapshots]
    finally:
        reader.close()
    assert final["n_seen"] == len(records)
    assert versions == sorted(set(versions)), "versions must increase strictly"
    assert daemon.log().count("restored checkpoint") == 3
    return final


def sequence_config(
    path: Path,
    broker: EmbeddedBroker,
    topic: str,
    group: str,
    output: dict[str, object] | None = None,
    **model: object,
) -> Path:
    """A daemon config for the sequential family ``model['family']``, keyed by sensor
    (``output``: keys of the output section to set)."""
    return daemon_config(
        path,
        bootstrap=broker.bootstrap_servers,
        topic=topic,
        group=group,
        input={"features": list(FEATURES), "sequence_key": "sensor"},
        output=output or {},
        model={"init_size": None, "n_init": None, **model},
        drift={"enabled": False},
    )


def test_five_sensor_series_learn_their_noise_covariances_across_three_sigkills(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    levels = np.cumsum(rng.normal(0.0, LEVEL_SD, size=(N_SENSORS, N_STEPS, 2)), axis=1)
    records = sensor_records(levels + rng.normal(0.0, NOISE_SD, size=levels.shape))
    config = sequence_config(
        tmp_path / "daemon.yaml",
        broker,
        topic_name,
        group_id,
        family="linear_gaussian_ssm",
        covariance_type="diag",
    )
    final = learn_across_three_sigkills(broker, daemons, config, topic_name, records, rng)
    assert final["family"] == "linear_gaussian_ssm"
    learned_q = np.diag(final["transition_covariance"])
    learned_r = np.diag(final["observation_covariance"])
    print(f"Q {learned_q} (true {LEVEL_SD**2}), R {learned_r} (true {NOISE_SD**2})")
    np.testing.assert_allclose(learned_q, LEVEL_SD**2, rtol=0.05)
    np.testing.assert_allclose(learned_r, NOISE_SD**2, rtol=0.05)


REGIME_MEANS = np.array([[-2.0, 3.0], [0.0, 0.0], [3.0, 1.0]])  # in order of temp
TRANSMAT = np.full((3, 3), 0.01) + np.eye(3) * 0.97  # sticky: a regime lasts ~33 steps


def test_five_sensors_learn_one_three_regime_hmm_across_three_sigkills(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    """Issue 11, acceptance 4: 100,000 interleaved readings of 5 sensors, one shared HMM, each
    sensor's filter its own; the published model recovers the transition matrix within 0.05
    and the means within 0.1 sd."""
    create_daemon_topics(broker, topic_name)
    n_steps = 20_000
    states = np.empty((N_SENSORS, n_steps), dtype=int)
    for s in range(N_SENSORS):
        states[s, 0] = rng.integers(3)
        for t in range(1, n_steps):
            states[s, t] = rng.choice(3, p=TRANSMAT[states[s, t - 1]])
    records = sensor_records(REGIME_MEANS[states] + rng.normal(0.0, 1.0, (N_SENSORS, n_steps, 2)))
    config = sequence_config(
        tmp_path / "daemon.yaml",
        broker,
        topic_name,
        group_id,
        family="gaussian_hmm",
        n_components=3,
        covariance_type="diag",
    )
    final = learn_across_three_sigkills(broker, daemons, config, topic_name, records, rng)
    assert final["family"] == "gaussian_hmm"
    order = np.argsort(np.asarray(final["means"])[:, 0])
    means = np.asarray(final["means"])[order]
    transmat = np.asarray(final["transmat"])[np.ix_(order, order)]
    print(f"means {means.round(3).tolist()}, transmat {transmat.round(3).tolist()}")
    np.testing.assert_allclose(means, REGIME_MEANS, atol=0.1)  # the noise sd is 1
    np.testing.assert_allclose(transmat, TRANSMAT, atol=0.05)
