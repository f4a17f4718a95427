"""Scale-out of a sequential family: each sequence's filter state lives with its partition.

Two replicas of one group learn one three-regime hidden Markov model of five sensors keyed to
three partitions through the statistics topic (issue 14, acceptance 4). One replica is SIGKILLed
mid-stream, so its partitions, with their sensors' filters, move to the other. The global model
holds every reading once and recovers the regimes; every partition's newest statistics record
carries the filters of exactly the sensors keyed to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import DaemonProcess, SnapshotReader, create_daemon_topics
from tests.integration.test_daemon_sequences import (
    N_SENSORS,
    REGIME_MEANS,
    TRANSMAT,
    produce_keyed,
    sensor_records,
    sequence_config,
)

pytestmark = pytest.mark.slow

N_STEPS = 12_000  # per sensor: 60,000 readings in all


def _regime_readings(rng: np.random.Generator) -> np.ndarray:
    states = np.empty((N_SENSORS, N_STEPS), dtype=int)
    for s in range(N_SENSORS):
        states[s, 0] = rng.integers(3)
        for t in range(1, N_STEPS):
            states[s, t] = rng.choice(3, p=TRANSMAT[states[s, t - 1]])
    return REGIME_MEANS[states] + rng.normal(0.0, 1.0, (N_SENSORS, N_STEPS, 2))


def _settled_statistics(reader: SnapshotReader, n_records: int, timeout: float) -> dict[int, dict]:
    """The newest statistics record of every partition, once they hold ``n_records`` in all
    (a replica sends its partitions' records at every checkpoint)."""
    deadline = time.monotonic() + timeout
    while True:
        reader.poll()
        newest = {int(record["partition"]): record for record in reader.snapshots}
        held = sum(r["share"]["n_seen"] for r in newest.values() if r["share"] is not None)
        if held == n_records or time.monotonic() > deadline:
            return newest


def test_sensor_filters_move_with_their_partition_between_replicas(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name, f"{topic_name}.statistics")
    records = sensor_records(_regime_readings(rng))
    configs = [
        sequence_config(
            tmp_path / f"replica{i}" / "daemon.yaml",
            broker,
            topic_name,
            group_id,
            family="gaussian_hmm",
            n_components=3,
            covariance_type="diag",
            output={"statistics_topic": f"{topic_name}.statistics"},
        )
        for i in range(2)
    ]
    replicas = [daemons(config, name=f"replica{i}") for i, config in enumerate(configs)]
    for replica in replicas:
        replica.wait_for_log(" assigned; ", timeout=60)
    producer = threading.Thread(
        target=produce_keyed, args=(broker.bootstrap_servers, topic_name, records, 6_000)
    )
    models = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    statistics = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.statistics")
    try:
        producer.start()
        models.wait_for(lambda s: s["n_seen"] > 20_000, 120, "with 20,000 readings")
        time.sleep(float(rng.uniform(0.5, 2.0)))
        replicas[0].kill()
        producer.join(120)
        final = models.wait_for(lambda s: s["n_seen"] == len(records), 240, "with every reading")
        replicas[1].wait_for_log(" assigned; ", timeout=60, count=2)
        versions = [s["version"] for s in models.snapshots]
        newest = _settled_statistics(statistics, len(records), timeout=30.0)
    finally:
        models.close()
        statistics.close()
    assert versions == sorted(set(versions)), "versions must increase strictly"
    assert all(s["n_seen"] <= len(records) for s in models.snapshots)
    assert sorted(newest) == [0, 1, 2]
    for partition, record in newest.items():
        carry = record["learner"]["estimator"]["state"]["engine"]["carry"]
        keyed_here = {f"s{s}" for s in range(N_SENSORS) if s % 3 == partition}
        assert set(carry) == keyed_here, f"partition {partition} carries {sorted(carry)}"
        assert all(abs(sum(p) - 1.0) < 1e-9 for p in carry.values())
    assert sum(r["share"]["n_seen"] for r in newest.values()) == len(records)
    order = np.argsort(np.asarray(final["means"])[:, 0])
    means = np.asarray(final["means"])[order]
    transmat = np.asarray(final["transmat"])[np.ix_(order, order)]
    print(f"means {means.round(3).tolist()}, transmat {transmat.round(3).tolist()}")
    np.testing.assert_allclose(means, REGIME_MEANS, atol=0.15)
    np.testing.assert_allclose(transmat, TRANSMAT, atol=0.05)
