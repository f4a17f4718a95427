"""How far the merged model of 6 partitions is from one model of the same records.

Each of 6 partitions learns its records (round-robin shares of 300,000 readings of the known
3-component mixture, 500 per batch) with the global parameters, and its statistics are merged
after every batch (:class:`streamem.service.shards.Shards`, in one process: no broker); one
learner learns the same records in 1,000-record batches. The table gives, per schedule, the
largest gap of the means (in standard deviations of the data) and of the weights between the
two, and of each to the batch MLE (scikit-learn, 300,000 records). With the equal-weight
schedule (power, alpha = 1) the merge is exact up to the parameters each E-step used; with a
forgetting schedule each partition forgets on its own count (an approximation).

    python benchmarks/scaleout_merge.py
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

from streamem.service.config import Settings
from streamem.service.learner import Learner
from streamem.service.shards import Shards
from streamem.synthetic import FEATURES, SensorModes

N, P = 300_000, 6
SCHEDULES = {
    "power alpha=1 (equal weights)": {"kind": "power", "alpha": 1.0},
    "power alpha=0.6 (default)": {"kind": "power"},
    "half_life 20000": {"kind": "half_life", "half_life": 20_000},
}


def _ordered(model: object, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    means = np.asarray(model.means_)  # type: ignore[attr-defined]
    order = np.argsort(means[:, 0])
    return means[order] / scale, np.asarray(model.weights_)[order]  # type: ignore[attr-defined]


def _gap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> str:
    return f"{np.abs(a[0] - b[0]).max():.4f} / {np.abs(a[1] - b[1]).max():.4f}"


def main() -> None:
    X, _ = SensorModes.default().sample(N, np.random.default_rng(20261121))
    scale = X.std(axis=0)
    mle = _ordered(GaussianMixture(3, random_state=0).fit(X), scale)
    print(f"{'schedule':32} {'merged vs one':>16} {'one vs MLE':>16} {'merged vs MLE':>16}")
    print("(largest gap: means in sd / weights)")
    for label, schedule in SCHEDULES.items():
        settings = Settings.model_validate(
            {
                "model": {
                    "n_components": 3,
                    "init_size": 2000,
                    "n_init": 3,
                    "seed": 0,
                    "schedule": schedule,
                },
                "input": {"features": list(FEATURES)},
            }
        )
        one = Learner(settings.model, settings.drift, settings.input.features)
        for start in range(0, N, 1000):
            one.learn(X[start : start + 1000])
        shards = Shards(settings, ("t", 0))
        shards.assign([("t", p) for p in range(P)])
        parts = [X[p::P] for p in range(P)]
        position = [0] * P
        while any(position[p] < len(parts[p]) for p in range(P)):
            for p in range(P):
                learner = shards.learner_for(("t", p))
                if learner is None or position[p] >= len(parts[p]):
                    continue
                learner.learn(parts[p][position[p] : position[p] + 500])
                position[p] += 500
                shards.remerge(("t", p))
        assert shards.merged is not None
        assert shards.merged.status.n_seen == N
        merged = _ordered(shards.merged.model, scale)
        single = _ordered(one.model, scale)
        print(
            f"{label:32} {_gap(merged, single):>16} {_gap(single, mle):>16} {_gap(merged, mle):>16}"
        )


if __name__ == "__main__":
    main()
