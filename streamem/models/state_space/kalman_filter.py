"""The Kalman filter and the Rauch-Tung-Striebel smoother of one sequence.

Numerics:

- **Missing coordinates.** A NaN coordinate of ``y_t`` drops out of that step's update only
  (the observed rows of C, the observed block of R); a row without any observed coordinate
  is a pure prediction.
- **Stability.** The filtered covariance is updated in Joseph form, ``P = (I - K C) P^- (I -
  K C)^T + K R K^T`` (a sum of positive semi-definite terms under rounding), and every
  covariance is symmetrised; gains come from solves with the innovation covariance and the
  predicted covariance, never from an explicit inverse.
- **Steady state.** With fixed A, C, Q, R the covariance recursion does not depend on the
  data and converges geometrically to the solution of the discrete Riccati equation. Once
  every remaining row is fully observed and the filtered covariance changed by less than
  ``steady_tol`` (relative, max norm) in one step, the remaining covariances, gains and
  smoother gains are that fixed point; the means then follow a linear recursion with a
  constant matrix, computed by a doubling scan (``log2 T`` vectorised products) instead of a
  Python loop per step. ``steady_tol=0`` runs the exact recursion throughout. The smoothed
  covariances of the steady part are a backward recursion that converges the same way.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack

from streamem.engine.records import FloatArray
from streamem.errors import DegenerateUpdateError
from streamem.models.state_space.records import StateSpaceParams

LOG_2PI = math.log(2.0 * math.pi)
STEADY_TOL = 1e-12
"""Default relative change of the filtered covariance below which it is taken as steady."""


@dataclasses.dataclass(frozen=True)
class Filtered:
    """Predicted and filtered moments of each step of a sequence (T steps, n states).

    ``steady_from`` is the first step from which the covariances and gains are the steady
    ones (T if the recursion never settled).
    """

    predicted_means: FloatArray  # (T, n)
    predicted_covariances: FloatArray  # (T, n, n)
    filtered_means: FloatArray  # (T, n)
    filtered_covariances: FloatArray  # (T, n, n)
    log_likelihoods: FloatArray  # (T,) log p(y_t | y_0..y_{t-1}) over the observed coordinates
    steady_from: int


@dataclasses.dataclass(frozen=True)
class Smoothed:
    """Smoothed means (T, n), covariances (T, n, n) and lag-one cross-covariances
    ``cross[t] = Cov(x_t, x_{t-1} | y)`` (T, n, n; ``cross[0]`` is zero)."""

    means: FloatArray
    covariances: FloatArray
    cross: FloatArray


def symmetric(matrix: FloatArray) -> FloatArray:
    """``(M + M^T) / 2``."""
    return (matrix + matrix.T) * 0.5


def _cholesky(matrix: FloatArray, what: str) -> FloatArray:
    try:
        factor: FloatArray = np.asarray(np.linalg.cholesky(matrix), np.float64)
    except np.linalg.LinAlgError:
        raise DegenerateUpdateError(
            f"the {what} is not positive definite: the model has no valid filter"
        ) from None
    return factor


def linear_scan(F: FloatArray, U: FloatArray, start: FloatArray) -> FloatArray:
    """``x_t = F x_{t-1} + u_t`` for the rows of U (N, n) from ``x_{-1} = start``.

    A Hillis-Steele doubling scan: after round k every ``x_t`` holds ``sum_{j < 2^k} F^j
    u_{t-j}``, so ``ceil(log2 N)`` products of (N, n) by (n, n) replace N small ones.

    Examples
    --------
    >>> F = np.array([[0.5]])
    >>> linear_scan(F, np.ones((4, 1)), np.array([8.0])).ravel()
    array([5.   , 3.5  , 2.75 , 2.375])
    """
    X = np.array(U, dtype=np.float64)
    if len(X) == 0:
        return X
    X[0] += F @ start
    power, shift = F, 1
    while shift < len(X):
        X[shift:] += X[:-shift] @ power.T
        power = power @ power
        shift *= 2
    return X


def kalman_filter(
    params: StateSpaceParams,
    Y: FloatArray,
    mean: FloatArray,
    covariance: FloatArray,
    steady_tol: float = STEADY_TOL,
) -> Filtered:
    """Filter the rows of Y (T, p), NaN for missing, from the predicted state N(mean,
    covariance) of its first step."""
    A, C, Q, R, b, d = params.A, params.C, params.Q, params.R, params.b, params.d
    T, n = len(Y), len(mean)
    observed = ~np.isnan(Y)
    full: NDArray[np.bool_] = np.asarray(observed.all(axis=1))
    partial_steps = np.flatnonzero(~full)
    all_full_from = int(partial_steps[-1]) + 1 if len(partial_steps) else 0
    mp, Pp = np.empty((T, n)), np.empty((T, n, n))
    mf, Pf = np.empty((T, n)), np.empty((T, n, n))
    ll = np.zeros(T)
    eye = np.eye(n)
    m, P = np.asarray(mean, dtype=np.float64), symmetric(np.asarray(covariance, np.float64))
    steady_from = T
    K = np.zeros((n, C.shape[0]))
    S = R
    for t in range(T):
        mp[t], Pp[t] = m, P
        if full[t]:
            Ct, Rt, e = C, R, Y[t] - C @ m - d
        else:
            o = observed[t]
            if not o.any():
                mf[t], Pf[t] = m, P
                m, P = A @ m + b, symmetric(A @ P @ A.T + Q)
                continue
            Ct, Rt, e = C[o], R[np.ix_(o, o)], Y[t, o] - C[o] @ m - d[o]
        PCt = P @ Ct.T
        S = Ct @ PCt + Rt
        L, info = lapack.dpotrf(S, lower=1, clean=0)
        if info:
            _cholesky(S, "innovation covariance")
        solved = lapack.dpotrs(L, np.column_stack([PCt.T, e]), lower=1)[0]
        K = solved[:, :-1].T
        ll[t] = -0.5 * (len(e) * LOG_2PI + 2.0 * np.log(L.diagonal()).sum() + e @ solved[:, -1])
        IKC = eye - K @ Ct
        m_filtered = m + K @ e
        P_filtered = symmetric(IKC @ P @ IKC.T + K @ Rt @ K.T)
        mf[t], Pf[t] = m_filtered, P_filtered
        if (
            steady_tol > 0.0
            and t > all_full_from
            and t + 1 < T
            and np.abs(P_filtered - Pf[t - 1]).max() <= steady_tol * np.abs(P_filtered).max()
        ):
            steady_from = t + 1
            break
        m, P = A @ m_filtered + b, symmetric(A @ P_filtered @ A.T + Q)
    if steady_from < T:
        _steady_filter(params, Y, mp, Pp, mf, Pf, ll, steady_from, K, S)
    return Filtered(mp, Pp, mf, Pf, ll, steady_from)


def _steady_filter(
    params: StateSpaceParams,
    Y: FloatArray,
    mp: FloatArray,
    Pp: FloatArray,
    mf: FloatArray,
    Pf: FloatArray,
    ll: FloatArray,
    k: int,
    K: FloatArray,
    S: FloatArray,
) -> None:
    """Fill steps k.. of a settled filter in place: covariances and gain of step k - 1,
    means by a linear scan, ``m_t = (I - K C) A m_{t-1} + (I - K C) b + K (y_t - d)``."""
    A, C, b, d = params.A, params.C, params.b, params.d
    Pp[k:], Pf[k:] = Pp[k - 1], Pf[k - 1]
    IKC = np.eye(len(b)) - K @ C
    U = (Y[k:] - d) @ K.T + IKC @ b
    mf[k:] = linear_scan(IKC @ A, U, mf[k - 1])
    mp[k:] = mf[k - 1 : -1] @ A.T + b
    E = Y[k:] - mp[k:] @ C.T - d
    L = _cholesky(S, "innovation covariance")
    W = np.linalg.solve(L, E.T)
    ll[k:] = -0.5 * (len(d) * LOG_2PI + 2.0 * np.log(L.diagonal()).sum() + (W * W).sum(axis=0))


def rts_smoother(
    params: StateSpaceParams, filtered: Filtered, steady_tol: float = STEADY_TOL
) -> Smoothed:
    """Rauch-Tung-Striebel smoothing of a filtered sequence.

    ``J_t = P_t A^T (P^-_{t+1})^{-1}``, ``m^s_t = m_t + J_t (m^s_{t+1} - m^-_{t+1})``,
    ``P^s_t = P_t + J_t (P^s_{t+1} - P^-_{t+1}) J_t^T``, ``Cov(x_{t+1}, x_t | y) = P^s_{t+1}
    J_t^T``.
    """
    A = params.A
    mp, Pp = filtered.predicted_means, filtered.predicted_covariances
    mf, Pf = filtered.filtered_means, filtered.filtered_covariances
    T, n = mf.shape
    ms, Ps = np.empty((T, n)), np.empty((T, n, n))
    J = np.zeros((T, n, n))
    ms[-1], Ps[-1] = mf[-1], Pf[-1]
    # The filter's covariances are the steady ones from step steady_from - 1 on, so are the
    # smoother gains J_t (of P_t and P^-_{t+1}).
    k = filtered.steady_from - 1 if filtered.steady_from < T else T
    if k < T:
        J_steady = _smoother_gain(A, Pf[k], Pp[k])
        J[k : T - 1] = J_steady
        C = mf[k : T - 1] - (mp[k + 1 :] @ J_steady.T)
        ms[k : T - 1] = linear_scan(J_steady, C[::-1], ms[-1])[::-1]
        _steady_smoothed_covariances(Ps, Pf[k], Pp[k], J_steady, k, steady_tol)
    for t in range(min(k, T - 1) - 1, -1, -1):
        Jt = _smoother_gain(A, Pf[t], Pp[t + 1])
        J[t] = Jt
        ms[t] = mf[t] + Jt @ (ms[t + 1] - mp[t + 1])
        Ps[t] = symmetric(Pf[t] + Jt @ (Ps[t + 1] - Pp[t + 1]) @ Jt.T)
    cross = np.zeros((T, n, n))
    cross[1:] = Ps[1:] @ J[:-1].transpose(0, 2, 1)
    return Smoothed(ms, Ps, cross)


def _smoother_gain(A: FloatArray, P_filtered: FloatArray, P_next: FloatArray) -> FloatArray:
    try:
        gain: FloatArray = np.asarray(np.linalg.solve(P_next, A @ P_filtered).T, np.float64)
    except np.linalg.LinAlgError:
        raise DegenerateUpdateError(
            "the predicted state covariance is singular: the model has no valid smoother"
        ) from None
    return gain


def _steady_smoothed_covariances(
    Ps: FloatArray,
    P_filtered: FloatArray,
    P_predicted: FloatArray,
    J: FloatArray,
    k: int,
    steady_tol: float,
) -> None:
    """Smoothed covariances of the settled steps k..T-2 in place (``Ps[T-1]`` is set): the
    backward recursion until it settles, then its fixed point."""
    T = len(Ps)
    for t in range(T - 2, k - 1, -1):
        Ps[t] = symmetric(P_filtered + J @ (Ps[t + 1] - P_predicted) @ J.T)
        if np.abs(Ps[t] - Ps[t + 1]).max() <= steady_tol * np.abs(Ps[t]).max() and t < T - 2:
            Ps[k:t] = Ps[t]
            return
