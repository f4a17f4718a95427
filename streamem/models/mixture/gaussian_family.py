"""The Gaussian mixture as a stepwise-EM family: E-step statistics and M-step.

The E-step of complete rows is two matrix products per chunk of rows. With the rows
centred on the batch mean ``c`` and quadratic features
``phi(x) = [1, x - c, (x - c)_a (x - c)_b for a <= b]``, the log of ``w_j N(x | mu_j, Sigma_j)``
is ``W_j . phi(x)`` with coefficients ``W_j`` computed once per batch from the precision
Cholesky factors (no inverse of a covariance). The responsibilities ``R`` then give every
sufficient statistic at once as ``R^T phi``. Rows with missing coordinates (NaN) take a
slower path that marginalises the missing coordinates out.

One complete row, or a mini-batch of up to ``SMALL_BATCH`` complete rows (online EM with
small mini-batches, river's ``learn_one`` and ``predict_one``), takes a direct path without
chunks, workspaces or coefficients: the log-joint is ``c_j - |x U_j - mu_j U_j|^2 / 2`` with
``c_j`` and ``mu_j U_j`` cached per parameter set (:class:`_DirectTerms`), and the statistics
are ``R X`` and ``(R x) x^T``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.engine.family import Expectation, NoCarry
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError
from streamem.models.common import covariance as cov
from streamem.models.common.covariance import CovarianceType, add_to_diagonal
from streamem.models.mixture.gaussian_start import GaussianStart

LOG_2PI = math.log(2.0 * math.pi)
CHUNK_ROWS = 2048
# exp() of log-responsibilities below this is < 2e-35: clipping there changes no result but
# keeps subnormal numbers, which are ~100x slower to compute with, out of the hot path.
UNDERFLOW = -80.0
SMALL_BATCH = 64
"""Mini-batches of complete rows up to this size skip the quadratic features: below it their
coefficients cost more to compute than they save (2-6x faster at 16 rows for d = 2..30,
K = 3..10, full or diagonal; slower at 512 rows in most of those cases)."""
EPS = 10.0 * float(np.finfo(np.float64).eps)
"""Added to the responsibility mass of a component before dividing by it."""


@dataclasses.dataclass(frozen=True)
class GaussianParams(ArrayRecord):
    """Mixture parameters: weights (K,), means (K, d), covariances and their precision
    Cholesky factors in the shape of the covariance type."""

    weights: FloatArray
    means: FloatArray
    covariances: FloatArray
    precisions_cholesky: FloatArray


@dataclasses.dataclass(frozen=True)
class GaussianStats(ArrayRecord):
    """Sufficient statistics: responsibility mass (K,), first moments (K, d), and second
    moments in the shape of the covariance type (see :mod:`streamem.models.common.covariance`)."""

    resp: FloatArray
    first: FloatArray
    second: FloatArray


@dataclasses.dataclass(frozen=True)
class _DirectTerms:
    """What the direct log-joint needs from a parameter set, computed once per set."""

    params: GaussianParams
    constant: FloatArray
    """``log w_j - d/2 log(2 pi) + log det U_j`` (K,)."""
    whitened_means: FloatArray
    """``mu_j @ U_j`` (K, d)."""

    @classmethod
    def of(cls, params: GaussianParams, covariance_type: CovarianceType) -> _DirectTerms:
        d = params.means.shape[1]
        factors = params.precisions_cholesky
        log_det = cov.log_det_cholesky(factors, covariance_type, d)
        constant = np.log(params.weights) - 0.5 * d * LOG_2PI + log_det
        return cls(params, constant, cov.whiten_means(params.means, factors, covariance_type))


@dataclasses.dataclass
class GaussianFamily(NoCarry):
    """E-step and M-step of a Gaussian mixture for :class:`~streamem.engine.StepwiseEM`.

    Parameters
    ----------
    covariance_type
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    reg_covar
        Added to the diagonal of every covariance (scikit-learn's meaning).
    prior_strength
        Number of pseudo-points of a conjugate prior that pulls each covariance towards the
        diagonal ``Psi`` of the overall data covariance: a component with responsibility mass
        ``N_j`` gets ``(N_j * Sigma_ML + prior * Psi) / (N_j + prior)``, so a component that
        the data barely touch keeps a sane shape while one with many points is unaffected.
        0 is maximum likelihood.
    prior_fade
        Mass of the statistics (points) beyond which the prior fades: with ``N`` points behind
        the statistics, the prior is worth ``prior_strength * min(1, prior_fade / N)``
        pseudo-points. A fixed prior keeps a floor of about ``prior * Psi / N_j`` under every
        covariance, far above the spread of a direction in which a component's readings are
        all equal (integer sensors); a fading one protects the start of a stream and lets the
        model reach the maximum-likelihood optimum that batch EM finds. ``inf``: never fades.
    fixed
        Names among ``"weights"``, ``"means"``, ``"covariances"`` held at ``anchor``'s values.
    anchor
        The parameters that fixed names are held at (the initial parameters).
    start
        How :meth:`initial_params` takes starting values from a first batch.

    Examples
    --------
    One EM iteration of the 1-D example of Lux (2015): sigma fixed at 0.5.

    >>> X = np.array([0.5, 1.0, 1.2, 1.5, 1.6, 2.7, 4.0, 4.2, 4.3, 4.6, 4.8])[:, None]
    >>> family = GaussianFamily("spherical")
    >>> start = family.make_params(np.array([0.5, 0.5]), np.array([[2.0], [3.0]]),
    ...                            np.array([0.25, 0.25]))
    >>> expectation = family.expected_statistics(start, X)
    >>> family.fixed, family.anchor = ("covariances",), start
    >>> new = family.maximize(expectation.stats)
    >>> print(new.means.ravel().round(3), new.weights.round(3))
    [1.25  4.152] [0.478 0.522]
    """

    covariance_type: CovarianceType = "full"
    reg_covar: float = 1e-6
    prior_strength: float = 0.0
    prior_fade: float = math.inf
    fixed: tuple[str, ...] = ()
    anchor: GaussianParams | None = None
    start: GaussianStart | None = None
    chunk_rows: int = CHUNK_ROWS
    _workspace: dict[tuple[Any, ...], NDArray[Any]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    _direct_terms: _DirectTerms | None = dataclasses.field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_workspace"] = {}
        state["_direct_terms"] = None
        return state

    # ---- parameters --------------------------------------------------------------------------

    def make_params(
        self, weights: FloatArray, means: FloatArray, covariances: FloatArray
    ) -> GaussianParams:
        """Parameters with their precision Cholesky factors (raises if not positive definite)."""
        return GaussianParams(
            weights=np.asarray(weights, dtype=np.float64),
            means=np.asarray(means, dtype=np.float64),
            covariances=np.asarray(covariances, dtype=np.float64),
            precisions_cholesky=cov.precision_cholesky(covariances, self.covariance_type),
        )

    @property
    def params_type(self) -> type[GaussianParams]:
        return GaussianParams

    @property
    def stats_type(self) -> type[GaussianStats]:
        return GaussianStats

    def initial_params(self, X: NDArray[np.floating], rng: np.random.Generator) -> GaussianParams:
        """Starting values for the rows X (n, d): the family's :class:`GaussianStart`."""
        if self.start is None:
            raise ValueError("the family has no GaussianStart to take starting values from")
        return self.start.params(self, X, rng)

    def maximize(self, stats: GaussianStats) -> GaussianParams:
        """M-step (see :class:`~streamem.engine.Family`)."""
        resp = stats.resp + EPS
        total = stats.resp.sum()
        weights = stats.resp / total
        means = stats.first / resp[:, np.newaxis]
        if "weights" in self.fixed:
            weights = self._anchor.weights
        if "means" in self.fixed:
            means = self._anchor.means
        if "covariances" in self.fixed:
            covariances = self._anchor.covariances
        else:
            covariances = cov.estimate_covariances(
                self.covariance_type,
                resp,
                stats.first,
                stats.second,
                means,
                self.reg_covar,
                means_are_moments="means" not in self.fixed,
            )
            if self.prior_strength > 0.0 and self.covariance_type != "tied":
                covariances = self._shrink(covariances, stats, total)
        params = self.make_params(weights, means, covariances)
        if not params.is_finite():
            raise DegenerateUpdateError("the M-step produced non-finite parameters")
        return params

    @property
    def _anchor(self) -> GaussianParams:
        if self.anchor is None:
            raise ValueError("fixed parameters need an anchor (the initial parameters)")
        return self.anchor

    def _shrink(
        self, covariances: FloatArray, stats: GaussianStats, total: np.floating[Any]
    ) -> FloatArray:
        """Covariances pulled towards the prior (``total``: the statistics' whole mass)."""
        mean = stats.first.sum(axis=0) / total
        if self.covariance_type == "full":
            second = stats.second.diagonal(axis1=1, axis2=2).sum(axis=0)
        else:
            second = stats.second.sum(axis=0)
        spread = np.maximum(second / total - mean**2, 0.0) + self.reg_covar
        strength = self.prior_strength * min(1.0, self.prior_fade / float(total))
        if self.covariance_type == "full":
            f = stats.resp[:, np.newaxis, np.newaxis]
            shrunk = f * covariances
            add_to_diagonal(shrunk, strength * spread)  # + strength * diag(spread)
        else:
            f = stats.resp[:, np.newaxis] if self.covariance_type == "diag" else stats.resp
            prior = spread if self.covariance_type == "diag" else spread.mean()
            shrunk = f * covariances + strength * prior
        shrunk /= f + strength
        return np.asarray(shrunk)

    def parameter_change(self, old: GaussianParams, new: GaussianParams) -> float:
        """Largest change of a weight, of a mean in standard deviations, or of a log-variance."""
        variances = self._variances(old)
        scale = np.sqrt(variances) if variances.ndim == 2 else np.sqrt(variances)[:, None]
        changes = np.concatenate(
            [
                (new.weights - old.weights).ravel(),
                ((new.means - old.means) / scale).ravel(),
                np.log(self._variances(new) / variances).ravel(),
            ]
        )
        return float(np.abs(changes, out=changes).max())

    def _variances(self, params: GaussianParams) -> FloatArray:
        if self.covariance_type == "full":
            return params.covariances.diagonal(axis1=1, axis2=2)
        if self.covariance_type == "tied":
            return np.broadcast_to(np.diag(params.covariances), params.means.shape)
        return params.covariances

    def interpolate(self, a: GaussianParams, b: GaussianParams, t: float) -> GaussianParams:
        """Convex combination of weights, means and covariances."""
        return self.make_params(
            (1 - t) * a.weights + t * b.weights,
            (1 - t) * a.means + t * b.means,
            (1 - t) * a.covariances + t * b.covariances,
        )

    # ---- E-step ------------------------------------------------------------------------------

    def expected_statistics(
        self, params: GaussianParams, X: NDArray[np.floating], carry: None = None
    ) -> Expectation[GaussianStats, None]:
        """Sums of expected statistics over the rows of X (n, d), and their total
        log-likelihood; a row is a unit."""
        n = len(X)
        if n == 1:
            row = self._row_statistics(params, X[0])
            if row is not None:
                return Expectation(*row, 1)
        if not np.isnan(X).any():
            return Expectation(*self._complete_statistics(params, X), n)
        missing = np.isnan(X).any(axis=1)
        stats, log_likelihood = self._complete_statistics(params, X[~missing])
        extra, extra_log_likelihood = self._incomplete_statistics(params, X[missing])
        return Expectation(stats + extra, log_likelihood + extra_log_likelihood, n)

    def log_joint(self, params: GaussianParams, X: NDArray[np.floating]) -> FloatArray:
        """``log w_j + log N(x_i | mu_j, Sigma_j)`` for every row and component, (n, K).

        Missing coordinates (NaN) are marginalised out.
        """
        if len(X) == 1:
            return self.log_joint_row(params, X[0])[np.newaxis]
        return self._log_joint_rows(params, X)

    def _log_joint_rows(self, params: GaussianParams, X: NDArray[np.floating]) -> FloatArray:
        """:meth:`log_joint` by chunks of complete rows and patterns of missing coordinates."""
        out = np.empty((len(X), len(params.weights)), dtype=np.float64)
        missing = np.isnan(X).any(axis=1)
        complete = np.flatnonzero(~missing)
        for rows, _, joint in self._chunks(params, X[complete]):
            out[complete[rows]] = joint.T
        incomplete = np.flatnonzero(missing)
        for pattern_rows, pattern_joint, _ in self._marginals(params, X[incomplete]):
            out[incomplete[pattern_rows]] = pattern_joint
        return out

    def log_joint_row(self, params: GaussianParams, x: NDArray[np.floating]) -> FloatArray:
        """:meth:`log_joint` of one row ``x`` (d,), shape (K,), without the batch machinery.

        The fast path for a complete row; a row with missing coordinates (NaN) takes the
        marginal path of :meth:`log_joint`.
        """
        joint = self._direct_log_joint(params, x)
        if joint[0] != joint[0]:  # NaN: a coordinate is missing
            marginal: FloatArray = self._log_joint_rows(params, x[np.newaxis])[0]
            return marginal
        return joint

    def _direct_log_joint(self, params: GaussianParams, X: NDArray[np.floating]) -> FloatArray:
        """``log w_j + log N(x | mu_j, Sigma_j)`` of one row x (d,): (K,); of a few rows
        (m, d): (K, m). NaN for a row with a NaN."""
        terms = self._direct_terms
        if terms is None or terms.params is not params:
            terms = self._direct_terms = _DirectTerms.of(params, self.covariance_type)
        whitened = cov.whiten(X, params.precisions_cholesky, self.covariance_type)
        if X.ndim == 1:
            whitened = whitened - terms.whitened_means
            constant = terms.constant
        else:
            whitened = whitened - terms.whitened_means[:, np.newaxis, :]
            constant = terms.constant[:, np.newaxis]
        distance: FloatArray = np.einsum("...d,...d->...", whitened, whitened)
        distance *= -0.5
        distance += constant
        return distance

    def _row_statistics(
        self, params: GaussianParams, x: NDArray[np.floating]
    ) -> tuple[GaussianStats, float] | None:
        """Expected statistics and log-likelihood of one row (d,); None if it has a NaN."""
        resp = self._direct_log_joint(params, x)
        # Python's max and sum of a short list cost a fraction of a numpy reduction.
        values = resp.tolist()
        if values[0] != values[0]:  # NaN: a coordinate is missing
            return None
        peak = max(values)
        resp -= peak
        np.maximum(resp, UNDERFLOW, out=resp)
        np.exp(resp, out=resp)
        norm = sum(resp.tolist())
        resp /= norm
        first = np.multiply.outer(resp, x)
        second = cov.row_second_moments(first, x, self.covariance_type)
        stats = GaussianStats(resp=resp, first=first, second=second)
        return stats, math.log(norm) + peak

    def _complete_statistics(
        self, params: GaussianParams, X: NDArray[np.floating]
    ) -> tuple[GaussianStats, float]:
        if len(X) <= SMALL_BATCH:
            return self._direct_statistics(params, X)
        k, d = params.means.shape
        totals = np.zeros((k, self._n_features(d)), dtype=np.float64)
        log_likelihood = 0.0
        for _, features, joint in self._chunks(params, X):
            log_likelihood += _responsibilities(joint)
            totals += joint @ features.T
        return self._stats_from_totals(totals, self._centre(params), d), log_likelihood

    def _direct_statistics(
        self, params: GaussianParams, X: NDArray[np.floating]
    ) -> tuple[GaussianStats, float]:
        """E-step of a few complete rows (m, d) through the Mahalanobis distances of
        :meth:`log_joint_row`: no quadratic-feature coefficients to compute."""
        joint = self._direct_log_joint(params, X)
        log_likelihood = _responsibilities(joint)
        stats = GaussianStats(
            resp=joint.sum(axis=1),
            first=joint @ X,
            second=cov.weighted_second_moments(joint, X, self.covariance_type),
        )
        return stats, log_likelihood

    @staticmethod
    def _centre(params: GaussianParams) -> FloatArray:
        """Where rows are centred before the quadratic features: the mixture's mean."""
        return np.asarray(params.weights @ params.means)

    def _chunks(
        self, params: GaussianParams, X: NDArray[np.floating]
    ) -> Iterator[tuple[slice, NDArray[np.floating], NDArray[np.floating]]]:
        """Yield (rows, features (F, m), log-joint (K, m)) per chunk of complete rows."""
        centre = self._centre(params)
        coefficients = self._coefficients(params, centre).astype(X.dtype, copy=False)
        centre_typed = centre.astype(X.dtype)
        k, n_features = coefficients.shape
        for start in range(0, len(X), self.chunk_rows):
            chunk = X[start : start + self.chunk_rows]
            m = len(chunk)
            features = self._buffer("features", X.dtype, n_features, m)
            self._fill_features(chunk, centre_typed, features)
            joint = np.matmul(coefficients, features, out=self._buffer("joint", X.dtype, k, m))
            yield slice(start, start + m), features, joint

    def _buffer(self, name: str, dtype: Any, rows: int, columns: int) -> NDArray[Any]:
        """A reused (rows, columns) work array; it grows to the largest chunk seen, not to
        ``chunk_rows`` columns at once."""
        key = (name, np.dtype(dtype), rows)
        flat = self._workspace.get(key)
        if flat is None or flat.size < rows * columns:
            flat = np.empty(rows * columns, dtype=dtype)
            self._workspace[key] = flat
        return flat[: rows * columns].reshape(rows, columns)

    def _n_features(self, d: int) -> int:
        if self.covariance_type in ("full", "tied"):
            return 1 + d + d * (d + 1) // 2
        return 1 + 2 * d

    def _fill_features(
        self, chunk: NDArray[np.floating], centre: NDArray[np.floating], out: NDArray[np.floating]
    ) -> None:
        d = chunk.shape[1]
        out[0] = 1.0
        np.subtract(chunk.T, centre[:, np.newaxis], out=out[1 : 1 + d])
        centred = out[1 : 1 + d]
        if self.covariance_type in ("full", "tied"):
            offset = 1 + d
            for a in range(d):
                np.multiply(centred[a:], centred[a], out=out[offset : offset + d - a])
                offset += d - a
        else:
            np.multiply(centred, centred, out=out[1 + d :])

    def _coefficients(self, params: GaussianParams, centre: FloatArray) -> FloatArray:
        """Coefficients (K, F) of the log-joint as a linear function of the features."""
        k, d = params.means.shape
        shifted = params.means - centre
        factors = params.precisions_cholesky
        log_det = cov.log_det_cholesky(factors, self.covariance_type, d)
        constant = np.log(params.weights) - 0.5 * d * LOG_2PI + log_det
        if self.covariance_type in ("full", "tied"):
            precisions = cov.precisions_from_cholesky(factors, self.covariance_type)
            precisions = np.broadcast_to(precisions, (k, d, d))
            linear = np.matmul(precisions, shifted[:, :, np.newaxis])[:, :, 0]
            upper, _, halves = _upper_triangle(d)
            quadratic = -precisions.reshape(k, d * d)[:, upper] * halves
        else:
            precision = cov.precisions_from_cholesky(factors, self.covariance_type)
            precision = precision if precision.ndim == 2 else np.repeat(precision[:, None], d, 1)
            linear = precision * shifted
            quadratic = -0.5 * precision
        constant = constant - 0.5 * (linear * shifted).sum(axis=1)
        return np.hstack([constant[:, np.newaxis], linear, quadratic])

    def _stats_from_totals(self, totals: FloatArray, centre: FloatArray, d: int) -> GaussianStats:
        """Statistics in data coordinates from feature totals around ``centre``."""
        resp = totals[:, 0]
        first_centred = totals[:, 1 : 1 + d]
        first = first_centred + resp[:, np.newaxis] * centre
        if self.covariance_type in ("full", "tied"):
            upper, lower, _ = _upper_triangle(d)
            flat = np.zeros((len(resp), d * d))
            flat[:, upper] = totals[:, 1 + d :]
            flat[:, lower] = totals[:, 1 + d :]
            second_centred = flat.reshape(len(resp), d, d)
            cross = first_centred[:, :, np.newaxis] * centre
            second = (
                second_centred
                + cross
                + cross.swapaxes(1, 2)
                + resp[:, np.newaxis, np.newaxis] * np.outer(centre, centre)
            )
            second = cov.reduce_second_moments(second, self.covariance_type)
        else:
            second = (
                totals[:, 1 + d :] + 2.0 * first_centred * centre + resp[:, np.newaxis] * centre**2
            )
        return GaussianStats(resp=resp, first=first, second=second)

    def statistics_from_responsibilities(
        self, X: NDArray[np.floating], resp: FloatArray
    ) -> GaussianStats:
        """Sums of statistics of complete rows X (n, d) under given responsibilities (n, K)."""
        # einsum may hand back a (K, d, d) array in a non-C order for large d.
        full_second = np.ascontiguousarray(np.einsum("nk,na,nb->kab", resp, X, X))
        return GaussianStats(
            resp=resp.sum(axis=0),
            first=resp.T @ X,
            second=cov.reduce_second_moments(full_second, self.covariance_type),
        )

    # ---- rows with missing coordinates -------------------------------------------------------

    def _marginals(
        self, params: GaussianParams, X: NDArray[np.floating]
    ) -> Iterator[tuple[NDArray[np.intp], FloatArray, tuple[FloatArray, FloatArray]]]:
        """Per missing-pattern: rows, log-joint (rows, K), and per component the completed
        rows (K, rows, d) with the conditional covariances (K, d, d) of the missing part."""
        k, d = params.means.shape
        full = cov.full_matrices(params.covariances, self.covariance_type, k, d)
        observed_masks, inverse = np.unique(~np.isnan(X), axis=0, return_inverse=True)
        for pattern, observed in enumerate(observed_masks):
            rows = np.flatnonzero(inverse.ravel() == pattern)
            o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
            values = X[np.ix_(rows, o)].astype(np.float64)
            joint = np.empty((len(rows), k))
            completed = np.empty((k, len(rows), d))
            conditional = np.zeros((k, d, d))
            for j in range(k):
                sigma = full[j]
                lower = np.linalg.cholesky(sigma[np.ix_(o, o)])
                diff = values - params.means[j, o]
                z = np.linalg.solve(lower, diff.T)
                log_det = 2.0 * np.log(np.diag(lower)).sum()
                joint[:, j] = np.log(params.weights[j]) - 0.5 * (
                    len(o) * LOG_2PI + log_det + (z**2).sum(axis=0)
                )
                gain = np.linalg.solve(lower.T, np.linalg.solve(lower, sigma[np.ix_(o, m)])).T
                completed[j][:, o] = values
                completed[j][:, m] = params.means[j, m] + diff @ gain.T
                conditional[j][np.ix_(m, m)] = sigma[np.ix_(m, m)] - gain @ sigma[np.ix_(o, m)]
            yield rows, joint, (completed, conditional)

    def _incomplete_statistics(
        self, params: GaussianParams, X: NDArray[np.floating]
    ) -> tuple[GaussianStats, float]:
        return self._completed_statistics(params, X, None)

    def completed_statistics(
        self, params: GaussianParams, X: NDArray[np.floating], resp: FloatArray
    ) -> GaussianStats:
        """Sums of statistics of rows X (n, d) with missing coordinates (NaN) under given
        responsibilities (n, K) (e.g. a hidden Markov model's state posteriors): each row is
        completed by its conditional mean given its observed coordinates under each
        component, and the conditional covariance is added to its second moments."""
        return self._completed_statistics(params, X, resp)[0]

    def _completed_statistics(
        self, params: GaussianParams, X: NDArray[np.floating], given: FloatArray | None
    ) -> tuple[GaussianStats, float]:
        """Statistics of rows with missing coordinates; responsibilities from the mixture
        (and the rows' log-likelihood) when ``given`` is None."""
        k, d = params.means.shape
        resp_total = np.zeros(k)
        first = np.zeros((k, d))
        second = np.zeros((k, d, d))
        log_likelihood = 0.0
        for rows, joint, (completed, conditional) in self._marginals(params, X):
            if given is None:
                peak = joint.max(axis=1, keepdims=True)
                norm = np.exp(joint - peak).sum(axis=1, keepdims=True)
                resp = np.exp(joint - peak) / norm
                log_likelihood += float((np.log(norm) + peak).sum())
            else:
                resp = given[rows]
            mass = resp.sum(axis=0)
            resp_total += mass
            for j in range(k):
                first[j] += resp[:, j] @ completed[j]
                second[j] += (completed[j].T * resp[:, j]) @ completed[j] + mass[j] * conditional[j]
        reduced = cov.reduce_second_moments(second, self.covariance_type)
        return GaussianStats(resp=resp_total, first=first, second=reduced), log_likelihood


def _responsibilities(joint: NDArray[np.floating]) -> float:
    """Turn log-joint values (K, m) into responsibilities in place; return the total
    log-likelihood of the m rows."""
    peak = joint.max(axis=0)
    joint -= peak
    np.maximum(joint, UNDERFLOW, out=joint)
    np.exp(joint, out=joint)
    norm = joint.sum(axis=0)
    joint /= norm
    return float(np.log(norm).sum(dtype=np.float64) + peak.sum(dtype=np.float64))


@functools.cache
def _upper_triangle(d: int) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray]:
    """Flat indices into a (d, d) matrix of its upper triangle (row by row, as
    ``np.triu_indices``) and of the mirrored lower entries, and the weight of each entry in
    a quadratic form over the upper triangle: 1/2 on the diagonal, 1 off it."""
    rows, columns = np.triu_indices(d)
    halves = np.where(rows == columns, 0.5, 1.0)
    return rows * d + columns, columns * d + rows, halves
