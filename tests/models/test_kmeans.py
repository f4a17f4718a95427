"""Greedy k-means++ seeding: better starts than plain k-means++ on the same draws."""

from __future__ import annotations

import numpy as np

from streamem.models.common.kmeans import _squared_distances, kmeans_plus_plus, local_trials


def potential(X: np.ndarray, centres: np.ndarray) -> float:
    return float(_squared_distances(X, centres).min(axis=1).sum())


def test_greedy_seeding_lowers_the_mean_potential_of_plain_kmeans_plus_plus(
    rng: np.random.Generator,
) -> None:
    centres = rng.normal(0.0, 6.0, (8, 3))
    X = np.concatenate([rng.normal(c, 1.0, (rng.integers(20, 400), 3)) for c in centres])
    greedy = [potential(X, kmeans_plus_plus(X, 8, np.random.default_rng(s))) for s in range(40)]
    plain = [potential(X, kmeans_plus_plus(X, 8, np.random.default_rng(s), 1)) for s in range(40)]

    print(f"mean potential: greedy {np.mean(greedy):.0f}, plain {np.mean(plain):.0f}")
    assert np.mean(greedy) < 0.9 * np.mean(plain)


def test_seeding_draws_distinct_rows_and_copes_with_identical_rows() -> None:
    X = np.array([[1.0, 2.0]] * 5 + [[3.0, 4.0]] * 5)
    centres = kmeans_plus_plus(X, 3, np.random.default_rng(0))

    assert len({tuple(c) for c in centres}) == 2
    assert all(any(np.array_equal(c, row) for row in X) for c in centres)


def test_local_trials_follow_scikit_learn() -> None:
    assert [local_trials(k) for k in (1, 2, 3, 8, 20)] == [2, 2, 3, 4, 4]
