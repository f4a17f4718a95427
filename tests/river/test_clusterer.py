"""GaussianMixtureClusterer: clustering quality, update semantics, features, input checks."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from river import cluster, compose, metrics, preprocessing, stream
from sklearn.metrics import adjusted_rand_score

from streamem import PowerDecay, ValidationError
from streamem.errors import RefusedUpdateWarning
from streamem.river import GaussianMixtureClusterer, GaussianMixtureDetector

CENTRES = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])


def blobs(rng: np.random.Generator, n: int, centres: np.ndarray = CENTRES, spread: float = 1.0):
    """n shuffled points of len(centres) round Gaussians, and their labels."""
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + spread * rng.normal(size=(n, centres.shape[1])), labels


def dicts(X: np.ndarray, names=("a", "b", "c", "d")) -> list[dict[str, float]]:
    return [dict(zip(names, row.tolist(), strict=False)) for row in X]


# ---- quality ---------------------------------------------------------------------------------


def test_three_separated_gaussians_one_pass_ari(rng: np.random.Generator) -> None:
    X, labels = blobs(rng, 20_000)
    model = GaussianMixtureClusterer(n_components=3, seed=1)
    for x, _ in stream.iter_array(X):
        model.learn_one(x)
    assert model.mixture.n_seen_ == 20_000
    assert adjusted_rand_score(labels, model.predict_many(pd.DataFrame(X))) >= 0.95
    assert sorted(np.round(model.mixture.weights_, 1).tolist()) == [0.3, 0.3, 0.3]
    # sort on rounded coordinates: two centres share x = 0, so raw estimates can tie either way
    found = model.mixture.means_[np.lexsort(np.round(model.mixture.means_).T[::-1])]
    np.testing.assert_allclose(found, CENTRES[np.lexsort(CENTRES.T[::-1])], atol=0.1)


def test_progressive_ari_with_river_metric(rng: np.random.Generator) -> None:
    """Predict, then learn (river's progressive validation), on a shorter stream."""
    X, labels = blobs(rng, 3_000)
    model = GaussianMixtureClusterer(n_components=3, seed=1)
    progressive = metrics.AdjustedRand()
    for x, label in stream.iter_array(X, labels):
        progressive.update(label, model.predict_one(x))
        model.learn_one(x)
    assert progressive.get() >= 0.95


def test_elongated_clusters_beat_river_kmeans(rng: np.random.Generator) -> None:
    """Full covariances separate long parallel clusters that k-means cuts across."""
    n = 6_000
    labels = rng.integers(0, 2, n)
    X = np.column_stack([rng.normal(0.0, 6.0, n), 3.0 * labels + rng.normal(0.0, 0.5, n)])
    ours = GaussianMixtureClusterer(n_components=2, seed=0)
    theirs = cluster.KMeans(n_clusters=2, seed=0)
    for x in dicts(X):
        ours.learn_one(x)
        theirs.learn_one(x)
    ari = adjusted_rand_score(labels, [ours.predict_one(x) for x in dicts(X)])
    ari_kmeans = adjusted_rand_score(labels, [theirs.predict_one(x) for x in dicts(X)])
    assert ari >= 0.95
    assert ari > ari_kmeans + 0.3


# ---- update semantics ------------------------------------------------------------------------


def test_warm_up_then_one_online_em_step_per_learn_one(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 40)
    model = GaussianMixtureClusterer(n_components=3, init_size=10, seed=0)
    x = dicts(X[:1])[0]
    assert model.predict_one(x) == 0
    assert model.predict_proba_one(x) == {0: 1.0}
    assert model.score_one(x) == 0.0
    for i, row in enumerate(dicts(X[:9])):
        model.learn_one(row)
        assert not model.initialized, i
    assert model.predict_one(x) == 0
    model.learn_one(dicts(X[9:10])[0])
    assert model.initialized
    assert model.mixture.n_iter_ == 1  # the warm-up rows are the first update
    for i, row in enumerate(dicts(X[10:20]), start=2):
        model.learn_one(row)
        assert model.mixture.n_iter_ == i
    assert model.mixture.n_seen_ == 20


def test_batch_size_buffers_rows_into_one_update(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 60)
    model = GaussianMixtureClusterer(n_components=3, batch_size=10, init_size=20, seed=0)
    for row in dicts(X[:20]):
        model.learn_one(row)
    assert model.mixture.n_iter_ == 1
    for row in dicts(X[20:29]):
        model.learn_one(row)
    assert (model.mixture.n_iter_, model.mixture.n_seen_) == (1, 20)
    model.learn_one(dicts(X[29:30])[0])
    assert (model.mixture.n_iter_, model.mixture.n_seen_) == (2, 30)


def test_learn_many_is_one_update_and_matches_learn_one_batches(
    rng: np.random.Generator,
) -> None:
    X, _ = blobs(rng, 200)
    frame = pd.DataFrame(X, columns=["a", "b"])
    one = GaussianMixtureClusterer(n_components=3, batch_size=20, init_size=20, seed=5)
    many = GaussianMixtureClusterer(n_components=3, batch_size=20, init_size=20, seed=5)
    for start in range(0, 200, 20):
        for row in dicts(X[start : start + 20]):
            one.learn_one(row)
        many.learn_many(frame.iloc[start : start + 20])
    assert many.mixture.n_iter_ == one.mixture.n_iter_ == 10
    np.testing.assert_allclose(many.mixture.means_, one.mixture.means_, rtol=1e-10)
    np.testing.assert_allclose(many.mixture.covariances_, one.mixture.covariances_, rtol=1e-10)
    queries = frame.iloc[:50]
    assert many.predict_many(queries).tolist() == [one.predict_one(x) for x in dicts(X[:50])]


def test_learn_many_joins_pending_rows(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 100)
    model = GaussianMixtureClusterer(n_components=3, batch_size=10, init_size=30, seed=0)
    model.learn_many(pd.DataFrame(X[:30], columns=["a", "b"]))
    assert model.mixture.n_iter_ == 1
    for row in dicts(X[30:34]):
        model.learn_one(row)
    model.learn_many(pd.DataFrame(X[34:60], columns=["a", "b"]))
    assert (model.mixture.n_iter_, model.mixture.n_seen_) == (2, 60)


def test_many_methods_match_one_methods(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 500)
    model = GaussianMixtureClusterer(n_components=3, seed=2)
    model.learn_many(pd.DataFrame(X, columns=["a", "b"]))
    queries = pd.DataFrame(X[:40], columns=["a", "b"])
    queries.iloc[3, 0] = np.nan
    queries.index = range(100, 140)
    rows = [{k: v for k, v in row.items() if v == v} for row in queries.to_dict("records")]
    labels = model.predict_many(queries)
    proba = model.predict_proba_many(queries)
    scores = model.score_many(queries)
    assert labels.index.tolist() == list(range(100, 140))
    assert labels.tolist() == [model.predict_one(x) for x in rows]
    for i, x in enumerate(rows):
        np.testing.assert_allclose(
            proba.iloc[i].to_numpy(), list(model.predict_proba_one(x).values())
        )
        assert math.isclose(scores.iloc[i], model.score_one(x), rel_tol=1e-12)


def test_predict_proba_sums_to_one_and_score_is_the_log_density(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 1_000)
    model = GaussianMixtureClusterer(n_components=3, batch_size=100, seed=0)
    model.learn_many(pd.DataFrame(X, columns=["a", "b"]))
    x = {"a": 0.3, "b": -0.2}
    proba = model.predict_proba_one(x)
    assert set(proba) == {0, 1, 2}
    assert math.isclose(sum(proba.values()), 1.0)
    assert max(proba, key=proba.get) == model.predict_one(x)
    expected = model.mixture.score_samples(np.array([[0.3, -0.2]]))[0]
    assert math.isclose(model.score_one(x), expected, rel_tol=1e-12)


# ---- features --------------------------------------------------------------------------------


def test_missing_feature_is_marginalised_not_imputed(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 3_000)
    model = GaussianMixtureClusterer(n_components=3, batch_size=50, seed=0)
    model.learn_many(pd.DataFrame(X, columns=["a", "b"]))
    marginal = model.mixture.score_samples(np.array([[8.0, np.nan]]))[0]
    assert math.isclose(model.score_one({"a": 8.0}), marginal, rel_tol=1e-12)
    assert math.isclose(model.score_one({"a": 8.0, "b": None}), marginal, rel_tol=1e-12)
    # imputing b = 0 would give the joint density at (8, 0), a different number
    assert not math.isclose(model.score_one({"a": 8.0, "b": 0.0}), marginal, rel_tol=1e-3)
    # b missing: a = 0 cannot tell the clusters at (0, 0) and (0, 8) apart
    proba = sorted(model.predict_proba_one({"a": 0.0}).values())
    assert proba[0] < 1e-6
    assert proba[1] == pytest.approx(0.5, abs=0.05)


def test_learning_rows_with_missing_features(rng: np.random.Generator) -> None:
    X, labels = blobs(rng, 4_000)
    rows = dicts(X)
    for i in range(3, len(rows), 3):  # the first row is complete: it fixes the features
        del rows[i]["b" if i % 2 else "a"]
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    for x in rows:
        model.learn_one(x)
    assert (
        adjusted_rand_score(labels, model.predict_many(pd.DataFrame(X, columns=["a", "b"]))) > 0.95
    )


def test_feature_order_fixed_at_first_sight_and_new_features_counted(
    rng: np.random.Generator,
) -> None:
    X, _ = blobs(rng, 200)
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    assert model.feature_names == ()
    model.learn_one({"b": X[0, 1], "a": X[0, 0], "gone": None})
    assert model.feature_names == ("b", "a")
    for row in X[1:]:
        model.learn_one({"a": row[0], "new": 1.0, "b": row[1], "other": None})
    assert model.feature_names == ("b", "a")
    assert model.ignored_features == {"new": 199}
    # inference ignores new features without counting them
    before = model.score_one({"a": 1.0, "b": 1.0})
    assert model.score_one({"a": 1.0, "b": 1.0, "new": 1e9}) == before
    assert model.ignored_features == {"new": 199}
    # the column order of the model follows the first row
    means = model.mixture.means_
    assert sorted(means[:, 1].round().tolist()) == [0.0, 0.0, 8.0]


def test_learn_many_first_sight_and_new_columns(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 100)
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    frame = pd.DataFrame({"b": X[:50, 1], "empty": np.nan, "a": X[:50, 0]})
    model.learn_many(frame)
    assert model.feature_names == ("b", "a")
    later = pd.DataFrame({"a": X[50:, 0], "b": X[50:, 1], "new": 1.0})
    later.loc[later.index[:10], "new"] = None
    model.learn_many(later)
    assert model.ignored_features == {"new": 40}


def test_row_without_known_feature(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 300)
    model = GaussianMixtureClusterer(n_components=3, batch_size=30, seed=0)
    model.learn_many(pd.DataFrame(X, columns=["a", "b"]))
    with pytest.raises(ValidationError, match="no value for any of the features"):
        model.learn_one({"c": 1.0})
    assert model.ignored_features == {}
    # inference on it is the marginal over nothing: the weights, log-density 0
    proba = model.predict_proba_one({"c": 1.0})
    np.testing.assert_allclose(list(proba.values()), model.mixture.weights_)
    assert model.score_one({"a": None}) == pytest.approx(0.0, abs=1e-12)


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ({"a": "1.0", "b": 2.0}, "must be a real number"),
        ({"a": True, "b": 2.0}, "must be a real number"),
        ({"a": np.bool_(False), "b": 2.0}, "must be a real number"),
        ({"a": [1.0], "b": 2.0}, "must be a real number"),
        ({"a": complex(1, 1), "b": 2.0}, "must be a real number"),
        ({"a": math.inf, "b": 2.0}, "must be finite"),
        ({"a": -np.inf, "b": 2.0}, "must be finite"),
        ({"a": 10**400, "b": 2.0}, "does not fit a float"),
        ({}, "empty dict"),
    ],
)
@pytest.mark.parametrize("initialized", [False, True])
def test_bad_values_raise_and_leave_the_model_untouched(
    x: dict, message: str, initialized: bool, rng: np.random.Generator
) -> None:
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    if initialized:
        X, _ = blobs(rng, 40)
        for row in dicts(X):
            model.learn_one(row)
        assert model.initialized
    before = pickle.dumps(model)
    for method in (model.learn_one, model.predict_one, model.predict_proba_one, model.score_one):
        with pytest.raises(ValidationError, match=message):
            method(x)
    assert pickle.dumps(model) == before


