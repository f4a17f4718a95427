"""E-step and M-step of the linear-Gaussian state space model for the stepwise EM engine.

- **E-step** (:meth:`StateSpaceFamily.expected_statistics`): per segment of the batch, the
  Kalman filter and the RTS smoother (:mod:`streamem.models.state_space.kalman_filter`) give
  the smoothed moments, summed into :class:`~streamem.models.state_space.records.StateSpaceStats`. A
  segment that continues a carried sequence starts one step before its first row, at the
  carried filter state, so that the transition across the batch boundary is counted.
- **M-step** (:meth:`StateSpaceFamily.maximize`): pykalman's order of conditional
  maximisations (an ECM, Meng & Rubin 1993, that raises the likelihood at every
  iteration): C given the E-step's d, then R given the new C and that d, A given the
  E-step's b, Q given the new A and that b, the initial mean, the initial covariance given
  the new mean, b given the new A, d given the new C. The statistics are taken relative to
  the E-step's parameters, so the M-step reads them alone. A learned Q or R can be
  ``"full"``, ``"diag"`` or ``"scalar"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.engine.family import Expectation
from streamem.engine.records import FloatArray
from streamem.errors import DegenerateUpdateError, ValidationError
from streamem.models.state_space.kalman_filter import (
    STEADY_TOL,
    Smoothed,
    kalman_filter,
    rts_smoother,
    symmetric,
)
from streamem.models.state_space.records import (
    PARAMETER_NAMES,
    Carry,
    FilterState,
    SequenceBatch,
    StateSpaceParams,
    StateSpaceStats,
)

COVARIANCE_TYPES = ("full", "diag", "scalar", "scaled")


def structured(covariance: FloatArray, kind: str, shape: FloatArray | None = None) -> FloatArray:
    """The maximum-likelihood covariance of structure ``kind`` from a full estimate
    (``"scaled"``: ``s * shape`` with ``s = tr(shape^{-1} covariance) / n``).

    Examples
    --------
    >>> structured(np.array([[2.0, 1.0], [1.0, 4.0]]), "scalar")
    array([[3., 0.],
           [0., 3.]])
    """
    if kind == "full":
        return symmetric(covariance)
    if kind == "diag":
        diagonal: FloatArray = np.diag(np.diag(covariance))
        return diagonal
    if kind == "scaled":
        assert shape is not None
        scale = float(np.trace(np.linalg.solve(shape, covariance))) / len(covariance)
        return scale * shape
    return np.eye(len(covariance)) * float(np.trace(covariance) / len(covariance))


@dataclasses.dataclass
class StateSpaceFamily:
    """The linear-Gaussian state space family (batch :class:`SequenceBatch`, carry: filter
    state per sequence key).

    Parameters
    ----------
    start
        The starting parameters (user-given values, pykalman's defaults for the rest); the
        parameters not in ``learned`` stay at these values.
    learned
        pykalman names of the parameters that the M-step estimates.
    transition_covariance_type, observation_covariance_type
        Structure of a learned Q and R: ``"full"``, ``"diag"`` or ``"scalar"``.
    steady_tol
        See :mod:`streamem.models.state_space.kalman_filter` (0: the exact recursion at every step).
    """

    start: StateSpaceParams
    learned: frozenset[str]
    transition_covariance_type: str = "full"
    observation_covariance_type: str = "full"
    steady_tol: float = STEADY_TOL

    params_type = StateSpaceParams
    stats_type = StateSpaceStats

    def initial_params(self, batch: SequenceBatch, rng: np.random.Generator) -> StateSpaceParams:
        return self.start

    # ---- E-step ------------------------------------------------------------------------------

    def expected_statistics(
        self, params: StateSpaceParams, batch: SequenceBatch, carry: Carry | None
    ) -> Expectation[StateSpaceStats, Carry]:
        stats = StateSpaceStats.zeros(params.n_dim_state, params.n_dim_obs)
        carried = dict(carry) if carry else {}
        log_likelihood = 0.0
        for key, Y in batch.segments():
            state = carried.get(key) if key is not None else None
            smoothed, ll, last = self.smooth_segment(params, Y, state)
            log_likelihood += ll
            stats = stats + segment_statistics(params, Y, smoothed, continues=state is not None)
            if key is not None:
                carried[key] = last
        out = carried if batch.keys is not None else carry
        return Expectation(stats, log_likelihood, len(batch.observations), out)

    def smooth_segment(
        self, params: StateSpaceParams, Y: FloatArray, state: FilterState | None
    ) -> tuple[Smoothed, float, FilterState]:
        """Smoothed moments of a segment (with a leading step at the carried ``state``, if
        any), its log-likelihood and its newest filter state."""
        if state is None:
            rows, mean, covariance = Y, params.mu0, params.P0
        else:
            rows = np.concatenate([np.full((1, Y.shape[1]), np.nan), Y])
            mean, covariance = state.mean, state.covariance
        filtered = kalman_filter(params, rows, mean, covariance, self.steady_tol)
        smoothed = rts_smoother(params, filtered, self.steady_tol)
        last = FilterState(filtered.filtered_means[-1], filtered.filtered_covariances[-1])
        return smoothed, float(filtered.log_likelihoods.sum()), last

    # ---- M-step ------------------------------------------------------------------------------

    def maximize(self, stats: StateSpaceStats) -> StateSpaceParams:
        fixed, learned = self.start, self.learned
        C, R, A, Q = fixed.C, fixed.R, fixed.A, fixed.Q
        mu0, P0, b, d = fixed.mu0, fixed.P0, fixed.b, fixed.d
        n_obs, n_tr, n_init = float(stats.obs_count), float(stats.tr_count), float(stats.init_count)
        if n_obs > 0:
            C, R, d = _regression(
                stats, "observation", n_obs, learned, (C, R, d), self.observation_covariance_type
            )
        if n_tr > 0:
            A, Q, b = _regression(
                stats, "transition", n_tr, learned, (A, Q, b), self.transition_covariance_type
            )
        if n_init > 0:
            first = stats.init_first / n_init
            if "initial_state_mean" in learned:
                mu0 = (stats.init_offset + stats.init_first) / n_init
            if "initial_state_covariance" in learned:
                second = stats.init_second / n_init
                P0 = symmetric(
                    second - np.outer(first, first) if "initial_state_mean" in learned else second
                )
        params = StateSpaceParams(A=A, C=C, Q=Q, R=R, b=b, d=d, mu0=mu0, P0=P0)
        self.check_params(params)
        return params

    def check_params(self, params: StateSpaceParams) -> None:
        """Raise :class:`~streamem.errors.DegenerateUpdateError` unless ``params`` are finite
        with positive definite learned covariances."""
        if not params.is_finite():
            raise DegenerateUpdateError("the M-step gave parameters that are not finite")
        for name in ("transition_covariance", "observation_covariance", "initial_state_covariance"):
            if name in self.learned:
                matrix = getattr(params, PARAMETER_NAMES[name])
                if np.linalg.eigvalsh(matrix)[0] <= 0.0:
                    raise DegenerateUpdateError(
                        f"the M-step gave a {name} that is not positive definite"
                    )

    def parameter_change(self, old: StateSpaceParams, new: StateSpaceParams) -> float:
        """Largest relative Frobenius change of a learned parameter."""
        changes = [0.0]
        for name in self.learned:
            field = PARAMETER_NAMES[name]
            before, after = getattr(old, field), getattr(new, field)
            scale = max(float(np.linalg.norm(before)), 1e-12)
            changes.append(float(np.linalg.norm(after - before)) / scale)
        return max(changes)

    def interpolate(self, a: StateSpaceParams, b: StateSpaceParams, t: float) -> StateSpaceParams:
        return a.blended(b, t)

    def carry_to_dict(self, carry: Carry) -> Any:
        return {key: state.to_dict() for key, state in carry.items()}

    def carry_from_dict(self, data: Any) -> Carry:
        if not isinstance(data, dict):
            raise ValidationError(f"a carry is an object of filter states, got {data!r:.80}")
        return {str(key): FilterState.from_dict(value) for key, value in data.items()}


EQUATIONS = {
    "observation": (
        ("obs_matrix", "obs_offset", "svv", "sv", "svx", "sxx", "sx"),
        ("observation_matrices", "observation_covariance", "observation_offsets"),
    ),
    "transition": (
        ("tr_matrix", "tr_offset", "sww", "sw", "sw0", "s00", "s0"),
        ("transition_matrices", "transition_covariance", "transition_offsets"),
    ),
}
"""Equation -> (its statistics: count times the E-step's matrix and offset, the residual's
second moment, sum and cross moment with the regressor, the regressor's second moment and
sum; its parameters' names)."""


def _regression(
    stats: StateSpaceStats,
    equation: str,
    count: float,
    learned: frozenset[str],
    fixed: tuple[FloatArray, FloatArray, FloatArray],
    kind: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """pykalman's conditional M-step of one equation ``z = M u + c + noise`` (the
    transition, with u the previous state, or the observation, with u the state).

    From the residual sums ``r = z - M_E u - c_E`` of the E-step's ``M_E``, ``c_E``: the
    matrix ``M = M_E + D`` with ``D = sum E[r u^T] (sum E[u u^T])^+`` (given ``c_E``), the
    noise covariance ``E[(r - D u)(r - D u)^T]`` per unit (given the new M and ``c_E``) in
    the structure ``kind``, and the offset ``c = c_E + E[r - D u]`` (given the new M).
    """
    fields, names = EQUATIONS[equation]
    (
        matrix_sum,
        offset_sum,
        residual_second,
        residual_first,
        residual_cross,
        regressor_second,
        regressor_first,
    ) = (getattr(stats, field) for field in fields)
    matrix, offset = matrix_sum / count, offset_sum / count
    M, covariance, c = fixed
    matrix_name, covariance_name, offset_name = names
    D = np.zeros_like(matrix)
    if matrix_name in learned:
        D = residual_cross @ np.linalg.pinv(regressor_second)
        M = matrix + D
    if covariance_name in learned:
        DC = D @ residual_cross.T
        total = residual_second - DC - DC.T + D @ regressor_second @ D.T
        covariance = structured(total / count, kind, fixed[1])
    if offset_name in learned:
        c = offset + (residual_first - D @ regressor_first) / count
    return M, covariance, c


def segment_statistics(
    params: StateSpaceParams, Y: FloatArray, smoothed: Smoothed, continues: bool
) -> StateSpaceStats:
    """Sums of the expected complete-data statistics of one smoothed segment.

    ``continues``: the smoothed sequence has one leading step (the carried state) before
    the rows of Y; otherwise its first step is the sequence's initial state.
    """
    A, C, R, b, d = params.A, params.C, params.R, params.b, params.d
    M, P, cross = smoothed.means, smoothed.covariances, smoothed.cross
    X0 = M[:-1]
    P0_sum, P1_sum, cross_sum = P[:-1].sum(axis=0), P[1:].sum(axis=0), cross[1:].sum(axis=0)
    W = M[1:] - b - X0 @ A.T
    A_cross = A @ cross_sum.T
    n_tr = len(M) - 1
    transitions = {
        "tr_count": np.array(float(n_tr)),
        "tr_offset": n_tr * b,
        "tr_matrix": n_tr * A,
        "s00": P0_sum + X0.T @ X0,
        "s0": X0.sum(axis=0),
        "sww": symmetric(W.T @ W + P1_sum - A_cross - A_cross.T + A @ P0_sum @ A.T),
        "sw": W.sum(axis=0),
        "sw0": W.T @ X0 + cross_sum - A @ P0_sum,
    }
    steps_M, steps_P = (M[1:], P[1:]) if continues else (M, P)
    observations = _observation_statistics(C, R, d, Y, steps_M, steps_P)
    n = len(b)
    if continues:
        initial: dict[str, FloatArray] = {
            "init_count": np.array(0.0),
            "init_offset": np.zeros(n),
            "init_second": np.zeros((n, n)),
            "init_first": np.zeros(n),
        }
    else:
        D = M[0] - params.mu0
        initial = {
            "init_count": np.array(1.0),
            "init_offset": params.mu0.copy(),
            "init_second": P[0] + np.outer(D, D),
            "init_first": D,
        }
    return StateSpaceStats(**transitions, **observations, **initial)


def _observation_statistics(
    C: FloatArray,
    R: FloatArray,
    d: FloatArray,
    Y: FloatArray,
    M: FloatArray,
    P: FloatArray,
) -> dict[str, FloatArray]:
    """Observation sums over the steps with an observed coordinate, grouped by pattern of
    observed coordinates; a missing coordinate enters through its conditional law given
    the step's observed ones and the state: ``y'_m = H x + G y'_o + e`` with ``G = R_mo
    R_oo^{-1}``, ``H = C_m - G C_o``, ``e ~ N(0, R_mm - G R_om)``."""
    n, p = C.shape[1], C.shape[0]
    observed = ~np.isnan(Y)
    any_observed = observed.any(axis=1)
    count = float(any_observed.sum())
    sums = {
        "obs_count": np.array(count),
        "obs_offset": count * d,
        "obs_matrix": count * C,
        "sxx": np.zeros((n, n)),
        "sx": np.zeros(n),
        "svv": np.zeros((p, p)),
        "sv": np.zeros(p),
        "svx": np.zeros((p, n)),
    }
    if observed.all():
        _add_pattern(sums, C, R, d, Y, M, P.sum(axis=0), observed[0])
        return sums
    patterns, which = np.unique(observed[any_observed], axis=0, return_inverse=True)
    steps = np.flatnonzero(any_observed)
    for index, pattern in enumerate(patterns):
        rows = steps[which.ravel() == index]
        _add_pattern(sums, C, R, d, Y[rows], M[rows], P[rows].sum(axis=0), pattern)
    return sums


def _add_pattern(
    sums: dict[str, FloatArray],
    C: FloatArray,
    R: FloatArray,
    d: FloatArray,
    Y: FloatArray,
    M: FloatArray,
    P_sum: FloatArray,
    observed: NDArray[np.bool_],
) -> None:
    """Add the steps (rows of Y, M) that share the pattern ``observed`` to ``sums``."""
    p, n = C.shape
    o, m = observed, ~observed
    Z = np.zeros((p, n))  # y - d = Z x + (Yc) + e, e the noise of the missing coordinates
    noise = np.zeros((p, p))
    Yc = np.where(observed, Y - d, 0.0)
    if m.any():
        G = np.linalg.solve(R[np.ix_(o, o)], R[np.ix_(o, m)]).T
        Z[m] = C[m] - G @ C[o]
        noise[np.ix_(m, m)] = symmetric(R[np.ix_(m, m)] - G @ R[np.ix_(o, m)])
        Yc[:, m] = Yc[:, o] @ G.T
    V = Yc + M @ (Z - C).T
    ZC = Z - C
    terms = {
        "sxx": P_sum + M.T @ M,
        "sx": M.sum(axis=0),
        "svv": symmetric(V.T @ V + ZC @ P_sum @ ZC.T) + len(Y) * noise,
        "sv": V.sum(axis=0),
        "svx": V.T @ M + ZC @ P_sum,
    }
    for name, value in terms.items():
        sums[name] = sums[name] + value
