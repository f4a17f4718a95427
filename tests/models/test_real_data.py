"""With its defaults only, the stepwise mixture lands where scikit-learn's batch EM lands on
small real data sets: within 1% of |held-out log-likelihood| after three passes of mini-batches
of 500 rows (benchmarks/real_data.py measures the whole panel)."""

from __future__ import annotations

import pytest

from streamem import GaussianMixture
from tests.real_data import STREAM_GOAL, real_split


@pytest.mark.parametrize(("name", "n_components"), [("wine", 3), ("bananas", 6)])
def test_three_default_passes_reach_batch_em(name: str, n_components: int) -> None:
    data = real_split(name, n_components)
    model = GaussianMixture(n_components, random_state=0)
    for _ in range(3):
        for start in range(0, len(data.train), 500):
            model.partial_fit(data.train[start : start + 500])

    score = model.score(data.test)
    print(f"{name} K={n_components}: stream {score:.4f}, scikit-learn {data.reference:.4f}")
    assert data.gap(score) <= STREAM_GOAL


@pytest.mark.parametrize(("name", "n_components"), [("wine", 3), ("bananas", 6)])
def test_fit_with_three_starts_reaches_batch_em(name: str, n_components: int) -> None:
    data = real_split(name, n_components)
    model = GaussianMixture(n_components, n_init=3, random_state=0).fit(data.train)

    score = model.score(data.test)
    print(f"{name} K={n_components}: fit {score:.4f}, scikit-learn {data.reference:.4f}")
    assert data.gap(score) <= 0.005
