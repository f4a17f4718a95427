"""The Kalman filter and RTS smoother: against pykalman, a brute-force Gaussian, and the
steady-state shortcut against the exact recursion."""

from __future__ import annotations

import numpy as np
import pykalman
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem.models.state_space.family import StateSpaceFamily, segment_statistics
from streamem.models.state_space.kalman_filter import kalman_filter, linear_scan, rts_smoother
from streamem.models.state_space.records import PARAMETER_NAMES, StateSpaceParams
from streamem.models.state_space.simulation import constant_velocity, simulate


def _tracking(rng: np.random.Generator, n_timesteps: int) -> tuple[StateSpaceParams, np.ndarray]:
    truth = constant_velocity(acceleration_variance=0.05, measurement_variance=0.5)
    _, Y = simulate(truth, n_timesteps, rng)
    params = StateSpaceParams(
        A=truth["transition_matrices"],
        C=truth["observation_matrices"],
        Q=2.0 * truth["transition_covariance"] + 0.01 * np.eye(4),
        R=np.array([[0.7, 0.2], [0.2, 0.4]]),
        b=np.full(4, 0.01),
        d=np.array([0.1, -0.2]),
        mu0=np.ones(4),
        P0=2.0 * np.eye(4),
    )
    return params, Y


def _pykalman(params: StateSpaceParams) -> object:
    arguments = {name: getattr(params, field) for name, field in PARAMETER_NAMES.items()}
    return pykalman.KalmanFilter(**arguments)


