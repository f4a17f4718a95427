"""Each family's per-record results against the estimator's own predict / predict_proba /
score_samples / filter, the sequence families' carry, and the result schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import streamem
from streamem import (
    GaussianHMM,
    GaussianMixture,
    LatentDirichletAllocation,
    LinearGaussianSSM,
    PoissonMixture,
)
from streamem.models.protocol import FamilySpec, StreamingOptions
from streamem.models.registry import family_spec, family_specs, results_schema
from streamem.models.results import FamilyResults, top_pairs
from streamem.service.results import result_schema
from tests.models.family_rows import rows_for

ROOT = Path(streamem.__file__).parent


def _probabilities(pairs: list[list[float]], k: int) -> np.ndarray:
    out = np.zeros(k)
    for label, probability in pairs:
        out[int(label)] = probability
    return out


def test_the_result_schema_file_is_the_registrys() -> None:
    path = ROOT / "schemas" / "result.schema.json"
    published = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(published)
    assert results_schema(published) == published == result_schema()


def test_top_pairs_are_the_largest_in_order() -> None:
    p = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert top_pairs(p, 2) == [[[1, 0.5], [2, 0.3]], [[0, 0.6], [2, 0.3]]]
    assert [pair[0] for pair in top_pairs(p, None)[0]] == [1, 2, 0]


@pytest.mark.parametrize("spec", [s for s in family_specs() if s.results], ids=lambda s: s.name)
def test_every_familys_results_validate_against_the_schema(
    spec: FamilySpec, rng: np.random.Generator
) -> None:
    vocabulary = [f"w{i}" for i in range(20)] if "vocabulary" in spec.options else None
    model = spec.load().from_options(
        StreamingOptions(n_components=2, init_size=60, seed=0, vocabulary=vocabulary)
    )
    X = rows_for(spec.name, rng, 200)
    keys = tuple(f"k{i % 3}" for i in range(len(X))) if spec.sequential else None
    model.learn(model.batch_from_rows(X[:100], None if keys is None else keys[:100]))
    columns = model_spec(spec.name).compute(model, X[100:], None if keys is None else keys[100:], 2)
    assert len(columns.fields) == 100
    validator = jsonschema.Draft202012Validator(result_schema())
    scores = [None] * 100 if columns.scores is None else columns.scores.tolist()
    for fields, score in zip(columns.fields, scores, strict=True):
        result = {
            "family": spec.name,
            "source": {"topic": "t", "partition": 0, "offset": 1},
            "model_version": 1,
            "warmup": False,
            "anomaly": False,
            "score": score,
            "error": None,
            **fields,
        }
        validator.validate(json.loads(json.dumps(result, allow_nan=False)))
        missing = {k: v for k, v in result.items() if k not in fields}
        with pytest.raises(jsonschema.ValidationError):  # the family's fields are required
            validator.validate(missing)
        validator.validate({**missing, "error": "ValidationError: why"})  # unless unscored


def test_the_gaussian_mixtures_results_are_its_predict_proba_and_score_samples(
    rng: np.random.Generator,
) -> None:
    X = rows_for("gaussian_mixture", rng, 2000, n_features=3)
    model = GaussianMixture(3, random_state=0).partial_fit(X[:1000])
    X_new = X[1000:].copy()
    X_new[::7, 1] = np.nan  # missing coordinates are marginalised, as predict does
    family = model_spec("gaussian_mixture")
    columns = family.compute(model, X_new, None, None)
    labels = np.array([f["component"] for f in columns.fields])
    np.testing.assert_array_equal(labels, model.predict(X_new))  # byte for byte
    density = np.array([f["log_density"] for f in columns.fields])
    np.testing.assert_array_equal(density, model.score_samples(X_new))
    np.testing.assert_array_equal(columns.scores, -density)
    proba = np.array([_probabilities(f["probabilities"], 3) for f in columns.fields])
    np.testing.assert_allclose(proba, model.predict_proba(X_new), rtol=0, atol=1e-15)
    top = family.compute(model, X_new, None, 1)
    assert [f["probabilities"][0][0] for f in top.fields] == labels.tolist()


def test_the_poisson_mixtures_results_are_its_predict_proba_and_score_samples(
    rng: np.random.Generator,
) -> None:
    X = rows_for("poisson_mixture", rng, 1000)
    model = PoissonMixture(2, random_state=0).fit(X)
    columns = model_spec("poisson_mixture").compute(model, X, None, None)
    np.testing.assert_array_equal([f["component"] for f in columns.fields], model.predict(X))
    np.testing.assert_array_equal(
        [f["log_density"] for f in columns.fields], model.score_samples(X)
    )
    proba = np.array([_probabilities(f["probabilities"], 2) for f in columns.fields])
    np.testing.assert_array_equal(proba, model.predict_proba(X))


def test_the_hmms_results_continue_each_keys_filter_as_learning_does(
    rng: np.random.Generator,
) -> None:
    X = rows_for("gaussian_hmm", rng, 1200)
    keys = tuple(f"sensor-{i % 3}" for i in range(len(X)))
    model = GaussianHMM(2, init_size=300, random_state=0)
    model.learn(model.batch_from_rows(X[:600], keys[:600]))
    family = model_spec("gaussian_hmm")
    for start in range(600, 1200, 200):  # score, then learn, batch after batch
        rows, batch_keys = X[start : start + 200], keys[start : start + 200]
        columns = family.compute(model, rows, batch_keys, None)
        batch = model.batch_from_rows(rows, batch_keys)
        np.testing.assert_array_equal(
            [f["log_density"] for f in columns.fields], model.log_density(batch)
        )
        filtered = np.array([_probabilities(f["probabilities"], 2) for f in columns.fields])
        np.testing.assert_array_equal(filtered, batch.in_arrival_order(model.filtered(batch)))
        assert [f["state"] for f in columns.fields] == filtered.argmax(axis=1).tolist()
        model.learn(batch)
        for key in set(batch_keys):  # the carried filter is the key's last result's
            last = max(i for i, k in enumerate(batch_keys) if k == key)
            np.testing.assert_allclose(
                model.stream_filter(key), filtered[last], rtol=1e-12, atol=1e-15
            )


def test_the_hmms_filter_of_a_new_key_ends_where_hmmlearn_smooths_its_last_step(
    rng: np.random.Generator,
) -> None:
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    X = rows_for("gaussian_hmm", rng, 800)
    model = GaussianHMM(2, "full", random_state=0).fit(X)
    reference = hmmlearn.GaussianHMM(2, covariance_type="full")
    reference.startprob_, reference.transmat_ = model.startprob_, model.transmat_
    reference.n_features = X.shape[1]
    reference.means_, reference.covars_ = model.means_, model.covariances_
    rows = X[:50]
    columns = model_spec("gaussian_hmm").compute(model, rows, ("new",) * 50, None)
    last = _probabilities(columns.fields[-1]["probabilities"], 2)
    # The filter at a sequence's last step is the smoother's there.
    np.testing.assert_allclose(last, reference.predict_proba(rows)[-1], atol=1e-9)
    total = sum(f["log_density"] for f in columns.fields)
    np.testing.assert_allclose(total, reference.score(rows), rtol=1e-10)


def test_the_state_space_results_are_its_filter_and_the_innovations(
    rng: np.random.Generator,
) -> None:
    truth = LinearGaussianSSM(
        n_dim_state=2,
        transition_matrices=np.array([[0.9, 0.1], [0.0, 0.8]]),
        observation_matrices=np.array([[1.0, 0.0], [0.5, 1.0]]),
        transition_covariance=0.1 * np.eye(2),
        observation_covariance=0.2 * np.eye(2),
        em_vars=(),
    )
    truth.fit(rng.normal(size=(20, 2)))  # fixed parameters: fit only makes it usable
    _, Y = truth.sample(3000, random_state=1)
    family = model_spec("linear_gaussian_ssm")
    columns = family.compute(truth, Y, ("new",) * len(Y), None)
    means, covariances = truth.filter(Y)
    np.testing.assert_allclose([f["state_mean"] for f in columns.fields], means, atol=1e-10)
    np.testing.assert_allclose(
        [f["state_variance"] for f in columns.fields],
        np.diagonal(covariances, axis1=1, axis2=2),
        atol=1e-10,
    )
    np.testing.assert_allclose(
        sum(f["log_density"] for f in columns.fields), truth.loglikelihood(Y), rtol=1e-10
    )
    forecast = np.array([f["forecast"] for f in columns.fields])
    np.testing.assert_allclose(
        np.array([f["innovation"] for f in columns.fields]), Y - forecast, atol=1e-12
    )
    # Under the true model the normalised innovations squared are chi-squared with 2 degrees
    # of freedom: mean 2, standard error 2 / sqrt(3000) = 0.037; 5 standard errors allowed.
    nis = np.array([f["normalized_innovation"] for f in columns.fields])
    assert abs(nis[100:].mean() - 2.0) < 0.19
    np.testing.assert_array_equal(columns.scores, nis)
    # A key that continues its carried filter (learned, parameters held fixed) goes on as the
    # filter of the whole series does.
    truth.learn(truth.batch_from_rows(Y[:1000], ("a",) * 1000))
    continued = family.compute(truth, Y[1000:], ("a",) * 2000, None)
    np.testing.assert_allclose(
        [f["state_mean"] for f in continued.fields], means[1000:], rtol=1e-9, atol=1e-9
    )


def test_the_topic_models_results_are_its_transforms_top_topics(
    rng: np.random.Generator,
) -> None:
    X = rows_for("lda", rng, 300)
    model = LatentDirichletAllocation(3, random_state=0).fit(X)
    columns = model_spec("lda").compute(model, X, None, 2)
    mixture = model.transform(X)
    assert [f["topics"] for f in columns.fields] == top_pairs(mixture, 2)
    assert columns.scores is None


def model_spec(name: str) -> FamilyResults:
    """The declared results of the family ``name``."""
    results = family_spec(name).result_family()
    assert results is not None
    return results
