"""Properties of the statistics and of EM, checked with hypothesis."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem import GaussianMixture
from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams
from streamem.synthetic import random_mixture_sample

COVARIANCE_TYPES = st.sampled_from(["full", "tied", "diag", "spherical"])
SETTINGS = settings(max_examples=25, deadline=None)


def fitted_family(
    covariance_type: str, seed: int
) -> tuple[GaussianFamily, GaussianParams, np.ndarray]:
    rng = np.random.default_rng(seed)
    X, _ = random_mixture_sample(rng, 120, n_features=3, n_components=3, spread=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(
            3, covariance_type=covariance_type, max_iter=3, random_state=seed
        ).fit(X)
    return model.engine_.family, model.engine_.params, X


def assert_stats_close(a: object, b: object) -> None:
    for name, value in a.arrays().items():  # type: ignore[attr-defined]
        np.testing.assert_allclose(value, b.arrays()[name], rtol=1e-9, atol=1e-9)  # type: ignore[attr-defined]


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 1000), cut=st.integers(1, 119))
def test_statistics_add_up_across_any_split(covariance_type: str, seed: int, cut: int) -> None:
    family, params, X = fitted_family(covariance_type, seed)
    whole = family.expected_statistics(params, X)
    left = family.expected_statistics(params, X[:cut])
    right = family.expected_statistics(params, X[cut:])

    assert_stats_close(left.stats + right.stats, whole.stats)
    assert left.n_units + right.n_units == whole.n_units == len(X)
    total = left.log_likelihood + right.log_likelihood
    assert abs(total - whole.log_likelihood) < 1e-8 * abs(whole.log_likelihood)


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 1000), order_seed=st.integers(0, 99))
def test_row_order_does_not_matter(covariance_type: str, seed: int, order_seed: int) -> None:
    family, params, X = fitted_family(covariance_type, seed)
    order = np.random.default_rng(order_seed).permutation(len(X))
    X_missing = X.copy()
    X_missing[::7, 1] = np.nan
    shuffled, shuffled_missing = X[order], X_missing[order]

    assert_stats_close(
        family.expected_statistics(params, shuffled).stats,
        family.expected_statistics(params, X).stats,
    )
    assert_stats_close(
        family.expected_statistics(params, shuffled_missing).stats,
        family.expected_statistics(params, X_missing).stats,
    )


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 1000))
def test_batch_em_never_decreases_the_log_likelihood(covariance_type: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X, _ = random_mixture_sample(rng, 200, n_features=2, n_components=3, spread=1.5)
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for iterations in range(1, 16):
            model = GaussianMixture(
                3,
                covariance_type=covariance_type,
                max_iter=iterations,
                tol=0.0,
                init_params="random",
                random_state=seed,
            ).fit(X)
            bounds.append(model.lower_bound_)  # log-likelihood before the last M-step
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(bounds))
    assert bounds[-1] > bounds[0]


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 1000))
def test_responsibilities_sum_to_one_and_covariances_stay_positive_definite(
    covariance_type: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    X, _ = random_mixture_sample(rng, 600, n_features=3, n_components=4)
    model = GaussianMixture(4, covariance_type=covariance_type, random_state=seed)
    for batch in np.array_split(X, 30):  # mini-batches of 20 rows: small and noisy
        model.partial_fit(batch)
        if not hasattr(model, "covariances_"):  # still warming up: 3 K (d + 1) = 48 rows
            continue
        full = model.covariances_
        if covariance_type in ("full", "tied"):
            stack = full if covariance_type == "full" else full[np.newaxis]
            np.testing.assert_allclose(stack, np.swapaxes(stack, 1, 2))
            assert np.all(np.linalg.eigvalsh(stack) > 0.0)
        else:
            assert np.all(full > 0.0)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)
    assert model.n_seen_ == 600


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 1000), warm=st.booleans())
def test_dict_round_trip_predicts_and_learns_identically(
    covariance_type: str, seed: int, warm: bool
) -> None:
    rng = np.random.default_rng(seed)
    X, _ = random_mixture_sample(rng, 400, n_features=3, n_components=2)
    X[::11, 0] = np.nan
    model = GaussianMixture(
        2,
        covariance_type=covariance_type,
        random_state=seed,
        init_size=150 if warm else None,
        averaging_start=2,
    )
    for batch in np.array_split(X[:300], 3):
        model.partial_fit(batch)
    copy = GaussianMixture.from_json(model.to_json())

    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(copy.score_samples(X), model.score_samples(X))
    model.partial_fit(X[300:])
    copy.partial_fit(X[300:])
    np.testing.assert_array_equal(copy.means_, model.means_)
    np.testing.assert_array_equal(copy.covariances_, model.covariances_)
    assert copy.n_seen_ == model.n_seen_ == 400
    assert copy.to_dict() == model.to_dict()
