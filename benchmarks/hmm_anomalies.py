"""ROC AUC of streaming anomaly detectors on a regime-switching stream with injected anomalies.

The stream: a 3-regime sticky HMM in 4 dimensions (stay probability 0.99, about 100 steps per
regime; regime means 4 standard deviations apart), 50,000 steps per data seed. 1% of the steps
are replaced by an anomaly of one of two kinds, in two separate runs:

- **dynamic**: a reading drawn from ANOTHER regime's distribution than the current one. It is a
  perfectly normal reading for the stream as a whole (a third of all readings look like it);
  only the dynamics say it is wrong (a jump to another regime and straight back);
- **point**: the current regime's mean plus a 6-standard-deviation excursion in a random
  direction (a global outlier, which every density detector should see).

Every detector scores each step before learning it (prequential evaluation, as river's
``check_roc_auc``); the ROC AUC is over the steps after the first 2,000 (every detector has
finished its warm-up by then). Detectors: streamem's GaussianHMMDetector (3 states, blocks of
50 steps), streamem's GaussianMixtureDetector (3 components, and its default of 1), river's
HalfSpaceTrees (its defaults, after a MinMaxScaler, as river's documentation recommends).

Run: python benchmarks/hmm_anomalies.py [--steps 50000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from river import anomaly, base, preprocessing
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from streamem.river import GaussianHMMDetector, GaussianMixtureDetector

K, D, STAY, RATE, SKIP = 3, 4, 0.99, 0.01, 2000


def regime_stream(seed: int, steps: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Readings (steps, D) and anomaly labels (steps,)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (K, D))
    means *= (
        4.0 / np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1)[np.triu_indices(K, 1)]).min()
    )
    states = np.empty(steps, dtype=int)
    states[0] = 0
    switches = rng.random(steps) > STAY
    for t in range(1, steps):
        states[t] = rng.integers(K) if switches[t] else states[t - 1]
    X = means[states] + rng.normal(0.0, 1.0, (steps, D))
    labels = (rng.random(steps) < RATE) & (np.arange(steps) > 0)
    for t in np.flatnonzero(labels):
        if kind == "dynamic":
            other = (states[t] + rng.integers(1, K)) % K
            X[t] = means[other] + rng.normal(0.0, 1.0, D)
        else:
            direction = rng.normal(size=D)
            X[t] = means[states[t]] + 6.0 * direction / np.linalg.norm(direction)
    return X, labels.astype(int)


def detectors(seed: int) -> dict[str, Callable[[], base.AnomalyDetector]]:
    return {
        "streamem GaussianHMMDetector (3 states)": lambda: GaussianHMMDetector(
            n_components=3, batch_size=50, init_size=1500, seed=seed
        ),
        "streamem GaussianMixtureDetector (3 components)": lambda: GaussianMixtureDetector(
            n_components=3, init_size=1500, seed=seed
        ),
        "streamem GaussianMixtureDetector (1 component)": lambda: GaussianMixtureDetector(
            seed=seed
        ),
        "river HalfSpaceTrees (MinMaxScaler first)": lambda: (
            preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
        ),
    }


def prequential(model: base.AnomalyDetector, X: np.ndarray) -> tuple[np.ndarray, float]:
    scores = np.empty(len(X))
    started = time.perf_counter()
    for t, row in enumerate(X):
        x = {f"x{i}": float(v) for i, v in enumerate(row)}
        scores[t] = model.score_one(x)
        model.learn_one(x)
    return scores, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("The machine may be shared with other work: compare times within this run only.")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with threadpool_limits(1):
        for kind in ("dynamic", "point"):
            for seed in range(args.seeds):
                X, labels = regime_stream(seed, args.steps, kind)
                for name, make in detectors(seed).items():
                    scores, seconds = prequential(make(), X)
                    auc = roc_auc_score(labels[SKIP:], scores[SKIP:])
                    results.setdefault((name, kind), []).append((auc, args.steps / seconds))
                print(f"{kind} seed {seed} done", flush=True)
    names = list(dict.fromkeys(name for name, _ in results))
    header = ["detector", "ROC AUC, dynamic anomalies", "ROC AUC, point anomalies", "steps/s"]
    rows = []
    for name in names:
        dynamic = [auc for auc, _ in results[(name, "dynamic")]]
        point = [auc for auc, _ in results[(name, "point")]]
        speed = [s for kind in ("dynamic", "point") for _, s in results[(name, kind)]]
        rows.append(
            [
                name,
                f"{np.mean(dynamic):.3f} ({min(dynamic):.3f}-{max(dynamic):.3f})",
                f"{np.mean(point):.3f} ({min(point):.3f}-{max(point):.3f})",
                f"{np.mean(speed):,.0f}",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(
        f"\nROC AUC, mean (min-max) over {args.seeds} data seeds, {args.steps:,} steps each, "
        f"1% anomalies, steps after the first {SKIP:,}\n"
    )
    print(fmt(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(fmt(row))


if __name__ == "__main__":
    main()
