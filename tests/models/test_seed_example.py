"""The worked 1-D example of the seed document (Lux 2015) is an acceptance test."""

from __future__ import annotations

import numpy as np

from streamem import GaussianMixture

SEED_POINTS = np.array([0.5, 1.0, 1.2, 1.5, 1.6, 2.7, 4.0, 4.2, 4.3, 4.6, 4.8])[:, np.newaxis]
SEED_TABLE_COMPONENT_1 = [1, 0.998, 0.995, 0.982, 0.973, 0.310, 0.002, 0.001, 0.001, 0, 0]


def seed_model(**overrides: object) -> GaussianMixture:
    settings: dict[str, object] = {
        "covariance_type": "spherical",
        "weights_init": [0.5, 0.5],
        "means_init": [[2.0], [3.0]],
        "covariances_init": [0.25, 0.25],
        "fixed": ("covariances",),
        "max_iter": 1,
        "tol": 0.0,
    }
    settings.update(overrides)
    return GaussianMixture(n_components=2, **settings)  # type: ignore[arg-type]


def test_one_em_iteration_gives_the_seed_means_and_weights() -> None:
    model = seed_model().fit(SEED_POINTS)

    np.testing.assert_allclose(model.means_.ravel(), [1.250, 4.152], atol=5e-4)
    np.testing.assert_allclose(model.weights_, [0.478, 0.522], atol=5e-4)
    np.testing.assert_array_equal(model.covariances_, [0.25, 0.25])
    assert model.n_iter_ == 1


def test_first_e_step_responsibilities_are_the_seed_table() -> None:
    # All parameters fixed: the model stays at its starting values, so predict_proba gives
    # the responsibilities of the first E-step.
    frozen = seed_model(fixed=("weights", "means", "covariances")).fit(SEED_POINTS)

    resp = frozen.predict_proba(SEED_POINTS)

    np.testing.assert_allclose(resp[:, 0], SEED_TABLE_COMPONENT_1, atol=5e-4)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)


def test_stepwise_engine_with_the_whole_batch_is_batch_em() -> None:
    model = seed_model(init_em_iter=0)
    model.partial_fit(SEED_POINTS)  # first update: eta = 1 on the whole data set

    np.testing.assert_allclose(model.means_.ravel(), [1.250, 4.152], atol=5e-4)
    np.testing.assert_allclose(model.weights_, [0.478, 0.522], atol=5e-4)
