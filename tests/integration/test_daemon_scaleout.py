"""Scale-out on a real broker: replicas of one consumer group learn one global model through
the statistics topic (issue 14, acceptance 1 and 2).

Three replicas share a 6-partition topic of 300,000 readings of the known 3-component mixture;
a single daemon of another group learns the same records. The global model that the replicas
publish matches the single daemon's (means within 0.05 standard deviations of the data, weights
within 0.02), its ``n_seen`` is exactly 300,000, and its versions increase strictly, also when
a replica is SIGKILLed mid-stream (the one that publishes) and a fourth joins later.
"""

from __future__ import annotations

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
    daemon_config,
    daemon_config_with_metrics,
    metric_sample,
    produce,
    readings,
)

N_RECORDS = 300_000
N_PARTITIONS = 6

pytestmark = pytest.mark.slow


def _topics(broker: EmbeddedBroker, topic: str) -> None:
    broker.create_topics([topic], partitions=N_PARTITIONS)
    broker.create_topics(
        [f"{topic}.models", f"{topic}.reference", f"{topic}.dead", f"{topic}.statistics"],
        partitions=1,
    )


def _configs(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, group: str, n: int
) -> tuple[Path, list[tuple[Path, int]]]:
    """The single daemon's config, and each replica's config with its metrics port."""
    common = {
        "bootstrap": broker.bootstrap_servers,
        "topic": topic,
        "state": {"checkpoint_every_seconds": 1.0},
    }
    reference = daemon_config(
        tmp_path / "reference" / "daemon.yaml",
        group=f"{group}-reference",
        output={"topic": f"{topic}.reference"},
        **common,
    )
    replicas = [
        daemon_config_with_metrics(
            tmp_path / f"replica{i}" / "daemon.yaml",
            group=group,
            output={"statistics_topic": f"{topic}.statistics"},
            **common,
        )
        for i in range(n)
    ]
    return reference, replicas


def _ordered(snapshot: dict, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    means = np.asarray(snapshot["means"])
    order = np.argsort(means[:, 0])
    return means[order] / scale, np.asarray(snapshot["weights"])[order]


def _check_same_model(global_: dict, single: dict, X: np.ndarray) -> None:
    scale = X.std(axis=0)
    means, weights = _ordered(global_, scale)
    single_means, single_weights = _ordered(single, scale)
    mean_gap = float(np.abs(means - single_means).max())
    weight_gap = float(np.abs(weights - single_weights).max())
    print(f"global vs single daemon: means {mean_gap:.4f} sd, weights {weight_gap:.4f}")
    assert mean_gap < 0.05
    assert weight_gap < 0.02


def _check_one_lineage(reader: SnapshotReader) -> None:
    versions = [snapshot["version"] for snapshot in reader.snapshots]
    assert versions == sorted(set(versions)), f"versions not strictly increasing: {versions}"
    counts = [snapshot["n_seen"] for snapshot in reader.snapshots]
    assert max(counts) == N_RECORDS


def _check_replica_metrics(ports: list[int]) -> None:
    """Each replica exports its share of the group: the partitions add up, exactly one publishes
    (and has published), and each merges the others' statistics."""
    assigned = [metric_sample(port, "streamem_assigned_partitions") for port in ports]
    publishing = [metric_sample(port, "streamem_publishing_replica") for port in ports]
    versions = [metric_sample(port, "streamem_model_version") for port in ports]
    ages = [metric_sample(port, "streamem_merged_statistics_age_seconds") for port in ports]
    print(f"replicas: partitions {assigned}, publishing {publishing}, versions {versions}")
    assert sum(value or 0 for value in assigned) == N_PARTITIONS
    assert sorted(publishing) == [0.0] * (len(ports) - 1) + [1.0]
    assert (versions[publishing.index(1.0)] or 0) > 0
    assert all(age is not None and age >= 0 for age in ages), ages


def _owned(daemon: DaemonProcess) -> list[str]:
    """The partitions of the daemon's newest assignment."""
    lines = [line for line in daemon.log().splitlines() if " assigned; " in line]
    if not lines:
        return []
    return lines[-1].split("partitions ", 1)[1].split(" assigned; ")[0].split(", ")


def _wait(reader: SnapshotReader, what: str, timeout: float = 240.0) -> dict:
    return reader.wait_for(lambda s: s["n_seen"] == N_RECORDS, timeout, what)


def test_three_replicas_learn_the_single_daemons_model(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    _topics(broker, topic_name)
    X, values = readings(N_RECORDS, rng)
    produce(broker.bootstrap_servers, topic_name, values, partitions=N_PARTITIONS)
    reference, replicas = _configs(tmp_path, broker, topic_name, group_id, 3)
    started = time.monotonic()
    for i, (config, _) in enumerate(replicas):
        daemons(config, name=f"replica{i}")
    global_reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    single_reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.reference")
    try:
        global_ = _wait(global_reader, "of the global model with every record")
        print(f"3 replicas: n_seen {N_RECORDS} after {time.monotonic() - started:.1f} s")
        daemons(reference, name="reference")
        single = _wait(single_reader, "of the single daemon with every record")
        _check_same_model(global_, single, X)
        _check_replica_metrics([port for _, port in replicas])
        time.sleep(2.0)  # later snapshots, if any, must continue the lineage
        global_reader.poll()
        _check_one_lineage(global_reader)
    finally:
        global_reader.close()
        single_reader.close()


def test_sigkill_of_the_publishing_replica_and_a_fourth_keep_the_model_exact(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    _topics(broker, topic_name)
    X, values = readings(N_RECORDS, rng)
    reference, replicas = _configs(tmp_path, broker, topic_name, group_id, 4)
    # The records arrive while the replicas run (15,000 records/s, about 20 s).
    producer = threading.Thread(
        target=produce,
        args=(broker.bootstrap_servers, topic_name, values),
        kwargs={"partitions": N_PARTITIONS, "rate": 15_000},
    )
    running = [daemons(config, name=f"replica{i}") for i, (config, _) in enumerate(replicas[:3])]
    global_reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    single_reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.reference")
    try:
        for daemon in running:
            daemon.wait_for_log(" assigned; ", timeout=60)
        producer.start()
        global_reader.wait_for(lambda s: s["n_seen"] > 30_000, 60, "with 30,000 records")
        time.sleep(float(rng.uniform(0.5, 3.0)))
        leader = next(d for d in running if f"{topic_name}/0" in _owned(d))
        leader.kill()
        print(f"SIGKILLed the replica that owned {_owned(leader)}")
        time.sleep(float(rng.uniform(3.0, 6.0)))
        fourth = daemons(replicas[3][0], name="replica3")
        producer.join(120)
        global_ = _wait(global_reader, "of the global model with every record")
        fourth.wait_for_log(" assigned; ", timeout=60)
        members = [*(d for d in running if d is not leader), fourth]
        owned = [_owned(d) for d in members]
        print(f"partitions at the end: {owned}")
        everyone = sorted(f"{topic_name}/{p}" for p in range(N_PARTITIONS))
        assert sorted(p for names in owned for p in names) == everyone
        live = zip([*running, fourth], replicas, strict=True)
        _check_replica_metrics([port for daemon, (_, port) in live if daemon is not leader])
        daemons(reference, name="reference")
        single = _wait(single_reader, "of the single daemon with every record")
        _check_same_model(global_, single, X)
        time.sleep(2.0)
        global_reader.poll()
        _check_one_lineage(global_reader)
        assert all(snapshot["n_seen"] <= N_RECORDS for snapshot in global_reader.snapshots)
    finally:
        global_reader.close()
        single_reader.close()
