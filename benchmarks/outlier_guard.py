"""The outlier guard on clean data: points refused (false refusals) and what it costs.

Two faces: the daemon's row guard (``Learner`` + ``RowGuard`` as the daemon runs them, batches
of 200, ``init_size`` 300) and the library's ``outlier_guard`` (``partial_fit`` in batches of
200, river's ``learn_one``). Streams: the test suite's synthetic ones, ``SensorModes`` (3
modes, d=3), ``random_mixture_sample`` (K=6, d=8) and Poisson counts (K=4, d=5).

With ``--panel``: the daemon's guard on the real data sets of ``benchmarks/real_data.py``
(standardised as there, shuffled passes of the training rows in batches of 100, about 100,000
rows per (K, covariance) of the panel).

Run: python benchmarks/outlier_guard.py [--points 1000000] [--seeds 0 1] [--panel]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from streamem import GaussianMixture
from streamem.service.config import DriftSettings, GuardSettings, ModelSettings
from streamem.service.guard import ModelScorer, RowGuard
from streamem.service.learner import Learner
from streamem.synthetic import FEATURES, SensorModes, random_mixture_sample

BATCH = 200


def daemon_refusals(
    X: np.ndarray, settings: ModelSettings, features: list[str], batch_size: int = BATCH
) -> int:
    """Points the daemon's guard refuses on the clean rows ``X``."""
    learner = Learner(settings, DriftSettings(), features)
    guard = RowGuard(GuardSettings(), features, {})
    refused = 0
    for start in range(0, len(X), batch_size):
        batch = X[start : start + batch_size]
        refusals = guard.screen(batch, ModelScorer(learner.model))
        refused += len(refusals)
        learner.learn(np.delete(batch, [r.index for r in refusals], axis=0))
    return refused


def panel_refusals() -> None:
    """The daemon's guard on the real data sets of the benchmark panel."""
    from real_data import PANEL, split  # this directory's module (run as a script)

    for name, data in PANEL.items():
        rows = data.load()
        for k, covariance in data.models:
            total = refused = seed = 0
            while total < 100_000:
                train = split(rows, seed, covariance).train
                seed += 1
                settings = ModelSettings(
                    n_components=k, covariance_type=covariance, n_init=3, seed=seed
                )
                features = [f"x{i}" for i in range(train.shape[1])]
                refused += daemon_refusals(train, settings, features, batch_size=100)
                total += len(train)
            print(f"panel, {name}, K={k} {covariance}: {refused} of {total:,} refused")


def streams(n: int, seed: int) -> list[tuple[str, np.ndarray, ModelSettings]]:
    rng = np.random.default_rng(seed)
    sensors, _ = SensorModes.default().sample(n, rng)
    mixture, _ = random_mixture_sample(rng, n, 8, 6)
    rates = rng.gamma(2.0, 3.0, size=(4, 5))
    counts = rng.poisson(rates[rng.integers(4, size=n)]).astype(float)
    return [
        ("gaussian, SensorModes (K=3, d=3)", sensors, ModelSettings(init_size=300, n_init=2)),
        (
            "gaussian, random mixture (K=6, d=8)",
            mixture,
            ModelSettings(n_components=6, init_size=300, n_init=2),
        ),
        (
            "poisson, counts (K=4, d=5)",
            counts,
            ModelSettings(family="poisson_mixture", n_components=4, init_size=300),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--panel", action="store_true", help="the real data sets only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.panel:
        panel_refusals()
        return
    for seed in args.seeds:
        for name, X, settings in streams(args.points, seed):
            features = [f"x{i}" for i in range(X.shape[1])]
            refused = daemon_refusals(X, settings, features)
            print(f"daemon guard, {name}, seed {seed}: {refused} of {len(X):,} refused")
            if settings.family == "gaussian_mixture":
                model = GaussianMixture(settings.n_components, random_state=0, outlier_guard=True)
                for start in range(0, len(X), BATCH):
                    model.partial_fit(X[start : start + BATCH])
                print(
                    f"library guard, {name}, seed {seed}: {model.n_outliers_} of {len(X):,} refused"
                )
    X, _ = SensorModes.default().sample(200_000, np.random.default_rng(0))
    for guard in (False, True):
        times = []
        for _ in range(3):
            model = GaussianMixture(3, random_state=0, outlier_guard=guard)
            started = time.perf_counter()
            for batch in np.array_split(X, len(X) // BATCH):
                model.partial_fit(batch)
            times.append(time.perf_counter() - started)
        print(f"partial_fit, 200,000 rows in batches of {BATCH}, guard {guard}: {min(times):.2f} s")
    try:
        from streamem.river import GaussianMixtureClusterer
    except ImportError:
        return
    rows = [dict(zip(FEATURES, row.tolist(), strict=True)) for row in X[:50_000]]
    for guard in (False, True):
        times = []
        for _ in range(3):
            clusterer = GaussianMixtureClusterer(3, seed=0, outlier_guard=guard)
            started = time.perf_counter()
            for row in rows:
                clusterer.learn_one(row)
            times.append(time.perf_counter() - started)
        per_row = min(times) / len(rows) * 1e6
        print(f"river learn_one, 50,000 rows, guard {guard}: {per_row:.1f} us per row")


if __name__ == "__main__":
    main()
