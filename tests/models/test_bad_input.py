"""Every bad input gets a specific error that names the problem; nothing learned is lost."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streamem import Constant, GaussianMixture, NotFittedError, ValidationError
from streamem.errors import RefusedUpdateWarning


@pytest.fixture
def fitted(rng: np.random.Generator) -> GaussianMixture:
    return GaussianMixture(2, random_state=0).partial_fit(rng.normal(size=(50, 3)))


def test_wrong_number_of_columns_after_the_first_fit(fitted: GaussianMixture) -> None:
    with pytest.raises(
        ValidationError, match="X has 2 features, but GaussianMixture is expecting 3"
    ):
        fitted.partial_fit(np.ones((5, 2)))


def test_strings_are_rejected(fitted: GaussianMixture) -> None:
    with pytest.raises(ValidationError, match="could not convert string to float: 'warm'"):
        fitted.partial_fit([[1.0, 2.0, "warm"]])


def test_infinity_is_rejected(fitted: GaussianMixture) -> None:
    with pytest.raises(ValidationError, match="infinity"):
        fitted.partial_fit(np.array([[1.0, np.inf, 0.0]]))


def test_all_nan_rows_are_rejected(fitted: GaussianMixture) -> None:
    X = np.ones((4, 3))
    X[2] = np.nan
    with pytest.raises(ValidationError, match=r"rows \[2\] have no observed coordinate"):
        fitted.partial_fit(X)


def test_empty_batch_is_rejected(fitted: GaussianMixture) -> None:
    with pytest.raises(ValidationError, match="0 sample"):
        fitted.partial_fit(np.empty((0, 3)))


def test_more_components_than_rows_in_fit() -> None:
    # partial_fit buffers such a batch instead (tests/models/test_warm_up.py)
    with pytest.raises(ValidationError, match="n_components = 5, n_samples = 3"):
        GaussianMixture(5).fit(np.ones((3, 2)))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([-0.5, 1.5], r"weights_init must be in \[0, 1\]"),
        ([0.3, 0.3], r"weights_init must sum to 1, got sum\(weights_init\) = 0.60000"),
        ([1.0], r"weights_init must have shape \(2,\), got \(1,\)"),
    ],
)
def test_bad_weights_init(weights: list[float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GaussianMixture(2, weights_init=weights).fit(np.arange(10.0).reshape(5, 2))


def test_non_positive_definite_covariances_init() -> None:
    bad = np.array([[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(
        ValidationError,
        match="covariances_init must be symmetric positive definite, but component 0 is not",
    ):
        GaussianMixture(2, covariances_init=bad).fit(np.arange(10.0).reshape(5, 2))


def test_unknown_covariance_type_and_fixed_name() -> None:
    X = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValidationError, match="covariance_type must be one of"):
        GaussianMixture(2, covariance_type="banana").fit(X)
    with pytest.raises(ValidationError, match="fixed must hold names among"):
        GaussianMixture(2, fixed=("variances",)).fit(X)
    with pytest.raises(ValidationError, match="needs means_init to be given"):
        GaussianMixture(2, fixed=("means",)).fit(X)


def test_use_before_fit_is_a_not_fitted_error() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GaussianMixture(2).predict(np.ones((1, 2)))


def test_degenerate_batch_is_refused_and_the_model_kept(rng: np.random.Generator) -> None:
    # A constant step of 1 makes the statistics those of the newest batch alone: a batch of
    # equal rows gives singular covariances (no reg_covar, no prior to rescue them).
    model = GaussianMixture(
        2, reg_covar=0.0, prior_strength=0.0, schedule=Constant(1.0), random_state=0
    ).partial_fit(rng.normal(size=(40, 2)))
    before = model.to_dict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.partial_fit(np.ones((10, 2)))
    assert any(issubclass(w.category, RefusedUpdateWarning) for w in caught)
    assert model.n_refused_ == 1
    assert np.all(np.isfinite(model.covariances_))
    assert model.to_dict()["state"]["engine"]["params"] == before["state"]["engine"]["params"]
