"""THE list of families: one line per family, naming the declaration its package makes.

Everything above ``models/`` (the configuration's ``model.family`` choices, the published
snapshot's schema, the daemon's decoding, guard and checkpoint check, ``streamem``'s top-level
names) derives from this list through each family's
:class:`~streamem.models.protocol.FamilySpec`. A declaration is light (the estimator's module
is imported only when the family is used), so ``import streamem`` stays light.

Examples
--------
>>> model_class("gaussian_mixture").__name__
'GaussianMixture'
>>> family_names()[:4]
('gaussian_mixture', 'gaussian_hmm', 'linear_gaussian_ssm', 'lda')
>>> family_spec("lda").input_kind
'documents'
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import sys
from typing import Any

from streamem.errors import ValidationError, format_mismatch
from streamem.models.protocol import FamilySpec, StreamingModel

_DECLARATIONS: tuple[str, ...] = (
    "streamem.models.mixture:GAUSSIAN_MIXTURE",
    "streamem.models.hmm:GAUSSIAN_HMM",
    "streamem.models.state_space:LINEAR_GAUSSIAN_SSM",
    "streamem.models.topics:LDA",
    "streamem.models.hmm:POISSON_HMM",
    "streamem.models.hmm:CATEGORICAL_HMM",
    "streamem.models.mixture:POISSON_MIXTURE",
)
"""``"package:NAME"`` of each family's declaration, in the order the families were added."""


@functools.cache
def _specs() -> dict[str, FamilySpec]:
    specs: dict[str, FamilySpec] = {}
    for where in _DECLARATIONS:
        spec = _declared(where)
        specs[spec.name] = spec
    return specs


