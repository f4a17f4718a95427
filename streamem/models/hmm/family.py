"""The Gaussian hidden Markov model as a stepwise-EM family: E-step statistics and M-step.

**Batch.** A :class:`Sequences`: the rows of one or more sequences concatenated, each sequence
with the stream key it belongs to (a ``str``, or None for an anonymous one) and whether it
continues the key's carried filter or starts afresh from ``startprob``. A time step is a unit.
Many keys may share a batch (a daemon's sensors), each continuing its own filter; a key
appears at most once per batch.

**Carry.** A mapping key -> the filtered state probabilities ``p(z_T | x_1..x_T)`` (K,) at the
key's newest step (JSON: ``{key: [floats]}``). A continuing sequence's first step has the
prior ``carry[key] @ transmat``, and its boundary transition (from the key's previous step)
counts in the transition statistics.

**What blocks of one sequence give** (block-online EM, Le Corff & Fort 2013). With the carry,
the statistics of the blocks of one sequence, under fixed parameters, add up to
``sum_t E[s_t | x_1..x_{tau(t)}]``, where ``s_t`` is step t's term of the complete-data
statistics (its emission moments and its transition from step t-1) and ``tau(t)`` the last step
of t's block: each step is smoothed given everything up to the end of its block, and the
future beyond the block is not looked at. The log-likelihoods add up exactly to the whole
sequence's (they are the one-step predictive densities), and one block holding the whole
sequence is batch EM's E-step. Only fresh starts count in the initial-state statistics; when
no fresh start is behind the statistics, ``startprob`` stays at the anchor's (the starting
values, which no update has then changed).

**Statistics.** Expected initial-state counts (K,), transition counts
``sum_t xi_t(i, j)`` (K, K), and per-state emission moments in the layout of the mixture's
:class:`~streamem.models.mixture.gaussian_family.GaussianStats` (occupancy, first and second moments
by covariance type). The emission densities (NaN coordinates marginalised), the emission
M-step, held-fixed means and covariances, and the covariance prior are the mixture family's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.engine.family import Expectation
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError, ValidationError
from streamem.models.common import covariance as cov
from streamem.models.common.covariance import CovarianceType
from streamem.models.emissions.base import TableStats
from streamem.models.hmm.scan import Smoothed, forward, forward_backward, viterbi
from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams, GaussianStats

Carry = Mapping[str, FloatArray]
FIXABLE = ("startprob", "transmat", "means", "covariances")


@dataclasses.dataclass(frozen=True)
class Sequences:
    """Rows of one or more sequences, concatenated: a hidden Markov model's batch.

    Parameters
    ----------
    X
        The rows (n_steps, n_features), sequence after sequence; NaN marks a missing
        coordinate (a row of NaN: a step without observation).
    lengths
        Steps of each sequence (they sum to ``n_steps``).
    keys
        Per sequence, the stream key it belongs to (its filter is carried after the batch),
        or None for an anonymous sequence (nothing is carried).
    continues
        Per sequence, whether it continues its key's carried filter (True) or starts afresh
        from ``startprob`` (False).
    arrival
        Optional: row i of X arrived as row ``arrival[i]`` of the caller's rows (when rows of
        interleaved keys were grouped into sequences), so that per-row answers can be given
        back in the caller's order.

    Examples
    --------
    >>> batch = Sequences.of(np.zeros((5, 2)), lengths=[2, 3], keys=[None, "sensor-1"])
    >>> batch.starts.tolist(), batch.continues
    ([0, 2], (False, False))
    """

    X: NDArray[np.floating]
    lengths: tuple[int, ...]
    keys: tuple[str | None, ...]
    continues: tuple[bool, ...]
    arrival: NDArray[np.intp] | None = None

    def __post_init__(self) -> None:
        n = len(self.lengths)
        if self.X.ndim != 2:
            raise ValidationError(f"X must be 2-D (n_steps, n_features), got shape {self.X.shape}")
        if n == 0 or min(self.lengths) < 1:
            raise ValidationError(f"lengths must be positive integers, got {list(self.lengths)}")
        if sum(self.lengths) != len(self.X):
            raise ValidationError(
                f"lengths must sum to the number of rows {len(self.X)}, got "
                f"sum(lengths) = {sum(self.lengths)}"
            )
        if len(self.keys) != n or len(self.continues) != n:
            raise ValidationError(
                f"keys and continues need one entry per sequence ({n}), got {len(self.keys)} "
                f"and {len(self.continues)}"
            )
        named = [key for key in self.keys if key is not None]
        if len(set(named)) != len(named):
            raise ValidationError(f"a key appears at most once per batch, got keys {named}")
        for key, continues in zip(self.keys, self.continues, strict=True):
            if continues and key is None:
                raise ValidationError("an anonymous sequence (key None) cannot continue")
        if self.arrival is not None and self.arrival.shape != (len(self.X),):
            raise ValidationError(
                f"arrival needs one index per row ({len(self.X)}), got shape {self.arrival.shape}"
            )

    def in_arrival_order(self, values: NDArray[Any]) -> NDArray[Any]:
        """Per-row ``values`` (n_steps, ...) in the caller's row order (see ``arrival``)."""
        if self.arrival is None:
            return values
        out = np.empty_like(values)
        out[self.arrival] = values
        return out

    @classmethod
    def of(
        cls,
        X: NDArray[np.floating],
        lengths: Sequence[int] | None = None,
        keys: Sequence[str | None] | None = None,
        continues: Sequence[bool] | None = None,
    ) -> Sequences:
        """A batch with defaults: one sequence, anonymous sequences, fresh starts."""
        sizes = (len(X),) if lengths is None else tuple(int(size) for size in lengths)
        return cls(
            X,
            sizes,
            (None,) * len(sizes) if keys is None else tuple(keys),
            (False,) * len(sizes) if continues is None else tuple(bool(c) for c in continues),
        )

    @property
    def starts(self) -> NDArray[np.intp]:
        """The first row of each sequence (n_sequences,)."""
        return np.concatenate([[0], np.cumsum(self.lengths[:-1])]).astype(np.intp)

    @property
    def n_steps(self) -> int:
        """Number of rows (time steps)."""
        return len(self.X)


