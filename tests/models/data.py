"""Synthetic mixtures for the model tests."""

from __future__ import annotations

import numpy as np


def mixture_sample(
    rng: np.random.Generator, n: int, n_features: int, n_components: int, spread: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, d) from a random full-covariance Gaussian mixture, and their labels."""
    means = rng.normal(0.0, spread, (n_components, n_features))
    factors = rng.normal(0.0, 0.5, (n_components, n_features, n_features)) + np.eye(n_features)
    labels = rng.integers(n_components, size=n)
    noise = rng.normal(size=(n, n_features))
    rows = means[labels] + np.einsum("nab,nb->na", factors[labels], noise)
    return rows, labels
