"""A mixture over an emission distribution with a table of parameters, as a stepwise-EM
family: the E-step's responsibilities and the emission's statistics, the M-step of the
weights and the emission's.

**Statistics.** The emission's :class:`~streamem.models.emissions.base.TableStats`: the
responsibility mass of each component (K,), which is also the weights' statistic, and the
emission's weighted sums (K, m).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy.special import logsumexp

from streamem.engine.family import Expectation, NoCarry
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError
from streamem.models.common.kmeans import kmeans_labels
from streamem.models.emissions.base import TableStats


@dataclasses.dataclass(frozen=True)
class TableMixtureParams(ArrayRecord):
    """Parameters: component weights (K,) and the emission table (K, m)."""

    weights: FloatArray
    table: FloatArray


class TableMixtureFamily(NoCarry):
    """E-step and M-step of a mixture of a table emission for
    :class:`~streamem.engine.StepwiseEM`; a batch is rows (n, d), a row is a unit.

    Parameters
    ----------
    emission
        The emission distribution (:class:`~streamem.models.emissions.poisson.PoissonEmission`).
    start
        Starting values (an object with ``params(family, X, rng)``).

    Examples
    --------
    >>> from streamem.models.emissions.poisson import PoissonEmission
    >>> family = TableMixtureFamily(PoissonEmission())
    >>> params = TableMixtureParams(np.array([0.5, 0.5]), np.array([[1.0], [8.0]]))
    >>> X = np.array([[0.0], [2.0], [9.0], [7.0]])
    >>> print(family.maximize(family.expected_statistics(params, X, None).stats).table.round(2))
    [[0.97]
     [7.84]]
    """

    params_type = TableMixtureParams
    stats_type = TableStats

    def __init__(self, emission: Any, start: Any = None) -> None:
        self.emission = emission
        self.start = start
        self.anchor: TableMixtureParams | None = None

    def initial_params(self, batch: FloatArray, rng: np.random.Generator) -> TableMixtureParams:
        """Starting values for a first batch (the family's ``start``)."""
        if self.start is None:
            raise ValueError("the family has no start to take starting values from")
        params: TableMixtureParams = self.start.params(self, batch, rng)
        return params

    def log_joint(self, params: TableMixtureParams, X: FloatArray) -> FloatArray:
        """``log w_j + log p(x | j)`` (n, K)."""
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        joint: FloatArray = log_weights + self.emission.log_likelihood(params.table, X)
        return joint

    def responsibilities(
        self, params: TableMixtureParams, X: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Responsibilities (n, K) and each row's log density (n,)."""
        joint = self.log_joint(params, X)
        log_density = logsumexp(joint, axis=1)
        resp: FloatArray = np.exp(joint - log_density[:, np.newaxis])
        return resp, np.asarray(log_density, dtype=np.float64)

    def expected_statistics(
        self, params: TableMixtureParams, batch: FloatArray, carry: None
    ) -> Expectation[TableStats, None]:
        """The emission's statistics under the responsibilities, summed over the rows."""
        resp, log_density = self.responsibilities(params, batch)
        stats: TableStats = self.emission.statistics(batch, resp, params.table.shape[1])
        return Expectation(stats, float(log_density.sum()), len(batch))

    def maximize(self, stats: TableStats) -> TableMixtureParams:
        """M-step: weights from the masses, the emission's table (the anchor's rows for a
        component without mass)."""
        total = float(stats.resp.sum())
        if not total > 0.0:
            raise DegenerateUpdateError("no responsibility mass behind the statistics")
        anchor = None if self.anchor is None else self.anchor.table
        table = self.emission.maximize(stats, anchor)
        params = TableMixtureParams(stats.resp / total, np.asarray(table, dtype=np.float64))
        if not params.is_finite():
            raise DegenerateUpdateError("the M-step produced non-finite parameters")
        return params

    def parameter_change(self, old: TableMixtureParams, new: TableMixtureParams) -> float:
        """Largest change of a weight or of the table (the emission's measure)."""
        emission: float = self.emission.change(old.table, new.table)
        return max(float(np.abs(new.weights - old.weights).max()), emission)

    def interpolate(
        self, a: TableMixtureParams, b: TableMixtureParams, t: float
    ) -> TableMixtureParams:
        """Convex combination of every parameter (a valid model for t in [0, 1])."""
        return a.blended(b, t)


@dataclasses.dataclass(frozen=True)
class TableMixtureStart:
    """Starting values of a table mixture: given weights and table, else the emission's
    :meth:`~streamem.models.emissions.base.TableEmission.initial` on a k-means partition
    (best of ``n_restarts``) and the partition's proportions as weights."""

    n_components: int
    weights: FloatArray | None = None
    table: FloatArray | None = None
    n_restarts: int = 1

    def params(
        self, family: TableMixtureFamily, X: FloatArray, rng: np.random.Generator
    ) -> TableMixtureParams:
        k = self.n_components
        labels, _ = kmeans_labels(X, k, rng, n_init=max(1, self.n_restarts), max_iter=100)
        if self.table is not None:
            table = self.table
        else:
            table = family.emission.initial(X, labels, k, family.emission.width(X))
        if self.weights is not None:
            weights = self.weights
        else:
            counts = np.bincount(labels, minlength=k).astype(np.float64) + 1.0
            weights = counts / counts.sum()
        return TableMixtureParams(
            np.asarray(weights, dtype=np.float64), np.asarray(table, dtype=np.float64)
        )
