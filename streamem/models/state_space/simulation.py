"""Simulated series for the state space family's tests and benchmarks."""

from __future__ import annotations

import numpy as np

from streamem.engine.records import FloatArray


def constant_velocity(
    dt: float = 1.0, acceleration_variance: float = 0.01, measurement_variance: float = 1.0
) -> dict[str, FloatArray]:
    """A 2-d constant-velocity tracking model (state: x, y, vx, vy; observed: x, y) with
    white-noise acceleration, as pykalman-named arrays.

    Examples
    --------
    >>> model = constant_velocity()
    >>> model["transition_matrices"].shape, model["observation_covariance"].tolist()
    ((4, 4), [[1.0, 0.0], [0.0, 1.0]])
    """
    eye = np.eye(2)
    A = np.block([[eye, dt * eye], [0 * eye, eye]])
    C = np.hstack([eye, 0 * eye])
    q = acceleration_variance
    Q = q * np.block([[dt**3 / 3 * eye, dt**2 / 2 * eye], [dt**2 / 2 * eye, dt * eye]])
    return {
        "transition_matrices": A,
        "observation_matrices": C,
        "transition_covariance": Q,
        "observation_covariance": measurement_variance * eye,
    }


def simulate(
    model: dict[str, FloatArray],
    n_timesteps: int,
    rng: np.random.Generator,
    observation_covariances: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """States (T, n) and observations (T, p) of ``x_t = A x_{t-1} + w_t``, ``y_t = C x_t +
    v_t`` from ``x_0 = 0``; ``observation_covariances`` (T, p, p) overrides R per step."""
    A, C, Q = (
        model[name]
        for name in ("transition_matrices", "observation_matrices", "transition_covariance")
    )
    n, p = A.shape[0], C.shape[0]
    W = rng.multivariate_normal(np.zeros(n), Q, size=n_timesteps)
    W[0] = 0.0
    X = np.empty((n_timesteps, n))
    x = np.zeros(n)
    for t in range(n_timesteps):
        x = A @ x + W[t]
        X[t] = x
    if observation_covariances is None:
        V = rng.multivariate_normal(np.zeros(p), model["observation_covariance"], size=n_timesteps)
    else:
        factors = np.linalg.cholesky(observation_covariances)
        V = np.einsum("tij,tj->ti", factors, rng.standard_normal((n_timesteps, p)))
    return X, X @ C.T + V
