"""The learn + monitor stage: warm-up, exact state round trips, drift detection and its response."""

from __future__ import annotations

import json
import logging

import numpy as np
import pydantic
import pytest

from streamem.engine.schedules import Constant, HalfLife, PowerDecay
from streamem.errors import ValidationError
from streamem.service.config import DriftSettings, ModelSettings, ScheduleSettings
from streamem.service.learner import (
    DriftMonitor,
    Learner,
    LearnerStateError,
    build_model,
    build_schedule,
)
from streamem.synthetic import FEATURES, SensorModes

MODEL = ModelSettings(n_components=3, init_size=500, n_init=2, seed=0)


def _stream(rng: np.random.Generator, n: int, modes: SensorModes | None = None) -> np.ndarray:
    X, _ = (modes or SensorModes.default()).sample(n, rng)
    return X


def test_points_are_seen_buffered_or_dropped_never_lost(rng: np.random.Generator) -> None:
    learner = Learner(MODEL, DriftSettings(), FEATURES)
    X = _stream(rng, 1200)
    outcomes = [learner.learn(batch) for batch in np.array_split(X, 6)]
    assert [o.learned for o in outcomes] == [False, False, True, True, True, True]
    assert outcomes[0].record is None
    assert outcomes[2].record is not None
    status = learner.status
    assert status.initialized
    assert status.n_seen == 1200
    assert status.n_warmup == 0
    assert status.n_dropped == 0
    assert status.n_updates == 4
    assert len(status.weights) == 3
    assert sum(status.weights) == pytest.approx(1.0)


def test_one_point_batches_and_a_stuck_sensor_start_without_a_drop(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    """A first batch of one point is buffered, not an error; a stuck sensor's identical
    points wait in the warm-up and are learned once the mixture can start."""
    learner = Learner(ModelSettings(n_components=3, seed=0), DriftSettings(), FEATURES)
    X = _stream(rng, 200)
    with caplog.at_level(logging.WARNING):
        learner.learn(X[:1])
        for _ in range(300):
            learner.learn(X[1:2])  # the same reading, again and again
        for begin in range(2, 200, 2):
            learner.learn(X[begin : begin + 2])
    status = learner.status
    assert status.initialized
    assert status.n_dropped == 0
    assert status.n_seen == 1 + 300 + 198
    assert "dropped" not in caplog.text
    assert "failed" not in caplog.text


def test_a_failed_update_drops_its_points_and_logs(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    learner = Learner(MODEL, DriftSettings(), FEATURES)
    learner.learn(_stream(rng, 600))

    def broken(X: np.ndarray) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(learner.model, "learn", broken)
    with caplog.at_level(logging.WARNING):
        outcome = learner.learn(_stream(rng, 50))
    assert not outcome.learned
    assert learner.status.n_dropped == 50
    assert learner.status.n_seen == 600
    assert "dropped 50 points" in caplog.text


@pytest.mark.parametrize("split", [200, 499, 500, 900])
def test_state_round_trips_exactly_also_during_warm_up(
    rng: np.random.Generator, split: int
) -> None:
    X = _stream(rng, 2000)
    first = Learner(MODEL, DriftSettings(), FEATURES)
    for batch in np.array_split(X[:split], 2):
        first.learn(batch)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))  # strict JSON
    second = Learner.from_state(state, MODEL, DriftSettings(), FEATURES)
    assert second.status == first.status
    for batch in np.array_split(X[split:], 5):
        a, b = first.learn(batch), second.learn(batch)
        assert a == b
    np.testing.assert_array_equal(first.model.means_, second.model.means_)
    np.testing.assert_array_equal(first.model.covariances_, second.model.covariances_)
    assert first.status == second.status
    assert first.status.n_seen == 2000


def test_restoring_into_another_structure_is_an_error_naming_the_key(
    rng: np.random.Generator,
) -> None:
    learner = Learner(MODEL, DriftSettings(), FEATURES)
    learner.learn(_stream(rng, 600))
    state = learner.state_dict()
    other = ModelSettings(n_components=4, init_size=500)
    with pytest.raises(LearnerStateError, match=r"model\.n_components"):
        Learner.from_state(state, other, DriftSettings(), FEATURES)
    with pytest.raises(LearnerStateError, match=r"input\.features"):
        Learner.from_state(state, MODEL, DriftSettings(), ["temp", "hum", "x"])
    with pytest.raises(LearnerStateError, match="format"):
        Learner.from_state({"format": "pickle"}, MODEL, DriftSettings(), FEATURES)


