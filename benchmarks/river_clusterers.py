"""streamem's river estimators next to river's own, on the same streams, in one run.

Two tables:

1. Clustering. Each clusterer sees the same shuffled stream once; for every point it runs
   ``learn_one(x)`` then ``predict_one(x)``. Throughput is points per second of that loop
   (both calls), the best of ``--repeats`` passes (the clusterers take turns, so that the
   load of a shared machine falls on all of them alike); "time / KMeans" is the time per
   point relative to river's ``cluster.KMeans`` in the same run. "ARI online" is the adjusted
   Rand index of the labels predicted in the loop, "ARI final" of the labels the final model
   gives every point. Streams: three well-separated round 2-D Gaussians, and three
   overlapping anisotropic 2-D Gaussians of different shapes. The "oracle" ARI is that of
   the Bayes classifier with the true parameters: the ceiling. A summary table gives the
   throughput over both streams and the final ARI on each.
2. The speed grid of the default online-EM clusterer (``batch_size=1``, one step per point)
   against ``cluster.KMeans`` with the same K: d = 2 (the overlapping stream) and d = 9 (the
   features of river's ``datasets.Shuttle``), K = 3 and 8, full and diagonal covariances;
   learn_one + predict_one per point, best of ``--repeats``, taking turns.
3. Anomaly detection on river's bundled ``datasets.Shuttle`` (NASA shuttle sensors, 9
   features, ``anomaly`` label), progressive: every row is scored, then learned. ROC AUC of the
   scores and rows per second.

BLAS is pinned to one thread (threadpoolctl) so that the numbers compare per-core work.

    python benchmarks/river_clusterers.py            # the default run, a few minutes
    python benchmarks/river_clusterers.py --quick    # 3,000 points and 5,000 Shuttle rows
    python benchmarks/river_clusterers.py --numpy-path   # streamem without the compiled step

``--numpy-path`` turns off the compiled one-row step (``streamem.models.mixture.gaussian_kernels``),
as if numba were not installed: every step then takes the numpy path, the reference.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import anomaly, base, cluster, datasets, preprocessing
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from threadpoolctl import threadpool_limits

from streamem.models.mixture import gaussian_kernels
from streamem.river import GaussianMixtureClusterer, GaussianMixtureDetector


@dataclass(frozen=True)
class Stream:
    name: str
    X: np.ndarray
    labels: np.ndarray
    oracle: np.ndarray  # labels of the Bayes classifier with the true parameters


def gaussian_stream(
    name: str,
    n: int,
    means: list[list[float]],
    covariances: list[list[list[float]]],
    rng: np.random.Generator,
) -> Stream:
    k = len(means)
    labels = rng.integers(0, k, n)
    factors = np.linalg.cholesky(np.array(covariances))
    noise = rng.normal(size=(n, len(means[0])))
    X = np.array(means)[labels] + np.einsum("nab,nb->na", factors[labels], noise)
    densities = np.column_stack(
        [multivariate_normal(means[j], covariances[j]).logpdf(X) for j in range(k)]
    )
    return Stream(name, X, labels, densities.argmax(axis=1))


def streams(n: int, seed: int) -> list[Stream]:
    rng = np.random.default_rng(seed)
    separated = gaussian_stream(
        "3 separated round Gaussians",
        n,
        [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]],
        [np.eye(2).tolist()] * 3,
        rng,
    )
    overlapping = gaussian_stream(
        "3 overlapping anisotropic Gaussians",
        n,
        [[0.0, 0.0], [4.0, 0.0], [2.0, 4.0]],
        [
            [[4.0, 1.5], [1.5, 1.0]],
            [[1.0, -0.8], [-0.8, 1.0]],
            [[0.5, 0.0], [0.0, 3.0]],
        ],
        rng,
    )
    return [separated, overlapping]


def clusterers(seed: int) -> dict[str, Callable[[], base.Clusterer]]:
    return {
        "streamem GaussianMixtureClusterer": lambda: GaussianMixtureClusterer(
            n_components=3, seed=seed
        ),
        "streamem GaussianMixtureClusterer batch_size=16": lambda: GaussianMixtureClusterer(
            n_components=3, batch_size=16, seed=seed
        ),
        "streamem GaussianMixtureClusterer batch_size=64": lambda: GaussianMixtureClusterer(
            n_components=3, batch_size=64, seed=seed
        ),
        "river cluster.KMeans": lambda: cluster.KMeans(n_clusters=3, seed=seed),
        "river cluster.STREAMKMeans": lambda: cluster.STREAMKMeans(n_clusters=3, seed=seed),
        "river cluster.DBSTREAM": lambda: cluster.DBSTREAM(),
    }


def run_clusterer(model: base.Clusterer, rows: list[dict[int, float]]) -> tuple[float, list, list]:
    online = []
    start = time.perf_counter()
    for x in rows:
        model.learn_one(x)
        online.append(model.predict_one(x))
    elapsed = time.perf_counter() - start
    final = [model.predict_one(x) for x in rows]
    return len(rows) / elapsed, online, final


class PerFeatureGaussianScorer(base.AnomalyDetector):
    """river's univariate ``anomaly.GaussianScorer`` on every feature; the largest score.

    ``GaussianScorer`` models one target value; this applies it to each feature separately.
    """

    def __init__(self, grace_period: int = 100) -> None:
        self.grace_period = grace_period
        self.scorers: dict[Any, anomaly.GaussianScorer] = {}

    def learn_one(self, x: dict) -> None:
        for name, value in x.items():
            if name not in self.scorers:
                self.scorers[name] = anomaly.GaussianScorer(grace_period=self.grace_period)
            self.scorers[name].learn_one(None, value)

    def score_one(self, x: dict) -> float:
        scores = [self.scorers[k].score_one(None, v) for k, v in x.items() if k in self.scorers]
        return max(scores, default=0.0)


def detectors(seed: int) -> dict[str, Callable[[], base.AnomalyDetector]]:
    return {
        "streamem GaussianMixtureDetector (defaults: K=1, full)": lambda: GaussianMixtureDetector(
            seed=seed
        ),
        "streamem GaussianMixtureDetector covariance_type='diag'": lambda: GaussianMixtureDetector(
            covariance_type="diag", seed=seed
        ),
        "streamem GaussianMixtureDetector batch_size=32": lambda: GaussianMixtureDetector(
            batch_size=32, seed=seed
        ),
        "streamem GaussianMixtureDetector n_components=3": lambda: GaussianMixtureDetector(
            n_components=3, seed=seed
        ),
        "river MinMaxScaler | anomaly.HalfSpaceTrees": lambda: (
            preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
        ),
        "river anomaly.GaussianScorer per feature, max": lambda: PerFeatureGaussianScorer(),
    }


def run_detector(model: base.AnomalyDetector, rows: Iterable[tuple[dict, int]]) -> tuple:
    scores, labels = [], []
    start = time.perf_counter()
    for x, y in rows:
        scores.append(model.score_one(x))
        model.learn_one(x)
        labels.append(y)
    elapsed = time.perf_counter() - start
    return roc_auc_score(labels, scores), len(labels) / elapsed


def table(title: str, header: list[str], lines: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    print(f"\n{title}\n")
    print(fmt(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in lines:
        print(fmt(row))


KMEANS = "river cluster.KMeans"
GRID = [(n_components, covariance) for n_components in (3, 8) for covariance in ("full", "diag")]


def speed_grid(
    grid_streams: list[tuple[str, list[dict[int, float]]]], seed: int, repeats: int
) -> None:
    """Points per second of the m = 1 clusterer and of KMeans with the same K, per stream."""
    lines = []
    for name, rows in grid_streams:
        for n_components, covariance in GRID:
            makers: dict[str, Callable[[], base.Clusterer]] = {
                "streamem": lambda k=n_components, c=covariance: GaussianMixtureClusterer(
                    n_components=k, covariance_type=c, seed=seed
                ),
                "kmeans": lambda k=n_components: cluster.KMeans(n_clusters=k, seed=seed),
            }
            speeds = dict.fromkeys(makers, 0.0)
            for _ in range(repeats):
                for key, make in makers.items():
                    speeds[key] = max(speeds[key], run_clusterer(make(), rows)[0])
            lines.append(
                [
                    name,
                    str(n_components),
                    covariance,
                    f"{speeds['streamem']:,.0f}",
                    f"{speeds['kmeans']:,.0f}",
                    f"{speeds['kmeans'] / speeds['streamem']:.2f}x",
                ]
            )
    table(
        f"GaussianMixtureClusterer (batch_size=1) against cluster.KMeans with the same K: "
        f"learn_one + predict_one, best of {repeats}",
        ["stream", "K", "covariance", "streamem points/s", "KMeans points/s", "time / KMeans"],
        lines,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="points per clustering stream")
    parser.add_argument("--shuttle-rows", type=int, default=None, help="default: all 49,097")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="passes per clusterer, best kept")
    parser.add_argument("--quick", action="store_true", help="--n 3000 --shuttle-rows 5000")
    parser.add_argument(
        "--numpy-path", action="store_true", help="streamem without the compiled one-row step"
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.shuttle_rows = 3_000, 5_000
    if args.numpy_path:
        gaussian_kernels.AVAILABLE = False
    print(f"compiled one-row step: {'on' if gaussian_kernels.AVAILABLE else 'off'}")
    overlapping_rows: list[dict[int, float]] = []
    makers = clusterers(args.seed)
    seconds: dict[str, float] = dict.fromkeys(makers, 0.0)
    final_ari: dict[str, list[str]] = {name: [] for name in makers}
    with threadpool_limits(limits=1):
        for stream in streams(args.n, args.seed):
            rows = [dict(enumerate(row)) for row in stream.X.tolist()]
            overlapping_rows = rows
            oracle = adjusted_rand_score(stream.labels, stream.oracle)
            speeds: dict[str, float] = dict.fromkeys(makers, 0.0)
            aris: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for name, make in makers.items():
                    speed, online, final = run_clusterer(make(), rows)
                    speeds[name] = max(speeds[name], speed)
                    aris.setdefault(
                        name,
                        (
                            adjusted_rand_score(stream.labels, online),
                            adjusted_rand_score(stream.labels, final),
                        ),
                    )
            lines = []
            for name in makers:
                seconds[name] += len(rows) / speeds[name]
                final_ari[name].append(f"{aris[name][1]:.3f}")
                lines.append(
                    [
                        name,
                        f"{speeds[name]:,.0f}",
                        f"{speeds[KMEANS] / speeds[name]:.1f}x",
                        f"{aris[name][0]:.3f}",
                        f"{aris[name][1]:.3f}",
                    ]
                )
            table(
                f"{stream.name}: {args.n:,} shuffled points, one pass, learn_one + predict_one, "
                f"best of {args.repeats} (oracle ARI {oracle:.3f})",
                ["clusterer", "points/s", "time / KMeans", "ARI online", "ARI final"],
                lines,
            )
        n_streams = len(final_ari[KMEANS])
        table(
            f"Summary: learn_one + predict_one over both streams ({n_streams * args.n:,} points)",
            ["clusterer", "points/s", "time / KMeans", "ARI final, separated", "ARI final, overl."],
            [
                [
                    name,
                    f"{n_streams * args.n / seconds[name]:,.0f}",
                    f"{seconds[name] / seconds[KMEANS]:.1f}x",
                    *final_ari[name],
                ]
                for name in makers
            ],
        )
        shuttle = list(itertools.islice(datasets.Shuttle(), args.shuttle_rows))
        shuttle_rows = [x for x, _ in shuttle[: args.n]]
        speed_grid(
            [("d=2 (overlapping)", overlapping_rows), ("d=9 (Shuttle)", shuttle_rows)],
            args.seed,
            args.repeats,
        )
        lines = []
        for name, make in detectors(args.seed).items():
            auc, speed = run_detector(make(), shuttle)
            lines.append([name, f"{auc:.4f}", f"{speed:,.0f}"])
        table(
            f"datasets.Shuttle: {len(shuttle):,} rows, progressive (score_one, then learn_one)",
            ["detector", "ROC AUC", "rows/s"],
            lines,
        )


if __name__ == "__main__":
    main()
