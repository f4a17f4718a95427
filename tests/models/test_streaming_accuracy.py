"""One pass of stepwise EM over a long stream is as good as scikit-learn's batch EM."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

from streamem import GaussianMixture
from streamem.synthetic import random_mixture_sample


@pytest.mark.slow
@pytest.mark.parametrize("data_seed", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
def test_one_pass_of_a_million_points_is_within_five_hundredths_of_a_percent(
    data_seed: int,
) -> None:
    rng = np.random.default_rng(data_seed)
    X, _ = random_mixture_sample(rng, 1_100_000, n_features=8, n_components=6, spread=1.5)
    train, held_out = X[:1_000_000], X[1_000_000:]
    with threadpool_limits(1):
        batch = SklearnGaussianMixture(6, random_state=0).fit(train)
        stream = GaussianMixture(6, random_state=0)  # the defaults: no init_size, n_init
        for start in range(0, len(train), 1_000):
            stream.partial_fit(train[start : start + 1_000])

    batch_score, stream_score = batch.score(held_out), stream.score(held_out)
    print(
        f"seed {data_seed}: held-out mean log-likelihood stream {stream_score:.5f}, "
        f"scikit-learn batch {batch_score:.5f}"
    )
    assert stream.n_seen_ == 1_000_000
    assert stream_score >= batch_score - 5e-4 * abs(batch_score)
