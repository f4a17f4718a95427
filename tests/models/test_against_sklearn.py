"""Batch EM equals scikit-learn's GaussianMixture from the same starting values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.utils.estimator_checks import check_estimator

from streamem import GaussianMixture
from streamem.synthetic import random_mixture_sample

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference relative to the array's scale (entries near 0 cannot be compared
    one by one in relative terms)."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_forty_iterations_match_sklearn(rng: np.random.Generator, covariance_type: str) -> None:
    X, _ = random_mixture_sample(rng, 900, n_features=3, n_components=3, spread=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SklearnConvergenceWarning)
        start = SklearnGaussianMixture(
            3, covariance_type=covariance_type, max_iter=1, random_state=0
        ).fit(X)
        init = {
            "weights_init": start.weights_,
            "means_init": start.means_,
            "precisions_init": start.precisions_,
        }
        theirs = SklearnGaussianMixture(
            3, covariance_type=covariance_type, max_iter=40, tol=0.0, **init
        ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(
            3, covariance_type=covariance_type, max_iter=40, tol=0.0, **init
        ).fit(X)

    assert ours.n_iter_ == theirs.n_iter_ == 40
    assert relative_error(ours.weights_, theirs.weights_) < 1e-6
    assert relative_error(ours.means_, theirs.means_) < 1e-6
    assert relative_error(ours.covariances_, theirs.covariances_) < 1e-6
    assert relative_error(ours.precisions_cholesky_, theirs.precisions_cholesky_) < 1e-6
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-6)


def test_float32_input_is_accepted_and_close(rng: np.random.Generator) -> None:
    X, _ = random_mixture_sample(rng, 2000, n_features=4, n_components=2)
    ours64 = GaussianMixture(2, random_state=1).fit(X)
    ours32 = GaussianMixture(2, random_state=1).fit(X.astype(np.float32))

    assert ours32.means_.dtype == np.float64
    np.testing.assert_allclose(ours32.means_, ours64.means_, atol=1e-3)


def test_passes_sklearn_check_estimator() -> None:
    results = check_estimator(GaussianMixture(random_state=0), on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert failed == []
    assert len(results) > 30
