"""The workers of ``streamem.dask.fit`` load the families' batch types and E-steps only: no
estimator, so no scikit-learn (which is most of a worker's memory before any data: 308 MB
against 86 MB measured here)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from streamem import GaussianHMM, GaussianMixture, LatentDirichletAllocation, LinearGaussianSSM

da = pytest.importorskip("dask.array")
streamem_dask = pytest.importorskip("streamem.dask")


def test_no_worker_imports_scikit_learn(client, rng) -> None:  # type: ignore[no-untyped-def]
    X = np.abs(rng.normal(size=(600, 3)))
    data = da.from_array(X, chunks=200)
    models = [
        GaussianMixture(2, max_iter=3, random_state=0),
        GaussianHMM(2, n_iter=3, random_state=0),
        LinearGaussianSSM(n_dim_state=1, max_iter=3),
        LatentDirichletAllocation(2, learning_method="batch", max_iter=3, random_state=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in models:
            options = {"lengths": [300, 300]} if model.sequential else {}
            assert streamem_dask.fit(model, data, **options).n_seen_ == 600
    assert "sklearn" in sys.modules  # the client's estimators have it
    # a lambda travels by value: the worker does not import this module (which imports them)
    loaded = client.run(lambda: "sklearn" in __import__("sys").modules)
    assert set(loaded.values()) == {False}
