"""``LinearGaussianSSM``: Kalman filter, RTS smoother and EM with pykalman's names."""

from __future__ import annotations

import time
import warnings
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from streamem.engine import PowerDecay, Schedule, StepwiseEM
from streamem.engine.records import FloatArray
from streamem.errors import DegenerateUpdateError, ValidationError
from streamem.models.base import (
    Bound,
    Constraint,
    ConvergenceWarning,
    EngineBackedModel,
    OneOf,
    document_hyperparameters,
)
from streamem.models.protocol import StreamingOptions
from streamem.models.state_space.family import COVARIANCE_TYPES, StateSpaceFamily
from streamem.models.state_space.kalman_filter import (
    STEADY_TOL,
    Filtered,
    kalman_filter,
    rts_smoother,
)
from streamem.models.state_space.records import (
    DEFAULT_KEY,
    PARAMETER_NAMES,
    FilterState,
    SequenceBatch,
    StateSpaceParams,
)
from streamem.models.state_space.squarem import squarem_step
from streamem.models.state_space.start import default_parameters

FORMAT = "streamem.LinearGaussianSSM"
FORMAT_VERSION = 1
DEFAULT_EM_VARS = ("transition_covariance", "observation_covariance")
ACCELERATIONS = (None, "squarem")
# Exponent of partial_fit's default PowerDecay schedule. EM for noise covariances converges
# slowly (much of the information is missing), and under a decreasing schedule the bias of the
# early blocks' statistics fades with the sum of the step sizes. Measured on 1,000,000 steps of
# a 2-d constant-velocity track in blocks of 500 ("scaled" Q, benchmarks/kalman.py): alpha
# 0.8 ends with Q 5.6% off, alpha 0.6 1.3%.
STREAMING_ALPHA = 0.6
SSMEngine = StepwiseEM[SequenceBatch, StateSpaceParams, Any, Any]


