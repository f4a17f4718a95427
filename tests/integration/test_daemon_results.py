"""Live results on a real broker: every valid record has a result, across three SIGKILLs; each
result validates against the schema, and the mixture's labels are scikit-learn's predict under
the published snapshot that each result names (issue 29, acceptance 1)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from streamem.service.results import result_schema
from streamem.synthetic import FEATURES
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    crash_mid_stream,
    create_daemon_topics,
    daemon_config,
    readings,
)
from tests.integration.test_daemon_sequences import produce_keyed, sensor_records, sequence_config
from tests.service.test_results_daemon import _sklearn_model

N_RECORDS = 12_000


def _read_all(bootstrap: str, topic: str, count: Callable[[list[Any]], int], n: int) -> list[Any]:
    """The records of ``topic`` once ``count`` of them reaches ``n`` (60 s at most)."""
    reader = SnapshotReader(bootstrap, topic)
    try:
        deadline = time.monotonic() + 60
        while count(reader.records) < n and time.monotonic() < deadline:
            reader.poll()
        return list(reader.records)
    finally:
        reader.close()


def _sources(records: list[Any]) -> set[tuple[str, int, int]]:
    return {
        (s["topic"], s["partition"], s["offset"])
        for s in (json.loads(record.value)["source"] for record in records)
    }


def test_every_record_has_a_result_across_three_sigkills_labelled_by_its_snapshot(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    results_topic = f"{topic_name}.results"
    create_daemon_topics(broker, topic_name)
    broker.create_topics([results_topic], partitions=3)
    _, values = readings(N_RECORDS, rng)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        output={"results_topic": results_topic},
    )
    delays = [round(float(rng.uniform(0.5, 2.0)), 2) for _ in range(3)]
    daemon = crash_mid_stream(
        broker.bootstrap_servers, topic_name, values, lambda: daemons(config), delays, rate=3_000
    )
    results = _read_all(
        broker.bootstrap_servers, results_topic, lambda r: len(_sources(r)), N_RECORDS
    )
    assert daemon.running
    assert daemon.log().count("restored checkpoint") == 3
    inputs = _read_all(broker.bootstrap_servers, topic_name, len, N_RECORDS)
    reading = {(topic_name, r.partition, r.offset): json.loads(r.value) for r in inputs}
    assert _sources(results) == set(reading)  # every valid record has a result
    values: dict[tuple[Any, ...], set[bytes]] = {}
    for record in results:
        values.setdefault(tuple(json.loads(record.value)["source"].values()), set()).add(
            record.value
        )
    repeated = [v for v in values.values() if len(v) > 1]
    print(
        f"{len(results)} results of {N_RECORDS} records; {len(results) - N_RECORDS} repeats, "
        f"{len(repeated)} records whose repeats differ from their first result"
    )

    validator = jsonschema.Draft202012Validator(result_schema())
    by_version: dict[int, list[dict[str, Any]]] = {}
    for record in results:
        result = json.loads(record.value)
        validator.validate(result)
        assert record.key is None  # keyed like the input records (unkeyed)
        if not result["warmup"]:
            by_version.setdefault(result["model_version"], []).append(result)

    def named(records: list[Any]) -> int:
        return len({json.loads(r.value)["version"] for r in records} & set(by_version))

    published = _read_all(broker.bootstrap_servers, f"{topic_name}.models", named, len(by_version))
    snapshots = {s["version"]: s for s in (json.loads(r.value) for r in published)}
    assert set(by_version) <= set(snapshots)
    for version, scored in by_version.items():
        rows = np.array(
            [[reading[tuple(r["source"].values())][f] for f in FEATURES] for r in scored]
        )
        labels = _sklearn_model(snapshots[version]).predict(rows)
        assert [r["component"] for r in scored] == labels.tolist(), version


@pytest.mark.parametrize(
    "model",
    [
        {"family": "gaussian_hmm", "n_components": 2, "init_size": 2000},
        {"family": "linear_gaussian_ssm", "covariance_type": "diag"},
    ],
    ids=lambda model: model["family"],
)
def test_a_sequential_familys_results_are_keyed_by_sensor_one_per_reading(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
    model: dict[str, Any],
) -> None:
    results_topic = f"{topic_name}.results"
    create_daemon_topics(broker, topic_name)
    broker.create_topics([results_topic], partitions=3)
    levels = np.cumsum(rng.normal(0.0, 0.5, size=(5, 2_000, 2)), axis=1)
    records = sensor_records(levels + rng.normal(0.0, 1.0, size=levels.shape))
    config = sequence_config(
        tmp_path / "daemon.yaml",
        broker,
        topic_name,
        group_id,
        output={"results_topic": results_topic},
        **model,
    )
    daemons(config).wait_for_log(" assigned; ", timeout=30)
    produce_keyed(broker.bootstrap_servers, topic_name, records, 20_000)
    results = _read_all(
        broker.bootstrap_servers, results_topic, lambda r: len(_sources(r)), len(records)
    )
    assert len(_sources(results)) == len(records)
    validator = jsonschema.Draft202012Validator(result_schema())
    for record in results:
        result = json.loads(record.value)
        validator.validate(result)
        assert result["family"] == model["family"]
        assert record.key in {f"s{s}".encode() for s in range(5)}  # the input record's key
    scored = sum(not json.loads(record.value)["warmup"] for record in results)
    print(f"{model['family']}: {len(results)} results, {scored} scored by a model")
    assert scored > len(records) // 2


def test_follow_prints_a_line_per_result_and_can_keep_only_anomalies(
    broker: EmbeddedBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kafka import KafkaProducer

    from streamem.cli import main

    broker.create_topics([topic_name], partitions=2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for offset, anomaly in enumerate([False, True, False, True]):
        result = {
            "family": "gaussian_mixture",
            "source": {"topic": "sensors", "partition": 0, "offset": offset},
            "model_version": 3,
            "warmup": False,
            "anomaly": anomaly,
            "score": 2.5 + 10 * anomaly,
            "error": None,
            "component": 1,
            "probabilities": [[1, 1.0]],
            "log_density": -2.5 - 10 * anomaly,
        }
        producer.send(topic_name, json.dumps(result).encode(), partition=0)
    producer.send(topic_name, b"not a result", partition=1)
    producer.flush(10)
    producer.close()
    command = ["follow", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic_name]
    assert main([*command, "--from-beginning", "--count", "2", "--anomalies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "sensors/0@1 v3 component=1 probabilities=1:1 log_density=-12.5 score=12.5 ANOMALY",
        "sensors/0@3 v3 component=1 probabilities=1:1 log_density=-12.5 score=12.5 ANOMALY",
    ]
