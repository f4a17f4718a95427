"""A one-minute tour of the library: a sensor stream learned by stepwise EM."""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from streamem.models.mixture.gaussian_mixture import GaussianMixture
from streamem.synthetic import SensorModes


def run(n_points: int = 200_000, batch_size: int = 1_000, seed: int = 0) -> GaussianMixture:
    """Stream ``n_points`` synthetic readings through ``partial_fit`` and print the result."""
    rng = np.random.default_rng(seed)
    modes = SensorModes.default()
    X, _ = modes.sample(n_points, rng)
    model = GaussianMixture(n_components=3, init_size=5_000, n_init=5, random_state=seed)
    started = time.perf_counter()
    with threadpool_limits(1):
        for start in range(0, n_points, batch_size):
            model.partial_fit(X[start : start + batch_size])
    elapsed = time.perf_counter() - started
    held_out, _ = modes.sample(20_000, rng)
    print(
        f"learned {model.n_seen_:,} readings in {model.n_iter_} mini-batches "
        f"({model.n_seen_ / elapsed:,.0f} points/s)"
    )
    print(
        f"held-out mean log-likelihood: {model.score(held_out):.4f} (converged: {model.converged_})"
    )
    print(f"{'mode':>6} {'weight':>8} {'true':>6}   mean ({', '.join(modes.names)}) vs true")
    for j in np.argsort(model.means_[:, 0]):
        k = int(np.argmin(np.abs(modes.means[:, 0] - model.means_[j, 0])))
        learned = ", ".join(f"{v:6.2f}" for v in model.means_[j])
        true = ", ".join(f"{v:6.2f}" for v in modes.means[k])
        print(f"{j:>6} {model.weights_[j]:8.3f} {modes.weights[k]:6.3f}   {learned}  vs  {true}")
    return model
