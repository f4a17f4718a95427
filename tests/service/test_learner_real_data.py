"""The daemon's learning stage with the default model settings reaches scikit-learn's batch EM
on a real data set: river's bundled Bananas in micro-batches of 500, within 1% of |held-out
log-likelihood| after three passes."""

from __future__ import annotations

from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from tests.real_data import STREAM_GOAL, real_split


def test_the_learner_with_default_settings_reaches_batch_em_on_bananas() -> None:
    data = real_split("bananas", 2)
    learner = Learner(ModelSettings(n_components=2), DriftSettings(enabled=False), ["x", "y"])
    for _ in range(3):
        for start in range(0, len(data.train), 500):
            learner.learn(data.train[start : start + 500])

    score = learner.model.score(data.test)
    print(f"learner: stream {score:.4f}, scikit-learn {data.reference:.4f}")
    assert learner.status.n_seen == 3 * len(data.train)
    assert data.gap(score) <= STREAM_GOAL
