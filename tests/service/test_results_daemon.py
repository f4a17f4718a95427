"""The results topic on in-memory stages: one result per valid record, test-then-train, the
snapshot each result names, delivery before the checkpoint, crashes, the anomaly flag."""

from __future__ import annotations

import json
from collections import Counter
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


def test_a_packed_record_has_one_result_per_point_with_its_index(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, sinks = FakeLog(), SinkFactory()
    settings = _settings(
        tmp_path,
        input={"format": "packed_f32"},
        batching={"batch_size": 1000},
        output={"results_topic": RESULTS},
    )
    X, _ = SensorModes.default().sample(6_000, rng)
    for i, chunk in enumerate(np.split(X, 30)):  # 200 points per record
        log.append(PARTITIONS[i % 3], [encode_points(chunk, settings.input)])
    harness = Harness(settings, log, sinks)
    harness.drain()
    results = [r for _, r in _results(sinks)]
    assert len(results) == 6_000
    points = {tuple(r["source"].values()) for r in results}
    assert len(points) == 6_000
    assert {r["source"]["index"] for r in results} == set(range(200))
    for result in results[:50] + results[-50:]:
        VALIDATOR.validate(result)


def _two_sensors(
    tmp_path: Path, rng: np.random.Generator, n: int, odd: frozenset[int] = frozenset()
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Keyed readings of two sensors whose regimes cycle 0 -> 1 -> 2 -> 0 (temp 20, 30, 40,
    sd 1), sensor a moving on every 100 readings and b every 150, through a daemon learning one
    three-state HMM; at steps ``odd`` sensor a reads the level of the regime before its current
    one (valid for that regime, impossible from the current one: the cycle never goes back).
    Return each sensor's regimes and the results."""
    log, sinks = FakeLog(), SinkFactory()
    settings = _settings(
        tmp_path,
        input={"format": "json", "features": ["temp"], "sequence_key": "sensor"},
        model={"family": "gaussian_hmm", "n_components": 3, "init_size": 1000},
        output={"results_topic": RESULTS, "anomaly_quantile": 0.99},
    )
    regime = {"a": (np.arange(n) // 100) % 3, "b": (np.arange(n) // 150) % 3}
    values = []
    for t in range(n):
        for sensor in ("a", "b"):
            level = regime[sensor][t]
            if sensor == "a" and t in odd:
                level = (level - 1) % 3
            temp = 20.0 + 10.0 * level + rng.normal()
            values.append(json.dumps({"sensor": sensor, "temp": temp}).encode())
    log.append(PARTITIONS[0], values)
    Harness(settings, log, sinks).drain()
    results = [r for _, r in _results(sinks)]
    assert len(results) == 2 * n
    for result in results[:20] + results[-20:]:
        VALIDATOR.validate(result)
    return regime, results


def test_each_sensors_results_continue_its_own_hmm_filter(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Each result's state follows its own sensor's regime, whatever the other one does."""
    n = 3_000
    regime, results = _two_sensors(tmp_path, rng, n)
    scored = [r for r in results if not r["warmup"]]
    truth = [
        int(regime["ab"[r["source"]["offset"] % 2]][r["source"]["offset"] // 2]) for r in scored
    ]
    states = [r["state"] for r in scored]
    # Each state stands for the regime it is most often found in (labels are arbitrary).
    meaning = {
        s: np.bincount([t for t, x in zip(truth, states, strict=True) if x == s]).argmax()
        for s in set(states)
    }
    hits = np.mean([meaning[x] == t for x, t in zip(states, truth, strict=True)])
    print(f"states that follow their sensor's regime: {hits:.4f}")
    # A filter misreads the first reading or two after each switch: 50 switches of 3,000.
    assert hits > 0.97


def test_a_reading_impossible_from_the_current_regime_is_flagged(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A dynamic anomaly: once in 1,000 steps (fewer than the regime changes, 1 in 100, so the
    model does not learn them as usual), in the middle of a regime, sensor a reads the level of
    the regime before its current one."""
    n = 20_000
    odd = frozenset(range(2_050, n, 1_000))
    _, results = _two_sensors(tmp_path, rng, n, odd)
    of_a = {r["source"]["offset"] // 2: r for r in results if r["source"]["offset"] % 2 == 0}
    recall = np.mean([of_a[t]["anomaly"] for t in sorted(odd)])
    print(f"dynamic anomalies flagged: {recall:.2f} of {len(odd)}")
    assert recall >= 0.9


def test_each_document_has_its_top_topics(tmp_path: Path, rng: np.random.Generator) -> None:
    log, sinks = FakeLog(), SinkFactory()
    settings = _settings(
        tmp_path,
        input={"format": "text", "features": ["text"]},
        model={
            "family": "lda",
            "n_components": 2,
            "init_size": 200,
            "n_init": 1,
            "vocabulary": {"n_features": 256},
        },
        batching={"batch_size": 100},
        output={"results_topic": RESULTS, "results_top_k": 2},
    )
    words = [["pump", "valve", "leak", "pressure"], ["belt", "motor", "noise", "bearing"]]
    for i in range(1_000):
        topic = words[i % 2]
        log.append(PARTITIONS[i % 3], [" ".join(rng.choice(topic, size=12)).encode()])
    log.append(PARTITIONS[0], [b""])  # an empty document: a dead letter, no result
    harness = Harness(settings, log, sinks)
    harness.drain()
    results = [r for _, r in _results(sinks)]
    assert len(results) == 1_000
    scored = [r for r in results if not r["warmup"]]
    assert scored
    assert all(len(r["topics"]) == 2 and r["score"] is None for r in scored)
    for result in results[:10] + scored[:10]:
        VALIDATOR.validate(result)
    # The two kinds of documents get different main topics.
    main = {
        (r["source"]["partition"] + 3 * r["source"]["offset"]) % 2: r["topics"][0][0]
        for r in scored[-10:]
    }
    assert sorted(main.values()) == [0, 1]


def test_a_batch_that_cannot_be_scored_gets_results_that_say_why(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A status code that the categorical HMM's alphabet lacks (learned in the warm-up) makes
    its micro-batch unscorable: the other records' results carry the error (the engine then
    learns them without the code, which goes to the dead letters), and the daemon goes on."""
    log, sinks = FakeLog(), SinkFactory()
    settings = _settings(
        tmp_path,
        input={"format": "json", "features": ["code"]},
        model={"family": "categorical_hmm", "n_components": 2, "init_size": 200},
        batching={"batch_size": 100},
        output={"results_topic": RESULTS},
    )
    codes = rng.integers(0, 4, 1_000)
    codes[:4] = np.arange(4)
    codes[650] = 9
    log.append(PARTITIONS[0], [json.dumps({"code": int(c)}).encode() for c in codes])
    harness = Harness(settings, log, sinks)
    harness.drain()
    results = {r["source"]["offset"]: r for _, r in _results(sinks)}
    assert sorted(results) == [offset for offset in range(1_000) if offset != 650]
    ((_, _, headers),) = sinks.on("streamem.dead-letter")
    assert int(headers["source.offset"]) == 650
    unscored = [offset for offset, r in results.items() if r["error"] is not None]
    assert 649 in unscored or 651 in unscored
    assert len(unscored) < 100  # its micro-batch only
    assert "symbols" in results[unscored[0]]["error"]
    assert results[999]["error"] is None
    assert "state" in results[999]
    for result in results.values():
        VALIDATOR.validate(result)


def test_two_scale_out_replicas_give_every_record_one_result(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Each replica scores its own partitions' records (with its shard's model, which no
    snapshot names: model_version null once the warm-up is over)."""
    from tests.service.fakes import FakeStatisticsTopic
    from tests.service.test_scaleout import Replica, _run

    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    valid = _fill(log, rng, 3000, bad_every=50)
    output = {"results_topic": RESULTS}
    first = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:2], output=output)
    second = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[2:], output=output)
    _run([first, second], log)
    results = _results(sinks)
    # At least once: a partition whose start lost to another member's is read again from its
    # origin, and its records scored again.
    assert len(_by_source(results)) == valid
    for _, result in results:
        VALIDATOR.validate(result)
    versions = Counter((r["warmup"], r["model_version"]) for _, r in results)
    print(f"{len(results)} results of {valid} records; (warmup, model_version): {versions}")
