"""GaussianMixtureDetector: anomaly scores, warm-up, shared core with the clusterer."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from river import anomaly, datasets, preprocessing
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

from streamem import ValidationError
from streamem.river import GaussianMixtureClusterer, GaussianMixtureDetector


def stream_with_outliers(rng: np.random.Generator, n: int, rate: float = 0.02):
    """Two correlated Gaussian clusters, and rare points off their ridge; labels 1 = outlier."""
    labels = (rng.uniform(size=n) < rate).astype(int)
    centre = rng.choice([-4.0, 4.0], size=n)
    t = rng.normal(size=n)
    inliers = np.column_stack([centre + t, centre + t + 0.3 * rng.normal(size=n)])
    outliers = rng.uniform(-7.0, 7.0, size=(n, 2))
    return np.where(labels[:, np.newaxis] == 1, outliers, inliers), labels


def test_score_is_the_negative_log_density(rng: np.random.Generator) -> None:
    X, _ = stream_with_outliers(rng, 1_000)
    detector = GaussianMixtureDetector(n_components=2, seed=0)
    clusterer = GaussianMixtureClusterer(n_components=2, seed=0)
    for row in X:
        x = {"a": row[0], "b": row[1]}
        detector.learn_one(x)
        clusterer.learn_one(x)
    for row in X[:20]:
        x = {"a": row[0], "b": row[1]}
        expected = -detector.mixture.score_samples(row[np.newaxis])[0]
        assert math.isclose(detector.score_one(x), expected, rel_tol=1e-12)
        assert detector.score_one(x) == -clusterer.score_one(x)


def test_progressive_auc_on_off_ridge_outliers(rng: np.random.Generator) -> None:
    X, labels = stream_with_outliers(rng, 4_000)
    detector = GaussianMixtureDetector(n_components=2, seed=0)
    scores = []
    for row in X:
        x = {"a": row[0], "b": row[1]}
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    assert scores[:19] == [0.0] * 19  # the warm-up
    # the ceiling: the true inlier density as the score (some outliers fall on the ridge)
    ridge = np.array([[1.0, 1.0], [1.0, 1.09]])
    true_density = 0.5 * (
        multivariate_normal([-4.0, -4.0], ridge).pdf(X) + multivariate_normal([4, 4], ridge).pdf(X)
    )
    oracle = roc_auc_score(labels[100:], -true_density[100:])
    # the mixture also learns the 2% outliers, which widens its components a little
    assert roc_auc_score(labels[100:], scores[100:]) > oracle - 0.03


def test_warm_up_scores_zero_then_scores(rng: np.random.Generator) -> None:
    detector = GaussianMixtureDetector(n_components=2, init_size=5, seed=0)
    assert detector.score_one({"a": 1.0}) == 0.0
    for value in (0.0, 1.0, 2.0, 10.0):
        detector.learn_one({"a": value})
        assert detector.score_one({"a": value}) == 0.0
    detector.learn_one({"a": 11.0})
    assert detector.initialized
    assert detector.score_one({"a": 100.0}) > detector.score_one({"a": 1.0}) > 0.0


def test_score_many_and_learn_many(rng: np.random.Generator) -> None:
    X, _ = stream_with_outliers(rng, 600)
    frame = pd.DataFrame(X, columns=["a", "b"])
    detector = GaussianMixtureDetector(n_components=2, batch_size=100, seed=0)
    assert detector.score_many(frame.iloc[:3]).tolist() == [0.0, 0.0, 0.0]
    for start in range(0, 600, 100):
        detector.learn_many(frame.iloc[start : start + 100])
    assert detector.mixture.n_iter_ == 6
    scores = detector.score_many(frame.iloc[:30])
    expected = [detector.score_one({"a": a, "b": b}) for a, b in X[:30]]
    np.testing.assert_allclose(scores.to_numpy(), expected, rtol=1e-12)


def test_bad_input_raises_before_any_change(rng: np.random.Generator) -> None:
    X, _ = stream_with_outliers(rng, 100)
    detector = GaussianMixtureDetector(n_components=2, seed=0)
    for row in X:
        detector.learn_one({"a": row[0], "b": row[1]})
    before = pickle.dumps(detector)
    for x in ({"a": "high", "b": 1.0}, {"a": math.inf, "b": 1.0}, {"a": False}, {}):
        with pytest.raises(ValidationError):
            detector.learn_one(x)
        with pytest.raises(ValidationError):
            detector.score_one(x)
    assert pickle.dumps(detector) == before
    assert detector.score_one({"a": None, "b": 0.0}) == detector.score_one({"b": 0.0})


def test_pipeline_with_standard_scaler(rng: np.random.Generator) -> None:
    X, labels = stream_with_outliers(rng, 3_000)
    model = preprocessing.StandardScaler() | GaussianMixtureDetector(n_components=2, seed=0)
    scores = []
    for row in X * 1e4:
        x = {"a": row[0], "b": row[1]}
        scores.append(model.score_one(x))
        model.learn_one(x)
    assert roc_auc_score(labels[200:], scores[200:]) > 0.95


def test_shuttle_prefix_beats_half_space_trees() -> None:
    """River's bundled Shuttle sensor data, progressive (score, then learn)."""
    rows = list(itertools.islice(datasets.Shuttle(), 5_000))
    labels = [y for _, y in rows]
    detectors = {
        "gmm": GaussianMixtureDetector(seed=42),
        "hst": preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42),
    }
    auc = {}
    for name, detector in detectors.items():
        scores = []
        for x, _ in rows:
            scores.append(detector.score_one(x))
            detector.learn_one(x)
        auc[name] = roc_auc_score(labels, scores)
    print(auc)
    assert auc["gmm"] > auc["hst"]


@pytest.mark.slow
def test_shuttle_whole_stream_beats_half_space_trees() -> None:
    """The README number: the whole Shuttle stream (about 49,000 rows)."""
    labels, scores, hst_scores = [], [], []
    detector = GaussianMixtureDetector(seed=42)
    hst = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    for x, y in datasets.Shuttle():
        labels.append(y)
        scores.append(detector.score_one(x))
        hst_scores.append(hst.score_one(x))
        detector.learn_one(x)
        hst.learn_one(x)
    auc, auc_hst = roc_auc_score(labels, scores), roc_auc_score(labels, hst_scores)
    print(f"ROC AUC GaussianMixtureDetector {auc:.4f}, HalfSpaceTrees {auc_hst:.4f}")
    assert auc > auc_hst