def register(spec: FamilySpec) -> None:
    """Add a family defined outside streamem (a plug-in) after those of the list above.

    Raises
    ------
    ValidationError
        If a family of that name is already registered.
    """
    specs = _specs()
    if spec.name in specs:
        raise ValidationError(f"family {spec.name!r} is already registered")
    specs[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a family that :func:`register` added (the built-in ones stay)."""
    if any(_declared(where).name == name for where in _DECLARATIONS):
        raise ValidationError(f"family {name!r} is built in and cannot be removed")
    _specs().pop(name, None)


def _declared(where: str) -> FamilySpec:
    module, _, name = where.partition(":")
    spec: FamilySpec = getattr(importlib.import_module(module), name)
    return spec


def family_names() -> tuple[str, ...]:
    """The names of the families, in the order they were added."""
    return tuple(_specs())


def family_specs() -> tuple[FamilySpec, ...]:
    """The declarations of the families, in the order they were added."""
    return tuple(_specs().values())


def family_spec(family: str) -> FamilySpec:
    """The declaration of ``family``.

    Raises
    ------
    ValidationError
        If no family has that name.
    """
    try:
        return _specs()[family]
    except (KeyError, TypeError):
        raise ValidationError(
            f"model family must be one of {list(_specs())}, got {family!r}"
        ) from None


def model_class(family: str) -> type[StreamingModel]:
    """The estimator class of ``family``.

    Raises
    ------
    ValidationError
        If no family has that name.
    """
    return family_spec(family).load()


def estimator_specs() -> dict[str, FamilySpec]:
    """Estimator class name -> its family's declaration (``streamem``'s top-level names).

    Examples
    --------
    >>> estimator_specs()["GaussianHMM"].name
    'gaussian_hmm'
    """
    return {spec.estimator_name: spec for spec in _specs().values()}


def model_from_dict(document: dict[str, Any]) -> StreamingModel:
    """Rebuild any family's model from its ``to_dict`` document (its ``format`` decides).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import LinearGaussianSSM
    >>> fitted = LinearGaussianSSM(n_dim_state=1).partial_fit(np.arange(50.0))
    >>> type(model_from_dict(fitted.to_dict())).__name__
    'LinearGaussianSSM'

    Raises
    ------
    ValidationError
        If the document is not a streamem model document.
    """
    if not isinstance(document, dict):
        raise ValidationError(f"a model document is a JSON object, got {type(document).__name__}")
    fmt = document.get("format")
    for family in _specs():
        kind = model_class(family)
        if getattr(kind, "FORMAT", None) == fmt:
            return kind.from_dict(document)
    known = [getattr(model_class(family), "FORMAT", None) for family in _specs()]
    raise ValidationError(format_mismatch(document, [str(name) for name in known]))


def snapshot_schema(base: dict[str, Any]) -> dict[str, Any]:
    """The published snapshot's schema with its family parts rebuilt from the declarations.

    ``base`` is the schema document (``streamem/schemas/model-snapshot.schema.json``); its
    common fields (those it requires of every snapshot) are kept, and the ``family`` enum, the
    ``oneOf`` branches and the families' field definitions come from each family's
    :meth:`~streamem.models.protocol.FamilySpec.snapshot_branch`, in the registry's order. A
    family field defined by two families must be defined alike.

    Run ``python -m streamem.models.registry`` to rewrite the schema file after adding a family.

    Raises
    ------
    ValueError
        If two families define one field differently.
    """
    schema = copy.deepcopy(base)
    branches = [spec.snapshot_branch() for spec in _specs().values()]
    common = _common_fields(base, list(_specs()))
    schema["oneOf"] = [
        {
            "title": branch["title"],
            "properties": {"family": {"const": branch["title"]}},
            "required": branch["required"],
        }
        for branch in branches
    ]
    schema["properties"] = {**common, **_family_fields("snapshot", branches)}
    return schema


def results_schema(base: dict[str, Any]) -> dict[str, Any]:
    """The result record's schema with its family parts rebuilt from the declarations.

    ``base`` is the schema document (``streamem/schemas/result.schema.json``); its common
    fields are kept, and the ``family`` enum, the ``oneOf`` branches (one per family that
    declares :class:`~streamem.models.results.FamilyResults`: its fields are required once
    ``warmup`` is false, unless ``error`` says why the record could not be scored) and the
    families' field definitions come from the declarations.

    Run ``python -m streamem.models.registry results`` to rewrite the schema file.

    Raises
    ------
    ValueError
        If two families define one field differently.
    """
    schema = copy.deepcopy(base)
    branches = []
    for spec in _specs().values():
        results = spec.result_family()
        if results is not None:
            branches.append({"title": spec.name, **results.branch})
    schema["oneOf"] = [
        {
            "title": branch["title"],
            "properties": {"family": {"const": branch["title"]}},
            "if": {"properties": {"warmup": {"const": False}, "error": {"const": None}}},
            "then": {"required": branch["required"]},
        }
        for branch in branches
    ]
    common = _common_fields(base, [branch["title"] for branch in branches])
    schema["properties"] = {**common, **_family_fields("result", branches)}
    return schema


def _common_fields(base: dict[str, Any], families: list[str]) -> dict[str, Any]:
    """The fields that ``base`` requires of every document, ``family`` naming ``families``."""
    common = {
        field: definition
        for field, definition in base["properties"].items()
        if field in base["required"]
    }
    common["family"] = {**common["family"], "enum": families}
    return common


def _family_fields(what: str, branches: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of the branches' field definitions; a field defined twice, alike."""
    family_fields: dict[str, Any] = {}
    for branch in branches:
        for field, definition in branch["properties"].items():
            if family_fields.setdefault(field, definition) != definition:
                raise ValueError(
                    f"{what} field {field!r}: family {branch['title']!r} defines it as "
                    f"{definition}, another family as {family_fields[field]}"
                )
    return family_fields


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    from importlib.resources import files

    results = sys.argv[1:] == ["results"]
    name = "result.schema.json" if results else "model-snapshot.schema.json"
    path = files("streamem").joinpath("schemas", name)
    rebuild = results_schema if results else snapshot_schema
    rebuilt = rebuild(json.loads(path.read_text()))
    sys.stdout.write(json.dumps(rebuilt, indent=2) + "\n")
