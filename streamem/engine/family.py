"""The contract between the stepwise EM engine and a model family.

A family knows its complete-data sufficient statistics and nothing about schedules: the
engine owns the step counter, the blending of statistics, averaging and convergence.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import ArrayRecord

P = TypeVar("P", bound=ArrayRecord)
S = TypeVar("S", bound=ArrayRecord)


class Family(Protocol[P, S]):
    """E-step statistics and M-step of an exponential-family latent-variable model."""

    def expected_statistics(self, params: P, X: NDArray[np.floating]) -> tuple[S, float]:
        """E-step on a batch of shape (n_samples, n_features).

        Returns the SUM over the rows of the expected complete-data statistics (so that the
        statistics of two shards add up to those of their union) and the total
        log-likelihood of the rows under ``params``.
        """
        ...

    def maximize(self, stats: S, previous: P) -> P:
        """M-step: the parameters that maximise the expected complete-data likelihood.

        ``stats`` are the running statistics scaled to the effective number of points
        behind them, so that they read as sums (a prior counts in pseudo-points). Raises
        :class:`~streamem.errors.DegenerateUpdateError` when the statistics give no valid
        model.
        """
        ...

    def parameter_change(self, old: P, new: P) -> float:
        """A scale-free size of the change between two parameter sets."""
        ...

    def interpolate(self, a: P, b: P, t: float) -> P:
        """``(1 - t) * a + t * b`` in a parameterisation where that is a valid model."""
        ...
