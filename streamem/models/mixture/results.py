"""The mixtures' per-record results: the most probable component, the components'
probabilities (the top few), the log density and, as anomaly score, its negative.

Examples
--------
>>> import numpy as np
>>> from streamem import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-3, 1, (200, 2)), rng.normal(3, 1, (200, 2))])
>>> model = GaussianMixture(2, random_state=0).fit(X)
>>> columns = GAUSSIAN_MIXTURE_RESULTS.compute(model, X[:3], None, 1)
>>> sorted(columns.fields[0]), bool(columns.fields[0]["component"] == model.predict(X[:1])[0])
(['component', 'log_density', 'probabilities'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.models.protocol import StreamingModel
from streamem.models.results import (
    LOG_DENSITY_FIELD,
    PROBABILITIES_FIELD,
    FamilyResults,
    ResultColumns,
    top_pairs,
)

__all__ = ["GAUSSIAN_MIXTURE_RESULTS", "POISSON_MIXTURE_RESULTS", "mixture_columns"]


def mixture_columns(
    component: NDArray[np.intp],
    probabilities: NDArray[np.float64],
    log_density: NDArray[np.float64],
    top_k: int | None,
) -> ResultColumns:
    """The results of rows from their component (n,), responsibilities (n, K) and log density
    (n,); the anomaly score is ``-log_density``."""
    pairs = top_pairs(probabilities, top_k)
    fields = [
        {"component": label, "probabilities": top, "log_density": density}
        for label, top, density in zip(component.tolist(), pairs, log_density.tolist(), strict=True)
    ]
    return ResultColumns(fields, -log_density)


def _gaussian(
    model: StreamingModel, X: Any, keys: tuple[str, ...] | None, top_k: int | None
) -> ResultColumns:
    """:meth:`~GaussianMixture.predict`, :meth:`~GaussianMixture.predict_proba` and
    :meth:`~GaussianMixture.score_samples` of the rows, from one evaluation of the joint."""
    from streamem.models.mixture.gaussian_mixture import GaussianMixture, _logsumexp

    assert isinstance(model, GaussianMixture)
    joint = model.log_joint_rows(model.batch_from_rows(X, keys))
    log_density = _logsumexp(joint)
    probabilities = np.exp(joint - log_density[:, np.newaxis])
    return mixture_columns(np.asarray(joint.argmax(axis=1)), probabilities, log_density, top_k)


def _table(
    model: StreamingModel, X: Any, keys: tuple[str, ...] | None, top_k: int | None
) -> ResultColumns:
    """:meth:`predict_proba` (and its argmax, :meth:`predict`) and :meth:`score_samples` of
    a table mixture's rows."""
    from streamem.models.mixture.table_mixture import TableMixture

    assert isinstance(model, TableMixture)
    probabilities = model.predict_proba(X)
    log_density = model.log_density(model.batch_from_rows(X, keys))
    component = np.asarray(probabilities.argmax(axis=1), dtype=np.intp)
    return mixture_columns(component, probabilities, log_density, top_k)


_BRANCH = {
    "required": ["component", "probabilities", "log_density"],
    "properties": {
        "component": {
            "type": "integer",
            "minimum": 0,
            "description": "The most probable component (the model's predict).",
        },
        "probabilities": PROBABILITIES_FIELD,
        "log_density": LOG_DENSITY_FIELD,
    },
}

GAUSSIAN_MIXTURE_RESULTS = FamilyResults(_gaussian, _BRANCH)
"""The Gaussian mixture's results (see :class:`~streamem.models.results.FamilyResults`)."""

POISSON_MIXTURE_RESULTS = FamilyResults(_table, _BRANCH)
"""The Poisson mixture's results: as the Gaussian mixture's."""
