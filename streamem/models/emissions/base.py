"""The contract of an emission distribution whose parameters are one table (K, m) per latent
class, and its typed statistics.

A mixture or a hidden Markov model delegates to it: ``log_likelihood`` of each row under each
class (T, K), the ``statistics`` of rows under class weights (responsibilities or state
posteriors), and ``maximize`` from (running) statistics. The statistics are sums, so that those
of two batches add up and blend in the stepwise engine.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError


@dataclasses.dataclass(frozen=True)
class TableStats(ArrayRecord):
    """Sufficient statistics of a table emission: the classes' occupancy ``resp`` (K,) and
    the weighted sums ``sums`` (K, m) of the emission's statistic (counts, symbol indicators).

    Examples
    --------
    >>> a = TableStats(np.array([1.0, 2.0]), np.array([[3.0], [4.0]]))
    >>> (a + a).sums.ravel().tolist()
    [6.0, 8.0]
    """

    resp: FloatArray
    sums: FloatArray


class TableEmission(Protocol):
    """An emission distribution parameterised by a table (K, m)."""

    attribute: ClassVar[str]
    """The fitted attribute holding the table (hmmlearn's name: ``lambdas_``, ...)."""

    def check_rows(self, X: NDArray[Any], width: int | None) -> FloatArray:
        """Validated rows (T, d) as float64; ``width`` is the table's (None: not known yet).
        Raises :class:`~streamem.errors.ValidationError` naming the bad value."""
        ...

    def width(self, X: FloatArray) -> int:
        """The table's number of columns m for rows X (their first batch)."""
        ...

    def log_likelihood(self, table: FloatArray, X: FloatArray) -> FloatArray:
        """``log p(x_t | class j)`` (T, K)."""
        ...

    def statistics(self, X: FloatArray, weights: FloatArray, width: int) -> TableStats:
        """Sums over rows X (T, d) under class weights (T, K), for a table of ``width``
        columns."""
        ...

    def maximize(self, stats: TableStats, fallback: FloatArray | None) -> FloatArray:
        """M-step: the table from statistics; a class without mass keeps ``fallback``'s row
        (raises :class:`~streamem.errors.DegenerateUpdateError` without one)."""
        ...

    def initial(self, X: FloatArray, labels: NDArray[np.intp], k: int, width: int) -> FloatArray:
        """A starting table (K, m) from rows X and a first partition ``labels`` (T,)."""
        ...

    def check_table(self, name: str, table: FloatArray) -> None:
        """Validate a user-given table (raises ValidationError naming ``name``)."""
        ...

    def draw(self, table: FloatArray, states: NDArray[np.intp], rng: np.random.Generator) -> Any:
        """One row per class of ``states`` (n, d)."""
        ...

    def change(self, old: FloatArray, new: FloatArray) -> float:
        """A scale-free size of the change between two tables."""
        ...


def masses_or_fallback(
    stats: TableStats, table: FloatArray, fallback: FloatArray | None
) -> FloatArray:
    """``table`` with the rows of classes without mass taken from ``fallback``.

    Raises
    ------
    DegenerateUpdateError
        If a class has no mass and there is no fallback.
    """
    empty = ~(stats.resp > 0.0)
    if not empty.any():
        return table
    if fallback is None:
        raise DegenerateUpdateError(
            f"no mass behind class(es) {np.flatnonzero(empty).tolist()} and no anchor to keep"
        )
    out = table.copy()
    out[empty] = fallback[empty]
    return out