@dataclasses.dataclass(frozen=True)
class HMMParams(ArrayRecord):
    """Parameters: startprob (K,), transmat (K, K), means (K, d), covariances and their
    precision Cholesky factors in the shape of the covariance type."""

    startprob: FloatArray
    transmat: FloatArray
    means: FloatArray
    covariances: FloatArray
    precisions_cholesky: FloatArray


@dataclasses.dataclass(frozen=True)
class HMMStats(ArrayRecord):
    """Sufficient statistics: initial-state counts (K,), transition counts (K, K), state
    occupancy (K,), first moments (K, d), second moments in the covariance type's shape."""

    start: FloatArray
    transitions: FloatArray
    resp: FloatArray
    first: FloatArray
    second: FloatArray


class ChainFamily:
    """The Markov chain's half of a hidden Markov model family, whatever its emissions: the
    anchor, starting values, the carried filters, the forward-backward, forward and Viterbi
    scans, and the M-step of ``startprob`` and ``transmat``.

    A family adds its emissions: :meth:`log_emission` (T, K), their statistics and M-step.
    Its parameters record has ``startprob`` (K,) and ``transmat`` (K, K) fields.
    """

    fixed: tuple[str, ...]
    start: Any
    _anchor: Any = None

    def log_emission(self, params: Any, X: Any) -> FloatArray:
        """``log p(x_t | z_t = j)`` (T, K) of each row (the family's emissions)."""
        raise NotImplementedError

    @property
    def anchor(self) -> Any:
        """The parameters that fixed names are held at (the starting values)."""
        return self._anchor

    @anchor.setter
    def anchor(self, params: Any) -> None:
        self._anchor = params
        self._anchor_changed(params)

    def _anchor_changed(self, params: Any) -> None:
        """Hook: the emissions' part of the anchor changed (nothing by default)."""

    def initial_params(self, batch: Sequences, rng: np.random.Generator) -> Any:
        """Starting values for a first batch (the family's ``start``)."""
        if self.start is None:
            raise ValueError("the family has no start to take starting values from")
        return self.start.params(self, batch.X, rng)

    def maximize_chain(
        self, start: FloatArray, transitions: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """M-step of the chain: normalised counts for ``startprob`` and each row of
        ``transmat`` (the anchor's where no mass is behind them, or where fixed)."""
        start_mass = float(start.sum())
        if "startprob" in self.fixed or not start_mass > 0.0:
            startprob = self._anchored().startprob
        else:
            startprob = start / start_mass
        if "transmat" in self.fixed:
            transmat = self._anchored().transmat
        else:
            rows = transitions.sum(axis=1, keepdims=True)
            empty = ~(rows[:, 0] > 0.0)
            transmat = transitions / np.where(empty[:, np.newaxis], 1.0, rows)
            if empty.any():
                transmat[empty] = self._anchored().transmat[empty]
        return startprob, transmat

    def _anchored(self) -> Any:
        if self._anchor is None:
            raise DegenerateUpdateError(
                "no mass behind startprob or a row of transmat, and no anchor to keep"
            )
        return self._anchor

    def chain_change(self, old: Any, new: Any) -> float:
        """Largest change of a start or transition probability."""
        return max(
            float(np.abs(new.startprob - old.startprob).max()),
            float(np.abs(new.transmat - old.transmat).max()),
        )

    # ---- the carry ---------------------------------------------------------------------------

    def carry_to_dict(self, carry: Carry) -> dict[str, list[float]]:
        """``{key: [filtered state probabilities]}``."""
        return {key: np.asarray(value, dtype=float).tolist() for key, value in carry.items()}

    def carry_from_dict(self, data: Any) -> dict[str, FloatArray]:
        """Inverse of :meth:`carry_to_dict`."""
        if not isinstance(data, dict):
            raise ValidationError(f"an HMM carry is a JSON object, got {type(data).__name__}")
        return {str(key): np.asarray(value, dtype=np.float64) for key, value in data.items()}

    # ---- E-step and scans ----------------------------------------------------------------------

    def _statistics(
        self, params: Any, X: Any, start: FloatArray, transitions: FloatArray, gamma: FloatArray
    ) -> Any:
        """The family's statistics record from the chain's (initial-state and transition
        counts) and the state posteriors ``gamma`` (T, K) of the rows X."""
        raise NotImplementedError

    def expected_statistics(
        self, params: Any, batch: Sequences, carry: Carry | None
    ) -> Expectation[Any, Carry]:
        """Sums of expected statistics over the batch's time steps, their log predictive
        density given the carry, and the carry after the batch; a time step is a unit. Only
        fresh starts count in the initial-state statistics."""
        smoothed = self.smooth(params, batch, carry)
        gamma = smoothed.posteriors
        fresh = batch.starts[~np.asarray(batch.continues, dtype=bool)]
        stats = self._statistics(
            params, batch.X, gamma[fresh].sum(axis=0), smoothed.transitions, gamma
        )
        return Expectation(
            stats,
            float(smoothed.log_predictive.sum()),
            batch.n_steps,
            self.carry_after(batch, smoothed.filtered, carry),
        )

    def _priors(
        self, params: Any, batch: Sequences, carry: Carry | None
    ) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
        """Per sequence: the prior of its first step, the carried filter (zeros for a fresh
        one) and whether it continues."""
        k = len(params.startprob)
        priors = np.empty((len(batch.lengths), k))
        carried = np.zeros((len(batch.lengths), k))
        continuing = np.asarray(batch.continues, dtype=bool)
        for s, (key, continues) in enumerate(zip(batch.keys, batch.continues, strict=True)):
            if not continues:
                priors[s] = params.startprob
                continue
            previous = None if carry is None or key is None else carry.get(key)
            if previous is None or previous.shape != (k,):
                raise ValidationError(
                    f"sequence {s} continues key {key!r}, but the carry holds no filter of "
                    f"{k} states for it"
                )
            carried[s] = previous
            priors[s] = previous @ params.transmat
        return priors, carried, continuing

    def smooth(self, params: Any, batch: Sequences, carry: Carry | None) -> Smoothed:
        """Forward-backward of the batch, continuing the carried filters."""
        priors, carried, continuing = self._priors(params, batch, carry)
        log_b = self.log_emission(params, batch.X)
        return forward_backward(log_b, params.transmat, batch.starts, priors, carried, continuing)

    def filter(
        self, params: Any, batch: Sequences, carry: Carry | None
    ) -> tuple[FloatArray, FloatArray]:
        """Filtered state probabilities (T, K) and ``log p(x_t | x_1..x_{t-1})`` (T,), the
        carried filters continued (forward pass only)."""
        priors, _, _ = self._priors(params, batch, carry)
        log_b = self.log_emission(params, batch.X)
        return forward(log_b, params.transmat, batch.starts, priors)

    def decode(self, params: Any, batch: Sequences, carry: Carry | None) -> NDArray[np.intp]:
        """The most probable state path (T,) of each sequence (Viterbi)."""
        priors, _, _ = self._priors(params, batch, carry)
        log_b = self.log_emission(params, batch.X)
        with np.errstate(divide="ignore"):
            return viterbi(log_b, np.log(params.transmat), batch.starts, np.log(priors))

    def carry_after(
        self, batch: Sequences, filtered: FloatArray, carry: Carry | None
    ) -> dict[str, FloatArray] | None:
        """The carry after the batch: each keyed sequence's last filtered probabilities."""
        updated = dict(carry) if carry is not None else {}
        ends = batch.starts + np.asarray(batch.lengths) - 1
        for key, end in zip(batch.keys, ends.tolist(), strict=True):
            if key is not None:
                updated[key] = filtered[end].copy()
        return updated if updated or carry is not None else None


class GaussianHMMFamily(ChainFamily):
    """E-step and M-step of a Gaussian hidden Markov model for
    :class:`~streamem.engine.StepwiseEM` (see the module docstring for batch and carry).

    Parameters
    ----------
    covariance_type
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    reg_covar
        Added to the diagonal of every covariance after the M-step.
    prior_strength
        Pseudo-steps of the mixture family's covariance prior (0: maximum likelihood).
    fixed
        Names among ``"startprob"``, ``"transmat"``, ``"means"``, ``"covariances"`` held at
        :attr:`anchor`'s values.
    start
        Starting values (an object with ``params(family, X, rng)``), for :meth:`initial_params`.

    Examples
    --------
    >>> family = GaussianHMMFamily("diag")
    >>> params = family.make_params(np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]]),
    ...                             np.array([[0.0], [5.0]]), np.array([[1.0], [1.0]]))
    >>> X = np.array([[0.1], [-0.2], [5.1], [4.8], [5.3]])
    >>> expectation = family.expected_statistics(params, Sequences.of(X), None)
    >>> expectation.n_units, expectation.stats.transitions.round(2)
    (5, array([[1., 1.],
           [0., 2.]]))
    >>> print(family.maximize(expectation.stats).transmat.round(2))
    [[0.5 0.5]
     [0.  1. ]]
    """

    params_type = HMMParams
    stats_type = HMMStats

    def __init__(
        self,
        covariance_type: CovarianceType = "diag",
        reg_covar: float = 0.0,
        prior_strength: float = 0.0,
        fixed: tuple[str, ...] = (),
        start: Any = None,
    ) -> None:
        unknown = [name for name in fixed if name not in FIXABLE]
        if unknown:
            raise ValidationError(f"fixed must hold names among {FIXABLE}, got {fixed!r}")
        self.covariance_type = covariance_type
        self.fixed = tuple(fixed)
        self.start = start
        self.emission = GaussianFamily(
            covariance_type,
            reg_covar=reg_covar,
            prior_strength=prior_strength,
            fixed=tuple(name for name in fixed if name in ("means", "covariances")),
        )
        self._anchor: HMMParams | None = None
        self._emission_of: tuple[HMMParams, GaussianParams] | None = None

    # ---- parameters --------------------------------------------------------------------------

    def _anchor_changed(self, params: HMMParams | None) -> None:
        self.emission.anchor = None if params is None else self.emission_params(params)

    def make_params(
        self,
        startprob: FloatArray,
        transmat: FloatArray,
        means: FloatArray,
        covariances: FloatArray,
    ) -> HMMParams:
        """Parameters with their precision Cholesky factors (raises if not positive definite)."""
        return HMMParams(
            startprob=np.asarray(startprob, dtype=np.float64),
            transmat=np.asarray(transmat, dtype=np.float64),
            means=np.asarray(means, dtype=np.float64),
            covariances=np.asarray(covariances, dtype=np.float64),
            precisions_cholesky=cov.precision_cholesky(
                np.asarray(covariances, dtype=np.float64), self.covariance_type
            ),
        )

    def emission_params(self, params: HMMParams) -> GaussianParams:
        """The emissions as a mixture's parameters with equal weights (cached per set)."""
        cached = self._emission_of
        if cached is not None and cached[0] is params:
            return cached[1]
        emission = _equal_weights(params)
        self._emission_of = (params, emission)
        return emission

    def maximize(self, stats: HMMStats) -> HMMParams:
        """M-step (see :class:`~streamem.engine.Family`): normalised counts for ``startprob``
        and each row of ``transmat`` (the anchor's where no mass is behind them), the mixture
        family's M-step for the emissions."""
        startprob, transmat = self.maximize_chain(stats.start, stats.transitions)
        emission = self.emission.maximize(GaussianStats(stats.resp, stats.first, stats.second))
        params = HMMParams(
            startprob,
            transmat,
            emission.means,
            emission.covariances,
            emission.precisions_cholesky,
        )
        if not params.is_finite():
            raise DegenerateUpdateError("the M-step produced non-finite parameters")
        return params

    def parameter_change(self, old: HMMParams, new: HMMParams) -> float:
        """Largest change of a start or transition probability, of a mean in standard
        deviations, or of a log-variance."""
        emission = self.emission.parameter_change(_equal_weights(old), _equal_weights(new))
        return max(self.chain_change(old, new), emission)

    def interpolate(self, a: HMMParams, b: HMMParams, t: float) -> HMMParams:
        """Convex combination of every parameter (a valid model for t in [0, 1])."""
        return self.make_params(
            (1 - t) * a.startprob + t * b.startprob,
            (1 - t) * a.transmat + t * b.transmat,
            (1 - t) * a.means + t * b.means,
            (1 - t) * a.covariances + t * b.covariances,
        )

    # ---- E-step ------------------------------------------------------------------------------

    def log_emission(self, params: HMMParams, X: NDArray[np.floating]) -> FloatArray:
        """``log N(x_t | mu_j, Sigma_j)`` (T, K) over each row's observed coordinates (0 for
        a row without any)."""
        emission = self.emission_params(params)
        k = len(params.startprob)
        empty = np.isnan(X).all(axis=1)
        out = np.zeros((len(X), k))
        rows = X if not empty.any() else X[~empty]
        if len(rows):
            joint = self.emission.log_joint(emission, rows) + math.log(k)
            if empty.any():
                out[~empty] = joint
            else:
                out = np.asarray(joint, dtype=np.float64)
        return out

    def _statistics(
        self,
        params: HMMParams,
        X: NDArray[np.floating],
        start: FloatArray,
        transitions: FloatArray,
        gamma: FloatArray,
    ) -> HMMStats:
        emission = self._emission_statistics(params, X, gamma)
        return HMMStats(start, transitions, emission.resp, emission.first, emission.second)

    def _emission_statistics(
        self, params: HMMParams, X: NDArray[np.floating], gamma: FloatArray
    ) -> GaussianStats:
        """Emission moments under the state posteriors (T, K), missing coordinates completed."""
        missing = np.isnan(X).any(axis=1)
        complete = X if not missing.any() else X[~missing]
        weights = gamma if not missing.any() else gamma[~missing]
        stats = GaussianStats(
            resp=weights.sum(axis=0),
            first=np.asarray(weights.T @ complete, dtype=np.float64),
            second=cov.weighted_second_moments(weights.T, complete, self.covariance_type),
        )
        partial = missing & ~np.isnan(X).all(axis=1)
        if partial.any():
            stats = stats + self.emission.completed_statistics(
                self.emission_params(params), X[partial], gamma[partial]
            )
        return stats


def _equal_weights(params: HMMParams) -> GaussianParams:
    """The emissions as a mixture's parameters with equal weights."""
    k = len(params.startprob)
    return GaussianParams(
        np.full(k, 1.0 / k), params.means, params.covariances, params.precisions_cholesky
    )


@dataclasses.dataclass(frozen=True)
class TableHMMParams(ArrayRecord):
    """Parameters of an HMM whose emissions are a table: startprob (K,), transmat (K, K) and
    the emission table (K, m) (Poisson rates, symbol probabilities)."""

    startprob: FloatArray
    transmat: FloatArray
    table: FloatArray


@dataclasses.dataclass(frozen=True)
class TableHMMStats(ArrayRecord):
    """Sufficient statistics: initial-state counts (K,), transition counts (K, K), and the
    emission's :class:`~streamem.models.emissions.base.TableStats` (occupancy (K,), sums
    (K, m))."""

    start: FloatArray
    transitions: FloatArray
    resp: FloatArray
    sums: FloatArray


class TableHMMFamily(ChainFamily):
    """E-step and M-step of a hidden Markov model over an emission distribution with a table
    of parameters (:class:`~streamem.models.emissions.base.TableEmission`): the chain is
    :class:`ChainFamily`'s, the emissions' statistics and M-step are the emission's.

    Parameters
    ----------
    emission
        The emission distribution (Poisson, categorical).
    fixed
        Names among ``"startprob"``, ``"transmat"``, ``"table"`` held at the anchor's values.
    start
        Starting values (an object with ``params(family, X, rng)``).

    Examples
    --------
    >>> from streamem.models.emissions.poisson import PoissonEmission
    >>> family = TableHMMFamily(PoissonEmission())
    >>> params = TableHMMParams(np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]]),
    ...                         np.array([[1.0], [8.0]]))
    >>> X = np.array([[0.0], [2.0], [9.0], [7.0], [8.0]])
    >>> expectation = family.expected_statistics(params, Sequences.of(X), None)
    >>> print(family.maximize(expectation.stats).table.round(1).ravel())
    [1.  7.9]
    """

    params_type = TableHMMParams
    stats_type = TableHMMStats

    def __init__(self, emission: Any, fixed: tuple[str, ...] = (), start: Any = None) -> None:
        allowed = ("startprob", "transmat", "table")
        if any(name not in allowed for name in fixed):
            raise ValidationError(f"fixed must hold names among {allowed}, got {fixed!r}")
        self.emission = emission
        self.fixed = tuple(fixed)
        self.start = start
        self._anchor: TableHMMParams | None = None

    def maximize(self, stats: TableHMMStats) -> TableHMMParams:
        """M-step: the chain's (see :meth:`ChainFamily.maximize_chain`) and the emission's."""
        startprob, transmat = self.maximize_chain(stats.start, stats.transitions)
        anchor = None if self._anchor is None else self._anchor.table
        if "table" in self.fixed:
            table = self._anchored().table
        else:
            table = self.emission.maximize(TableStats(stats.resp, stats.sums), anchor)
        params = TableHMMParams(startprob, transmat, np.asarray(table, dtype=np.float64))
        if not params.is_finite():
            raise DegenerateUpdateError("the M-step produced non-finite parameters")
        return params

    def parameter_change(self, old: TableHMMParams, new: TableHMMParams) -> float:
        """Largest change of a chain probability or of the emission table (the emission's)."""
        emission: float = self.emission.change(old.table, new.table)
        return max(self.chain_change(old, new), emission)

    def interpolate(self, a: TableHMMParams, b: TableHMMParams, t: float) -> TableHMMParams:
        """Convex combination of every parameter (a valid model for t in [0, 1])."""
        return a.blended(b, t)

    def log_emission(self, params: TableHMMParams, X: FloatArray) -> FloatArray:
        """The emission's log-likelihoods (T, K)."""
        out: FloatArray = self.emission.log_likelihood(params.table, X)
        return out

    def _statistics(
        self,
        params: TableHMMParams,
        X: FloatArray,
        start: FloatArray,
        transitions: FloatArray,
        gamma: FloatArray,
    ) -> TableHMMStats:
        emission = self.emission.statistics(X, gamma, params.table.shape[1])
        return TableHMMStats(start, transitions, emission.resp, emission.sums)
