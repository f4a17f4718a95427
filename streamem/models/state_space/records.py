"""Records of the linear-Gaussian state space family: parameters, statistics, batch, carry.

The model (pykalman's names in brackets)::

    x_0 ~ N(mu_0, P_0)                              [initial_state_mean, initial_state_covariance]
    x_t = A x_{t-1} + b + w_t,   w_t ~ N(0, Q)      [transition_matrices, transition_offsets,
                                                     transition_covariance]
    y_t = C x_t + d + v_t,       v_t ~ N(0, R)      [observation_matrices, observation_offsets,
                                                     observation_covariance]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import ValidationError

PARAMETER_NAMES = {
    "transition_matrices": "A",
    "observation_matrices": "C",
    "transition_covariance": "Q",
    "observation_covariance": "R",
    "transition_offsets": "b",
    "observation_offsets": "d",
    "initial_state_mean": "mu0",
    "initial_state_covariance": "P0",
}
"""pykalman's parameter name -> field of :class:`StateSpaceParams`."""


@dataclasses.dataclass(frozen=True)
class StateSpaceParams(ArrayRecord):
    """The eight parameters, shapes A (n, n), C (p, n), Q (n, n), R (p, p), b (n,), d (p,),
    mu0 (n,), P0 (n, n) for n state and p observed dimensions."""

    A: FloatArray
    C: FloatArray
    Q: FloatArray
    R: FloatArray
    b: FloatArray
    d: FloatArray
    mu0: FloatArray
    P0: FloatArray

    @property
    def n_dim_state(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_dim_obs(self) -> int:
        return int(self.C.shape[0])


@dataclasses.dataclass(frozen=True)
class StateSpaceStats(ArrayRecord):
    """Sums over a batch of expected complete-data statistics, each taken relative to the
    parameters of the E-step that produced it, so that the M-step needs no other input.

    With the residuals ``w = x_t - A x_{t-1} - b``, ``v = y_t - C x_t - d`` and ``x0' = x_0
    - mu0`` (A, b, C, d, mu0 those of the E-step; a missing coordinate of ``y_t`` enters
    through its conditional law given the step's observed coordinates):

    - transitions (one per pair of consecutive steps): ``tr_count``, and count times the
      E-step's b and A (``tr_offset``, ``tr_matrix``), ``s00 = sum E[x_{t-1} x_{t-1}^T]``,
      ``s0 = sum E[x_{t-1}]``, ``sww = sum E[w w^T]``, ``sw = sum E[w]``, ``sw0 = sum E[w
      x_{t-1}^T]``;
    - observations (one per step with an observed coordinate): ``obs_count``, count times the
      E-step's d and C (``obs_offset``, ``obs_matrix``), ``sxx = sum E[x_t x_t^T]``, ``sx =
      sum E[x_t]``, ``svv = sum E[v v^T]``, ``sv = sum E[v]``, ``svx = sum E[v x_t^T]``;
    - initial states (one per sequence start): ``init_count``, ``init_offset`` (count times
      mu0), ``init_second = sum E[x0' x0'^T]``, ``init_first = sum E[x0']``.

    A re-estimated A is the E-step's plus the regression of the residuals on the previous
    state, and Q the covariance of what is left; from these residual sums neither needs the
    difference of large raw moments (``E[x x^T] - A E[x x^T] A^T`` loses every digit on a
    constant-velocity track that drifts far from the origin). For batch EM the reference
    parameters are exactly the E-step's; blended over stepwise updates they are the
    statistics-weighted average of the E-steps' parameters.
    """

    tr_count: FloatArray
    tr_offset: FloatArray
    tr_matrix: FloatArray
    s00: FloatArray
    s0: FloatArray
    sww: FloatArray
    sw: FloatArray
    sw0: FloatArray
    obs_count: FloatArray
    obs_offset: FloatArray
    obs_matrix: FloatArray
    sxx: FloatArray
    sx: FloatArray
    svv: FloatArray
    sv: FloatArray
    svx: FloatArray
    init_count: FloatArray
    init_offset: FloatArray
    init_second: FloatArray
    init_first: FloatArray

    @classmethod
    def zeros(cls, n: int, p: int) -> StateSpaceStats:
        """Statistics of no data for n state and p observed dimensions."""
        shapes = {
            "tr_count": (),
            "tr_offset": (n,),
            "tr_matrix": (n, n),
            "s00": (n, n),
            "s0": (n,),
            "sww": (n, n),
            "sw": (n,),
            "sw0": (n, n),
            "obs_count": (),
            "obs_offset": (p,),
            "obs_matrix": (p, n),
            "sxx": (n, n),
            "sx": (n,),
            "svv": (p, p),
            "sv": (p,),
            "svx": (p, n),
            "init_count": (),
            "init_offset": (n,),
            "init_second": (n, n),
            "init_first": (n,),
        }
        return cls(**{name: np.zeros(shape) for name, shape in shapes.items()})


@dataclasses.dataclass(frozen=True)
class FilterState:
    """The filtered distribution N(mean, covariance) of a sequence's newest state.

    Examples
    --------
    >>> state = FilterState(np.array([1.0]), np.array([[2.0]]))
    >>> FilterState.from_dict(state.to_dict()).mean
    array([1.])
    """

    mean: FloatArray
    covariance: FloatArray

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "covariance": self.covariance.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilterState:
        if not isinstance(data, dict) or set(data) != {"mean", "covariance"}:
            raise ValidationError(
                f"a filter state needs the keys ['covariance', 'mean'], got {data!r:.80}"
            )
        mean = np.asarray(data["mean"], dtype=np.float64)
        covariance = np.asarray(data["covariance"], dtype=np.float64)
        if mean.ndim != 1 or covariance.shape != (len(mean), len(mean)):
            raise ValidationError(
                f"a filter state needs a mean (n,) and a covariance (n, n), got shapes "
                f"{mean.shape} and {covariance.shape}"
            )
        return cls(mean, covariance)


Carry = dict[str, FilterState]
"""Sequence key -> filtered state of its newest step (what crosses batches)."""


@dataclasses.dataclass(frozen=True)
class SequenceBatch:
    """Observations of one or more sequences, the family's batch type.

    ``observations`` (n_steps, p) holds consecutive segments of ``lengths`` steps each (NaN:
    a missing coordinate; a row of NaN: a step without observation). With ``keys`` None
    every segment is a whole sequence from its start (batch EM over independent sequences);
    otherwise segment ``i`` continues the sequence ``keys[i]`` from the carried filter state
    (or starts it, for a key not seen before).

    Examples
    --------
    >>> batch = SequenceBatch.of(np.array([[1.0], [2.0], [3.0]]), keys=["a", "b", "a"])
    >>> batch.lengths, batch.keys
    ((2, 1), ('a', 'b'))
    >>> batch.observations.ravel(), batch.order
    (array([1., 3., 2.]), array([0, 2, 1]))
    """

    observations: FloatArray
    lengths: tuple[int, ...]
    keys: tuple[str, ...] | None = None
    order: NDArray[np.intp] | None = None

    def __post_init__(self) -> None:
        if sum(self.lengths) != len(self.observations) or min(self.lengths, default=1) < 1:
            raise ValidationError(
                f"lengths must be positive and sum to the {len(self.observations)} steps, "
                f"got {list(self.lengths)}"
            )
        if self.keys is not None and len(self.keys) != len(self.lengths):
            raise ValidationError(
                f"keys must name each of the {len(self.lengths)} segments, got {len(self.keys)}"
            )

    @classmethod
    def of(cls, observations: FloatArray, keys: Any = None) -> SequenceBatch:
        """A batch of rows in time order, each row of the sequence ``keys[i]`` (None: all
        rows one continuing sequence, ``DEFAULT_KEY``); rows are grouped by key, keeping
        their order within a key (keys in order of first appearance)."""
        if keys is None:
            return cls(observations, (len(observations),), (DEFAULT_KEY,))
        labels = [str(key) for key in keys]
        if len(labels) != len(observations):
            raise ValidationError(
                f"keys must name each of the {len(observations)} rows, got {len(labels)}"
            )
        first: dict[str, int] = {}
        codes = np.array([first.setdefault(label, len(first)) for label in labels], dtype=int)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(first))
        return cls(observations[order], tuple(int(c) for c in counts), tuple(first), order)

    def in_original_order(self, values: FloatArray) -> FloatArray:
        """Per-row ``values`` of this batch's (grouped) rows, put back in the caller's order."""
        if self.order is None:
            return values
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def segments(self) -> list[tuple[str | None, FloatArray]]:
        """(key, rows) of each segment."""
        bounds = np.cumsum((0, *self.lengths))
        keys: tuple[str | None, ...] = self.keys or (None,) * len(self.lengths)
        return [
            (key, self.observations[start:stop])
            for key, start, stop in zip(keys, bounds[:-1], bounds[1:], strict=True)
        ]


DEFAULT_KEY = "default"
"""The key of the one continuing series of ``partial_fit``."""
