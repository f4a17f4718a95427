"""Starting values of a Gaussian mixture: user-given ones, the rest from initial labels."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import FloatArray
from streamem.models.common.kmeans import kmeans_labels

if TYPE_CHECKING:
    from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams

INIT_METHODS = ("kmeans", "k-means++", "random")


@dataclasses.dataclass(frozen=True)
class GaussianStart:
    """How a mixture takes its starting values from a first batch of rows.

    Parameters
    ----------
    n_components
        Number of components K.
    method
        ``"kmeans"`` (k-means++ then Lloyd), ``"k-means++"`` (seeding only) or ``"random"``
        (random responsibilities).
    n_restarts
        k-means runs from different seeds; the one of least inertia is kept.
    weights, means, covariances
        User-given starting values (shapes (K,), (K, d), the covariance type's); those given
        are used as they are, the others come from an M-step on the initial labels.

    Examples
    --------
    >>> from streamem.models.mixture.gaussian_family import GaussianFamily
    >>> X = np.array([[0.0], [0.2], [5.0], [5.2]])
    >>> family = GaussianFamily("diag", start=GaussianStart(2, n_restarts=3))
    >>> params = family.initial_params(X, np.random.default_rng(0))
    >>> sorted(params.means.ravel().round(1).tolist())
    [0.1, 5.1]
    """

    n_components: int
    method: str = "kmeans"
    n_restarts: int = 1
    weights: FloatArray | None = None
    means: FloatArray | None = None
    covariances: FloatArray | None = None

    def params(
        self, family: GaussianFamily, X: NDArray[np.floating], rng: np.random.Generator
    ) -> GaussianParams:
        """Starting parameters for the rows X (n, d); NaN cells take their column's mean."""
        weights, means, covariances = self.weights, self.means, self.covariances
        if weights is None or means is None or covariances is None:
            rows = X.astype(np.float64)
            if np.isnan(rows).any():
                rows = np.where(np.isnan(rows), np.nanmean(rows, axis=0), rows)
            resp = self.responsibilities(rows, rng)
            unfixed = dataclasses.replace(family, prior_strength=0.0, fixed=())
            derived = unfixed.maximize(unfixed.statistics_from_responsibilities(rows, resp))
            weights = derived.weights if weights is None else weights
            means = derived.means if means is None else means
            covariances = derived.covariances if covariances is None else covariances
        return family.make_params(weights, means, covariances)

    def responsibilities(self, X: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Initial responsibilities (n, K) of the complete rows X (n, d)."""
        k = self.n_components
        if self.method == "random":
            resp = rng.uniform(size=(len(X), k))
            return np.asarray(resp / resp.sum(axis=1, keepdims=True))
        max_iter = 100 if self.method == "kmeans" else 0
        labels, _ = kmeans_labels(X, k, rng, n_init=max(1, self.n_restarts), max_iter=max_iter)
        return np.asarray(np.eye(k)[labels])