@pytest.mark.parametrize("steady_tol", [0.0, 1e-12])
def test_filter_and_smoother_match_pykalman(rng: np.random.Generator, steady_tol: float) -> None:
    params, Y = _tracking(rng, 400)
    filtered = kalman_filter(params, Y, params.mu0, params.P0, steady_tol)
    smoothed = rts_smoother(params, filtered, steady_tol)
    reference = _pykalman(params)
    means, covariances = reference.filter(Y)
    np.testing.assert_allclose(filtered.filtered_means, means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(filtered.filtered_covariances, covariances, rtol=1e-9, atol=1e-10)
    means, covariances = reference.smooth(Y)
    np.testing.assert_allclose(smoothed.means, means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(smoothed.covariances, covariances, rtol=1e-9, atol=1e-10)
    assert filtered.log_likelihoods.sum() == pytest.approx(reference.loglikelihood(Y), rel=1e-12)
    if steady_tol:
        assert filtered.steady_from < 100  # the shortcut was taken


def test_the_steady_state_shortcut_gives_the_exact_statistics(rng: np.random.Generator) -> None:
    params, _ = _tracking(rng, 1)
    # A stationary model, so that the sums are of terms of order one.
    params = StateSpaceParams(**{**params.arrays(), "A": 0.95 * params.A})
    Y = simulate(
        {
            "transition_matrices": params.A,
            "observation_matrices": params.C,
            "transition_covariance": params.Q,
            "observation_covariance": params.R,
        },
        3000,
        rng,
    )[1]
    exact = StateSpaceFamily(params, frozenset(PARAMETER_NAMES), steady_tol=0.0)
    steady = StateSpaceFamily(params, frozenset(PARAMETER_NAMES))
    results = []
    for family in (exact, steady):
        smoothed, log_likelihood, last = family.smooth_segment(params, Y, None)
        results.append((segment_statistics(params, Y, smoothed, False), log_likelihood, last))
    (stats_exact, ll_exact, last_exact), (stats_steady, ll_steady, last_steady) = results
    assert ll_steady == pytest.approx(ll_exact, rel=1e-12)
    for name, value in stats_exact.arrays().items():
        # sums of 3,000 terms of order one, some of which cancel (the mean residuals)
        np.testing.assert_allclose(stats_steady.arrays()[name], value, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(last_steady.covariance, last_exact.covariance, rtol=1e-10)
    np.testing.assert_allclose(last_steady.mean, last_exact.mean, rtol=1e-10)


def test_missing_coordinates_give_the_marginal_likelihood(rng: np.random.Generator) -> None:
    """Against the joint Gaussian of all observations of a short sequence, marginalised to
    the observed coordinates (a row of NaN included)."""
    params, _ = _tracking(rng, 1)
    T, n, p = 5, 4, 2
    Y = rng.normal(size=(T, p))
    Y[1, 0] = Y[3, 1] = np.nan
    Y[2] = np.nan
    # Joint moments of x_0..x_{T-1}, then of y.
    means = [params.mu0]
    for _ in range(1, T):
        means.append(params.A @ means[-1] + params.b)
    blocks = np.zeros((T * n, T * n))
    state_covariances = [params.P0]
    for _ in range(1, T):
        state_covariances.append(params.A @ state_covariances[-1] @ params.A.T + params.Q)
    for s in range(T):
        for t in range(s, T):
            block = np.linalg.matrix_power(params.A, t - s) @ state_covariances[s]
            blocks[t * n : (t + 1) * n, s * n : (s + 1) * n] = block
            blocks[s * n : (s + 1) * n, t * n : (t + 1) * n] = block.T
    big_C = np.kron(np.eye(T), params.C)
    y_mean = big_C @ np.concatenate(means) + np.tile(params.d, T)
    y_cov = big_C @ blocks @ big_C.T + np.kron(np.eye(T), params.R)
    seen = ~np.isnan(Y.ravel())
    residual = Y.ravel()[seen] - y_mean[seen]
    sub = y_cov[np.ix_(seen, seen)]
    _, log_det = np.linalg.slogdet(sub)
    expected = -0.5 * (
        seen.sum() * np.log(2 * np.pi) + log_det + residual @ np.linalg.solve(sub, residual)
    )
    filtered = kalman_filter(params, Y, params.mu0, params.P0)
    assert filtered.log_likelihoods.sum() == pytest.approx(expected, rel=1e-12)
    assert filtered.log_likelihoods[2] == 0.0


def test_covariances_stay_symmetric_positive_semidefinite(rng: np.random.Generator) -> None:
    """An ill-conditioned model (measurement noise 1e-8 of the state noise) over a long run."""
    params, Y = _tracking(rng, 2000)
    sharp = StateSpaceParams(**{**params.arrays(), "R": 1e-10 * np.eye(2)})
    filtered = kalman_filter(sharp, Y, sharp.mu0, sharp.P0, steady_tol=0.0)
    smoothed = rts_smoother(sharp, filtered, steady_tol=0.0)
    for stack in (filtered.filtered_covariances, smoothed.covariances):
        np.testing.assert_array_equal(stack, stack.transpose(0, 2, 1))
        assert np.linalg.eigvalsh(stack).min() > -1e-12


def test_linear_scan_is_the_recursion(rng: np.random.Generator) -> None:
    F = 0.9 * np.linalg.qr(rng.normal(size=(3, 3)))[0]
    U, start = rng.normal(size=(37, 3)), rng.normal(size=3)
    expected, x = [], start
    for u in U:
        x = F @ x + u
        expected.append(x)
    np.testing.assert_allclose(linear_scan(F, U, start), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3),
    p=st.integers(1, 3),
    missing=st.floats(0.0, 0.6),
)
def test_any_model_keeps_covariances_symmetric_psd_and_the_shortcut_exact(
    seed: int, n: int, p: int, missing: float
) -> None:
    rng = np.random.default_rng(seed)
    spread = rng.normal(size=(n, n))
    params = StateSpaceParams(
        A=0.9 * np.linalg.qr(rng.normal(size=(n, n)))[0],
        C=rng.normal(size=(p, n)),
        Q=spread @ spread.T + 0.01 * np.eye(n),
        R=np.diag(rng.uniform(0.1, 2.0, p)),
        b=rng.normal(size=n),
        d=rng.normal(size=p),
        mu0=np.zeros(n),
        P0=np.eye(n),
    )
    Y = rng.normal(size=(300, p))
    Y[:150][rng.random((150, p)) < missing] = np.nan  # the shortcut may start after them
    exact = kalman_filter(params, Y, params.mu0, params.P0, steady_tol=0.0)
    fast = kalman_filter(params, Y, params.mu0, params.P0)
    smoothed = rts_smoother(params, fast)
    for stack in (fast.filtered_covariances, smoothed.covariances):
        np.testing.assert_allclose(stack, stack.transpose(0, 2, 1), rtol=0, atol=0)
        assert np.linalg.eigvalsh(stack).min() > -1e-10
    np.testing.assert_allclose(fast.filtered_means, exact.filtered_means, rtol=1e-7, atol=1e-8)
    assert fast.log_likelihoods.sum() == pytest.approx(exact.log_likelihoods.sum(), rel=1e-9)
