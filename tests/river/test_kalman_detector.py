"""KalmanDetector: the score is the filter's innovation surprise."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.errors import ValidationError
from streamem.river import KalmanDetector


def _rows(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    level = np.cumsum(rng.normal(0.0, 0.2, (n, 2)), axis=0)
    values = level + rng.normal(0.0, 1.0, (n, 2))
    return [{"a": float(a), "b": float(b)} for a, b in values]


def test_the_score_is_the_one_step_predictive_surprise(rng: np.random.Generator) -> None:
    rows = _rows(rng, 260)
    detector = KalmanDetector(batch_size=50)
    scores = []
    for x in rows:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    assert scores[:50] == [0.0] * 50  # warm-up
    model = detector.model
    # After 250 rows (5 updates) the model's carry is the filter state; the ten rows since
    # were scored by the detector's own filter under the same parameters.
    assert model.n_seen_ == 250
    Y = np.array([[x["a"], x["b"]] for x in rows[250:]])
    replay = model.log_density(model.batch_from_rows(Y))
    np.testing.assert_allclose(scores[250:], -replay, rtol=1e-9)


def test_a_jump_and_missing_features(rng: np.random.Generator) -> None:
    rows = _rows(rng, 400)
    detector = KalmanDetector(batch_size=100)
    for x in rows:
        detector.learn_one(x)
    last = rows[-1]
    usual = detector.score_one(last)
    assert detector.score_one({"a": last["a"] + 8.0, "b": last["b"]}) > usual + 10.0
    one = detector.score_one({"a": last["a"], "b": None})
    assert 0.0 < one < usual  # one coordinate's surprise is about half of two
    detector.learn_one({"a": 1.0, "c": 2.0})
    assert detector.ignored_features["c"] == 1
    with pytest.raises(ValidationError, match="nothing to learn"):
        detector.learn_one({"c": 1.0})
