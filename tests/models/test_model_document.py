"""Model documents are validated on load: a corrupted one is refused naming its field (issue 15).

Each corruption below is a real way for a ``.model.json`` file or a checkpoint to go wrong (edited
by hand, truncated, written by another version); none may load, and the error must say which
field is wrong. The schema file agrees with the documents the library writes and is itself a
valid JSON Schema (checked with the ``jsonschema`` package, which the library does not need).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import numpy as np
import pytest

from streamem import GaussianMixture, HalfLife, ValidationError
from streamem.models.mixture.document import check_mixture_parameters, model_schema

Document = dict[str, Any]


def _streamed(covariance_type: str = "full") -> GaussianMixture:
    X = np.random.default_rng(3).normal(size=(400, 2)) + np.repeat([[0, 0], [6, 6]], 200, axis=0)
    model = GaussianMixture(3, covariance_type=covariance_type, init_size=100, random_state=0)
    for batch in np.array_split(np.random.default_rng(4).permutation(X), 4):
        model.partial_fit(batch)
    return model


@pytest.fixture(scope="module")
def document() -> Document:
    return json.loads(_streamed().to_json())


def _set(path: str, value: Any) -> Callable[[Document], None]:
    def corrupt(document: Document) -> None:
        *parents, last = path.split(".")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value

    return corrupt


def _drop(path: str) -> Callable[[Document], None]:
    def corrupt(document: Document) -> None:
        *parents, last = path.split(".")
        node = document
        for part in parents:
            node = node[part]
        del node[last]

    return corrupt


def _reshape_means(document: Document) -> None:
    document["state"]["engine"]["params"]["means"] = document["state"]["engine"]["params"]["means"][
        :2
    ]


def _ragged_covariance(document: Document) -> None:
    document["state"]["engine"]["params"]["covariances"][1] = [[1.0, 0.0]]


def _not_positive_definite(document: Document) -> None:
    document["state"]["engine"]["params"]["covariances"][0] = [[1.0, 2.0], [2.0, 1.0]]


def _short_warmup_row(document: Document) -> None:
    document["state"]["warmup"] = [[1.0, 2.0], [3.0]]


CORRUPTIONS: dict[str, tuple[Callable[[Document], None], str]] = {
    "2 weights for 3 means": (
        _set("state.engine.params.weights", [0.5, 0.5]),
        "state.engine.params.weights must have shape (3,)",
    ),
    "n_components three": (
        _set("hyperparameters.n_components", "three"),
        "hyperparameters.n_components must be an integer, got 'three'",
    ),
    "n_components zero": (
        _set("hyperparameters.n_components", 0),
        "hyperparameters.n_components must be >= 1, got 0",
    ),
    "no hyperparameters": (_drop("hyperparameters"), "hyperparameters is missing"),
    "not a model": (_drop("format"), "not a streamem.GaussianMixture document"),
    "format version 2": (
        _set("format_version", 2),
        "format_version 2 is not supported (this streamem reads 1)",
    ),
    "unknown covariance type": (
        _set("hyperparameters.covariance_type", "banded"),
        'hyperparameters.covariance_type must be one of "full", "tied", "diag", "spherical"',
    ),
    "unknown hyper-parameter": (
        _set("hyperparameters.n_clusters", 3),
        "hyperparameters.n_clusters is not a known field",
    ),
    "means of 2 rows": (
        _reshape_means,
        "state.engine.params.means must have shape (3, 2)",
    ),
    "ragged covariances": (
        _ragged_covariance,
        "state.engine.params.covariances must be an array of numbers of one shape",
    ),
    "covariance not positive definite": (
        _not_positive_definite,
        "state.engine.params.covariances[0] must be symmetric positive definite",
    ),
    "weights not summing to 1": (
        _set("state.engine.params.weights", [0.5, 0.4, 0.3]),
        "state.engine.params.weights must sum to 1, got a sum of 1.2",
    ),
    "negative weight": (
        _set("state.engine.params.weights", [1.2, -0.1, -0.1]),
        "state.engine.params.weights must be >= 0",
    ),
    "negative n_seen": (_set("state.engine.n_seen", -5), "state.engine.n_seen must be >= 0"),
    "fractional n_seen": (
        _set("state.engine.n_seen", 10.5),
        "state.engine.n_seen must be an integer, got 10.5",
    ),
    "n_seen as text": (
        _set("state.engine.n_seen", "400"),
        "state.engine.n_seen must be an integer, got '400'",
    ),
    "missing statistics key": (
        _drop("state.engine.stats.resp"),
        "state.engine.stats.resp is missing",
    ),
    "missing state key": (_drop("state.n_features_in"), "state.n_features_in is missing"),
    "a mean that is a string": (
        _set("state.engine.params.means", [["a", 1.0], [0.0, 1.0], [2.0, 2.0]]),
        "state.engine.params.means[0][0] must be a number or an array, got 'a'",
    ),
    "three feature names for two features": (
        _set("state.feature_names_in", ["a", "b", "c"]),
        "state.feature_names_in must hold n_features_in = 2 names, got 3",
    ),
    "a warm-up row of one value": (
        _short_warmup_row,
        "state.warmup[1] must hold n_features_in = 2 values, got 1",
    ),
    "converged as a string": (
        _set("state.converged", "yes"),
        "state.converged must be true or false, got 'yes'",
    ),
    "unknown schedule": (
        _set("state.engine.schedule", {"kind": "cosine"}),
        'state.engine.schedule.kind must be one of "power", "constant", "half_life"',
    ),
    "a negative precision factor": (
        _set("state.engine.params.precisions_cholesky", [[[-1.0, 0.0], [0.0, 1.0]]] * 3),
        "state.engine.params.precisions_cholesky must have a positive diagonal",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_document_is_refused_naming_the_field(document: Document, name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    broken = copy.deepcopy(document)
    corrupt(broken)
    with pytest.raises(ValidationError) as raised:
        GaussianMixture.from_json(json.dumps(broken))
    message = " ".join(str(raised.value).split())
    assert expected in message
    assert message.startswith("model document: ")


def test_the_uncorrupted_document_loads(document: Document) -> None:
    model = GaussianMixture.from_dict(copy.deepcopy(document))
    assert model.n_seen_ == 400


def test_json_that_is_not_json_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="model document: not JSON"):
        GaussianMixture.from_json('{"format": ')
    with pytest.raises(ValidationError, match="expected a JSON object, got"):
        GaussianMixture.from_json("[1, 2]")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_the_schema_accepts_every_document_the_library_writes(covariance_type: str) -> None:
    validator = jsonschema.Draft202012Validator(model_schema())
    X = np.random.default_rng(0).normal(size=(300, 2))
    models = [
        _streamed(covariance_type),
        GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X),
        GaussianMixture(2, covariance_type=covariance_type),
        GaussianMixture(
            2,
            covariance_type=covariance_type,
            schedule=HalfLife(500),
            averaging_start=1,
            weights_init=[0.5, 0.5],
            fixed=("weights",),
            init_size=400,
        ).partial_fit(X),  # still warming up: rows in the buffer
    ]
    for model in models:
        document = json.loads(model.to_json())
        assert list(validator.iter_errors(document)) == []
        GaussianMixture.from_dict(document)


def test_the_schema_is_a_valid_json_schema_and_agrees_on_the_structural_corruptions(
    document: Document,
) -> None:
    jsonschema.Draft202012Validator.check_schema(model_schema())
    validator = jsonschema.Draft202012Validator(model_schema())
    for name in ("n_components three", "no hyperparameters", "unknown hyper-parameter"):
        broken = copy.deepcopy(document)
        CORRUPTIONS[name][0](broken)
        assert list(validator.iter_errors(broken)), name


def test_the_parameter_check_is_callable_on_its_own() -> None:
    params = {
        "weights": [0.25, 0.75],
        "means": [[0.0, 0.0], [1.0, 1.0]],
        "covariances": [[1.0, 1.0], [1.0, 1.0]],
        "precisions_cholesky": [[1.0, 1.0], [1.0, 1.0]],
    }
    check_mixture_parameters(params, "diag", 2, 2, "checkpoint", "model.params")
    params["covariances"] = [[1.0, 0.0], [1.0, 1.0]]
    with pytest.raises(ValidationError, match=r"checkpoint: model.params.covariances must be > 0"):
        check_mixture_parameters(params, "diag", 2, 2, "checkpoint", "model.params")
