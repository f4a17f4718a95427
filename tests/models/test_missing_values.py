"""Missing coordinates (NaN) are marginalised out, not dropped or imputed."""

from __future__ import annotations

import numpy as np
from scipy.stats import multivariate_normal

from streamem import GaussianMixture
from streamem.synthetic import random_mixture_sample


def test_score_of_a_row_with_missing_values_is_the_marginal_density(
    rng: np.random.Generator,
) -> None:
    X, _ = random_mixture_sample(rng, 1000, n_features=3, n_components=2)
    model = GaussianMixture(2, random_state=0).fit(X)
    row = np.array([[X[0, 0], np.nan, X[0, 2]]])
    observed = [0, 2]

    expected = np.log(
        sum(
            w
            * multivariate_normal(m[observed], c[np.ix_(observed, observed)]).pdf(row[0, observed])
            for w, m, c in zip(model.weights_, model.means_, model.covariances_, strict=True)
        )
    )

    np.testing.assert_allclose(model.score_samples(row), [expected], rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(row).sum(), 1.0)


def test_learning_with_missing_values_recovers_the_complete_data_fit(
    rng: np.random.Generator,
) -> None:
    X, _ = random_mixture_sample(rng, 6000, n_features=3, n_components=2, spread=4.0)
    holes = X.copy()
    holes[rng.random(X.shape) < 0.1] = np.nan
    holes[np.isnan(holes).all(axis=1), 0] = X[np.isnan(holes).all(axis=1), 0]

    complete = GaussianMixture(2, random_state=0).fit(X)
    marginalised = GaussianMixture(2, random_state=0).fit(holes)

    order = np.argsort(complete.means_[:, 0])
    other = np.argsort(marginalised.means_[:, 0])
    assert marginalised.n_seen_ == 6000  # rows with holes still count
    np.testing.assert_allclose(marginalised.means_[other], complete.means_[order], atol=0.1)
    np.testing.assert_allclose(marginalised.weights_[other], complete.weights_[order], atol=0.02)
    np.testing.assert_allclose(
        marginalised.covariances_[other], complete.covariances_[order], atol=0.15
    )
