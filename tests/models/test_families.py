"""The registry is THE list of families: every other list derives from it and agrees with it,
and the layers above ``models/`` (the daemon's service/ and the river adapters) name no family."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamem
from streamem.models.protocol import FamilySpec, StreamingModel, StreamingOptions
from streamem.models.registry import (
    estimator_specs,
    family_names,
    family_spec,
    family_specs,
    model_class,
    snapshot_schema,
)
from streamem.service.config import ModelSettings
from streamem.service.snapshot import snapshot_schema as published_schema
from tests.models.family_rows import rows_for

ROOT = Path(streamem.__file__).parent
SPECS = family_specs()
FAMILY_PACKAGES = sorted({spec.estimator.partition(":")[0].rpartition(".")[0] for spec in SPECS})


def _trained(spec: FamilySpec, rng: np.random.Generator) -> StreamingModel:
    """A model of ``spec``'s family after one update on a small batch of its input kind."""
    vocabulary = [f"w{i}" for i in range(12)] if "vocabulary" in spec.options else None
    model = spec.load().from_options(
        StreamingOptions(n_components=2, init_size=60, seed=0, vocabulary=vocabulary)
    )
    if spec.input_kind == "documents":
        X = rng.poisson(1.0, size=(120, 12)).astype(np.float64)
    else:
        X = rows_for(spec.name, rng, 120)
    model.learn(model.batch_from_rows(X))
    model.learn(model.batch_from_rows(X))
    assert model.status.initialized
    return model


def test_names_are_unique_and_specs_are_found_by_name() -> None:
    assert len(set(family_names())) == len(family_names()) == len(SPECS)
    for spec in SPECS:
        assert family_spec(spec.name) is spec
        assert model_class(spec.name) is spec.load()
    formats = [model_class(name).FORMAT for name in family_names()]
    assert len(set(formats)) == len(formats)


def test_the_configs_family_choices_are_the_registry() -> None:
    choices = ModelSettings.model_json_schema()["properties"]["family"]["enum"]
    assert tuple(choices) == family_names()
    assert ModelSettings().family == family_names()[0]


def test_streamem_exports_one_estimator_per_family() -> None:
    names = {spec.estimator_name for spec in SPECS}
    assert names == set(estimator_specs())
    assert names <= set(streamem.__all__)
    for spec in SPECS:
        assert getattr(streamem, spec.estimator_name) is spec.load()


def test_the_published_snapshot_schema_is_the_registrys() -> None:
    """The schema file is rebuilt from the families' branches (``python -m
    streamem.models.registry`` rewrites it): the family enum, the oneOf branches and the
    families' fields agree with the declarations."""
    path = ROOT / "schemas" / "model-snapshot.schema.json"
    published = json.loads(path.read_text())
    assert snapshot_schema(published) == published == published_schema()
    assert [branch["title"] for branch in published["oneOf"]] == list(family_names())
    assert published["properties"]["family"]["enum"] == list(family_names())


@pytest.mark.parametrize("spec", SPECS, ids=family_names())
def test_each_declaration_agrees_with_its_estimator(
    spec: FamilySpec, rng: np.random.Generator
) -> None:
    kind = spec.load()
    assert kind.family == spec.name
    assert kind.sequential == spec.sequential
    assert set(spec.options) <= {field.name for field in dataclasses.fields(StreamingOptions)}
    model = _trained(spec, rng)
    hyper = model.to_dict()["hyperparameters"]
    assert set(spec.structural) <= set(hyper)
    branch = spec.snapshot_branch()
    assert branch["title"] == spec.name
    fields = set(model.parameters_document()) - {"n_features"}  # a common field
    assert set(branch["required"]) <= fields <= set(branch["properties"])


@pytest.mark.parametrize("spec", SPECS, ids=family_names())
def test_a_family_scorable_alone_scores_every_row(
    spec: FamilySpec, rng: np.random.Generator
) -> None:
    if not spec.scorable_alone:
        pytest.skip(f"{spec.name} declares its units not scorable alone")
    model = _trained(spec, rng)
    X = rows_for(spec.name, rng, 7)
    assert np.asarray(model.log_density(model.batch_from_rows(X))).shape == (7,)


def _family_words(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant of ``path`` that names a family (docstrings
    excluded: they may show an example) and of every import of a family's package."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: list[tuple[int, str]] = []
    names = set(family_names())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and id(node) not in docstrings
            and isinstance(node.value, str)
            and node.value in names
        ):
            found.append((node.lineno, node.value))
        module: Any = getattr(node, "module", None) if isinstance(node, ast.ImportFrom) else None
        if module and any(module.startswith(package) for package in FAMILY_PACKAGES):
            found.append((node.lineno, f"import from {module}"))
    return found


def test_the_daemon_names_no_family() -> None:
    """service/ decides by the declarations (input kind, sequential, scorable alone,
    structural hyper-parameters, options), never by a family's name or package."""
    found = {
        path.name: words
        for path in sorted((ROOT / "service").glob("*.py"))
        if (words := _family_words(path))
    }
    assert found == {}  # the documents' vocabulary is shared (models/common), not a family's


def test_the_river_adapters_name_no_family() -> None:
    """The adapters build their estimator by class; no family name decides anything."""
    names = set(family_names())
    for path in sorted((ROOT / "river").glob("*.py")):
        words = [word for word in _family_words(path) if word[1] in names]
        assert words == [], path.name
