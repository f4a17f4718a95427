"""Independent Poisson counts per feature: ``p(x | j) = prod_d Poisson(x_d | lambda_jd)``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError
from streamem.models.emissions.base import TableStats, masses_or_fallback

TINY = float(np.finfo(np.float64).tiny)


class PoissonEmission:
    """Poisson counts, one rate per class and feature (the table ``lambdas_`` (K, d)).

    The statistics are the occupancy and the weighted sums of the counts; the M-step is their
    ratio, the weighted mean count (hmmlearn's ``PoissonHMM`` with ``lambdas_prior = 0``).

    Examples
    --------
    >>> emission = PoissonEmission()
    >>> X = np.array([[0.0, 2.0], [4.0, 1.0]])
    >>> stats = emission.statistics(X, np.array([[1.0, 0.0], [0.5, 0.5]]), 2)
    >>> emission.maximize(stats, None).round(3).tolist()
    [[1.333, 1.667], [4.0, 1.0]]
    >>> emission.log_likelihood(np.array([[1.0, 1.0]]), X).round(3).ravel().tolist()
    [-2.693, -5.178]
    """

    attribute: ClassVar[str] = "lambdas_"

    def check_rows(self, X: NDArray[Any], width: int | None) -> FloatArray:
        rows = np.asarray(X, dtype=np.float64)
        if not np.all(np.isfinite(rows)) or np.any(rows < 0):
            bad = rows[~(np.isfinite(rows) & (rows >= 0))][0]
            raise ValidationError(f"X must hold counts (finite numbers >= 0), got {bad!r}")
        if width is not None and rows.shape[1] != width:
            raise ValidationError(f"X must have {width} features, got {rows.shape[1]}")
        return rows

    def width(self, X: FloatArray) -> int:
        return int(X.shape[1])

    def log_likelihood(self, table: FloatArray, X: FloatArray) -> FloatArray:
        log_rates = np.log(np.maximum(table, TINY))
        out: FloatArray = (
            X @ log_rates.T - table.sum(axis=1) - gammaln(X + 1.0).sum(axis=1)[:, None]
        )
        return out

    def statistics(self, X: FloatArray, weights: FloatArray, width: int) -> TableStats:
        return TableStats(weights.sum(axis=0), np.asarray(weights.T @ X, dtype=np.float64))

    def maximize(self, stats: TableStats, fallback: FloatArray | None) -> FloatArray:
        mass = np.where(stats.resp > 0.0, stats.resp, 1.0)
        return masses_or_fallback(stats, stats.sums / mass[:, np.newaxis], fallback)

    def initial(self, X: FloatArray, labels: NDArray[np.intp], k: int, width: int) -> FloatArray:
        """Each class's mean count (the whole data's for an empty class), floored at a
        thousandth of the data's mean so that no count is impossible."""
        overall = X.mean(axis=0)
        table = np.stack(
            [X[labels == j].mean(axis=0) if (labels == j).any() else overall for j in range(k)]
        )
        floored: FloatArray = np.maximum(table, np.maximum(1e-3 * overall, 1e-6))
        return floored

    def check_table(self, name: str, table: FloatArray) -> None:
        if np.any(table < 0):
            raise ValidationError(f"{name} must be rates >= 0, got {table.tolist()}")

    def draw(self, table: FloatArray, states: NDArray[np.intp], rng: np.random.Generator) -> Any:
        drawn: FloatArray = rng.poisson(table[states]).astype(np.float64)
        return drawn

    def change(self, old: FloatArray, new: FloatArray) -> float:
        """Largest change of a rate relative to the larger of old and new."""
        scale = np.maximum(np.maximum(old, new), TINY)
        return float((np.abs(new - old) / scale).max())
