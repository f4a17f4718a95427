"""Starting values of a linear-Gaussian state space model: given arrays, pykalman's defaults."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError
from streamem.models.state_space.records import PARAMETER_NAMES, StateSpaceParams

STATE_AXES = {
    "transition_matrices": (0, 1),
    "transition_covariance": (0, 1),
    "transition_offsets": (0,),
    "initial_state_mean": (0,),
    "initial_state_covariance": (0, 1),
    "observation_matrices": (1,),
}
"""Axes of each given array that are the state dimension n."""
OBS_AXES = {
    "observation_matrices": (0,),
    "observation_covariance": (0, 1),
    "observation_offsets": (0,),
}
"""Axes that are the observation dimension p."""
COVARIANCES = ("transition_covariance", "observation_covariance", "initial_state_covariance")


def default_parameters(
    given: dict[str, Any], n_dim_state: int | None, n_dim_obs: int | None
) -> StateSpaceParams:
    """The parameters from the ``given`` arrays (pykalman names, None: not given) and
    pykalman's defaults for the others (A = I, C = I (p, n), Q = I, R = I, b = 0, d = 0,
    mu0 = 0, P0 = I); with nothing that fixes the state dimension n, n = p.

    Examples
    --------
    >>> params = default_parameters({"transition_matrices": [[1.0, 1.0], [0.0, 1.0]]}, None, 1)
    >>> params.C, params.Q.shape
    (array([[1., 0.]]), (2, 2))
    """
    arrays = {name: _array(name, value) for name, value in given.items() if value is not None}
    p = _dimension("n_dim_obs", arrays, OBS_AXES, n_dim_obs, None)
    n = _dimension("n_dim_state", arrays, STATE_AXES, n_dim_state, p)
    defaults: dict[str, FloatArray] = {
        "transition_matrices": np.eye(n),
        "observation_matrices": np.eye(p, n),
        "transition_covariance": np.eye(n),
        "observation_covariance": np.eye(p),
        "transition_offsets": np.zeros(n),
        "observation_offsets": np.zeros(p),
        "initial_state_mean": np.zeros(n),
        "initial_state_covariance": np.eye(n),
    }
    values = {}
    for name, default in defaults.items():
        value = arrays.get(name, default)
        if value.shape != default.shape:
            raise ValidationError(f"{name} must have shape {default.shape}, got {value.shape}")
        if name in COVARIANCES:
            _check_covariance(name, value)
        values[PARAMETER_NAMES[name]] = value
    return StateSpaceParams(**values)


def _array(name: str, value: Any) -> FloatArray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{name} must be an array of numbers, got {value!r:.80}") from error
    if not np.isfinite(array).all():
        raise ValidationError(f"{name} must be finite, got {array.tolist()}")
    return array


def _dimension(
    name: str,
    arrays: dict[str, FloatArray],
    axes: dict[str, tuple[int, ...]],
    given: int | None,
    default: int | None,
) -> int:
    seen = {
        array.shape[axis]
        for key, array in arrays.items()
        if key in axes
        for axis in axes[key]
        if axis < array.ndim
    }
    if given is not None:
        seen.add(int(given))
    if len(seen) > 1:
        raise ValidationError(
            f"{name}: the given arrays disagree on the dimension, got sizes {sorted(seen)}"
        )
    if not seen and default is None:
        raise ValidationError(f"{name} is not given and no array fixes it")
    size = seen.pop() if seen else default
    assert size is not None
    if size < 1:
        raise ValidationError(f"{name} must be >= 1, got {size}")
    return size


def _check_covariance(name: str, value: FloatArray) -> None:
    if not np.allclose(value, value.T) or np.linalg.eigvalsh(value)[0] < 0.0:
        raise ValidationError(f"{name} must be symmetric positive semi-definite")
