"""The river clusterer with its defaults reaches scikit-learn's batch EM on a real data set:
river's bundled Bananas, within 1% of |held-out log-likelihood| after three passes."""

from __future__ import annotations

import pytest

from streamem.river import GaussianMixtureClusterer
from tests.real_data import STREAM_GOAL, real_split


@pytest.mark.parametrize("batch_size", [1, 16])
def test_the_clusterer_reaches_batch_em_on_bananas(batch_size: int) -> None:
    data = real_split("bananas", 2)
    rows = [{"x0": a, "x1": b} for a, b in data.train.tolist()]
    clusterer = GaussianMixtureClusterer(n_components=2, batch_size=batch_size, seed=0)
    for _ in range(3):
        for x in rows:
            clusterer.learn_one(x)

    score = clusterer.mixture.score(data.test)
    print(f"batch_size {batch_size}: stream {score:.4f}, scikit-learn {data.reference:.4f}")
    assert data.gap(score) <= STREAM_GOAL
