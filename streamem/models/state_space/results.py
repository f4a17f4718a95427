"""The state space model's per-record results: the filtered state mean and variance of the
reading's sequence key, the one-step forecast of the reading, the innovation (reading minus
forecast) and its normalised square ``v^T S^-1 v`` (S the innovation covariance; over the
observed coordinates), and the one-step predictive log density. The anomaly score is the
normalised innovation squared: chi-squared with as many degrees of freedom as observed
coordinates under the model.

Each key continues its carried filter state as learning the same batch does (the prior of its
first reading is the carried state moved one step, ``A m + b`` and ``A P A^T + Q``).

Examples
--------
>>> import numpy as np
>>> from streamem import LinearGaussianSSM
>>> model = LinearGaussianSSM(n_dim_state=1).partial_fit(np.sin(np.arange(200.0) / 10))
>>> columns = SSM_RESULTS.compute(model, np.array([[0.5], [np.nan]]), None, None)
>>> columns.fields[1]["innovation"], columns.fields[1]["normalized_innovation"]
([None], None)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamem.models.protocol import StreamingModel
from streamem.models.results import LOG_DENSITY_FIELD, FamilyResults, ResultColumns, finite_or_none

__all__ = ["SSM_RESULTS"]


def _normalized_squares(innovations: Any, covariances: Any) -> Any:
    """``v_t^T S_t^-1 v_t`` (T,) over each row's observed coordinates (NaN: none observed)."""
    out = np.full(len(innovations), np.nan)
    observed = ~np.isnan(innovations)
    whole = observed.all(axis=1)
    if whole.any():
        v = innovations[whole]
        solved = np.linalg.solve(covariances[whole], v[:, :, np.newaxis])[:, :, 0]
        out[whole] = np.einsum("ti,ti->t", v, solved)
    for t in np.flatnonzero(~whole & observed.any(axis=1)).tolist():
        seen = observed[t]
        v = innovations[t, seen]
        out[t] = float(v @ np.linalg.solve(covariances[t][np.ix_(seen, seen)], v))
    return out


def _filtered(
    model: StreamingModel, X: Any, keys: tuple[str, ...] | None, top_k: int | None
) -> ResultColumns:
    from streamem.models.state_space.kalman_filter import kalman_filter
    from streamem.models.state_space.linear_gaussian_ssm import LinearGaussianSSM

    assert isinstance(model, LinearGaussianSSM)
    model._check_fitted()
    batch = model.batch_from_rows(X, keys)
    params, carry = model.engine_.output_params, model.engine_.carry or {}
    C, d = params.C, params.d
    parts = []
    for key, Y in batch.segments():
        state = carry.get(key) if key is not None else None
        if state is None:
            filtered, skip = kalman_filter(params, Y, params.mu0, params.P0, model.steady_tol), 0
        else:  # as learning does: a pure prediction step from the carried state, then Y
            rows = np.vstack([np.full((1, Y.shape[1]), np.nan), Y])
            filtered = kalman_filter(params, rows, state.mean, state.covariance, model.steady_tol)
            skip = 1
        predicted_covariances = filtered.predicted_covariances[skip:]
        forecast = filtered.predicted_means[skip:] @ C.T + d
        innovation_covariance = np.einsum("ij,tjk,lk->til", C, predicted_covariances, C) + params.R
        innovation = Y - forecast
        parts.append(
            np.column_stack(
                [
                    filtered.filtered_means[skip:],
                    np.diagonal(filtered.filtered_covariances[skip:], axis1=1, axis2=2),
                    forecast,
                    innovation,
                    _normalized_squares(innovation, innovation_covariance),
                    filtered.log_likelihoods[skip:],
                ]
            )
        )
    table = batch.in_original_order(np.concatenate(parts))
    n, p = params.n_dim_state, params.n_dim_obs
    fields = [
        {
            "state_mean": row[:n],
            "state_variance": row[n : 2 * n],
            "forecast": row[2 * n : 2 * n + p],
            "innovation": finite_or_none(row[2 * n + p : 2 * n + 2 * p]),
            "normalized_innovation": finite_or_none(row[-2:-1])[0],
            "log_density": row[-1],
        }
        for row in table.tolist()
    ]
    return ResultColumns(fields, table[:, -2])


def _vector(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "number"}, "description": description}


SSM_RESULTS = FamilyResults(
    _filtered,
    {
        "required": [
            "state_mean",
            "state_variance",
            "forecast",
            "innovation",
            "normalized_innovation",
            "log_density",
        ],
        "properties": {
            "state_mean": _vector("Filtered state mean E[x_t | y_..t] of the record's key (n,)."),
            "state_variance": _vector("Diagonal of the filtered state covariance (n,)."),
            "forecast": _vector("One-step forecast E[y_t | y_..t-1] of the reading (p,)."),
            "innovation": {
                "type": "array",
                "items": {"type": ["number", "null"]},
                "description": "Reading minus forecast (p,); null for a missing coordinate.",
            },
            "normalized_innovation": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "v^T S^-1 v over the observed coordinates (the anomaly score): "
                "chi-squared with as many degrees of freedom as observed coordinates; null "
                "for a reading without any.",
            },
            "log_density": LOG_DENSITY_FIELD,
        },
    },
)
"""The linear-Gaussian state space model's results."""
