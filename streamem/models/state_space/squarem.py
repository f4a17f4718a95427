"""SQUAREM acceleration of an EM map (Varadhan & Roland 2008, scheme S3).

From ``theta_0``, two EM steps give ``theta_1`` and ``theta_2``; with ``r = theta_1 -
theta_0``, ``v = theta_2 - 2 theta_1 + theta_0`` and ``alpha = -min(|r| / |v|, ...)``
(at most -1) the extrapolation ``theta' = theta_0 - 2 alpha r + alpha^2 v`` is followed by
one EM step from ``theta'``. That step is kept only if the log-likelihood at ``theta'`` is at
least the one at ``theta_1`` (so the log-likelihood of the iterates does not fall); otherwise
(or if ``theta'`` is not a valid model) the cycle returns ``theta_2``. Every E-step's
log-likelihood is reported, the extrapolated one included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamem.engine.records import FloatArray
from streamem.errors import DegenerateUpdateError
from streamem.models.state_space.family import StateSpaceFamily
from streamem.models.state_space.records import SequenceBatch, StateSpaceParams


def _vector(params: StateSpaceParams) -> FloatArray:
    return np.concatenate([value.ravel() for value in params.arrays().values()])


def _from_vector(like: StateSpaceParams, vector: FloatArray) -> StateSpaceParams:
    fields, offset = {}, 0
    for name, value in like.arrays().items():
        fields[name] = vector[offset : offset + value.size].reshape(value.shape)
        offset += value.size
    return StateSpaceParams(**fields)


def squarem_step(
    family: StateSpaceFamily, params: StateSpaceParams, batch: SequenceBatch
) -> tuple[StateSpaceParams, Any, list[float]]:
    """One SQUAREM cycle from ``params``: the new parameters, the statistics whose M-step
    gave them, and the log-likelihood of each E-step made (2 or 3)."""
    first = family.expected_statistics(params, batch, None)
    params_1 = family.maximize(first.stats)
    second = family.expected_statistics(params_1, batch, None)
    params_2 = family.maximize(second.stats)
    lls = [first.log_likelihood, second.log_likelihood]
    theta_0, theta_1, theta_2 = _vector(params), _vector(params_1), _vector(params_2)
    r, v = theta_1 - theta_0, theta_2 - 2.0 * theta_1 + theta_0
    v_norm = float(np.linalg.norm(v))
    if v_norm == 0.0:
        return params_2, second.stats, lls
    alpha = min(-float(np.linalg.norm(r)) / v_norm, -1.0)
    extrapolated = _from_vector(params, theta_0 - 2.0 * alpha * r + alpha**2 * v)
    try:
        family.check_params(extrapolated)
        third = family.expected_statistics(extrapolated, batch, None)
        params_3 = family.maximize(third.stats)
    except DegenerateUpdateError:
        return params_2, second.stats, lls
    lls.append(third.log_likelihood)
    if third.log_likelihood >= second.log_likelihood:
        return params_3, third.stats, lls
    return params_2, second.stats, lls
