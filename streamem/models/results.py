"""Per-record results of a family: what the daemon's results topic says about each reading.

A family that gives results declares a :class:`FamilyResults` (its ``results`` field of
:class:`~streamem.models.protocol.FamilySpec` names it): a function that scores a batch of
decoded rows *without changing the model* and returns one JSON-ready object of the family's
fields per unit, with an anomaly score per unit (higher = more surprising), and the family's
branch of the result schema (``streamem/schemas/result.schema.json``, rebuilt by
:func:`streamem.models.registry.results_schema`).

Scoring is vectorised over the batch; the loop that builds the per-unit objects only reads
numbers already computed (``tolist``).

Examples
--------
>>> import numpy as np
>>> top_pairs(np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]]), 2)
[[[1, 0.7], [2, 0.2]], [[0, 0.5], [1, 0.25]]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.models.protocol import StreamingModel

__all__ = [
    "LOG_DENSITY_FIELD",
    "PROBABILITIES_FIELD",
    "FamilyResults",
    "ResultColumns",
    "finite_or_none",
    "top_pairs",
]

FloatArray = NDArray[np.float64]

PROBABILITIES_FIELD: Mapping[str, Any] = {
    "type": "array",
    "items": {
        "type": "array",
        "prefixItems": [{"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}],
        "minItems": 2,
        "maxItems": 2,
    },
    "minItems": 1,
    "description": "[class, probability] pairs, most probable first: the top "
    "output.results_top_k classes (all with null).",
}
"""The schema of a result's class probabilities (mixtures' components, HMMs' states)."""

LOG_DENSITY_FIELD: Mapping[str, Any] = {
    "type": ["number", "null"],
    "description": "Log density of the reading under the model that scored it (a sequence "
    "family's: given the key's earlier readings, the one-step predictive density); null for "
    "minus infinity (a reading the model deems impossible).",
}
"""The schema of a result's log density (its negative is the anomaly score)."""


@dataclass(frozen=True)
class ResultColumns:
    """The results of one batch, in the order of its rows.

    Attributes
    ----------
    fields
        One JSON-ready object of the family's result fields per unit.
    scores
        The anomaly score of each unit, shape ``(n_units,)``, higher = more surprising
        (None: the family has no anomaly score).
    """

    fields: list[dict[str, Any]]
    scores: FloatArray | None


Compute = Callable[[StreamingModel, Any, tuple[str, ...] | None, int | None], ResultColumns]
"""``compute(model, X, keys, top_k)``: the results of the decoded rows ``X`` (sequence ``keys``
for a sequential family) under the model as it stands, which does not change; ``top_k`` bounds
the class probabilities listed (None: all)."""


@dataclass(frozen=True)
class FamilyResults:
    """A family's per-record results: how to compute them and their schema branch.

    Parameters
    ----------
    compute
        See :data:`Compute`.
    branch
        ``{"required": [fields], "properties": {field: schema}}``: the family's fields of a
        result record (required once the warm-up is over).
    """

    compute: Compute
    branch: Mapping[str, Any]


def top_pairs(probabilities: FloatArray, top_k: int | None) -> list[list[list[Any]]]:
    """Per row of ``probabilities`` (n, K), its ``top_k`` largest as ``[class, probability]``
    pairs, most probable first (ties: the lower class first); all K with ``top_k`` None."""
    n_classes = probabilities.shape[1]
    k = n_classes if top_k is None else min(int(top_k), n_classes)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(probabilities, order, axis=1)
    return [
        [[label, value] for label, value in zip(labels, row, strict=True)]
        for labels, row in zip(order.tolist(), values.tolist(), strict=True)
    ]


def finite_or_none(values: Sequence[Any]) -> list[Any]:
    """A row of floats with NaN and infinities as None (JSON has neither)."""
    return [value if np.isfinite(value) else None for value in values]
