"""One categorical symbol per row: ``p(x | j) = emissionprob_[j, x]``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError
from streamem.models.emissions.base import TableStats, masses_or_fallback


class CategoricalEmission:
    """A symbol among ``0 .. m - 1`` per row (rows of shape (T, 1), hmmlearn's layout), one
    probability table ``emissionprob_`` (K, m).

    The statistics are the occupancy and each symbol's weighted count; the M-step normalises
    the counts per class (hmmlearn's ``CategoricalHMM`` with ``emissionprob_prior = 1``).

    Parameters
    ----------
    n_features
        Number of symbols m (None: the largest symbol of the first data, plus one).

    Examples
    --------
    >>> emission = CategoricalEmission()
    >>> X = np.array([[0.0], [2.0], [2.0]])
    >>> stats = emission.statistics(X, np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), 3)
    >>> emission.maximize(stats, None).round(3).tolist()
    [[0.667, 0.0, 0.333], [0.0, 0.0, 1.0]]
    """

    attribute: ClassVar[str] = "emissionprob_"

    def __init__(self, n_features: int | None = None) -> None:
        self.n_features = n_features

    def check_rows(self, X: NDArray[Any], width: int | None) -> FloatArray:
        rows = np.asarray(X, dtype=np.float64)
        if rows.shape[1] != 1:
            raise ValidationError(
                f"X must have one column of symbols (n_samples, 1), got shape {rows.shape}"
            )
        limit = width if width is not None else self.n_features
        ok = np.isfinite(rows) & (rows >= 0) & (rows == np.round(rows))
        if limit is not None:
            ok &= rows < limit
        if not ok.all():
            bad = rows[~ok][0]
            most = "" if limit is None else f" below {limit}"
            raise ValidationError(f"X must hold symbols (integers >= 0{most}), got {bad!r}")
        return rows

    def width(self, X: FloatArray) -> int:
        return int(self.n_features if self.n_features is not None else X.max() + 1)

    def log_likelihood(self, table: FloatArray, X: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            log_table = np.log(table)
        out: FloatArray = log_table[:, X[:, 0].astype(np.intp)].T
        return out

    def statistics(self, X: FloatArray, weights: FloatArray, width: int) -> TableStats:
        sums = np.zeros((weights.shape[1], width))
        np.add.at(sums.T, X[:, 0].astype(np.intp), weights)
        return TableStats(weights.sum(axis=0), sums)

    def maximize(self, stats: TableStats, fallback: FloatArray | None) -> FloatArray:
        totals = stats.sums.sum(axis=1, keepdims=True)
        table = stats.sums / np.where(totals > 0.0, totals, 1.0)
        return masses_or_fallback(stats, table, fallback)

    def initial(self, X: FloatArray, labels: NDArray[np.intp], k: int, width: int) -> FloatArray:
        """Each class's symbol frequencies in its part of the first partition, mixed with a
        tenth of the whole data's (no symbol impossible; an empty class gets the data's)."""
        symbols = X[:, 0].astype(np.intp)
        overall = np.bincount(symbols, minlength=width) + 1.0
        overall /= overall.sum()
        table = np.empty((k, width))
        for j in range(k):
            counts = np.bincount(symbols[labels == j], minlength=width).astype(np.float64)
            own = counts / counts.sum() if counts.sum() > 0 else overall
            table[j] = 0.9 * own + 0.1 * overall
        return table

    def check_table(self, name: str, table: FloatArray) -> None:
        if np.any(table < 0) or not np.allclose(table.sum(axis=1), 1.0):
            raise ValidationError(f"{name} must be non-negative and sum to 1 per row")

    def draw(self, table: FloatArray, states: NDArray[np.intp], rng: np.random.Generator) -> Any:
        cumulative = np.cumsum(table[states], axis=1)
        symbols = (cumulative > rng.random(len(states))[:, np.newaxis]).argmax(axis=1)
        return symbols[:, np.newaxis].astype(np.intp)

    def change(self, old: FloatArray, new: FloatArray) -> float:
        """Largest change of a probability."""
        return float(np.abs(new - old).max())
