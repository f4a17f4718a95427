"""The contract between the stepwise EM engine and a model family.

A family knows its batch type, its complete-data sufficient statistics and its M-step, and
nothing about schedules: the engine owns the step counter, the blending of statistics,
averaging and convergence.

- **Batches and units.** The batch is whatever the family reads (rows of a matrix, one or more
  sequences, a sparse document-term matrix). The E-step says how many *units* the batch held
  (rows, time steps, documents): the engine counts units for the step size, ``n_seen`` and the
  per-unit log-likelihood, never ``len(batch)``.
- **Carry.** State that crosses consecutive batches of a sequence (a hidden Markov model's
  filtered state, a Kalman filter's mean and covariance) is a value the E-step takes and returns.
  The engine keeps the newest one, hands it to the next E-step and saves it with its state. A
  family of independent rows has no carry (None in, None out).
- **Records.** Parameters and statistics are :class:`~streamem.engine.records.ArrayRecord`
  types that the family names (``params_type``, ``stats_type``), so that the engine restores
  them without being told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from streamem.engine.records import ArrayRecord

B = TypeVar("B", contravariant=True)
P = TypeVar("P", bound=ArrayRecord)
S = TypeVar("S", bound=ArrayRecord)
C = TypeVar("C")


@dataclass(frozen=True)
class Expectation(Generic[S, C]):
    """What the E-step of one batch gives.

    Attributes
    ----------
    stats
        The SUM over the batch's units of the expected complete-data statistics (so that the
        statistics of two shards add up to those of their union).
    log_likelihood
        Total log-likelihood of the batch under the parameters (given the carry in, for a
        sequence: the log predictive density of the batch's observations).
    n_units
        Number of units (rows, time steps, documents) the batch held; at least 1.
    carry
        The state to hand to the next batch of the same sequence(s); None for none.
    """

    stats: S
    log_likelihood: float
    n_units: int
    carry: C | None = None


class Family(Protocol[B, P, S, C]):
    """E-step statistics and M-step of an exponential-family latent-variable model.

    ``B`` is the batch type, ``P`` the parameters, ``S`` the statistics and ``C`` the carry.
    """

    @property
    def params_type(self) -> type[P]:
        """The parameters' record type (the engine restores saved parameters with it)."""
        ...

    @property
    def stats_type(self) -> type[S]:
        """The statistics' record type."""
        ...

    def initial_params(self, batch: B, rng: np.random.Generator) -> P:
        """Starting values from a first batch (user-given values, else the family's method)."""
        ...

    def expected_statistics(self, params: P, batch: B, carry: C | None) -> Expectation[S, C]:
        """E-step of one batch, continuing the sequence state ``carry`` (None: none yet)."""
        ...

    def maximize(self, stats: S) -> P:
        """M-step: the parameters that maximise the expected complete-data likelihood.

        ``stats`` are the running statistics scaled to the effective number of units behind
        them, so that they read as sums (a prior counts in pseudo-units). Raises
        :class:`~streamem.errors.DegenerateUpdateError` when the statistics give no valid model.
        """
        ...

    def parameter_change(self, old: P, new: P) -> float:
        """A scale-free size of the change between two parameter sets."""
        ...

    def interpolate(self, a: P, b: P, t: float) -> P:
        """``(1 - t) * a + t * b`` in a parameterisation where that is a valid model."""
        ...

    def carry_to_dict(self, carry: C) -> Any:
        """The carry as JSON-able data (floats round-trip exactly)."""
        ...

    def carry_from_dict(self, data: Any) -> C:
        """Inverse of :meth:`carry_to_dict`."""
        ...


class NoCarry:
    """Mixin for families of independent units: no state crosses batches.

    Examples
    --------
    >>> NoCarry().carry_to_dict(None) is None
    True
    """

    def carry_to_dict(self, carry: None) -> None:
        return None

    def carry_from_dict(self, data: Any) -> None:
        return None