class LinearGaussianSSM(EngineBackedModel, BaseEstimator):  # type: ignore[misc]
    """Linear-Gaussian state space model learned by batch EM (``fit``) or stepwise EM
    (``partial_fit``), with pykalman's ``KalmanFilter`` names::

        x_0 ~ N(mu_0, P_0)
        x_t = A x_{t-1} + b + w_t,   w_t ~ N(0, Q)
        y_t = C x_t + d + v_t,       v_t ~ N(0, R)

    A NaN coordinate of ``y_t`` drops out of that step's update only (pykalman drops the whole
    row); a row of NaN is a step without observation.

    Parameters
    ----------
    transition_matrices, observation_matrices
        A (n, n) and C (p, n); default the identity (pykalman's defaults for all eight).
    transition_covariance, observation_covariance
        Q (n, n) and R (p, p); default the identity.
    transition_offsets, observation_offsets
        b (n,) and d (p,); default zero.
    initial_state_mean, initial_state_covariance
        mu_0 (n,) and P_0 (n, n) of the first step of a sequence; default 0 and I.
    n_dim_state, n_dim_obs
        Dimensions when no given array fixes them: p defaults to the data's, n to p (one
        state per observed coordinate; pykalman's default is 1).
    em_vars
        Names of the parameters that EM learns (the rest stay at their given values), or
        ``"all"``. Default Q and R (pykalman's default also learns the initial state).
    transition_covariance_type, observation_covariance_type
        Structure of a learned Q and R: ``"full"``, ``"diag"`` or ``"scalar"``.
    tol, max_iter
        ``fit`` stops when the log-likelihood per time step changes less than ``tol``
        between two EM iterations, or after ``max_iter`` iterations.
    acceleration
        None (plain EM) or ``"squarem"`` (Varadhan & Roland 2008: an extrapolation of two EM
        steps, kept only when the EM step from it has a higher log-likelihood; see
        :mod:`streamem.models.state_space.squarem`).
    schedule
        Step sizes of ``partial_fit``; None is ``PowerDecay(alpha=0.6, t0=2.0)``.
        ``HalfLife`` or ``Constant`` forget the past (to track a drifting Q or R).
    averaging_start
        Polyak-Ruppert averaging of the parameters from this ``partial_fit`` update on.
    init_em_iter
        ``partial_fit`` starts from up to this many E-steps of SQUAREM-accelerated batch EM
        (``tol`` as ``fit``) on its first block, from the given values (0: from the given
        values). Stepwise EM from a start far off (Q = I on a track whose Q is 0.01) keeps
        the early blocks' statistics for a long time under a decreasing schedule.
    parameter_tol, smoothing, patience, history_size
        Convergence monitor of ``partial_fit`` (as :class:`streamem.GaussianMixture`).
    steady_tol
        Relative change of the filtered covariance below which the filter is taken as
        settled (see :mod:`streamem.models.state_space.kalman_filter`); 0 runs the exact recursion.

    Attributes
    ----------
    transition_matrices_, observation_matrices_, transition_covariance_,
    observation_covariance_, transition_offsets_, observation_offsets_,
    initial_state_mean_, initial_state_covariance_
        The learned (or given) parameters.
    n_iter_, converged_, log_likelihood_
        ``fit``: EM iterations, convergence, log-likelihood of the data under the returned
        parameters' predecessor (the last E-step). ``partial_fit``: updates, the monitor's
        flag, the smoothed log-likelihood per step.
    log_likelihood_trace_
        ``fit``: log-likelihood of every E-step, in order (with ``acceleration``, the
        E-steps at extrapolated points too).
    fit_seconds_
        Wall time of ``fit``.
    n_seen_
        Time steps learned.

    Examples
    --------
    A local-level model (a random walk seen through noise), Q and R learned:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> level = np.cumsum(rng.normal(0.0, 0.5, 2000))
    >>> y = level + rng.normal(0.0, 2.0, 2000)
    >>> model = LinearGaussianSSM(n_dim_state=1, tol=1e-8, max_iter=500).fit(y)
    >>> print(model.transition_covariance_.round(2), model.observation_covariance_.round(1))
    [[0.24]] [[3.9]]
    >>> stream = LinearGaussianSSM(n_dim_state=1)
    >>> for block in np.array_split(y, 20):
    ...     stream = stream.partial_fit(block)
    >>> stream.n_seen_
    2000
    """

    family = "linear_gaussian_ssm"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = FORMAT
    """The ``format`` of :meth:`to_dict`'s document."""
    sequential = True
    """Time steps form sequences: a batch's rows continue per-key filter states."""

    def __init__(
        self,
        transition_matrices: ArrayLike | None = None,
        observation_matrices: ArrayLike | None = None,
        transition_covariance: ArrayLike | None = None,
        observation_covariance: ArrayLike | None = None,
        transition_offsets: ArrayLike | None = None,
        observation_offsets: ArrayLike | None = None,
        initial_state_mean: ArrayLike | None = None,
        initial_state_covariance: ArrayLike | None = None,
        n_dim_state: int | None = None,
        n_dim_obs: int | None = None,
        em_vars: str | tuple[str, ...] = DEFAULT_EM_VARS,
        *,
        transition_covariance_type: str = "full",
        observation_covariance_type: str = "full",
        tol: float = 1e-4,
        max_iter: int = 100,
        acceleration: str | None = None,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        init_em_iter: int = 200,
        parameter_tol: float = 0.01,
        smoothing: float = 0.1,
        patience: int = 5,
        history_size: int = 10_000,
        steady_tol: float = STEADY_TOL,
    ) -> None:
        self.transition_matrices = transition_matrices
        self.observation_matrices = observation_matrices
        self.transition_covariance = transition_covariance
        self.observation_covariance = observation_covariance
        self.transition_offsets = transition_offsets
        self.observation_offsets = observation_offsets
        self.initial_state_mean = initial_state_mean
        self.initial_state_covariance = initial_state_covariance
        self.n_dim_state = n_dim_state
        self.n_dim_obs = n_dim_obs
        self.em_vars = em_vars
        self.transition_covariance_type = transition_covariance_type
        self.observation_covariance_type = observation_covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.acceleration = acceleration
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.init_em_iter = init_em_iter
        self.parameter_tol = parameter_tol
        self.smoothing = smoothing
        self.patience = patience
        self.history_size = history_size
        self.steady_tol = steady_tol

    @classmethod
    def from_options(cls, options: StreamingOptions) -> LinearGaussianSSM:
        """A model for streaming from the model protocol's common options: a local level per
        observed coordinate (A = C = I, one state per coordinate), Q and R learned with the
        structure ``covariance_type`` (``"full"``, ``"diag"``, ``"spherical"`` = scalar).

        ``n_components``, ``reg_covar``, ``init_size``, ``n_init`` and ``seed`` have no
        meaning here (no latent classes, no random start: the first block starts the model)
        and must be left at what the daemon's defaults give; ``schedule`` and
        ``averaging_start`` are ``partial_fit``'s.
        """
        covariance_type = options.covariance_type
        kinds = {"full": "full", "diag": "diag", "spherical": "scalar"}
        if covariance_type not in kinds:
            raise ValidationError(
                f"covariance_type must be one of {list(kinds)} for linear_gaussian_ssm, got "
                f"{covariance_type!r}"
            )
        return cls(
            transition_covariance_type=kinds[covariance_type],
            observation_covariance_type=kinds[covariance_type],
            schedule=options.schedule,
            averaging_start=options.averaging_start,
        )

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None, lengths: ArrayLike | None = None) -> Self:
        """Batch EM to convergence on the sequences in X (n_timesteps, p).

        ``lengths`` (n_sequences,): X holds that many independent sequences one after the
        other (hmmlearn's convention); None is one sequence. The filter state at the end of
        the last sequence is kept, so that ``partial_fit`` continues it.
        """
        Y = self._validate(X, reset=True)
        sizes = (len(Y),) if lengths is None else tuple(int(v) for v in np.asarray(lengths))
        batch = SequenceBatch(Y, sizes)
        family = self._family(Y.shape[1])
        began = time.perf_counter()
        params, stats, trace, converged = self._batch_em(family, family.start, batch)
        self.fit_seconds_ = time.perf_counter() - began
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"fit did not converge in max_iter={self.max_iter} iterations; increase "
                "max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.engine_ = self._streaming_engine(Y.shape[1])
        if stats is None:
            self.engine_.initialize(params)
        else:
            self.engine_.initialize(params, stats.scaled(1.0 / len(Y)), n_units=len(Y))
        last_key, last_rows = DEFAULT_KEY, batch.segments()[-1][1]
        self.engine_.carry = {last_key: family.smooth_segment(params, last_rows, None)[2]}
        self.converged_ = converged
        self.n_iter_ = len(trace)
        self.log_likelihood_trace_ = np.asarray(trace)
        self.log_likelihood_ = trace[-1] if trace else -np.inf
        self.n_refused_ = 0
        self._publish(from_fit=True)
        return self

    def _batch_em(
        self,
        family: StateSpaceFamily,
        params: StateSpaceParams,
        batch: SequenceBatch,
        max_iter: int | None = None,
        accelerate: bool | None = None,
    ) -> tuple[StateSpaceParams, Any, list[float], bool]:
        """EM iterations (plain or SQUAREM cycles) until the log-likelihood per step changes
        less than ``tol``: the parameters, the statistics behind them, the log-likelihood of
        every E-step and whether it converged."""
        limit = self.max_iter if max_iter is None else max_iter
        accelerated = self.acceleration == "squarem" if accelerate is None else accelerate
        trace: list[float] = []
        stats = None
        previous = -np.inf
        while len(trace) < limit:
            if accelerated and len(trace) + 2 <= limit:
                params, stats, lls = squarem_step(family, params, batch)
            else:
                expectation = family.expected_statistics(params, batch, None)
                stats, lls = expectation.stats, [expectation.log_likelihood]
                params = family.maximize(stats)
            trace.extend(lls)
            current = lls[-1] / len(batch.observations)
            if abs(current - previous) < self.tol:
                return params, stats, trace, True
            previous = current
        return params, stats, trace, False

    def partial_fit(self, X: ArrayLike, y: object = None) -> Self:
        """One stepwise EM update with the next block X (n_steps, p) of the series.

        The filter's mean and covariance at the block's end are carried to the next call,
        so consecutive calls learn one continuing series. A degenerate update is refused
        with a :class:`~streamem.errors.RefusedUpdateWarning` (the parameters are kept).
        """
        first_call = not hasattr(self, "engine_")
        Y = self._validate(X, reset=first_call)
        return self.learn(SequenceBatch.of(Y))

    def batch_from_rows(self, X: ArrayLike, keys: ArrayLike | None = None) -> SequenceBatch:
        """The batch of rows X (n, p) in arrival order, row ``i`` of the sequence ``keys[i]``
        (None: the one series of ``partial_fit``), for :meth:`learn` and :meth:`log_density`
        (the model protocol): rows grouped by key, in their order within a key (keys in
        order of appearance; :meth:`log_density` answers in the arrival order)."""
        Y = self._validate(X, reset=not hasattr(self, "n_features_in_"))
        return SequenceBatch.of(Y, None if keys is None else list(np.asarray(keys).tolist()))

    def learn(self, batch: SequenceBatch | FloatArray) -> Self:
        """One stepwise EM update with a batch from :meth:`batch_from_rows` (the model
        protocol; rows alone are one block of the anonymous series).

        Every sequence key of the batch continues its own carried filter state (a new key
        starts at the initial state); Q, R and the other learned parameters are shared.
        """
        if not isinstance(batch, SequenceBatch):
            batch = self.batch_from_rows(batch)
        if not hasattr(self, "engine_"):
            self.engine_ = self._streaming_engine(batch.observations.shape[1])
            self.n_refused_ = 0
        return self._step(batch)

    _UNITS = "steps"

    def _buffer(self, batch: SequenceBatch) -> SequenceBatch:
        """No buffer: the first block, whatever its length, starts the model."""
        return batch

    def _clear_warmup(self) -> None:
        """Nothing is buffered (see :meth:`_buffer`)."""

    def _start(self, batch: SequenceBatch) -> StateSpaceParams:
        return self._starting_values(self._state_space_family, batch)

    def _stepwise_update(self, batch: SequenceBatch) -> None:
        if self._update_or_refuse(batch, f"block of {len(batch.observations)} steps"):
            self._publish(from_fit=False)

    def _starting_values(self, family: StateSpaceFamily, batch: SequenceBatch) -> StateSpaceParams:
        """Up to ``init_em_iter`` batch EM iterations on the first batch (its sequences from
        their start), from the given values; the given values if that fails."""
        first = SequenceBatch(batch.observations, batch.lengths)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return self._batch_em(family, family.start, first, self.init_em_iter, True)[0]
        except DegenerateUpdateError:
            return family.start

    # ---- inference ---------------------------------------------------------------------------

    def filter(self, X: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Filtered means (T, n) and covariances (T, n, n) of a sequence X (T, p), from the
        initial state, under the current parameters."""
        filtered = self._filter(X)
        return filtered.filtered_means, filtered.filtered_covariances

    def smooth(self, X: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """RTS-smoothed means (T, n) and covariances (T, n, n) of a sequence X (T, p)."""
        smoothed = rts_smoother(self._params, self._filter(X), self.steady_tol)
        return smoothed.means, smoothed.covariances

    def loglikelihood(self, X: ArrayLike) -> float:
        """``log p(y_0, ..., y_{T-1})`` of a sequence X (T, p) over its observed coordinates."""
        return float(self._filter(X).log_likelihoods.sum())

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Log-likelihood per time step of the sequence X."""
        return self.loglikelihood(X) / len(np.asarray(X))

    def _filter(self, X: ArrayLike) -> Filtered:
        self._check_fitted()
        params = self._params
        Y = self._validate(X, reset=False)
        return kalman_filter(params, Y, params.mu0, params.P0, self.steady_tol)

    def sample(
        self, n_timesteps: int, initial_state: ArrayLike | None = None, random_state: Any = None
    ) -> tuple[FloatArray, FloatArray]:
        """States (T, n) and observations (T, p) of ``n_timesteps`` simulated steps."""
        self._check_fitted()
        if n_timesteps < 1:
            raise ValidationError(f"n_timesteps must be >= 1, got {n_timesteps!r}")
        p_ = self._params
        rng = np.random.default_rng(random_state)
        n, p = p_.n_dim_state, p_.n_dim_obs
        states, observations = np.empty((n_timesteps, n)), np.empty((n_timesteps, p))
        x = (
            rng.multivariate_normal(p_.mu0, p_.P0)
            if initial_state is None
            else np.asarray(initial_state, dtype=np.float64)
        )
        w = rng.multivariate_normal(np.zeros(n), p_.Q, size=n_timesteps)
        v = rng.multivariate_normal(np.zeros(p), p_.R, size=n_timesteps)
        for t in range(n_timesteps):
            if t:
                x = p_.A @ x + p_.b + w[t]
            states[t] = x
            observations[t] = p_.C @ x + p_.d + v[t]
        return states, observations

    # ---- the model protocol ------------------------------------------------------------------

    def _has_parameters(self) -> bool:
        return hasattr(self, "transition_covariance_")

    def log_density(self, batch: SequenceBatch) -> FloatArray:
        """``log p(y_t | y_0..y_{t-1})`` of every row of a batch, in the order of the rows
        given to :meth:`batch_from_rows`, each key continuing its carried filter state; the carry
        is not changed."""
        self._check_fitted()
        params, carry = self.engine_.output_params, self.engine_.carry or {}
        out = []
        for key, Y in batch.segments():
            state = carry.get(key) if key is not None else None
            if state is None:
                mean, covariance = params.mu0, params.P0
            else:
                mean = params.A @ state.mean + params.b
                covariance = params.A @ state.covariance @ params.A.T + params.Q
            out.append(kalman_filter(params, Y, mean, covariance, self.steady_tol).log_likelihoods)
        return batch.in_original_order(np.concatenate(out))

    def parameters_document(self) -> dict[str, Any]:
        """The family's fields of a published snapshot: the eight parameters (pykalman names)
        and the dimensions."""
        self._check_fitted()
        params = self.engine_.output_params
        document: dict[str, Any] = {
            "n_dim_state": params.n_dim_state,
            "n_dim_obs": params.n_dim_obs,
            "em_vars": sorted(self._learned()),
        }
        for name, field in PARAMETER_NAMES.items():
            document[name] = getattr(params, field).tolist()
        return document

    def filter_states(self) -> dict[str, FilterState]:
        """Each sequence key's newest filter state (the engine's carry); ``partial_fit``'s
        stream is the key ``"default"``.

        Examples
        --------
        >>> model = LinearGaussianSSM(n_dim_state=1).partial_fit(np.arange(50.0))
        >>> state = model.filter_states()["default"]
        >>> state.mean.shape, state.covariance.shape
        ((1,), (1, 1))
        """
        self._check_fitted()
        return dict(self.engine_.carry or {})

    # ---- results -----------------------------------------------------------------------------

    @property
    def _state_space_family(self) -> StateSpaceFamily:
        return self._engine_family(StateSpaceFamily)

    @property
    def _params(self) -> StateSpaceParams:
        params: StateSpaceParams = self.engine_.output_params
        return params

    def _refresh_fitted(self) -> None:
        self._publish(from_fit=False)

    def _publish(self, from_fit: bool) -> None:
        params = self.engine_.output_params
        for name, field in PARAMETER_NAMES.items():
            setattr(self, f"{name}_", getattr(params, field))
        carry = self.engine_.carry or {}
        if DEFAULT_KEY in carry:
            self.filter_state_ = carry[DEFAULT_KEY]
        if not from_fit:
            last = self.engine_.monitor.last
            self.converged_ = self.engine_.monitor.converged
            self.n_iter_ = self.engine_.step
            self.log_likelihood_ = last.smoothed_log_likelihood if last else -np.inf

    # ---- family and engine -------------------------------------------------------------------

    def _learned(self) -> frozenset[str]:
        if isinstance(self.em_vars, str):
            if self.em_vars == "all":
                return frozenset(PARAMETER_NAMES)
            names: tuple[str, ...] = (self.em_vars,)
        else:
            names = tuple(self.em_vars)
        unknown = [name for name in names if name not in PARAMETER_NAMES]
        if unknown:
            raise ValidationError(
                f"em_vars must be 'all' or names among {list(PARAMETER_NAMES)}, got {unknown}"
            )
        return frozenset(names)

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "transition_covariance_type": OneOf(COVARIANCE_TYPES),
            "observation_covariance_type": OneOf(COVARIANCE_TYPES),
            "acceleration": OneOf(ACCELERATIONS),
            "tol": Bound(0.0),
            "max_iter": Bound(0),
        }

    def _family(self, n_dim_obs: int) -> StateSpaceFamily:
        self._validate_parameters()
        given = {name: getattr(self, name) for name in PARAMETER_NAMES}
        start = default_parameters(given, self.n_dim_state, self.n_dim_obs or n_dim_obs)
        if start.n_dim_obs != n_dim_obs:
            raise ValidationError(
                f"X has {n_dim_obs} columns but the observation dimension is {start.n_dim_obs}"
            )
        return StateSpaceFamily(
            start,
            self._learned(),
            self.transition_covariance_type,
            self.observation_covariance_type,
            self.steady_tol,
        )

    def _streaming_engine(self, n_dim_obs: int) -> SSMEngine:
        engine: SSMEngine = self._stream_engine(
            self._family(n_dim_obs), PowerDecay(alpha=STREAMING_ALPHA)
        )
        return engine

    def _validate(self, X: ArrayLike, reset: bool) -> FloatArray:
        try:
            Y = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValidationError(f"X must be an array of numbers, got {X!r:.80}") from error
        if Y.ndim == 1:
            Y = Y[:, np.newaxis]
        if Y.ndim != 2 or len(Y) == 0:
            raise ValidationError(f"X must be a non-empty (n_timesteps, p) array, got {Y.shape}")
        if np.isinf(Y).any():
            raise ValidationError("X must not hold infinite values (NaN marks a missing one)")
        if reset:
            self.n_features_in_ = Y.shape[1]
        elif Y.shape[1] != self.n_features_in_:
            raise ValidationError(
                f"X has {Y.shape[1]} columns, but the model was fitted with {self.n_features_in_}"
            )
        return Y

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, carry, counters) as JSON
        data; ``from_dict(model.to_dict())`` continues learning exactly where it was."""
        document = self._document_head(FORMAT, FORMAT_VERSION)
        if hasattr(self, "engine_"):
            trace = getattr(self, "log_likelihood_trace_", np.empty(0))
            document["state"] = {
                "n_features_in": int(self.n_features_in_),
                "engine": self.engine_.state_dict(),
                "n_refused": int(self.n_refused_),
                "converged": bool(getattr(self, "converged_", False)),
                "n_iter": int(getattr(self, "n_iter_", 0)),
                "log_likelihood_trace": np.asarray(trace).tolist(),
            }
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LinearGaussianSSM:
        """Rebuild a model from :meth:`to_dict`'s output."""
        hyper = document_hyperparameters(document, FORMAT, FORMAT_VERSION)
        if isinstance(hyper.get("em_vars"), list):
            hyper["em_vars"] = tuple(hyper["em_vars"])
        model = cls(**hyper)
        state = document.get("state")
        if state is None:
            return model
        model.n_features_in_ = int(state["n_features_in"])
        model.engine_ = model._streaming_engine(model.n_features_in_)
        model.engine_.load_state_dict(state["engine"])
        model.n_refused_ = int(state["n_refused"])
        model.log_likelihood_trace_ = np.asarray(state["log_likelihood_trace"], dtype=float)
        if model.engine_.initialized:
            from_fit = model.engine_.step == 0
            model._publish(from_fit=from_fit)
            model.converged_ = bool(state["converged"])
            model.n_iter_ = int(state["n_iter"])
            if from_fit:
                trace = model.log_likelihood_trace_
                model.log_likelihood_ = float(trace[-1]) if len(trace) else -np.inf
        return model
