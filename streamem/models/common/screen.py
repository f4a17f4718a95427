"""The outlier tests of rows: far outside the bulk of the data before a model exists, far
below the model's log-likelihood once it does.

Before a mixture starts there is no model to score a row with, and one absurd row (a sensor's
error sentinel ``65535``, a unit mix-up, ``1e15``) among the warm-up's rows would shape the
starting values. :func:`far_from_bulk` finds such rows from the data alone, per feature: the
bulk is the range between the 1% and 99% quantiles, ``[q01, q99]`` with width ``w = q99 - q01``
(of fewer than 101 rows, the quantiles ``1 / (n - 1)`` and ``1 - 1 / (n - 1)``: the second
smallest and largest values, so that one absurd row is never the bulk's edge; and at least the
range from the third smallest to the third largest value, so that a sparse feature, constant in
the bulk, keeps its rare values), and a row with a feature outside ``[q01 - FENCE w, q99 + FENCE
w]`` is far. Quantiles ignore the rows beyond them, so up to 1% absurd rows do not move the
fence. The fence is wide: for a Gaussian feature it lies 95 standard deviations beyond ``q99``
(``w`` is 4.65 of them), for a log-normal one (heavy-tailed, ``sigma = 1``) at 5.4 sigma of its
logarithm, a probability of 4e-8. More than two absurd values of a feature widen its range
beyond use (none is then flagged on it). When more than ``MAX_FRACTION`` of the rows (and more
than one) are far, they are the data (a second regime, a heavy tail), not a few bad readings,
and none is flagged; fewer than ``MIN_ROWS`` rows are no bulk, and none of them is flagged. A
feature whose bulk has no width (a constant) takes ``max(|median|, 1)`` as its width, and no
feature's width is below the median width of the features: a sparse feature (a pixel that is
rarely on, standardised) keeps its rare values, while an error sentinel or ``1e15`` lies
orders of magnitude beyond any of them.

Once a model exists, :func:`low_density` finds the rows whose log-density under it is more
than ``OUTLIER_MARGIN`` nats below the model's mean log-likelihood per row. For a row of a
``d``-dimensional Gaussian component that happens with probability ``P(chi2_d > d + 2 m)``:
about 1e-12 for ``m = 30`` and ``d = 3``. When more than ``MAX_OUTLIER_FRACTION`` of the rows
are that low, they are a change of regime, to be learned, and none is flagged. The margin
grows with the clean rows' own spread of log-densities (:func:`outlier_margin`): in 61
dimensions, or under a model that fits the data loosely, a clean row lies further below the
mean than in 3. A stream of
single rows (``learn_one``) judges the share over at least ``MIN_GUARDED_BATCH`` rows, and
takes ``MAX_OUTLIER_RUN`` low rows in a row for a change of regime.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(500, 2))
>>> X[17, 1] = 1e15
>>> far_from_bulk(X).tolist()
[17]
>>> far_from_bulk(X, candidates=np.arange(10)).tolist()
[]
>>> scores = np.array([-3.1, -2.9, -80.0, np.nan])
>>> low_density(scores, reference=-3.0, max_fraction=0.5).tolist()
[2, 3]
>>> low_density(scores, reference=-3.0).tolist()  # half the rows: a change of regime
[]
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from streamem.engine.records import FloatArray

__all__ = [
    "COLD_ROWS",
    "FENCE",
    "MAX_FRACTION",
    "MAX_OUTLIER_FRACTION",
    "MAX_OUTLIER_RUN",
    "MIN_GUARDED_BATCH",
    "MIN_ROWS",
    "OUTLIER_MARGIN",
    "SPREAD_MARGIN",
    "far_from_bulk",
    "low_density",
    "outlier_margin",
]

FENCE = 20.0
"""Widths of the bulk (1%-99% quantile range) a row's feature may lie beyond it."""

MAX_FRACTION = 0.01
"""Above this share of far rows (one row at least), none is flagged: they are the data."""

MIN_ROWS = 10
"""Fewer rows are no bulk: none is flagged."""

COLD_ROWS = 2_000
"""Most rows kept before the start that the screen of the next ones compares with."""

OUTLIER_MARGIN = 30.0
"""Nats below the model's mean log-likelihood per row at which a row is an outlier."""

MAX_OUTLIER_FRACTION = 0.05
"""Above this share of rows that low, none is flagged: the data changed regime."""

SPREAD_MARGIN = 10.0
"""The margin is at least this many times the clean rows' own spread of log-densities (the
median minus the 1% quantile of a scored batch's): a high-dimensional or misspecified model's
clean rows fall further below its mean than a 3-dimensional Gaussian's."""

MIN_GUARDED_BATCH = 100
"""Rows over which the share of low rows of a smaller mini-batch is judged."""

MAX_OUTLIER_RUN = 100
"""Low rows in a row (over calls) after which they are a change of regime and are learned."""


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
    if X.ndim != 2 or len(X) < MIN_ROWS or not len(rows):
        return np.empty(0, dtype=np.intp)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature
        n = max(len(X) - 1, 1)
        edge, third = max(0.01, 1.0 / n), min(2.0 / n, 0.5)
        levels = [min(edge, 0.5), max(1.0 - edge, 0.5), 0.5, third, 1.0 - third]
        low, high, median, low3, high3 = np.nanquantile(X, levels, axis=0)
        width = np.maximum(high - low, high3 - low3)
        width = np.where(width > 0, width, np.maximum(np.abs(median), 1.0))
        width = np.maximum(width, np.nanmedian(width))  # no feature narrower than the typical
        far = np.less(X[rows], low - FENCE * width) | np.greater(X[rows], high + FENCE * width)
    flagged = rows[far.any(axis=1)]
    if len(flagged) > max(MAX_FRACTION * len(X), 1):
        return np.empty(0, dtype=np.intp)
    return np.sort(flagged)


def low_density(
    scores: FloatArray,
    reference: float,
    margin: float = OUTLIER_MARGIN,
    max_fraction: float = MAX_OUTLIER_FRACTION,
    n_rows: int | None = None,
) -> npt.NDArray[np.intp]:
    """Indices of the ``scores`` (log-densities of rows under the model) more than ``margin``
    nats below ``reference`` (the model's mean log-likelihood per row); NaN is low too.

    None is returned when more than ``max_fraction`` of ``n_rows`` (the rows of the batch
    the scores were taken from; all scored by default) are low: a change of regime.
    """
    with np.errstate(invalid="ignore"):
        low = ~(np.asarray(scores) >= reference - margin)
    n = len(low) if n_rows is None else n_rows
    if low.sum() > max_fraction * n:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(low)


def outlier_margin(scores: FloatArray, margin: float = OUTLIER_MARGIN) -> float:
    """The margin of :func:`low_density` for a model whose rows scored ``scores``:
    ``max(margin, SPREAD_MARGIN * (median - q01))`` of the finite scores (``margin`` when
    fewer than ``MIN_GUARDED_BATCH`` are finite). The 1% quantile ignores a few absurd rows.

    Examples
    --------
    >>> scores = -0.5 * np.random.default_rng(0).chisquare(3, 1000)  # a 3-d Gaussian's
    >>> round(outlier_margin(scores), 1), round(outlier_margin(20 * scores), 1)
    (44.0, 879.6)
    """
    finite = np.asarray(scores)[np.isfinite(scores)]
    if len(finite) < MIN_GUARDED_BATCH:
        return margin
    low, middle = np.quantile(finite, [0.01, 0.5])
    return max(margin, SPREAD_MARGIN * float(middle - low))
