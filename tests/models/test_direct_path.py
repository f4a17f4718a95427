"""The direct E-step (one row, or up to SMALL_BATCH rows) agrees with the chunked one."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streamem.models.mixture import gaussian_family
from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams
from streamem.synthetic import random_mixture_sample

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def fitted(
    rng: np.random.Generator, covariance_type: str
) -> tuple[GaussianFamily, GaussianParams, np.ndarray]:
    """A family, parameters from one M-step on labelled points, and 200 rows (200, 3)."""
    X, labels = random_mixture_sample(rng, 200, n_features=3, n_components=3, spread=3.0)
    family = GaussianFamily(covariance_type)  # type: ignore[arg-type]
    stats = family.statistics_from_responsibilities(X, np.eye(3)[labels])
    return family, family.maximize(stats), X


def chunked(
    family: GaussianFamily, params: GaussianParams, X: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> tuple[object, float, np.ndarray]:
    """Statistics, log-likelihood and log-joint of X through the quadratic-feature chunks."""
    with monkeypatch.context() as patch:
        patch.setattr(gaussian_family, "SMALL_BATCH", 0)
        stats, log_likelihood = family._complete_statistics(params, X)
        joint = np.vstack([family._log_joint_rows(params, X[i : i + 1]) for i in range(len(X))])
    return stats, log_likelihood, joint


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_rows", [1, 2, 17, 64])
def test_direct_statistics_match_the_chunked_ones(
    rng: np.random.Generator,
    covariance_type: str,
    n_rows: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    family, params, X = fitted(rng, covariance_type)
    rows = X[:n_rows]
    expected, expected_log_likelihood, expected_joint = chunked(family, params, rows, monkeypatch)
    expectation = family.expected_statistics(params, rows)
    stats, log_likelihood = expectation.stats, expectation.log_likelihood
    for name, value in stats.arrays().items():
        np.testing.assert_allclose(value, expected.arrays()[name], rtol=1e-10, atol=1e-10)  # type: ignore[attr-defined]
    assert log_likelihood == pytest.approx(expected_log_likelihood, rel=1e-12)
    joint = np.vstack([family.log_joint_row(params, row) for row in rows])
    np.testing.assert_allclose(joint, expected_joint, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_row_with_a_missing_coordinate_takes_the_marginal_path(
    rng: np.random.Generator, covariance_type: str
) -> None:
    family, params, X = fitted(rng, covariance_type)
    row = X[0].copy()
    row[1] = np.nan
    expected_joint = family._log_joint_rows(params, row[None])[0]
    expected, expected_log_likelihood = family._incomplete_statistics(params, row[None])
    np.testing.assert_allclose(family.log_joint_row(params, row), expected_joint, rtol=1e-12)
    expectation = family.expected_statistics(params, row[None])
    stats, log_likelihood = expectation.stats, expectation.log_likelihood
    assert stats.equals(expected)
    assert log_likelihood == pytest.approx(expected_log_likelihood, rel=1e-12)


def test_the_cached_terms_follow_the_parameters_and_are_not_pickled(
    rng: np.random.Generator,
) -> None:
    family, params, X = fitted(rng, "full")
    before = pickle.dumps(family)
    first = family.log_joint_row(params, X[0])
    moved = family.make_params(params.weights, params.means + 1.0, params.covariances)
    assert not np.allclose(family.log_joint_row(moved, X[0]), first)
    np.testing.assert_array_equal(family.log_joint_row(params, X[0]), first)
    assert pickle.dumps(family) == before
