"""JSON serialisation at every stage of a model's life."""

from __future__ import annotations

import json

import numpy as np

from streamem import GaussianMixture


def test_a_warming_up_model_is_valid_json_and_resumes(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 2))
    model = GaussianMixture(2, init_size=200, random_state=0).partial_fit(X[:100])
    text = model.to_json()  # no lower bound yet: written as null, not -Infinity
    assert json.loads(text)["state"]["lower_bound"] is None

    copy = GaussianMixture.from_json(text)
    for m in (model, copy):
        m.partial_fit(X[100:])
    np.testing.assert_array_equal(copy.means_, model.means_)
    assert copy.n_seen_ == model.n_seen_ == 300
