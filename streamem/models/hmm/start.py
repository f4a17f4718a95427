"""Starting values of a Gaussian hidden Markov model, with hmmlearn's ``init_params`` letters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import FloatArray
from streamem.models.common.kmeans import kmeans_labels
from streamem.models.hmm.family import TableHMMParams

if TYPE_CHECKING:
    from streamem.models.hmm.family import GaussianHMMFamily, HMMParams, TableHMMFamily

LETTERS = "stmc"
"""``s`` startprob, ``t`` transmat, ``m`` means, ``c`` covariances (hmmlearn's letters)."""


def chain_start(
    k: int, init_params: str, given: Callable[[str], FloatArray]
) -> tuple[FloatArray, FloatArray]:
    """``startprob`` and ``transmat``: uniform for the letters ``s`` and ``t`` of
    ``init_params``, else ``given(name)``."""
    uniform = np.full(k, 1.0 / k)
    startprob = uniform if "s" in init_params else given("startprob")
    transmat = np.tile(uniform, (k, 1)) if "t" in init_params else given("transmat")
    return startprob, transmat


@dataclasses.dataclass(frozen=True)
class HMMStart:
    """How a hidden Markov model takes its starting values from first rows.

    As hmmlearn: the parameters whose letter is in ``init_params`` are initialised from the
    rows (``s``, ``t``: uniform; ``m``: k-means centres; ``c``: the rows' covariance plus
    ``min_covar`` on the diagonal, for every state); the others are given.

    Parameters
    ----------
    n_components
        Number of states K.
    init_params
        Letters among ``"stmc"``.
    min_covar
        Added to the diagonal of the rows' covariance for ``c``.
    startprob, transmat, means, covariances
        Given starting values (shapes (K,), (K, K), (K, d), the covariance type's); needed
        for each letter not in ``init_params``.
    n_restarts
        k-means runs from different seeds; the one of least inertia is kept.

    Examples
    --------
    >>> from streamem.models.hmm.family import GaussianHMMFamily
    >>> X = np.array([[0.0], [0.2], [5.0], [5.2]])
    >>> start = HMMStart(2, n_restarts=3)
    >>> params = start.params(GaussianHMMFamily("diag"), X, np.random.default_rng(0))
    >>> sorted(params.means.ravel().round(1).tolist()), params.transmat[0].tolist()
    ([0.1, 5.1], [0.5, 0.5])
    """

    n_components: int
    init_params: str = LETTERS
    min_covar: float = 1e-3
    startprob: FloatArray | None = None
    transmat: FloatArray | None = None
    means: FloatArray | None = None
    covariances: FloatArray | None = None
    n_restarts: int = 1

    def params(
        self, family: GaussianHMMFamily, X: NDArray[np.floating], rng: np.random.Generator
    ) -> HMMParams:
        """Starting parameters for the rows X (n, d); NaN cells take their column's mean."""
        k = self.n_components
        rows = X.astype(np.float64)
        if np.isnan(rows).any():
            rows = np.where(np.isnan(rows), np.nanmean(rows, axis=0), rows)
        d = rows.shape[1]
        startprob, transmat = chain_start(k, self.init_params, self._given)
        if "m" in self.init_params:
            labels, _ = kmeans_labels(rows, k, rng, n_init=max(1, self.n_restarts), max_iter=100)
            means = np.stack(
                [
                    rows[labels == j].mean(axis=0) if (labels == j).any() else rows.mean(0)
                    for j in range(k)
                ]
            )
        else:
            means = self._given("means")
        if "c" in self.init_params:
            spread = np.atleast_2d(np.cov(rows.T)) + self.min_covar * np.eye(d)
            covariances = _spread_as(family.covariance_type, spread, k)
        else:
            covariances = self._given("covariances")
        return family.make_params(startprob, transmat, means, covariances)

    def _given(self, name: str) -> FloatArray:
        value: FloatArray | None = getattr(self, name)
        if value is None:
            raise ValueError(f"{name} is not in init_params and was not given")
        return value


def _spread_as(covariance_type: str, spread: FloatArray, k: int) -> FloatArray:
    """One (d, d) covariance as the covariance type's starting value for K states."""
    if covariance_type == "full":
        return np.tile(spread, (k, 1, 1))
    if covariance_type == "tied":
        return spread
    if covariance_type == "diag":
        return np.tile(np.diag(spread), (k, 1))
    return np.full(k, float(np.diag(spread).mean()))


@dataclasses.dataclass(frozen=True)
class TableHMMStart:
    """Starting values of a hidden Markov model with a table of emission parameters.

    As hmmlearn's letters: ``s`` and ``t`` uniform; the emission's letter (``l`` Poisson
    rates, ``e`` symbol probabilities) from the emission's
    :meth:`~streamem.models.emissions.base.TableEmission.initial` on a k-means partition of
    the rows; the others given.

    Examples
    --------
    >>> from streamem.models.emissions.poisson import PoissonEmission
    >>> from streamem.models.hmm.family import TableHMMFamily
    >>> X = np.array([[0.0], [1.0], [9.0], [11.0]])
    >>> start = TableHMMStart(2, init_params="stl", letter="l", n_restarts=3)
    >>> params = start.params(TableHMMFamily(PoissonEmission()), X, np.random.default_rng(0))
    >>> sorted(params.table.ravel().tolist())
    [0.5, 10.0]
    """

    n_components: int
    init_params: str
    letter: str
    startprob: FloatArray | None = None
    transmat: FloatArray | None = None
    table: FloatArray | None = None
    n_restarts: int = 1

    def params(
        self, family: TableHMMFamily, X: NDArray[np.floating], rng: np.random.Generator
    ) -> TableHMMParams:
        """Starting parameters for the rows X (n, d)."""
        k = self.n_components
        rows = np.asarray(X, dtype=np.float64)
        startprob, transmat = chain_start(k, self.init_params, self._given)
        if self.letter in self.init_params:
            labels, _ = kmeans_labels(rows, k, rng, n_init=max(1, self.n_restarts), max_iter=100)
            width = family.emission.width(rows)
            table = family.emission.initial(rows, labels, k, width)
        else:
            table = self._given("table")
        return TableHMMParams(
            np.asarray(startprob, dtype=np.float64),
            np.asarray(transmat, dtype=np.float64),
            np.asarray(table, dtype=np.float64),
        )

    def _given(self, name: str) -> FloatArray:
        value: FloatArray | None = getattr(self, name)
        if value is None:
            raise ValueError(f"{name} is not in init_params and was not given")
        return value
