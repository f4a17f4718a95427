"""The hidden Markov models' per-record results: the filtered state probabilities of the
reading's sequence key (the top few), its most probable state, and the one-step predictive log
density ``log p(x_t | x_1..x_{t-1})`` (its negative is the anomaly score).

Each key continues the filter that the model carries for it, as learning the same batch does:
scoring a batch, then learning it, leaves each key's carried filter equal to the filtered
probabilities of its last reading in the batch (with the averaged parameters off).

Examples
--------
>>> import numpy as np
>>> from streamem import GaussianHMM
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-2, 1, (300, 1)), rng.normal(2, 1, (300, 1))])
>>> model = GaussianHMM(2, init_size=200, random_state=0).partial_fit(X)
>>> columns = HMM_RESULTS.compute(model, np.array([[2.0], [2.1]]), ("a", "a"), None)
>>> sorted(columns.fields[1]), len(columns.fields[1]["probabilities"])
(['log_density', 'probabilities', 'state'], 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamem.models.protocol import StreamingModel
from streamem.models.results import (
    LOG_DENSITY_FIELD,
    PROBABILITIES_FIELD,
    FamilyResults,
    ResultColumns,
    top_pairs,
)

__all__ = ["HMM_RESULTS"]


def _filtered(
    model: StreamingModel, X: Any, keys: tuple[str, ...] | None, top_k: int | None
) -> ResultColumns:
    from streamem.models.hmm.estimator import HMMEstimator

    assert isinstance(model, HMMEstimator)
    batch = model.batch_from_rows(X, keys)
    filtered = batch.in_arrival_order(model.filtered(batch))
    log_density = model.log_density(batch)
    fields = [
        {"state": state, "probabilities": top, "log_density": density}
        for state, top, density in zip(
            filtered.argmax(axis=1).tolist(),
            top_pairs(filtered, top_k),
            log_density.tolist(),
            strict=True,
        )
    ]
    return ResultColumns(fields, -np.asarray(log_density, dtype=np.float64))


HMM_RESULTS = FamilyResults(
    _filtered,
    {
        "required": ["state", "probabilities", "log_density"],
        "properties": {
            "state": {
                "type": "integer",
                "minimum": 0,
                "description": "The most probable current state of the record's sequence key "
                "(the argmax of its filtered state probabilities).",
            },
            "probabilities": PROBABILITIES_FIELD,
            "log_density": LOG_DENSITY_FIELD,
        },
    },
)
"""The hidden Markov models' results (Gaussian, Poisson, categorical emissions)."""
