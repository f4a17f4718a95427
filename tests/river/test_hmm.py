"""The river faces of the Gaussian HMM: the filter, purity, the surprise, river's checks."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from river import checks

from streamem.models.hmm.family import Sequences
from streamem.river import GaussianHMMClusterer, GaussianHMMDetector
from tests.river.test_estimators import _small_datasets


def regime_stream(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    """Two features, three sticky regimes (about 60 steps each)."""
    levels = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    state, rows = 0, []
    for _ in range(n):
        if rng.random() < 1 / 60:
            state = int(rng.integers(3))
        x = levels[state] + rng.normal(0.0, 0.7, 2)
        rows.append({"a": float(x[0]), "b": float(x[1])})
    return rows


@pytest.mark.parametrize("cls", [GaussianHMMClusterer, GaussianHMMDetector])
def test_check_estimator_as_a_whole(cls: type) -> None:
    with mock.patch.object(checks, "_yield_datasets", _small_datasets):
        checks.check_estimator(cls(seed=3, batch_size=20))


def test_learn_one_advances_the_filter_as_the_forward_pass(rng: np.random.Generator) -> None:
    rows = regime_stream(rng, 1030)
    detector = GaussianHMMDetector(batch_size=100, seed=0)
    for x in rows[:1000]:
        detector.learn_one(x)
    hmm = detector.hmm
    assert hmm.n_seen_ == 1000
    np.testing.assert_allclose(detector._core.filter, hmm.engine_.carry[""], rtol=1e-12)
    for x in rows[1000:]:
        detector.learn_one(x)  # buffered: no update until 1100 steps
    assert hmm.n_seen_ == 1000
    pending = np.array([[x["a"], x["b"]] for x in rows[1000:]])
    forward = hmm.filtered(Sequences.of(pending, keys=[""], continues=[True]))
    probabilities = detector.regime_probabilities
    np.testing.assert_allclose(list(probabilities.values()), forward[-1], rtol=1e-9)


def test_scores_are_the_surprise_and_pure(rng: np.random.Generator) -> None:
    rows = regime_stream(rng, 1050)
    detector = GaussianHMMDetector(batch_size=100, seed=0)
    clusterer = GaussianHMMClusterer(batch_size=100, seed=0)
    for x in rows[:1040]:
        detector.learn_one(x)
        clusterer.learn_one(x)
    before = detector.regime_probabilities
    x = rows[1040]
    score = detector.score_one(x)
    assert detector.regime_probabilities == before
    assert detector.score_one(x) == score
    steps = np.array([[r["a"], r["b"]] for r in rows[1000:1041]])
    expected = -detector.hmm.log_density(Sequences.of(steps, keys=[""], continues=[True]))[-1]
    assert score == pytest.approx(expected, rel=1e-9)
    regime = clusterer.predict_one(x)
    assert clusterer.predict_one(x) == regime
    assert regime == int(
        np.argmax(clusterer.hmm.filtered(Sequences.of(steps, keys=[""], continues=[True]))[-1])
    )


def test_a_jump_to_another_regime_is_a_surprise(rng: np.random.Generator) -> None:
    rows = regime_stream(rng, 3000)
    # a warm-up that sees every regime (one it misses may never get a state of its own)
    detector = GaussianHMMDetector(batch_size=50, init_size=1500, seed=0)
    for x in rows:
        detector.learn_one(x)
    current = max(detector.regime_probabilities.items(), key=lambda item: item[1])[0]
    means = detector.hmm.means_
    other = (current + 1) % 3
    usual = dict(zip(("a", "b"), means[current].tolist(), strict=True))
    jump = dict(zip(("a", "b"), means[other].tolist(), strict=True))
    assert detector.score_one(jump) > detector.score_one(usual) + 2.0


def test_warm_up_scores_nothing(rng: np.random.Generator) -> None:
    detector = GaussianHMMDetector(seed=0)
    clusterer = GaussianHMMClusterer(seed=0)
    for x in regime_stream(rng, 100):
        assert detector.score_one(x) == 0.0
        assert clusterer.predict_one(x) == 0
        detector.learn_one(x)
        clusterer.learn_one(x)
    assert not detector.initialized
    assert detector.regime_probabilities == {0: 1.0}
