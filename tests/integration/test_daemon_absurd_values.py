"""Finite but absurd values on a real broker (issue 16, item 2): the offending points are
dead-lettered, every good point is learned, the model is as good as a clean run's, and the
counters say what happened.

Before the fix, one record in 1,000 at ``temp=1e300`` made the engine refuse 19,000 of 20,000
points while ``streamem_records_learned_total`` said 20,000, and a single ``temp=1e15`` among
60,000 records ruined the model for good.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamem.service.broker import EmbeddedBroker
from streamem.synthetic import FEATURES, SensorModes
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config_with_metrics,
    http_get,
    metric_sample,
    produce,
    standardised_errors,
)
from tests.integration.servers import read_records


def labelled_sample(port: int, name: str, label: str) -> float | None:
    """The value of ``name{label}`` on the daemon's ``/metrics`` (None: absent)."""
    prefix = f"{name}{{{label}}} "
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def _places(letters: list) -> set[tuple[int, int]]:
    """The (partition, offset) of the source record of each dead letter."""
    return {
        (int(dict(letter.headers)["source.partition"]), int(dict(letter.headers)["source.offset"]))
        for letter in letters
    }


def run_stream(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic: str,
    group: str,
    X: np.ndarray,
    bad: dict[int, float],
) -> tuple[dict, int, list]:
    """Produce ``X`` as JSON records with ``temp`` replaced at the indices of ``bad``; run the
    daemon until it learned every good point; return the last snapshot, the metrics port and
    the dead letters."""
    create_daemon_topics(broker, topic)
    stream = []
    for i, row in enumerate(X.tolist()):
        reading = dict(zip(FEATURES, row, strict=True))
        if i in bad:
            reading["temp"] = bad[i]
        stream.append(json.dumps(reading).encode())
    produce(broker.bootstrap_servers, topic, stream)
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml", bootstrap=broker.bootstrap_servers, topic=topic, group=group
    )
    daemon = daemons(config)
    n_good = len(X) - len(bad)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic}.models")
    try:
        last = reader.wait_for(lambda s: s["n_seen"] >= n_good, 120, "with every good point")
    finally:
        reader.close()
    letters = read_records(broker.bootstrap_servers, f"{topic}.dead", len(bad), 30)
    assert daemon.running
    return last, port, letters


def test_one_record_in_1000_at_1e300_is_dead_lettered_and_every_good_point_learned(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    truth = SensorModes.default()
    X, _ = truth.sample(20_000, rng)
    bad = {int(i): 1e300 for i in np.arange(500, 20_000, 1_000)}  # warm-up included
    last, port, letters = run_stream(broker, daemons, tmp_path, topic_name, group_id, X, bad)
    n_good = len(X) - len(bad)
    assert last["n_seen"] == n_good
    assert last["n_dropped"] == 0
    assert {dict(letter.headers)["reason"] for letter in letters} == {b"degenerate"}
    assert _places(letters) == {(i % 3, i // 3) for i in bad}
    good = np.delete(X, list(bad), axis=0)
    mean_errors, weight_errors = standardised_errors(last, truth, good)
    print("mean errors (sd):", mean_errors.max(), "weight errors:", weight_errors.max())
    assert mean_errors.max() < 0.05
    assert weight_errors.max() < 0.05
    assert metric_sample(port, "streamem_records_learned_total") == n_good
    assert metric_sample(port, "streamem_points_learned_total") == n_good
    sample = labelled_sample
    assert sample(port, "streamem_records_rejected_total", 'reason="degenerate"') == len(bad)
    assert sample(port, "streamem_points_refused_total", 'reason="degenerate"') == len(bad)
    assert sample(port, "streamem_points_refused_total", 'reason="dropped"') == 0
    assert http_get(port, "/readyz")[0] == 200


def test_a_single_1e15_among_60000_is_an_outlier_and_the_model_stays_right(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    truth = SensorModes.default()
    X, _ = truth.sample(60_000, rng)
    at = int(rng.integers(30_000, 60_000))  # once the model is warm
    last, port, letters = run_stream(broker, daemons, tmp_path, topic_name, group_id, X, {at: 1e15})
    assert last["n_seen"] == len(X) - 1
    assert len(letters) == 1
    headers = {key: value.decode() for key, value in letters[0].headers}
    assert headers["reason"] == "outlier"
    assert (int(headers["source.partition"]), int(headers["source.offset"])) == (at % 3, at // 3)
    mean_errors, weight_errors = standardised_errors(last, truth, np.delete(X, at, axis=0))
    print("mean errors (sd):", mean_errors.max(), "weight errors:", weight_errors.max())
    assert mean_errors.max() < 0.05
    assert weight_errors.max() < 0.05
    assert metric_sample(port, "streamem_records_learned_total") == len(X) - 1
    assert labelled_sample(port, "streamem_points_refused_total", 'reason="outlier"') == 1
    assert labelled_sample(port, "streamem_records_rejected_total", 'reason="outlier"') == 1


def test_absurd_readings_in_the_warm_up_and_just_after_it_are_outliers(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    """``init_size`` 2,000 in batches of 1,000: a ``1e15`` among the warm-up's points would
    shape the starting values, and a sentinel among the first 2,000 points after it came
    before ``guard.warm_batches`` (10) updates of history used to allow an outlier test."""
    truth = SensorModes.default()
    X, _ = truth.sample(20_000, rng)
    bad = {300: 1e15, 2_900: 65535.0, 3_700: -1e15}
    last, port, letters = run_stream(broker, daemons, tmp_path, topic_name, group_id, X, bad)
    assert last["n_seen"] == len(X) - len(bad)
    assert [dict(letter.headers)["reason"] for letter in letters] == [b"outlier"] * len(bad)
    assert _places(letters) == {(i % 3, i // 3) for i in bad}
    mean_errors, weight_errors = standardised_errors(last, truth, np.delete(X, list(bad), axis=0))
    print("mean errors (sd):", mean_errors.max(), "weight errors:", weight_errors.max())
    assert mean_errors.max() < 0.05  # as the clean runs of this file
    assert weight_errors.max() < 0.05
    assert labelled_sample(port, "streamem_points_refused_total", 'reason="outlier"') == len(bad)
