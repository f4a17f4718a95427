"""The model protocol and the family registry, as the faces above models/ use them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamem.errors import ValidationError
from streamem.models.mixture.gaussian_mixture import GaussianMixture
from streamem.models.protocol import ModelStatus, StreamingModel, StreamingOptions
from streamem.models.registry import family_names, model_class, model_from_dict
from streamem.synthetic import random_mixture_sample
from tests.models.family_rows import rows_for


def test_every_registered_family_implements_the_protocol(rng: np.random.Generator) -> None:
    for family in family_names():
        kind = model_class(family)
        assert kind.family == family
        model = kind.from_options(OPTIONS)
        model.learn(model.batch_from_rows(rows_for(family, rng, 100)))
        assert isinstance(model, StreamingModel)


OPTIONS = StreamingOptions(n_components=2, covariance_type="diag", init_size=50, n_init=2, seed=3)


def test_status_follows_the_model_through_warm_up_and_updates(rng: np.random.Generator) -> None:
    X, _ = random_mixture_sample(rng, 300, n_features=2, n_components=2, spread=4.0)
    model = GaussianMixture.from_options(OPTIONS)
    assert model.status == ModelStatus()
    model.learn(X[:30])
    assert model.status.n_warmup == 30
    assert not model.status.initialized
    model.learn(X[30:100])
    model.learn(X[100:])
    status = model.status
    assert status.initialized
    assert (status.n_seen, status.n_warmup, status.n_updates) == (300, 0, 2)
    assert status.record is model.monitor_.last
    assert sum(status.weights) == pytest.approx(1.0)
    np.testing.assert_allclose(model.log_density(X), model.score_samples(X))


def test_any_family_document_comes_back_through_the_registry(rng: np.random.Generator) -> None:
    X, _ = random_mixture_sample(rng, 200, n_features=3, n_components=2, spread=4.0)
    model = GaussianMixture(2, random_state=0).fit(X)
    restored = model_from_dict(json.loads(model.to_json()))
    assert isinstance(restored, GaussianMixture)
    assert restored.status == model.status
    np.testing.assert_array_equal(restored.log_density(X), model.log_density(X))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "a model document is a JSON object, got list"),
        ({"format": "sklearn.pickle"}, "format must be one of"),
        ({}, "got None"),
    ],
)
def test_the_registry_refuses_what_is_not_a_model_document(document: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model_from_dict(document)  # type: ignore[arg-type]


def test_an_unknown_family_is_named() -> None:
    with pytest.raises(ValidationError, match=r"family must be one of .* got 'lda2'"):
        model_class("lda2")


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": ', "model document: not JSON"),
        ("[" * 100_000, "model document: not JSON \\(nested too deeply\\)"),
        ("[1, 2]", "model document: expected a JSON object, got \\[1, 2\\]"),
    ],
)
def test_every_family_refuses_text_that_is_not_its_document(
    family: str, text: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        model_class(family).from_json(text)
