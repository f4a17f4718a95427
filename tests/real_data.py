"""Real data sets for accuracy tests: bundled with river and scikit-learn (offline).

The same preparation as ``benchmarks/real_data.py``: rows shuffled, split 80/20, standardised
with the training rows' mean and standard deviation. The reference is scikit-learn's batch EM,
``GaussianMixture(n_init=3).fit``, scored by the held-out mean log-likelihood per point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from river import datasets
from sklearn import datasets as sk_datasets
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

STREAM_GOAL = 0.01
"""A stream ends within 1% of |LL| of scikit-learn's batch fit (or better)."""


@dataclass(frozen=True)
class RealSplit:
    train: np.ndarray
    test: np.ndarray
    reference: float
    """scikit-learn's held-out mean log-likelihood."""

    def gap(self, score: float) -> float:
        """How far ``score`` is below the reference, as a fraction of |reference|."""
        return (self.reference - score) / abs(self.reference)


def real_split(name: str, n_components: int, seed: int = 0) -> RealSplit:
    """``"bananas"`` (river, 5,300 rows, 2 features) or ``"wine"`` (scikit-learn, 178 rows,
    13 features), prepared, with scikit-learn's full-covariance reference."""
    if name == "bananas":
        X = np.array([list(x.values()) for x, _ in datasets.Bananas()], dtype=np.float64)
    elif name == "wine":
        X = sk_datasets.load_wine().data
    else:
        raise ValueError(f"name must be 'bananas' or 'wine', got {name!r}")
    X = X[np.random.default_rng(seed).permutation(len(X))]
    n_train = int(0.8 * len(X))
    mean, std = X[:n_train].mean(axis=0), X[:n_train].std(axis=0)
    train, test = (X[:n_train] - mean) / std, (X[n_train:] - mean) / std
    with threadpool_limits(1):
        batch = SklearnGaussianMixture(n_components, n_init=3, random_state=0).fit(train)
    return RealSplit(train, test, float(batch.score(test)))
