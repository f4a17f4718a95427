"""A robust screen of rows before a model exists: the rows far outside the bulk of the data.

Before a mixture starts there is no model to score a row with, and one absurd row (a sensor's
error sentinel ``65535``, a unit mix-up, ``1e15``) among the warm-up's rows would shape the
starting values. :func:`far_from_bulk` finds such rows from the data alone, per feature: the
bulk is the range between the 1% and 99% quantiles, ``[q01, q99]`` with width
``w = q99 - q01``, and a row with a feature outside ``[q01 - FENCE w, q99 + FENCE w]`` is far.
Quantiles ignore the rows beyond them, so up to 1% absurd rows do not move the fence. The fence
is wide: for a Gaussian feature it lies 95 standard deviations beyond ``q99`` (``w`` is 4.65
of them), for a log-normal one (heavy-tailed, ``sigma = 1``) at 5.4 sigma of its logarithm,
a probability of 4e-8. When more than ``MAX_FRACTION`` of the rows are far, they are the data
(a second regime, a heavy tail), not a few bad readings, and none is flagged. A feature whose
bulk has no width (a constant) takes ``max(|median|, 1)`` as its width.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(500, 2))
>>> X[17, 1] = 1e15
>>> far_from_bulk(X).tolist()
[17]
>>> far_from_bulk(X, candidates=np.arange(10)).tolist()
[]
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from streamem.engine.records import FloatArray

__all__ = ["FENCE", "MAX_FRACTION", "far_from_bulk"]

FENCE = 20.0
"""Widths of the bulk (1%-99% quantile range) a row's feature may lie beyond it."""

MAX_FRACTION = 0.01
"""Above this share of far rows, none is flagged: they are part of the data."""


def far_from_bulk(
    X: FloatArray, candidates: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.intp]:
    """Indices of the rows of ``X`` with a feature far outside the bulk of ``X``'s values.

    Parameters
    ----------
    X
        Rows, shape ``(n_rows, n_features)``; NaN (a missing feature) is ignored.
    candidates
        Only these rows may be flagged (all of them when None); the bulk is that of every row.

    Returns
    -------
    numpy.ndarray
        Sorted indices of the far rows (none when more than ``MAX_FRACTION`` of the rows are
        far); see the module docstring.
    """
    X = np.asarray(X, dtype=np.float64)
    rows = np.arange(len(X)) if candidates is None else np.asarray(candidates, dtype=np.intp)
    if X.ndim != 2 or not len(X) or not len(rows):
        return np.empty(0, dtype=np.intp)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature
        low, high, median = np.nanquantile(X, [0.01, 0.99, 0.5], axis=0)
        width = high - low
        width = np.where(width > 0, width, np.maximum(np.abs(median), 1.0))
        far = np.less(X[rows], low - FENCE * width) | np.greater(X[rows], high + FENCE * width)
    flagged = rows[far.any(axis=1)]
    if len(flagged) > MAX_FRACTION * len(X):
        return np.empty(0, dtype=np.intp)
    return np.sort(flagged)
