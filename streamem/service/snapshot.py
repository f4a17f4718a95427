"""The published model message: one JSON document per model version.

Each new version of the model goes to the output topic as a record whose key is the model name
(UTF-8) and whose value is the document that :func:`build_snapshot` returns, encoded by
:func:`encode_snapshot`. Its layout is the JSON Schema
``streamem/schemas/model-snapshot.schema.json`` (:func:`snapshot_schema`), which documents every
field: those common to every family, then the family's parameters (its model's
``parameters_document``, one ``oneOf`` branch of the schema per family); for example::

    {"schema_version": 1, "model": "sensors", "family": "gaussian_mixture",
     "covariance_type": "full", "n_components": 3, "weights": [...], "means": [[...], ...],
     "covariances": [[[...]]], "n_features": 2, "features": ["temp", "hum"], "n_seen": 100000,
     "n_batches": 100, "n_dropped": 0, "version": 17, "step_size": 0.06,
     "mean_log_likelihood": -3.9, "smoothed_log_likelihood": -3.91,
     "log_likelihood_change": 0.0004, "parameter_change": 0.003, "converged": true,
     "drift": false, "drift_events": 0,
     "source_offsets": [{"topic": "sensors", "partition": 0, "offset": 33412}, ...],
     "timestamp": 1700000000.25}

``source_offsets`` carries the exactly-once promise: for each input partition, the model contains
every valid record below ``offset`` and none at or above it.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from streamem.errors import NotFittedError
from streamem.models.registry import family_names
from streamem.service.learner import Learner
from streamem.service.source import Partition

__all__ = [
    "SCHEMA_VERSION",
    "build_snapshot",
    "encode_snapshot",
    "packaged_schema",
    "snapshot_fields",
    "snapshot_schema",
]

SCHEMA_VERSION = 1
"""Version of the snapshot layout (the ``schema_version`` field)."""


@cache
def snapshot_schema() -> dict[str, Any]:
    """Return the JSON Schema of the snapshot document (draft 2020-12).

    Examples
    --------
    >>> snapshot_schema()["properties"]["schema_version"]
    {'const': 1, 'description': "Version of this document's layout."}
    """
    return packaged_schema("model-snapshot.schema.json")


def packaged_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``streamem/schemas/<name>``."""
    text = importlib.resources.files("streamem").joinpath("schemas", name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def build_snapshot(
    learner: Learner,
    *,
    name: str,
    version: int,
    offsets: Mapping[Partition, int],
    drift: bool,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """Return the published document of the learner's current model.

    Parameters
    ----------
    learner
        The learner; its model must be initialised.
    name
        The model's name (``model.name``).
    version
        The version number of this snapshot.
    offsets
        For each input partition, the offset below which every valid record is in the model.
    drift
        Whether a drift was detected since the previous published version.
    timestamp
        Unix time of publication; now by default.

    Raises
    ------
    NotFittedError
        If the model is still warming up (it has no parameters yet).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.service.config import DriftSettings, ModelSettings
    >>> learner = Learner(ModelSettings(n_components=2, init_size=20), DriftSettings(), ["x"])
    >>> outcome = learner.learn(np.linspace(0.0, 1.0, 40).reshape(-1, 1))
    >>> snapshot = build_snapshot(learner, name="demo", version=1, offsets={("t", 0): 40},
    ...                           drift=False, timestamp=0.0)
    >>> snapshot["n_seen"], snapshot["source_offsets"], len(snapshot["weights"])
    (40, [{'topic': 't', 'partition': 0, 'offset': 40}], 2)
    """
    status = learner.status
    record = status.record
    if not status.initialized or record is None:
        raise NotFittedError(
            f"model {name!r} is still warming up ({status.n_warmup} points buffered): there "
            "is nothing to publish yet"
        )
    model = learner.model
    parameters = model.parameters_document()
    # a family whose columns are not the input features (a topic model's vocabulary) states
    # its dimension
    dimension = parameters.pop("n_features", len(learner.features))
    return {
        "schema_version": SCHEMA_VERSION,
        "model": name,
        "family": model.family,
        **parameters,
        "n_features": dimension,
        "features": list(learner.features),
        "n_seen": status.n_seen,
        "n_batches": status.n_updates,
        "n_dropped": status.n_dropped,
        "version": int(version),
        "step_size": float(record.step_size),
        "mean_log_likelihood": float(record.mean_log_likelihood),
        "smoothed_log_likelihood": float(record.smoothed_log_likelihood),
        "log_likelihood_change": _finite_or_none(record.change),
        "parameter_change": float(record.parameter_change),
        "converged": bool(status.converged),
        "drift": bool(drift),
        "drift_events": status.drift_events,
        "source_offsets": _offsets(offsets),
        "timestamp": float(time.time() if timestamp is None else timestamp),
    }


def _offsets(offsets: Mapping[Partition, int]) -> list[dict[str, Any]]:
    return [
        {"topic": topic, "partition": int(partition), "offset": int(offset)}
        for (topic, partition), offset in sorted(offsets.items())
    ]


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """Encode a snapshot as compact UTF-8 JSON (NaN and infinities are errors).

    Examples
    --------
    >>> encode_snapshot({"version": 3, "drift": False})
    b'{"version":3,"drift":false}'
    """
    return json.dumps(snapshot, allow_nan=False, separators=(",", ":")).encode()


def snapshot_fields(family: str | None = None) -> Sequence[str]:
    """The names of a family's snapshot fields, in the order of the document (None: the
    default ``model.family``, the registry's first).

    Examples
    --------
    >>> snapshot_fields()[:5]
    ['schema_version', 'model', 'family', 'covariance_type', 'n_components']
    """
    family = family_names()[0] if family is None else family
    schema = snapshot_schema()
    common: list[str] = schema["required"]
    branches = {branch["title"]: branch["required"] for branch in schema["oneOf"]}
    if family not in branches:
        raise ValueError(f"family must be one of {sorted(branches)}, got {family!r}")
    head = common.index("family") + 1
    return [*common[:head], *branches[family], *common[head:]]
