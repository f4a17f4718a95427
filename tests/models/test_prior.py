"""The MAP prior of the streaming M-step: worth ``prior_strength`` pseudo-points on small
statistics, fading as ``prior_fade / N`` beyond ``prior_fade`` points."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.models.mixture.gaussian_family import GaussianFamily


def statistics(family: GaussianFamily, rng: np.random.Generator, n: int) -> object:
    """Statistics of n points whose first coordinate takes one value (an integer reading)."""
    X = np.column_stack([np.full(n, 3.0), rng.normal(size=n)])
    resp = np.column_stack([np.ones(n), np.zeros(n)])
    resp[:2] = [[0.0, 1.0], [0.0, 1.0]]
    return family.statistics_from_responsibilities(X, resp)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_the_pull_of_the_prior_fades_with_the_mass_beyond_prior_fade(
    covariance_type: str, rng: np.random.Generator
) -> None:
    fixed = GaussianFamily(covariance_type, prior_strength=5.0)  # type: ignore[arg-type]
    fading = GaussianFamily(covariance_type, prior_strength=5.0, prior_fade=100.0)  # type: ignore[arg-type]
    ml = GaussianFamily(covariance_type)  # type: ignore[arg-type]

    def pull(family: GaussianFamily, n: int) -> float:
        stats = statistics(family, np.random.default_rng(1), n)
        shrunk = family.maximize(stats).covariances
        exact = ml.maximize(stats).covariances
        return float(np.abs(shrunk[0] - exact[0]).max())  # the component of n - 2 points

    assert pull(fading, 100) == pytest.approx(pull(fixed, 100), rel=1e-12)
    assert pull(fading, 1_000) == pytest.approx(pull(fixed, 1_000) / 10, rel=0.02)
    assert pull(fading, 10_000) == pytest.approx(pull(fixed, 10_000) / 100, rel=0.02)
