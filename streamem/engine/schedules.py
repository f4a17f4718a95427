"""Step-size schedules for stepwise EM.

A schedule maps the index ``k`` of a mini-batch update (1 for the first update that blends
with earlier statistics) and the size ``m`` of that mini-batch to the step size ``eta_k`` in
``(0, 1]`` that weighs the new mini-batch against the running statistics::

    s_k = (1 - eta_k) * s_{k-1} + eta_k * mean_{i in B_k} E[S(x_i, z_i) | x_i, theta_{k-1}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from streamem.errors import ValidationError


class Schedule(Protocol):
    """What the engine asks of a step-size schedule."""

    def step_size(self, k: float, batch_size: int) -> float:
        """Step size of update ``k`` for a mini-batch of ``batch_size`` points."""
        ...

    def index_for(self, step_size: float) -> float:
        """The (possibly fractional) index ``k`` at which the schedule gives ``step_size``.

        The engine uses it to restart a decreasing schedule at a larger step size, for
        example after a drift was detected; schedules that do not decrease return 0.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description that :func:`schedule_from_dict` reads back."""
        ...


@dataclass(frozen=True)
class PowerDecay:
    """``eta_k = (k + t0) ** -alpha``: converges to a stationary point of the likelihood.

    With ``alpha`` in (0.5, 1] the step sizes sum to infinity and their squares do not
    (Cappé & Moulines 2009; Liang & Klein 2009). Smaller ``alpha`` forgets the early,
    poorly-initialised statistics faster; ``t0`` damps the first steps.

    Examples
    --------
    >>> schedule = PowerDecay(alpha=0.6, t0=2.0)
    >>> round(schedule.step_size(1, batch_size=100), 4)
    0.5173
    >>> round(schedule.step_size(schedule.index_for(0.2), batch_size=100), 4)
    0.2
    """

    alpha: float = 0.6
    t0: float = 2.0

    def __post_init__(self) -> None:
        if not 0.5 < self.alpha <= 1.0:
            raise ValidationError(f"alpha must be in (0.5, 1], got {self.alpha!r}")
        if not self.t0 >= 0.0:
            raise ValidationError(f"t0 must be >= 0, got {self.t0!r}")

    def step_size(self, k: float, batch_size: int) -> float:
        return min(1.0, float((k + self.t0) ** -self.alpha))

    def index_for(self, step_size: float) -> float:
        return max(0.0, float(step_size ** (-1.0 / self.alpha)) - self.t0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "power", "alpha": self.alpha, "t0": self.t0}


@dataclass(frozen=True)
class Constant:
    """``eta_k = eta``: an exponential forgetting of the past, to track drift.

    Examples
    --------
    >>> Constant(0.05).step_size(1000, batch_size=10)
    0.05
    """

    eta: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.eta <= 1.0:
            raise ValidationError(f"eta must be in (0, 1], got {self.eta!r}")

    def step_size(self, k: float, batch_size: int) -> float:
        return self.eta

    def index_for(self, step_size: float) -> float:
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "constant", "eta": self.eta}


@dataclass(frozen=True)
class HalfLife:
    """``eta = 1 - 0.5 ** (m / half_life)``: a point's weight halves after ``half_life`` points.

    The forgetting is expressed in points, not in updates, so it does not depend on how the
    stream is cut into mini-batches.

    Examples
    --------
    >>> schedule = HalfLife(half_life=1000)
    >>> round(schedule.step_size(7, batch_size=1000), 3)
    0.5
    >>> round(schedule.step_size(7, batch_size=1), 6)
    0.000693
    """

    half_life: float = 10_000.0

    def __post_init__(self) -> None:
        if not self.half_life > 0.0:
            raise ValidationError(f"half_life must be > 0 points, got {self.half_life!r}")

    def step_size(self, k: float, batch_size: int) -> float:
        return -math.expm1(batch_size * math.log(0.5) / self.half_life)

    def index_for(self, step_size: float) -> float:
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "half_life", "half_life": self.half_life}


def schedule_from_dict(spec: dict[str, Any]) -> Schedule:
    """Build a schedule from the output of its ``to_dict``.

    Examples
    --------
    >>> schedule_from_dict({"kind": "half_life", "half_life": 500.0})
    HalfLife(half_life=500.0)
    """
    kind = spec.get("kind")
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    if kind == "power":
        return PowerDecay(**arguments)
    if kind == "constant":
        return Constant(**arguments)
    if kind == "half_life":
        return HalfLife(**arguments)
    raise ValidationError(
        f"schedule kind must be one of 'power', 'constant', 'half_life', got {kind!r}"
    )
