"""k-means (greedy k-means++ seeding, Lloyd iterations, restarts): starting points for EM."""

from __future__ import annotations

import numpy as np

from streamem.engine.records import FloatArray


def _squared_distances(X: FloatArray, centres: FloatArray) -> FloatArray:
    squared = (X**2).sum(axis=1)[:, np.newaxis] - 2.0 * X @ centres.T + (centres**2).sum(axis=1)
    return np.asarray(np.maximum(squared, 0.0))


def local_trials(k: int) -> int:
    """Candidates drawn per centre by greedy k-means++: ``2 + floor(log k)`` (scikit-learn's
    choice, after Arthur & Vassilvitskii 2007)."""
    return 2 + int(np.log(k))


def kmeans_plus_plus(
    X: FloatArray, k: int, rng: np.random.Generator, n_local_trials: int | None = None
) -> FloatArray:
    """Greedy k-means++ seeding: centres (k, d) drawn from the rows.

    Each centre after the first is the best of ``n_local_trials`` rows drawn with probability
    proportional to their squared distance to the nearest centre so far: the one that lowers
    the sum of squared distances most (None: :func:`local_trials`; 1 is plain k-means++).

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [10.0], [10.1]])
    >>> sorted(kmeans_plus_plus(X, 2, np.random.default_rng(0)).ravel().round().tolist())
    [0.0, 10.0]
    """
    trials = local_trials(k) if n_local_trials is None else n_local_trials
    centres = np.empty((k, X.shape[1]))
    centres[0] = X[rng.integers(len(X))]
    closest = _squared_distances(X, centres[:1]).ravel()
    for j in range(1, k):
        cumulative = np.cumsum(closest)
        if cumulative[-1] > 0:
            draws = rng.uniform(size=trials) * cumulative[-1]
            candidates = np.minimum(np.searchsorted(cumulative, draws), len(X) - 1)
        else:
            candidates = rng.integers(len(X), size=trials)
        distances = np.minimum(closest, _squared_distances(X, X[candidates]).T)
        best = int(distances.sum(axis=1).argmin())
        centres[j], closest = X[candidates[best]], distances[best]
    return centres


def kmeans_labels(
    X: FloatArray, k: int, rng: np.random.Generator, n_init: int = 1, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """Labels (n,) of the best of ``n_init`` k-means runs, and its inertia.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.2, 5.0]])
    >>> labels, inertia = kmeans_labels(X, 2, np.random.default_rng(0), n_init=3)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3]), round(inertia, 3)
    (True, 0.04)
    """
    best_labels, best_inertia = np.zeros(len(X), dtype=np.intp), np.inf
    for _ in range(n_init):
        centres = kmeans_plus_plus(X, k, rng)
        labels = np.full(len(X), -1)
        for _ in range(max_iter):
            distances = _squared_distances(X, centres)
            new_labels = distances.argmin(axis=1)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for j in range(k):
                members = X[labels == j]
                if len(members):
                    centres[j] = members.mean(axis=0)
        inertia = float(_squared_distances(X, centres).min(axis=1).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels, best_inertia
