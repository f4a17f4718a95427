"""``fit`` then ``partial_fit`` continues smoothly, and a restored model continues with the step
size it would have had.

The property: after ``fit`` on ``n`` rows, ``partial_fit`` of ``m`` rows blends the fitted
statistics with the mini-batch's with the step size ``eta = m / (n + m)``, the mini-batch's
share of the mass. So whatever the mini-batch holds,

* every weight moves by at most ``eta``;
* the mean of component j moves by at most ``s_j = eta / ((1 - eta) w_j + eta)`` (the largest
  share of its mass the mini-batch can have) of the way to the farthest row of the mini-batch;
* every variance (the diagonal of the covariance) stays above ``(1 - s_j)`` times and below
  ``(1 - s_j)`` times itself plus ``s_j`` times the largest squared distance of a row of the
  mini-batch to the mean (for the tied covariance, pooled over the components, with ``eta``).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamem import GaussianMixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def variances(model: GaussianMixture) -> np.ndarray:
    """Variances per component and coordinate (K, d), whatever the covariance type."""
    k, d = model.means_.shape
    c = model.covariances_
    if model.covariance_type == "full":
        return np.asarray(c.diagonal(axis1=1, axis2=2))
    if model.covariance_type == "tied":
        return np.broadcast_to(np.diag(c), (k, d))
    if model.covariance_type == "diag":
        return np.asarray(c)
    return np.repeat(c[:, np.newaxis], d, axis=1)


def two_modes(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.concatenate([rng.normal(-3.0, 1.0, (n // 2, 2)), rng.normal(3.0, 1.0, (n // 2, 2))])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("batch_kind", ["one mode", "same distribution"])
def test_partial_fit_after_fit_moves_the_parameters_by_the_batch_share_of_the_mass(
    covariance_type: str, batch_kind: str, rng: np.random.Generator
) -> None:
    X = rng.permutation(two_modes(rng, 10_000))
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    weights, means, spread = model.weights_.copy(), model.means_.copy(), variances(model).copy()
    batch = rng.normal(3.0, 1.0, (100, 2)) if batch_kind == "one mode" else X[:100]

    eta = 100 / (10_000 + 100)
    assert model.next_step_size(100) == pytest.approx(eta, rel=1e-12)
    model.partial_fit(batch)

    share = eta / ((1 - eta) * weights + eta)
    reach = np.array([np.abs(batch - mu).max(axis=0) for mu in means])  # (K, d)
    print(f"weights {weights.round(4)} -> {model.weights_.round(4)}, eta {eta:.5f}")
    assert np.abs(model.weights_ - weights).max() <= eta + 1e-12
    assert np.all(np.abs(model.means_ - means) <= share[:, np.newaxis] * reach + 1e-9)
    if covariance_type == "tied":  # pooled over the components: the batch's share is eta
        share, reach = np.full(2, eta), np.broadcast_to(reach.max(axis=0), reach.shape)
    low = (1 - share[:, np.newaxis]) * spread
    high = low + share[:, np.newaxis] * reach**2
    assert np.all(variances(model) >= low * (1 - 1e-6))
    assert np.all(variances(model) <= high * (1 + 1e-6))


def test_the_issue_example_one_batch_from_one_mode_barely_moves_the_weights(
    rng: np.random.Generator,
) -> None:
    X = rng.permutation(two_modes(rng, 10_000))
    model = GaussianMixture(2, random_state=0).fit(X)
    before = model.weights_.copy()
    model.partial_fit(rng.normal(3.0, 1.0, (100, 2)))

    print(f"weights {before.round(4)} -> {model.weights_.round(4)}")
    assert np.abs(model.weights_ - before).max() < 0.01


@pytest.mark.parametrize("start", ["fit", "partial_fit"])
def test_a_restored_model_continues_with_the_step_size_it_would_have_had(
    start: str, rng: np.random.Generator
) -> None:
    X = rng.permutation(two_modes(rng, 6_000))
    model = GaussianMixture(2, random_state=0)
    if start == "fit":
        model.fit(X[:5_000])
    else:
        for batch in np.array_split(X[:5_000], 10):
            model.partial_fit(batch)
    restored = GaussianMixture.from_json(model.to_json())

    for batch in np.array_split(X[5_000:], 4):
        assert restored.next_step_size(len(batch)) == model.next_step_size(len(batch))
        model.partial_fit(batch)
        restored.partial_fit(batch)
    np.testing.assert_array_equal(restored.means_, model.means_)
    np.testing.assert_array_equal(restored.covariances_, model.covariances_)
    assert restored.n_seen_ == model.n_seen_ == 6_000
