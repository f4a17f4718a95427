"""Toy families of the engine's own, so that the engine is tested without any model of models/.

- :class:`UnitGaussian`: the mean of a Gaussian with unit variance; rows are units, no carry.
- :class:`RandomWalk`: the mean step of a random walk observed as one sequence in blocks; a
  time step is a unit and the carry is the walk's last value, without which the step across a
  block boundary would be lost.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from streamem.engine.family import Expectation, NoCarry
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError

LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class Mean(ArrayRecord):
    mean: FloatArray


@dataclasses.dataclass(frozen=True)
class Sums(ArrayRecord):
    count: FloatArray
    total: FloatArray


class _MeanFamily:
    params_type = Mean
    stats_type = Sums

    def maximize(self, stats: Sums) -> Mean:
        if not stats.count > 0:
            raise DegenerateUpdateError("no mass behind the statistics")
        return Mean(stats.total / stats.count)

    def parameter_change(self, old: Mean, new: Mean) -> float:
        return float(np.abs(new.mean - old.mean).max())

    def interpolate(self, a: Mean, b: Mean, t: float) -> Mean:
        return Mean((1 - t) * a.mean + t * b.mean)


class UnitGaussian(NoCarry, _MeanFamily):
    """Rows (n, d) of N(mu, I); the statistics are the count and the sum of the rows."""

    def initial_params(self, X: FloatArray, rng: np.random.Generator) -> Mean:
        return Mean(X[rng.integers(len(X))].copy())

    def expected_statistics(
        self, params: Mean, X: FloatArray, carry: None
    ) -> Expectation[Sums, None]:
        if not np.isfinite(X).all():
            raise DegenerateUpdateError("a row is not finite")
        log_likelihood = -0.5 * float(((X - params.mean) ** 2).sum() + X.size * LOG_2PI)
        return Expectation(Sums(np.array(float(len(X))), X.sum(axis=0)), log_likelihood, len(X))


class RandomWalk(_MeanFamily):
    """A 1-D sequence x_t = x_{t-1} + mu + N(0, 1), given in blocks (T,); carry: last x."""

    def initial_params(self, x: FloatArray, rng: np.random.Generator) -> Mean:
        return Mean(np.array(0.0))

    def expected_statistics(
        self, params: Mean, x: FloatArray, carry: float | None
    ) -> Expectation[Sums, float]:
        previous = x[:-1] if carry is None else np.concatenate([[carry], x[:-1]])
        steps = x[len(x) - len(previous) :] - previous
        log_likelihood = -0.5 * float(((steps - params.mean) ** 2).sum() + len(steps) * LOG_2PI)
        stats = Sums(np.array(float(len(steps))), np.array(steps.sum()))
        return Expectation(stats, log_likelihood, len(x), float(x[-1]))

    def carry_to_dict(self, carry: float) -> Any:
        return carry

    def carry_from_dict(self, data: Any) -> float:
        return float(data)