def test_not_a_dict_and_bad_frames_raise() -> None:
    model = GaussianMixtureClusterer()
    with pytest.raises(ValidationError, match="must be a dict"):
        model.learn_one([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="first row to learn has no value"):
        model.learn_one({"a": None, "b": math.nan})
    assert model.feature_names == ()
    with pytest.raises(ValidationError, match="booleans"):
        model.learn_many(pd.DataFrame({"a": [True, False]}))
    with pytest.raises(ValidationError, match="must be finite"):
        model.learn_many(pd.DataFrame({"a": [1.0, np.inf]}))
    with pytest.raises(ValidationError, match="must be a real number"):
        model.learn_many(pd.DataFrame({"a": [1.0, "x"]}))
    with pytest.raises(ValidationError, match="at least one row"):
        model.learn_many(pd.DataFrame({"a": []}))
    with pytest.raises(ValidationError, match="pandas DataFrame"):
        model.learn_many(np.zeros((3, 2)))  # type: ignore[arg-type]
    assert model.feature_names == ()
    model.learn_many(pd.DataFrame({"a": [1.0, None], "b": pd.array([None, 2], dtype="Int64")}))
    assert model.feature_names == ("a", "b")
    with pytest.raises(ValidationError, match="no value for any known feature"):
        model.learn_many(pd.DataFrame({"a": [1.0, None], "b": [2.0, None]}))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_components": 0}, "n_components"),
        ({"batch_size": 0}, "batch_size"),
        ({"init_size": 0}, "init_size"),
        ({"covariance_type": "round"}, "covariance_type"),
        ({"reg_covar": -1.0}, "reg_covar"),
    ],
)
def test_bad_parameters_name_themselves(kwargs: dict, name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        GaussianMixtureClusterer(**kwargs)


def test_numpy_and_int_values_are_numbers(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 60)
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    for row in X:
        model.learn_one({"a": np.float32(row[0]), "b": round(row[1])})
    assert model.initialized
    assert isinstance(model.predict_one({"a": np.int64(0), "b": np.float64(8.0)}), int)


def test_constant_stream_keeps_a_bounded_warm_up_and_every_row() -> None:
    model = GaussianMixtureClusterer(n_components=3, init_size=5)
    for _ in range(4):
        model.learn_one({"a": 1.0, "b": 2.0})
    with pytest.warns(RefusedUpdateWarning, match="all 5 buffered rows are identical"):
        model.learn_one({"a": 1.0, "b": 2.0})
    for _ in range(995):
        model.learn_one({"a": 1.0, "b": 2.0})
    assert not model.initialized
    assert len(model.mixture.warmup_) <= 5  # the repeated row is held once, with its count
    assert model.mixture.status.n_warmup == 1_000
    for value in (3.0, 4.0):
        model.learn_one({"a": value, "b": 2.0})
    assert model.initialized
    assert model.mixture.n_seen_ == 1_002


def test_degenerate_first_rows_warn_and_wait_for_more() -> None:
    model = GaussianMixtureClusterer(n_components=1, reg_covar=0.0, init_size=5)
    for t in range(4):
        model.learn_one({"a": float(t), "b": 2.0 * t})
    with pytest.warns(RefusedUpdateWarning, match="could not be initialised"):
        model.learn_one({"a": 4.0, "b": 8.0})  # five points on a line: singular covariance
    assert not model.initialized
    assert model.predict_one({"a": 1.0, "b": 1.0}) == 0
    model.learn_one({"a": 1.0, "b": 0.0})
    assert model.initialized
    assert model.mixture.n_seen_ == 6


# ---- river integration -----------------------------------------------------------------------


def test_pipeline_with_standard_scaler(rng: np.random.Generator) -> None:
    X, labels = blobs(rng, 3_000, centres=CENTRES * 1000.0, spread=1000.0)
    model = preprocessing.StandardScaler() | GaussianMixtureClusterer(n_components=3, seed=0)
    assert isinstance(model, compose.Pipeline)
    for x, _ in stream.iter_array(X, labels, feature_names=["a", "b"]):
        model.learn_one(x)
    frame = pd.DataFrame(X, columns=["a", "b"])
    predicted = model.predict_many(frame)
    assert adjusted_rand_score(labels, predicted) > 0.95
    assert predicted.tolist()[:100] == [model.predict_one(x) for x in dicts(X[:100])]
    scaled_means = model["GaussianMixtureClusterer"].mixture.means_
    assert np.abs(scaled_means).max() < 3.0  # it learned standardised features
    model.learn_many(frame.iloc[:300])


def test_iter_frame_source(rng: np.random.Generator) -> None:
    X, labels = blobs(rng, 1_000)
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = GaussianMixtureClusterer(n_components=3, seed=0)
    for x, _ in stream.iter_frame(frame, pd.Series(labels)):
        model.learn_one(x)
    assert adjusted_rand_score(labels, model.predict_many(frame)) > 0.95


def test_clone_and_pickle(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 300)
    model = GaussianMixtureClusterer(n_components=3, schedule=PowerDecay(0.7, 1.0), seed=4)
    for row in dicts(X):
        model.learn_one(row)
    restored = pickle.loads(pickle.dumps(model))
    queries = dicts(X[:30])
    assert [restored.predict_one(x) for x in queries] == [model.predict_one(x) for x in queries]
    for row in dicts(X[:20]):
        model.learn_one(row)
        restored.learn_one(row)
    np.testing.assert_array_equal(restored.mixture.means_, model.mixture.means_)

    fresh = model.clone()
    assert not fresh.initialized
    assert fresh.feature_names == ()
    assert fresh.schedule == PowerDecay(0.7, 1.0)
    assert fresh.schedule is not model.schedule
    assert repr(fresh) == repr(model)
    copied = copy.deepcopy(model)
    assert copied.mixture is not model.mixture


def test_same_seed_same_model(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 500)
    a = GaussianMixtureClusterer(n_components=3, seed=9)
    b = a.clone()
    for row in dicts(X):
        a.learn_one(row)
        b.learn_one(row)
    np.testing.assert_array_equal(a.mixture.means_, b.mixture.means_)


def test_importing_streamem_does_not_import_river() -> None:
    code = "import sys, streamem; streamem.PowerDecay; assert 'river' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, streamem.river; assert 'river' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_warning_on_a_normal_stream(rng: np.random.Generator) -> None:
    X, _ = blobs(rng, 2_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GaussianMixtureDetector(n_components=3, seed=0)
        for row in dicts(X):
            model.score_one(row)
            model.learn_one(row)
