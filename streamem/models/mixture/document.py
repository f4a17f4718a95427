"""Validation of a ``GaussianMixture`` model document before anything is built from it.

A model document (``GaussianMixture.to_dict``, a ``.model.json`` file, the estimator inside a
daemon checkpoint) comes from outside: a file that was edited, truncated, written by another
version. :func:`validate_model_document` checks it in two layers and raises a
:class:`~streamem.errors.ValidationError` whose message names the field by its path
(``state.engine.params.weights``), what was expected and what was found:

1. its structure against ``streamem/schemas/gaussian-mixture.schema.json`` (keys, types,
   versions, enumerations, lower bounds), by :func:`check_schema`, a small interpreter of the
   part of JSON Schema that the schema uses, so that the library needs no ``jsonschema``
   package (that stays in the service extra; the tests check the schema with it too);
2. what a schema cannot say, by :func:`check_mixture_state`: the shapes of the arrays for K
   components in d dimensions, finite values, weights and responsibility masses that are
   non-negative and sum to one, positive (definite) covariances, warm-up rows of d values.

Examples
--------
>>> document = {"format": "streamem.GaussianMixture", "format_version": 1,
...             "hyperparameters": {"n_components": "three", "covariance_type": "full"}}
>>> validate_model_document(document)
Traceback (most recent call last):
    ...
streamem.errors.ValidationError: model document: hyperparameters.n_components must be an
integer, got 'three'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError, format_mismatch
from streamem.models.common import covariance as cov

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "check_mixture_parameters",
    "check_mixture_state",
    "check_schema",
    "model_schema",
    "validate_model_document",
]

FORMAT = "streamem.GaussianMixture"
FORMAT_VERSION = 1
WEIGHT_SUM_TOLERANCE = 1e-6
"""How far from 1 the weights (and the responsibility masses) may sum."""

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_WORDS = {
    "object": "a JSON object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def model_schema() -> dict[str, Any]:
    """The JSON Schema of a model document (``streamem/schemas/gaussian-mixture.schema.json``)."""
    text = (files("streamem") / "schemas" / "gaussian-mixture.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_model_document(document: Any, where: str = "model document") -> None:
    """Check a model document's structure, shapes and values; raise if it cannot be loaded.

    Parameters
    ----------
    document
        The parsed JSON.
    where
        What the document is, at the start of every message (e.g. the checkpoint's name).

    Raises
    ------
    ValidationError
        Naming the first field that is wrong, what was expected and what was found.
    """
    if not isinstance(document, dict):
        raise ValidationError(f"{where}: expected a JSON object, got {_short(document)}")
    if document.get("format") != FORMAT:
        raise ValidationError(f"{where}: {format_mismatch(document, FORMAT)}")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValidationError(
            f"{where}: format_version {_short(document.get('format_version'))} is not "
            f"supported (this streamem reads {FORMAT_VERSION})"
        )
    check_schema(document, model_schema(), where)
    check_mixture_state(document, where)


def check_schema(
    value: Any,
    schema: Mapping[str, Any],
    where: str,
    path: str = "",
    root: Mapping[str, Any] | None = None,
) -> None:
    """Check ``value`` against ``schema``, a JSON Schema of the keywords the model schema uses.

    Those are ``type``, ``const``, ``enum``, ``required``, ``properties``,
    ``additionalProperties`` (true or false), ``items``, ``minimum``, ``exclusiveMinimum``,
    ``maximum``, ``oneOf`` and local ``$ref``. A boolean is not a number here (unlike in
    Python).

    Parameters
    ----------
    value, schema
        The value and the (sub-)schema it must follow.
    where, path
        What the document is and where ``value`` sits in it, for the messages.
    root
        The schema that ``$ref`` resolves in (``schema`` itself by default).

    Raises
    ------
    ValidationError
        ``"<where>: <path> must be <what>, got <value>"`` for the first mismatch.
    """
    _check(value, schema, _Context(where, schema if root is None else root), path)


class _Context:
    def __init__(self, where: str, root: Mapping[str, Any]) -> None:
        self.where = where
        self.root = root

    def fail(self, path: str, expected: str, value: Any) -> ValidationError:
        field = path or "the document"
        return ValidationError(f"{self.where}: {field} must be {expected}, got {_short(value)}")

    def resolve(self, reference: str) -> Mapping[str, Any]:
        node: Any = self.root
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]
        resolved: Mapping[str, Any] = node
        return resolved


def _check(value: Any, schema: Mapping[str, Any], context: _Context, path: str) -> None:
    if "$ref" in schema:
        _check(value, context.resolve(schema["$ref"]), context, path)
        return
    if "oneOf" in schema:
        _check_one_of(value, schema["oneOf"], context, path)
        return
    if "const" in schema and value != schema["const"]:
        raise context.fail(path, json.dumps(schema["const"]), value)
    if "enum" in schema and value not in schema["enum"]:
        raise context.fail(path, "one of " + ", ".join(map(json.dumps, schema["enum"])), value)
    if "type" in schema:
        _check_type(value, schema["type"], context, path)
    if isinstance(value, dict):
        _check_object(value, schema, context, path)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], context, f"{path}[{index}]")
    elif _is_number(value):
        _check_range(value, schema, context, path)


def _check_one_of(value: Any, options: list[Any], context: _Context, path: str) -> None:
    errors = []
    for option in options:
        try:
            _check(value, option, context, path)
        except ValidationError as error:
            errors.append(error)
    if len(errors) == len(options):
        # the option of the value's own type says the most; a null option the least
        telling = [e for e, o in zip(errors, options, strict=True) if o != {"type": "null"}]
        raise (telling or errors)[-1]


def _check_type(value: Any, kinds: str | list[str], context: _Context, path: str) -> None:
    names = [kinds] if isinstance(kinds, str) else kinds
    for name in names:
        if isinstance(value, _TYPES[name]) and (name == "boolean" or not isinstance(value, bool)):
            return
    raise context.fail(path, " or ".join(_WORDS[name] for name in names), value)


def _check_object(
    value: dict[str, Any], schema: Mapping[str, Any], context: _Context, path: str
) -> None:
    prefix = f"{path}." if path else ""
    for key in schema.get("required", ()):
        if key not in value:
            raise ValidationError(f"{context.where}: {prefix}{key} is missing")
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], context, f"{prefix}{key}")
        elif schema.get("additionalProperties", True) is False:
            known = ", ".join(properties)
            raise ValidationError(
                f"{context.where}: {prefix}{key} is not a known field (known: {known})"
            )


def _check_range(value: float, schema: Mapping[str, Any], context: _Context, path: str) -> None:
    if "minimum" in schema and not value >= schema["minimum"]:
        raise context.fail(path, f">= {schema['minimum']}", value)
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        raise context.fail(path, f"> {schema['exclusiveMinimum']}", value)
    if "maximum" in schema and not value <= schema["maximum"]:
        raise context.fail(path, f"<= {schema['maximum']}", value)


def check_mixture_state(document: Mapping[str, Any], where: str = "model document") -> None:
    """The checks a schema cannot make, on a document whose structure is valid.

    The arrays of ``state`` (parameters, statistics, the averaged parameters, the anchor of the
    prior, the warm-up rows) must have the shapes of K components in d dimensions and the
    covariance type, be finite, and hold valid values (see :func:`check_mixture_parameters`);
    ``feature_names_in`` must hold d names; the hyper-parameters' starting values must fit K
    (and d).

    Raises
    ------
    ValidationError
        Naming the field by its path.
    """
    hyper = document["hyperparameters"]
    k = int(hyper["n_components"])
    covariance_type = cov.check_covariance_type(hyper["covariance_type"])
    state = document.get("state")
    d = None if state is None else int(state["n_features_in"])
    _check_starting_values(hyper, k, d, where)
    if state is None or d is None:
        return
    names = state["feature_names_in"]
    if names is not None and len(names) != d:
        raise ValidationError(
            f"{where}: state.feature_names_in must hold n_features_in = {d} names, got {len(names)}"
        )
    engine = state["engine"]
    for name in ("params", "averaged"):
        if engine[name] is not None:
            check_mixture_parameters(
                engine[name], covariance_type, k, d, where, f"state.engine.{name}"
            )
    if state["anchor"] is not None:
        check_mixture_parameters(state["anchor"], covariance_type, k, d, where, "state.anchor")
    if engine["stats"] is not None:
        _check_statistics(engine["stats"], covariance_type, k, d, where)
    for index, row in enumerate(state["warmup"]):
        if len(row) != d:
            raise ValidationError(
                f"{where}: state.warmup[{index}] must hold n_features_in = {d} values, got "
                f"{len(row)}"
            )
    repeats = state.get("warmup_repeats")
    if repeats is not None and len(repeats) != len(state["warmup"]):
        raise ValidationError(
            f"{where}: state.warmup_repeats must hold one count per state.warmup row "
            f"({len(state['warmup'])}), got {len(repeats)}"
        )


def check_mixture_parameters(
    params: Mapping[str, Any],
    covariance_type: str,
    k: int,
    d: int,
    where: str = "model document",
    path: str = "params",
) -> None:
    """Check mixture parameters: shapes for ``k`` components in ``d`` dimensions, finite
    values, weights >= 0 summing to 1, covariances positive (definite), and precision Cholesky
    factors of the covariance type's shape with a positive diagonal.

    Parameters
    ----------
    params
        ``weights``, ``means``, ``covariances`` and ``precisions_cholesky`` (optional) as nested
        lists (a document's) or arrays.
    covariance_type
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    k, d
        Components and dimension.
    where, path
        What the document is and where ``params`` sits in it, for the messages.

    Raises
    ------
    ValidationError
        Naming the field (``<path>.weights``, ...), the expected and the received value.

    Examples
    --------
    >>> check_mixture_parameters(
    ...     {"weights": [0.5, 0.5], "means": [[0.0], [1.0], [2.0]], "covariances": [1.0, 1.0],
    ...      "precisions_cholesky": [1.0, 1.0]}, "spherical", 2, 1)
    Traceback (most recent call last):
        ...
    streamem.errors.ValidationError: model document: params.means must have shape (2, 1) (K
    components, d features), got (3, 1)
    """
    kind = cov.check_covariance_type(covariance_type)
    shape = cov.expected_shape(kind, k, d)
    weights = _array(params, "weights", (k,), where, path)
    _check_masses(weights, where, _join(path, "weights"))
    _array(params, "means", (k, d), where, path)
    covariances = _array(params, "covariances", shape, where, path)
    _check_positive_definite(covariances, kind, where, _join(path, "covariances"))
    if "precisions_cholesky" not in params:  # a published snapshot has none
        return
    factors = _array(params, "precisions_cholesky", shape, where, path)
    diagonal = np.diagonal(factors, axis1=-2, axis2=-1) if kind in ("full", "tied") else factors
    if not np.all(diagonal > 0.0):
        raise ValidationError(
            f"{where}: {_join(path, 'precisions_cholesky')} must have a positive diagonal, got "
            f"{_short(np.asarray(diagonal).tolist())}"
        )


def _check_statistics(
    stats: Mapping[str, Any], covariance_type: cov.CovarianceType, k: int, d: int, where: str
) -> None:
    path = "state.engine.stats"
    resp = _array(stats, "resp", (k,), where, path)
    if np.any(resp < 0.0):
        raise ValidationError(f"{where}: {path}.resp must be >= 0, got {_short(resp.tolist())}")
    _array(stats, "first", (k, d), where, path)
    second_shape = (
        (k, d) if covariance_type == "spherical" else cov.expected_shape(covariance_type, k, d)
    )  # see the table of streamem.models.common.covariance
    _array(stats, "second", second_shape, where, path)


def _check_starting_values(hyper: Mapping[str, Any], k: int, d: int | None, where: str) -> None:
    if hyper.get("weights_init") is not None:
        weights = _array(hyper, "weights_init", (k,), where, "hyperparameters")
        _check_masses(weights, where, "hyperparameters.weights_init")
    if hyper.get("means_init") is not None:
        means = _array(hyper, "means_init", None, where, "hyperparameters")
        if means.ndim != 2 or len(means) != k or (d is not None and means.shape[1] != d):
            expected = f"(K={k}, d={d})" if d is not None else f"(K={k}, d)"
            raise ValidationError(
                f"{where}: hyperparameters.means_init must have shape {expected}, got {means.shape}"
            )


def _array(
    container: Mapping[str, Any],
    name: str,
    shape: tuple[int, ...] | None,
    where: str,
    path: str,
) -> FloatArray:
    field = _join(path, name)
    try:
        array = np.asarray(container[name], dtype=np.float64)
    except (TypeError, ValueError):  # ragged lists, strings
        raise ValidationError(
            f"{where}: {field} must be an array of numbers of one shape, got "
            f"{_short(container[name])}"
        ) from None
    if shape is not None and array.shape != shape:
        raise ValidationError(
            f"{where}: {field} must have shape {shape} (K components, d features), got "
            f"{array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{where}: {field} must be finite, got {_short(array.tolist())}")
    return array


def _check_masses(weights: FloatArray, where: str, field: str) -> None:
    if np.any(weights < 0.0):
        raise ValidationError(f"{where}: {field} must be >= 0, got {_short(weights.tolist())}")
    total = float(weights.sum())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValidationError(f"{where}: {field} must sum to 1, got a sum of {total:.6g}")


def _check_positive_definite(
    covariances: FloatArray, covariance_type: cov.CovarianceType, where: str, field: str
) -> None:
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[np.newaxis]
        for j, matrix in enumerate(stack):
            if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0.0):
                which = f"[{j}]" if covariance_type == "full" else ""
                raise ValidationError(
                    f"{where}: {field}{which} must be symmetric positive definite, got "
                    f"{_short(matrix.tolist())}"
                )
    elif np.any(covariances <= 0.0):
        raise ValidationError(f"{where}: {field} must be > 0, got {_short(covariances.tolist())}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters.

    >>> _short(list(range(100)), limit=20)
    '[0, 1, 2, 3, 4, 5...'
    """
    text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
