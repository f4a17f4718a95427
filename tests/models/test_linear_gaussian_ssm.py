"""LinearGaussianSSM: EM against pykalman, missing values, streaming with a carry, JSON,
the model protocol."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pykalman
import pytest

from streamem import LinearGaussianSSM
from streamem.errors import ValidationError
from streamem.models.base import ConvergenceWarning
from streamem.models.protocol import StreamingModel, StreamingOptions
from streamem.models.registry import model_class, model_from_dict
from streamem.models.state_space.records import PARAMETER_NAMES
from streamem.models.state_space.simulation import constant_velocity, simulate

QR = ("transition_covariance", "observation_covariance")


def _series(rng: np.random.Generator, n_timesteps: int = 300) -> np.ndarray:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    return simulate(truth, n_timesteps, rng)[1]


def _start(perturbed: bool) -> dict[str, np.ndarray]:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    start = {
        "transition_matrices": truth["transition_matrices"],
        "observation_matrices": truth["observation_matrices"],
        "transition_covariance": 0.2 * np.eye(4),
        "observation_covariance": np.array([[1.0, 0.3], [0.3, 2.0]]),
        "transition_offsets": np.full(4, 0.01),
        "observation_offsets": np.array([0.1, -0.1]),
        "initial_state_mean": np.zeros(4),
        "initial_state_covariance": np.eye(4),
    }
    if perturbed:
        start["transition_matrices"] = 0.98 * start["transition_matrices"] + 0.01
        start["observation_matrices"] = start["observation_matrices"] + 0.05
    return start


def _fit(model: LinearGaussianSSM, Y: np.ndarray, **arguments: object) -> LinearGaussianSSM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(Y, **arguments)


@pytest.mark.parametrize("em_vars", [QR, "all"])
def test_fit_follows_pykalman_iterate_by_iterate(rng: np.random.Generator, em_vars: object) -> None:
    Y = _series(rng)
    start = _start(perturbed=em_vars == "all")
    reference = pykalman.KalmanFilter(**start)
    for iteration in range(1, 6):
        reference.em(
            Y, n_iter=1, em_vars=list(PARAMETER_NAMES) if em_vars == "all" else list(em_vars)
        )
        ours = _fit(LinearGaussianSSM(**start, em_vars=em_vars, max_iter=iteration, tol=0.0), Y)
        assert ours.n_iter_ == iteration
        for name in PARAMETER_NAMES:
            expected = np.asarray(getattr(reference, name))
            got = getattr(ours, f"{name}_")
            scale = np.abs(expected).max()
            assert np.abs(got - expected).max() <= 1e-8 * scale, (iteration, name)


def test_fit_over_several_sequences_sums_their_statistics(rng: np.random.Generator) -> None:
    """Two copies of a sequence carry the statistics of one, twice: the same EM iterates."""
    Y = _series(rng, 150)
    one = _fit(LinearGaussianSSM(**_start(False), em_vars="all", max_iter=4, tol=0.0), Y)
    two = _fit(
        LinearGaussianSSM(**_start(False), em_vars="all", max_iter=4, tol=0.0),
        np.concatenate([Y, Y]),
        lengths=[150, 150],
    )
    for name in PARAMETER_NAMES:
        np.testing.assert_allclose(getattr(two, f"{name}_"), getattr(one, f"{name}_"), rtol=1e-9)
    np.testing.assert_allclose(two.log_likelihood_trace_, 2 * one.log_likelihood_trace_)


def test_em_raises_the_likelihood_with_missing_coordinates(rng: np.random.Generator) -> None:
    Y = _series(rng, 400)
    Y[rng.random(Y.shape) < 0.2] = np.nan
    Y[10] = np.nan
    model = _fit(LinearGaussianSSM(**_start(False), em_vars="all", max_iter=15, tol=0.0), Y)
    trace = model.log_likelihood_trace_
    assert np.all(np.diff(trace) > -1e-8 * np.abs(trace[1:])), trace
    assert model.loglikelihood(Y) > trace[-1]


def test_squarem_reaches_the_plain_em_optimum_in_fewer_e_steps(rng: np.random.Generator) -> None:
    level = np.cumsum(rng.normal(0.0, 1.0, 300))
    y = level + rng.normal(0.0, 3.0, 300)
    plain = _fit(LinearGaussianSSM(tol=1e-10, max_iter=3000), y)
    fast = _fit(LinearGaussianSSM(tol=1e-10, max_iter=3000, acceleration="squarem"), y)
    assert plain.converged_
    assert fast.converged_
    assert fast.n_iter_ < plain.n_iter_ / 3
    assert fast.loglikelihood(y) == pytest.approx(plain.loglikelihood(y), abs=1e-4)
    assert len(fast.log_likelihood_trace_) == fast.n_iter_


def test_structured_covariances(rng: np.random.Generator) -> None:
    Y = _series(rng)
    start = _start(False)
    for kind, check in (
        ("diag", lambda M: np.count_nonzero(M - np.diag(np.diag(M))) == 0),
        ("scalar", lambda M: np.allclose(M, M[0, 0] * np.eye(len(M)), rtol=0, atol=0)),
        ("scaled", lambda M: np.allclose(M / M[0, 0], start["transition_covariance"] / 0.2)),
    ):
        model = _fit(
            LinearGaussianSSM(
                **start,
                max_iter=5,
                transition_covariance_type=kind,
                observation_covariance_type="diag",
            ),
            Y,
        )
        assert check(model.transition_covariance_), kind
        assert model.observation_covariance_[0, 1] == 0.0


def test_partial_fit_carries_the_filter_across_blocks(rng: np.random.Generator) -> None:
    """With nothing learned, consecutive blocks are one filter run over the whole series."""
    Y = _series(rng, 500)
    model = LinearGaussianSSM(**_start(False), em_vars=(), init_em_iter=0)
    total = 0.0
    for block in np.array_split(Y, 7):
        model.partial_fit(block)
        total += model.monitor_.last.mean_log_likelihood * len(block)
    means, covariances = model.filter(Y)
    np.testing.assert_allclose(model.filter_state_.mean, means[-1], rtol=1e-9)
    np.testing.assert_allclose(model.filter_state_.covariance, covariances[-1], rtol=1e-9)
    assert total == pytest.approx(model.loglikelihood(Y), rel=1e-10)
    assert model.n_seen_ == 500


def test_a_batch_of_interleaved_keys_keeps_one_filter_per_key(rng: np.random.Generator) -> None:
    series = {key: _series(rng, 120) for key in ("a", "b", "c")}
    rows = np.concatenate([series[k][t : t + 1] for t in range(120) for k in "abc"])
    keys = [k for _ in range(120) for k in "abc"]
    model = LinearGaussianSSM(**_start(False), em_vars=(), init_em_iter=0)
    for start in range(0, len(rows), 90):
        model.learn(model.batch_from_rows(rows[start : start + 90], keys[start : start + 90]))
    states = model.filter_states()
    assert sorted(states) == ["a", "b", "c"]
    # log_density answers in the order of the interleaved rows given to batch_from_rows
    empty = LinearGaussianSSM.from_dict(model.to_dict())
    empty.engine_.carry = {}
    density = empty.log_density(empty.batch_from_rows(rows[:6], keys[:6]))
    per_key = {k: empty.log_density(empty.batch_from_rows(series[k][:2], [k, k])) for k in "abc"}
    np.testing.assert_array_equal(density, [per_key[k][t] for t in range(2) for k in "abc"])
    assert density.shape == (6,)
    for key, Y in series.items():
        np.testing.assert_allclose(states[key].mean, model.filter(Y)[0][-1], rtol=1e-9)
    assert model.n_seen_ == 360


def test_partial_fit_learns_q_and_r(rng: np.random.Generator) -> None:
    truth = constant_velocity(acceleration_variance=1.0, measurement_variance=1.0)
    _, Y = simulate(truth, 40_000, rng)
    model = LinearGaussianSSM(
        truth["transition_matrices"],
        truth["observation_matrices"],
        transition_covariance=truth["transition_covariance"] * 3.0,
        transition_covariance_type="scaled",
        acceleration="squarem",
        init_em_iter=200,
    )
    for block in np.array_split(Y, 80):
        model.partial_fit(block)
    error_q = np.linalg.norm(model.transition_covariance_ - truth["transition_covariance"])
    error_r = np.linalg.norm(model.observation_covariance_ - truth["observation_covariance"])
    assert error_q / np.linalg.norm(truth["transition_covariance"]) < 0.1
    assert error_r / np.linalg.norm(truth["observation_covariance"]) < 0.1


def test_json_round_trip_continues_exactly(rng: np.random.Generator) -> None:
    Y = _series(rng, 600)
    model = LinearGaussianSSM(**_start(False), init_em_iter=3).partial_fit(Y[:200])
    text = model.to_json()
    assert "carry" in json.loads(text)["state"]["engine"]
    copy = LinearGaussianSSM.from_json(text)
    for m in (model, copy):
        m.partial_fit(Y[200:400]).partial_fit(Y[400:])
    for name in PARAMETER_NAMES:
        np.testing.assert_array_equal(getattr(copy, f"{name}_"), getattr(model, f"{name}_"))
    np.testing.assert_array_equal(copy.filter_state_.mean, model.filter_state_.mean)
    assert copy.n_seen_ == model.n_seen_ == 600

    fitted = _fit(LinearGaussianSSM(max_iter=5, acceleration="squarem"), Y[:, 0])
    again = LinearGaussianSSM.from_json(fitted.to_json())
    assert (again.n_iter_, again.log_likelihood_) == (fitted.n_iter_, fitted.log_likelihood_)
    np.testing.assert_array_equal(again.log_likelihood_trace_, fitted.log_likelihood_trace_)
    np.testing.assert_array_equal(again.transition_covariance_, fitted.transition_covariance_)


def test_the_model_protocol_and_registry(rng: np.random.Generator) -> None:
    Y = _series(rng, 200)
    assert model_class("linear_gaussian_ssm") is LinearGaussianSSM
    model = LinearGaussianSSM(**_start(False), init_em_iter=2).partial_fit(Y[:100])
    assert isinstance(model, StreamingModel)
    assert model.family == "linear_gaussian_ssm"
    batch = model.batch_from_rows(Y[100:])
    density = model.log_density(batch)
    assert density.shape == (100,)
    assert np.isfinite(density).all()
    document = model.parameters_document()
    assert document["transition_covariance"] == model.transition_covariance_.tolist()
    status = model.status
    assert status.initialized
    assert (status.n_seen, status.n_updates) == (100, 1)
    copy = model_from_dict(json.loads(model.to_json()))
    assert isinstance(copy, LinearGaussianSSM)


def test_log_density_is_the_predictive_density_of_the_continuation(
    rng: np.random.Generator,
) -> None:
    Y = _series(rng, 300)
    model = LinearGaussianSSM(**_start(False), em_vars=(), init_em_iter=0).partial_fit(Y[:200])
    density = model.log_density(model.batch_from_rows(Y[200:]))
    assert density.sum() == pytest.approx(model.loglikelihood(Y) - model.loglikelihood(Y[:200]))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"em_vars": ("transition_covariance", "Q")}, "em_vars"),
        ({"transition_matrices": np.eye(3), "transition_covariance": np.eye(2)}, "n_dim_state"),
        ({"observation_covariance": -np.eye(2)}, "observation_covariance"),
        ({"transition_covariance_type": "tied"}, "transition_covariance_type"),
        ({"acceleration": "newton"}, "acceleration"),
    ],
)
def test_bad_hyperparameters_name_the_parameter(arguments: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LinearGaussianSSM(**arguments).fit(np.ones((10, 2)))


def test_bad_data_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValidationError, match="infinite"):
        LinearGaussianSSM().fit(np.array([1.0, np.inf]))
    model = LinearGaussianSSM(observation_matrices=np.eye(2)).fit(_series(rng, 50))
    with pytest.raises(ValidationError, match="columns"):
        model.partial_fit(np.ones((5, 3)))


def test_from_options_is_a_local_level_per_coordinate(rng: np.random.Generator) -> None:
    options = StreamingOptions(n_components=3, covariance_type="spherical", n_init=1)
    model = LinearGaussianSSM.from_options(options)
    assert model.sequential
    model.learn(model.batch_from_rows(_series(rng, 200), keys=["s1", "s2"] * 100))
    np.testing.assert_array_equal(model.transition_matrices_, np.eye(2))
    assert model.observation_covariance_[0, 1] == 0.0
    assert sorted(model.filter_states()) == ["s1", "s2"]
    with pytest.raises(ValidationError, match="covariance_type"):
        LinearGaussianSSM.from_options(dataclasses.replace(options, covariance_type="tied"))
