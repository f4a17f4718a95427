"""The published snapshot: built from the learner, valid against the JSON Schema in the repo."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import streamem
from streamem.errors import NotFittedError
from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.snapshot import (
    SCHEMA_VERSION,
    build_snapshot,
    encode_snapshot,
    snapshot_fields,
    snapshot_schema,
)
from streamem.synthetic import FEATURES, SensorModes

VALIDATOR = jsonschema.Draft202012Validator(snapshot_schema())


def _learner(rng: np.random.Generator, covariance_type: str = "full", n: int = 1500) -> Learner:
    settings = ModelSettings(n_components=3, covariance_type=covariance_type, init_size=500)
    learner = Learner(settings, DriftSettings(), FEATURES)
    X, _ = SensorModes.default().sample(n, rng)
    for batch in np.array_split(X, 3):
        learner.learn(batch)
    return learner


def test_the_schema_is_valid_json_schema_and_shipped_as_package_data() -> None:
    jsonschema.Draft202012Validator.check_schema(snapshot_schema())
    path = Path(streamem.__file__).parent / "schemas" / "model-snapshot.schema.json"
    assert json.loads(path.read_text()) == snapshot_schema()
    assert snapshot_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_snapshots_of_every_covariance_type_validate(
    rng: np.random.Generator, covariance_type: str
) -> None:
    learner = _learner(rng, covariance_type)
    snapshot = build_snapshot(
        learner, name="sensors", version=3, offsets={("s", 1): 10, ("s", 0): 7}, drift=True
    )
    VALIDATOR.validate(snapshot)
    decoded = json.loads(encode_snapshot(snapshot))
    VALIDATOR.validate(decoded)
    assert decoded["covariance_type"] == covariance_type
    assert np.shape(decoded["covariances"]) == np.shape(learner.model.covariances_)
    assert decoded["source_offsets"] == [
        {"topic": "s", "partition": 0, "offset": 7},
        {"topic": "s", "partition": 1, "offset": 10},
    ]
    assert decoded["n_seen"] == 1500
    assert decoded["version"] == 3
    assert decoded["drift"] is True
    assert list(decoded) == list(snapshot_fields())


def test_values_come_from_the_model_and_its_monitor(rng: np.random.Generator) -> None:
    learner = _learner(rng)
    snapshot = build_snapshot(
        learner, name="m", version=1, offsets={}, drift=False, timestamp=1700000000.5
    )
    record = learner.model.monitor_.last
    assert snapshot["weights"] == learner.model.weights_.tolist()
    assert snapshot["means"] == learner.model.means_.tolist()
    assert snapshot["mean_log_likelihood"] == record.mean_log_likelihood
    assert snapshot["step_size"] == record.step_size
    assert snapshot["n_batches"] == learner.model.status.n_updates
    assert snapshot["timestamp"] == 1700000000.5
    assert snapshot["features"] == list(FEATURES)
    assert snapshot["n_features"] == 3


def test_the_first_update_has_no_change_which_is_null(rng: np.random.Generator) -> None:
    learner = _learner(rng, n=500)  # one update only: the change is NaN
    snapshot = build_snapshot(learner, name="m", version=1, offsets={}, drift=False)
    assert snapshot["log_likelihood_change"] is None
    VALIDATOR.validate(json.loads(encode_snapshot(snapshot)))


def test_a_warming_up_model_has_no_snapshot(rng: np.random.Generator) -> None:
    learner = _learner(rng, n=300)
    with pytest.raises(NotFittedError, match="warming up"):
        build_snapshot(learner, name="m", version=1, offsets={}, drift=False)


@pytest.mark.parametrize(
    "change",
    [
        {"n_seen": -1},
        {"version": 0},
        {"weights": []},
        {"extra": 1},
        {"covariance_type": "banded"},
        {"source_offsets": [{"topic": "t", "partition": 0}]},
    ],
)
def test_the_schema_rejects_bad_documents(rng: np.random.Generator, change: dict) -> None:
    snapshot = build_snapshot(_learner(rng), name="m", version=1, offsets={}, drift=False)
    assert not VALIDATOR.is_valid({**snapshot, **change})


def test_the_schema_rejects_a_missing_field(rng: np.random.Generator) -> None:
    snapshot = build_snapshot(_learner(rng), name="m", version=1, offsets={}, drift=False)
    del snapshot["n_seen"]
    assert not VALIDATOR.is_valid(snapshot)


def test_a_state_space_snapshot_has_its_own_branch(rng: np.random.Generator) -> None:
    """A sequential family through the same learner and snapshot: each key's rows continue
    that key's filter, and the document carries the state space parameters."""
    settings = ModelSettings(family="linear_gaussian_ssm", covariance_type="diag")
    learner = Learner(settings, DriftSettings(), FEATURES)
    levels = np.cumsum(rng.normal(0.0, 0.3, size=(900, 3)), axis=0)
    readings = levels + rng.normal(0.0, 1.0, size=levels.shape)
    keys = np.array([f"s{i % 3}" for i in range(900)])
    for rows, batch_keys in zip(np.array_split(readings, 3), np.array_split(keys, 3), strict=True):
        assert learner.learn(rows, tuple(batch_keys.tolist())).learned
    snapshot = build_snapshot(learner, name="levels", version=1, offsets={}, drift=False)
    decoded = json.loads(encode_snapshot(snapshot))
    VALIDATOR.validate(decoded)
    assert decoded["family"] == "linear_gaussian_ssm"
    assert list(decoded) == list(snapshot_fields("linear_gaussian_ssm"))
    assert decoded["n_seen"] == 900
    assert np.shape(decoded["observation_covariance"]) == (3, 3)
    mixture_only = {**decoded, "family": "gaussian_mixture"}
    assert not VALIDATOR.is_valid(mixture_only)


def test_a_hidden_markov_snapshot_has_its_own_branch(rng: np.random.Generator) -> None:
    settings = ModelSettings(family="gaussian_hmm", n_components=2, init_size=300)
    learner = Learner(settings, DriftSettings(), FEATURES)
    regimes = np.repeat(rng.integers(0, 2, size=30), 30)  # 30 steps per regime visit
    readings = rng.normal(0.0, 1.0, size=(900, 3)) + 5.0 * regimes[:, np.newaxis]
    keys = np.array([f"s{i % 3}" for i in range(900)])
    for rows, batch_keys in zip(np.array_split(readings, 3), np.array_split(keys, 3), strict=True):
        learner.learn(rows, tuple(batch_keys.tolist()))
    snapshot = build_snapshot(learner, name="regimes", version=1, offsets={}, drift=False)
    decoded = json.loads(encode_snapshot(snapshot))
    VALIDATOR.validate(decoded)
    assert list(decoded) == list(snapshot_fields("gaussian_hmm"))
    assert decoded["n_seen"] == 900
    np.testing.assert_allclose(np.sum(decoded["transmat"], axis=1), 1.0)