def test_other_hyper_parameters_of_the_checkpoint_win_with_a_warning(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    learner = Learner(MODEL, DriftSettings(), FEATURES)
    learner.learn(_stream(rng, 600))
    changed = ModelSettings(n_components=3, init_size=500, n_init=2, seed=0, reg_covar=1e-3)
    with caplog.at_level(logging.WARNING):
        restored = Learner.from_state(learner.state_dict(), changed, DriftSettings(), FEATURES)
    assert restored.model.reg_covar == MODEL.reg_covar
    assert "reg_covar" in caplog.text


def test_a_regime_change_is_detected_and_boosts_the_step_size(rng: np.random.Generator) -> None:
    drift = DriftSettings(detector="page_hinkley", min_batches=10, threshold=5.0)
    learner = Learner(MODEL, drift, FEATURES)
    for batch in np.array_split(_stream(rng, 60_000), 120):
        assert not learner.learn(batch).drift
    before = learner.next_step_size(500)
    shifted = SensorModes.default().shifted()
    outcomes = [learner.learn(batch) for batch in np.array_split(_stream(rng, 10_000, shifted), 20)]
    assert any(o.drift for o in outcomes)
    first = [o.drift for o in outcomes].index(True)
    assert first <= 5
    assert learner.status.drift_events >= 1
    assert outcomes[first + 1].record is not None
    assert outcomes[first + 1].record.step_size == pytest.approx(drift.boost_step_size)
    assert before < drift.boost_step_size


def test_response_none_only_reports(rng: np.random.Generator) -> None:
    drift = DriftSettings(min_batches=10, threshold=5.0, response="none")
    learner = Learner(MODEL, drift, FEATURES)
    for batch in np.array_split(_stream(rng, 30_000), 60):
        learner.learn(batch)
    shifted = SensorModes.default().shifted()
    outcomes = [learner.learn(batch) for batch in np.array_split(_stream(rng, 5_000, shifted), 10)]
    first = [o.drift for o in outcomes].index(True)
    assert outcomes[first + 1].record is not None
    assert outcomes[first + 1].record.step_size < 0.1 < drift.boost_step_size


@pytest.mark.parametrize("detector", ["page_hinkley", "adwin"])
def test_a_rising_log_likelihood_is_not_a_drift(detector: str) -> None:
    monitor = DriftMonitor(DriftSettings(detector=detector, min_batches=5, threshold=1.0))
    assert not any(monitor.update(-10.0 + 0.5 * k) for k in range(40))


def test_adwin_reports_a_fall() -> None:
    monitor = DriftMonitor(DriftSettings(detector="adwin", min_batches=5))
    values = [-3.0 + 0.01 * (k % 3) for k in range(60)] + [-6.0] * 30
    assert any(monitor.update(v) for v in values)


@pytest.mark.parametrize("detector", ["page_hinkley", "adwin"])
def test_the_detector_state_replays_exactly(detector: str, rng: np.random.Generator) -> None:
    settings = DriftSettings(detector=detector, min_batches=5, threshold=3.0)
    values = list(-3.0 + 0.05 * rng.standard_normal(50)) + [-5.0] * 10
    values += list(-5.0 + 0.05 * rng.standard_normal(40))
    for cut in (3, 30, 55, 70):
        first = DriftMonitor(settings)
        for v in values[:cut]:
            first.update(v)
        second = DriftMonitor(settings)
        second.load_state_dict(json.loads(json.dumps(first.state_dict())))
        assert [first.update(v) for v in values[cut:]] == [second.update(v) for v in values[cut:]]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (ScheduleSettings(kind="power", alpha=0.7, t0=1.0), PowerDecay(0.7, 1.0)),
        (ScheduleSettings(kind="constant", step_size=0.05), Constant(0.05)),
        (ScheduleSettings(kind="half_life", half_life=1000), HalfLife(1000.0)),
    ],
)
def test_the_schedule_follows_the_config(schedule: ScheduleSettings, expected: object) -> None:
    assert build_schedule(schedule) == expected


def test_model_n_symbols_sets_the_categorical_alphabet(rng: np.random.Generator) -> None:
    """A status code the warm-up never saw is refused when the alphabet is the warm-up's, and
    learned when ``model.n_symbols`` declares it."""
    codes = rng.integers(0, 3, size=(400, 1)).astype(float)  # the warm-up sees 0, 1, 2
    later = np.array([[3.0], [1.0]])
    declared = build_model(
        ModelSettings(family="categorical_hmm", n_components=2, n_symbols=4, init_size=300)
    )
    guessed = build_model(ModelSettings(family="categorical_hmm", n_components=2, init_size=300))
    for model in (declared, guessed):
        model.learn(model.batch_from_rows(codes))
    declared.learn(declared.batch_from_rows(later))
    assert declared.status.n_seen == 402
    assert declared.emissionprob_.shape == (2, 4)
    with pytest.raises(ValidationError, match="3"):
        guessed.batch_from_rows(later)
    with pytest.raises(pydantic.ValidationError, match="n_symbols"):
        ModelSettings(family="poisson_hmm", n_symbols=4)
