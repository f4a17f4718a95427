"""Checks that a checkpoint's learner state is whole and fits the configuration, field by field.

A checkpoint that parses can still be unusable: a counter that is a string, a drift history
that is not a list, weights that are negative, a model with another number of components or
features than the configuration. Loaded as it is, such a state fails every batch while the
offsets advance (records lost, nothing said). The daemon therefore checks, before it uses a
checkpoint, and refuses to start with one line that names the file and the field
(:class:`StateFieldError` carries the field's path inside the checkpoint's ``model``).

- :func:`check_learner_envelope`: the learner's own part (format, features, counters, drift);
- the model document itself is checked by the model's own ``from_dict``
  (:func:`streamem.models.mixture.document.validate_model_document`: shapes, types, ranges);
- :func:`check_model_fits`: the loaded model against ``model.n_components``,
  ``model.covariance_type`` and ``input.features``, through the model protocol's parameters
  document.

Examples
--------
>>> check_learner_envelope({"format": "streamem.daemon.learner", "format_version": 1,
...                         "features": ["temp"], "estimator": {}, "drift": None,
...                         "counters": {"n_dropped": -1, "drift_events": 0,
...                                      "last_drift": False}})
Traceback (most recent call last):
...
streamem.service.state_check.StateFieldError: counters.n_dropped: expected an integer >= 0, ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamem.errors import ValidationError
from streamem.models.protocol import StreamingModel

__all__ = [
    "StateFieldError",
    "check_learner_envelope",
    "check_model_fits",
]


class StateFieldError(ValidationError):
    """A field of a stored learner state is missing, of the wrong type or out of range.

    Parameters
    ----------
    field
        Its dotted path inside the state (``counters.n_dropped``).
    message
        What was expected and what was received.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _received(value: Any) -> str:
    text = repr(value)
    return (text[:60] + "...") if len(text) > 60 else text


def _get(document: Any, path: str) -> Any:
    node = document
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if not isinstance(node, dict):
            where = ".".join(walked[:-1]) or "the state"
            raise StateFieldError(where, f"expected an object, received {_received(node)}")
        if part not in node:
            raise StateFieldError(".".join(walked), "missing")
        node = node[part]
    return node


def _count(document: Any, path: str) -> int:
    value = _get(document, path)
    if type(value) is not int or value < 0:
        raise StateFieldError(path, f"expected an integer >= 0, received {_received(value)}")
    return value


def check_learner_envelope(state: Any) -> None:
    """Check the learner's part of a stored state (not the model document inside it).

    Raises
    ------
    StateFieldError
        Naming the first field that is missing, of the wrong type or out of range.
    """
    if not isinstance(state, dict):
        raise StateFieldError("model", f"expected an object, received {_received(state)}")
    features = _get(state, "features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise StateFieldError("features", f"expected a list of names, received {features!r}")
    if not isinstance(_get(state, "estimator"), dict):
        raise StateFieldError("estimator", "expected an object (the model document)")
    for name in ("n_dropped", "drift_events"):
        _count(state, f"counters.{name}")
    if type(_get(state, "counters.last_drift")) is not bool:
        raise StateFieldError("counters.last_drift", "expected true or false")
    drift = _get(state, "drift")
    if drift is None:
        return
    if not isinstance(_get(state, "drift.detector"), str):
        raise StateFieldError("drift.detector", "expected a detector name")
    history = _get(state, "drift.history")
    if not isinstance(history, list) or not all(
        type(x) in (int, float) and math.isfinite(x) for x in history
    ):
        raise StateFieldError("drift.history", "expected a list of finite numbers")


def check_model_fits(
    model: StreamingModel, n_components: int, covariance_type: str, features: Sequence[str]
) -> None:
    """Check that a restored model has the configuration's shape.

    Reads the model protocol's ``parameters_document`` (an untrained model passes): the
    number of components and the covariance type, ``weights`` of shape ``(n_components,)``,
    ``means`` of shape ``(n_components, n_features)``.

    Raises
    ------
    StateFieldError
        Naming the parameter (``estimator.means``), the expected and the received shape.
    """
    if not model.status.initialized:
        return
    document = model.parameters_document()
    d = len(features)
    expected: dict[str, Any] = {
        "n_components": n_components,
        "covariance_type": covariance_type,
    }
    for name, value in expected.items():
        if name in document and document[name] != value:
            raise StateFieldError(
                f"estimator.{name}",
                f"expected {value!r} (the configuration), received {document[name]!r}",
            )
    shapes = {"weights": (n_components,), "means": (n_components, d)}
    for name, shape in shapes.items():
        if name not in document:
            continue
        received = np.shape(document[name])
        if received != shape:
            raise StateFieldError(
                f"estimator.{name}",
                f"expected shape {shape} for {n_components} components of {d} features "
                f"{list(features)}, received {received}",
            )
