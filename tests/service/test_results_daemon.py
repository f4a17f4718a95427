"""The results topic on in-memory stages: one result per valid record, test-then-train, the
snapshot each result names, delivery before the checkpoint, crashes, the anomaly flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from streamem.service.codecs import encode_points
from streamem.service.config import Settings
from streamem.service.results import result_schema
from streamem.synthetic import SensorModes
from tests.service.fakes import FakeLog, SinkFactory
from tests.service.test_app import PARTITIONS, Harness, _fill, _settings

RESULTS = "sensors.results"
VALIDATOR = jsonschema.Draft202012Validator(result_schema())


def _results_settings(tmp_path: Path, **output: Any) -> Settings:
    return _settings(tmp_path, output={"results_topic": RESULTS, **output})


def _results(sinks: SinkFactory) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(key, json.loads(value)) for key, value, _ in sinks.on(RESULTS) if value]


def _by_source(results: list[tuple[bytes | None, dict[str, Any]]]) -> dict[Any, dict[str, Any]]:
    return {
        (r["source"]["topic"], r["source"]["partition"], r["source"]["offset"]): r
        for _, r in results
    }


def _sklearn_model(snapshot: dict[str, Any]) -> SklearnMixture:
    """The published snapshot as a fitted scikit-learn mixture (the reference predict)."""
    model = SklearnMixture(snapshot["n_components"], covariance_type=snapshot["covariance_type"])
    model.weights_ = np.asarray(snapshot["weights"])
    model.means_ = np.asarray(snapshot["means"])
    model.covariances_ = np.asarray(snapshot["covariances"])
    model.precisions_cholesky_ = _compute_precision_cholesky(
        model.covariances_, snapshot["covariance_type"]
    )
    return model


def _check_labels(
    log: FakeLog, sinks: SinkFactory, results: list[tuple[bytes | None, dict[str, Any]]]
) -> dict[int, dict[str, Any]]:
    """Every scored result names a published snapshot whose scikit-learn predict gives its
    component; return the snapshots by version."""
    snapshots = {
        s["version"]: s for s in (json.loads(v) for _, v, _ in sinks.on("streamem.models"))
    }
    features = _settings(Path("/unused")).input.features
    by_version: dict[int, list[dict[str, Any]]] = {}
    for _, result in results:
        if not result["warmup"]:
            by_version.setdefault(result["model_version"], []).append(result)
    assert set(by_version) <= set(snapshots)
    for version, mine in by_version.items():
        rows = np.array(
            [
                [
                    json.loads(
                        log.partitions[(r["source"]["topic"], r["source"]["partition"])][
                            r["source"]["offset"]
                        ]
                    )[name]
                    for name in features
                ]
                for r in mine
            ]
        )
        labels = _sklearn_model(snapshots[version]).predict(rows)
        assert [r["component"] for r in mine] == labels.tolist()
    return snapshots


def test_every_valid_record_has_one_result_that_names_the_snapshot_that_scored_it(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, sinks = FakeLog(), SinkFactory()
    valid = _fill(log, rng, 3000, bad_every=20)
    harness = Harness(_results_settings(tmp_path), log, sinks)
    harness.drain()
    results = _results(sinks)
    assert len(results) == valid
    by_source = _by_source(results)
    assert len(by_source) == valid  # one per record, none twice
    dead = {
        (h["source.topic"].decode(), int(h["source.partition"]), int(h["source.offset"]))
        for _, _, h in sinks.on("streamem.dead-letter")
    }
    assert not dead & set(by_source)
    for key, result in results:
        VALIDATOR.validate(result)
        assert key == b"k"  # keyed like the input record
    snapshots = _check_labels(log, sinks, results)
    # The records of the batches learned before the first parameters (init_size 300, batches
    # of 200 points: two batches) were scored by no model, and say so.
    warm = [r for _, r in results if r["warmup"]]
    assert len(warm) == snapshots[1]["n_seen"] == 400
    assert all(r["model_version"] is None and not r["anomaly"] for r in warm)
    metrics = harness.daemon.metrics.registry.get_sample_value
    assert metrics("streamem_results_published_total") == valid


def test_unacknowledged_results_defer_the_checkpoint(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, sinks = FakeLog(), SinkFactory()
    _fill(log, rng, 900)
    harness = Harness(_results_settings(tmp_path), log, sinks)
    harness.turns(3)
    sinks.sinks[0].hang = True  # the broker does not acknowledge
    harness.turns(20)
    assert harness.daemon.publisher.unsettled_offsets()
    saved = harness.daemon.state.store.load()  # type: ignore[union-attr]
    assert not harness.daemon.checkpoint()
    assert harness.daemon.state.store.load() == saved  # type: ignore[union-attr]
    sinks.sinks[0].hang = False
    for delivery in sinks.sinks[0].deliveries:
        delivery.is_done = True
    assert harness.daemon.checkpoint()


def test_across_crashes_every_valid_record_has_a_result(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, sinks = FakeLog(), SinkFactory()
    valid = _fill(log, rng, 6000, bad_every=25)
    settings = _results_settings(tmp_path)
    harness = Harness(settings, log, sinks)
    for _ in range(3):
        harness.turns(int(rng.integers(5, 40)))
        harness = Harness(settings, log, sinks)  # a crash: no shutdown
    harness.drain()
    results = _results(sinks)
    assert len(_by_source(results)) == valid
    assert len(results) >= valid
    for _, result in results:
        VALIDATOR.validate(result)
    _check_labels(log, sinks, results)  # a restored model is published before it scores


@pytest.mark.parametrize("quantile", [0.99, 0.995])
def test_the_anomaly_flag_rate_on_clean_data_and_the_recall_of_6_sd_anomalies(
    tmp_path: Path, rng: np.random.Generator, quantile: float
) -> None:
    log, sinks = FakeLog(), SinkFactory()
    modes = SensorModes.default()
    X, labels = modes.sample(30_000, rng)
    spec = _settings(Path("/unused")).input
    injected = set(range(5_000, 30_000, 1_000))
    # 1 reading in 1,000: its mode's mean with humidity 6 standard deviations above.
    rows = sorted(injected)
    X[rows] = modes.anomalous(labels[rows])
    log.append(PARTITIONS[0], [encode_points(row, spec) for row in X])
    settings = _results_settings(tmp_path, anomaly_quantile=quantile)
    harness = Harness(settings, log, sinks)
    harness.drain()
    results = _by_source(_results(sinks))
    assert len(results) == len(X)
    min_scores = harness.daemon.results.threshold.min_scores  # type: ignore[union-attr]
    after = [results[(PARTITIONS[0][0], 0, i)] for i in range(300 + min_scores + 1000, len(X))]
    clean = [r for r in after if r["source"]["offset"] not in injected]
    flagged = sum(r["anomaly"] for r in clean) / len(clean)
    assert 0.5 * (1 - quantile) <= flagged <= 2.0 * (1 - quantile), flagged
    recall = np.mean([results[(PARTITIONS[0][0], 0, i)]["anomaly"] for i in sorted(injected)])
    print(f"q {quantile}: clean readings flagged {flagged:.4f}, recall {recall:.2f}")
    assert recall >= 0.95
    metrics = harness.daemon.metrics.registry.get_sample_value
    assert metrics("streamem_anomalies_total") == sum(r["anomaly"] for r in results.values())
