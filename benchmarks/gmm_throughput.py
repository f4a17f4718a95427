"""Throughput and held-out log-likelihood of streamem next to scikit-learn and river.

Same data for every method: a random full-covariance mixture (d=8, K=6, overlapping), one pass
over the training stream, held-out mean log-likelihood on separate points. BLAS is pinned to
one thread. Hard clusterers (k-means) are scored through the Gaussian mixture their clusters
imply (cluster fractions, means and covariances).

Run: python benchmarks/gmm_throughput.py [--points 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.cluster import MiniBatchKMeans
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

from streamem import GaussianMixture
from streamem.synthetic import random_mixture_sample

K, D = 6, 8


def implied_mixture_score(train: np.ndarray, labels: np.ndarray, held_out: np.ndarray) -> float:
    """Held-out mean log-likelihood of the mixture that a hard clustering implies."""
    parts = []
    for j in np.unique(labels):
        members = train[labels == j]
        covariance = np.cov(members.T) + 1e-6 * np.eye(train.shape[1])
        weight = len(members) / len(train)
        parts.append(
            np.log(weight) + multivariate_normal(members.mean(0), covariance).logpdf(held_out)
        )
    return float(logsumexp(np.stack(parts), axis=0).mean())


def timed(work: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def stream(train: np.ndarray, batch: int, dtype: type, init_size: int) -> GaussianMixture:
    model = GaussianMixture(K, init_size=init_size, n_init=5, random_state=0)
    data = train.astype(dtype)
    for start in range(0, len(data), batch):
        model.partial_fit(data[start : start + batch])
    return model


def points_to_reach(train: np.ndarray, held_out: np.ndarray, target: float) -> int | None:
    """Points streamed (mini-batches of 1,000) until the held-out score is within 0.1%."""
    model = GaussianMixture(K, init_size=10_000, n_init=5, random_state=0)
    for start in range(0, len(train), 1_000):
        model.partial_fit(train[start : start + 1_000])
        checkpoint = start >= 10_000 and (start // 1_000) % 10 == 0
        if checkpoint and model.score(held_out) >= target - 1e-3 * abs(target):
            return int(model.n_seen_)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--river-points", type=int, default=50_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(args.seed)
    X, _ = random_mixture_sample(rng, args.points + 100_000, D, K, spread=1.5)
    train, held_out = X[: args.points], X[args.points :]
    n = len(train)
    rows: list[tuple[str, float, float]] = []

    with threadpool_limits(1):
        reference, seconds = timed(lambda: SklearnGaussianMixture(K, random_state=0).fit(train))
        assert isinstance(reference, SklearnGaussianMixture)
        target = reference.score(held_out)
        rows.append(
            (f"scikit-learn GaussianMixture.fit ({reference.n_iter_} it.)", n / seconds, target)
        )
        one_iteration = SklearnGaussianMixture(
            K,
            max_iter=1,
            weights_init=reference.weights_,
            means_init=reference.means_,
            precisions_init=reference.precisions_,
        )
        _, seconds = timed(lambda: one_iteration.fit(train))
        sklearn_iteration_rate = n / seconds
        rows.append(("scikit-learn: one EM iteration", sklearn_iteration_rate, float("nan")))

        for label, batch, dtype, init_size in (
            ("streamem partial_fit, batch 10,000, float64", 10_000, np.float64, 10_000),
            ("streamem partial_fit, batch 10,000, float32", 10_000, np.float32, 10_000),
            ("streamem partial_fit, batch 1,000, float64", 1_000, np.float64, 10_000),
        ):
            model, seconds = timed(lambda b=batch, t=dtype, i=init_size: stream(train, b, t, i))
            assert isinstance(model, GaussianMixture)
            rows.append((label, n / seconds, model.score(held_out)))

        batch_model, seconds = timed(lambda: GaussianMixture(K, random_state=0).fit(train))
        assert isinstance(batch_model, GaussianMixture)
        rows.append(
            (f"streamem fit ({batch_model.n_iter_} it.)", n / seconds, batch_model.score(held_out))
        )

        kmeans = MiniBatchKMeans(K, random_state=0, n_init=1)

        def minibatch_pass() -> None:
            for start in range(0, n, 10_000):
                kmeans.partial_fit(train[start : start + 10_000])

        _, seconds = timed(minibatch_pass)
        sample = train[:200_000]
        rows.append(
            (
                "scikit-learn MiniBatchKMeans.partial_fit, batch 10,000",
                n / seconds,
                implied_mixture_score(sample, kmeans.predict(sample), held_out),
            )
        )

        from river import cluster

        river_kmeans = cluster.KMeans(n_clusters=K, seed=0)
        subset = [dict(enumerate(row)) for row in train[: args.river_points]]

        def river_pass() -> None:
            for x in subset:
                river_kmeans.learn_one(x)

        _, seconds = timed(river_pass)
        labels = np.array([river_kmeans.predict_one(x) for x in subset])
        rows.append(
            (
                f"river cluster.KMeans.learn_one ({args.river_points:,} points)",
                args.river_points / seconds,
                implied_mixture_score(train[: args.river_points], labels, held_out),
            )
        )

    print(
        f"d={D}, K={K}, full covariance, {n:,} training points, 100,000 held out, "
        f"seed {args.seed}, one BLAS thread"
    )
    print(
        f"{'method':<58} {'points/s':>12} {'vs sklearn 1 it.':>17} "
        f"{'held-out ll':>12} {'gap to sklearn':>15}"
    )
    for label, rate, score in rows:
        gap = "" if np.isnan(score) else f"{100 * (target - score) / abs(target):14.3f}%"
        shown = "" if np.isnan(score) else f"{score:12.5f}"
        print(
            f"{label:<58} {rate:12,.0f} {rate / sklearn_iteration_rate:16.2f}x "
            f"{shown:>12} {gap:>15}"
        )
    reached = points_to_reach(train, held_out, target)
    print(
        f"streamem partial_fit (batch 1,000) was within 0.1% of scikit-learn's held-out score "
        f"after {reached:,} points"
        if reached
        else "never within 0.1% in this pass"
    )


if __name__ == "__main__":
    main()
