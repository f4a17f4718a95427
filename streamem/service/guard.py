"""The row guard: keeps absurd points out of the model, and never drops good points with them.

Three tests, each naming the points it refuses with a :class:`~streamem.service.codecs.RejectReason`
so that the daemon dead-letters their records and learns the rest of the batch:

- ``out_of_bounds``: a feature outside its ``input.bounds`` interval (optional, per feature);
- ``degenerate``: a value whose statistics overflow (``abs(x) > MAX_MAGNITUDE``: its square
  in the second moments would be infinite), or a point that made the engine refuse an update
  (found by :func:`isolate_refused` on copies of the model, see below);
- ``outlier``: before the model starts (any family), a point far outside the bulk of the points
  kept so far (:func:`~streamem.models.common.screen.far_from_bulk`: a feature more than 20
  widths of their 1%-99% quantile range beyond it), so that one absurd row cannot shape the
  starting values, and so for a mixture until the model is warm (``guard.warm_batches`` updates,
  10 by default: a younger model's density misjudges rare rows of real data; a sequential
  family is judged by its filter from its first update), then a point whose log-density under the
  current model is more than ``guard.outlier_margin`` nats below the model's smoothed mean
  log-likelihood per point. For a point of a ``d``-dimensional Gaussian component, the
  log-density falls ``m`` nats below its mean with probability ``P(chi2_d > d + 2 m)``: about
  1e-12 for ``m = 30`` and ``d = 3``, so a clean stream loses nothing. When more than
  ``guard.max_outlier_fraction`` of a batch is below the threshold, the batch is a change of
  regime, not a few bad readings: nothing is refused, the model learns it and the drift detector
  reports it. Scoring every point would cost more than the update itself, so only *candidates*
  are scored: points with a feature outside the range of the data, widened by that range's width
  on both sides (``[low - w, high + w]``, ``w = high - low``). The range is that of the first
  batch the warm model sees (scored whole), grown by every candidate kept since. A point inside
  it is near the data on every feature and is not tested.

A point with missing features is scored on its observed features (the model marginalises the
others). A sequential family (a hidden Markov model, a state space model) scores a reading by
its one-step-ahead predictive density given its key's filter (:meth:`ModelScorer.score_steps`),
the whole batch in order once it has a candidate; the earliest low reading of each key is read
as missing and the batch scored again, so that the readings after a refused one are judged by
a filter that never saw it. Its refused readings are left out of the batch: the key's
sequence continues without them.

Examples
--------
>>> import numpy as np
>>> from streamem.service.config import GuardSettings
>>> guard = RowGuard(GuardSettings(), ["temp", "hum"], {"temp": [-40.0, 125.0]})
>>> refusals = guard.screen(np.array([[21.0, 0.4], [1e300, 0.4], [200.0, 0.5]]), None)
>>> [(r.index, r.reason.value) for r in refusals]
[(1, 'degenerate'), (2, 'out_of_bounds')]
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamem.errors import RefusedUpdateWarning, StreamemError, ValidationError
from streamem.models.common.screen import (
    COLD_ROWS,
    FENCE,
    far_from_bulk,
    low_density,
    outlier_margin,
)
from streamem.models.protocol import StreamingModel
from streamem.models.registry import family_spec
from streamem.service.codecs import Decoded, RejectReason
from streamem.service.config import GuardSettings

__all__ = [
    "MAX_MAGNITUDE",
    "MAX_PASSES",
    "MAX_TRIALS",
    "ModelScorer",
    "Refusal",
    "RowGuard",
    "bisect_refused",
    "isolate_refused",
    "trial_accepts",
]

MAX_MAGNITUDE = 1e150
"""Larger absolute values are ``degenerate``: a batch of them has infinite second moments."""

MAX_PASSES = 8
"""Most scoring passes of a sequential batch (each reads one more low step per key as
missing)."""

MAX_TRIALS = 256
"""Most trial updates :func:`isolate_refused` makes for one refused batch."""


@dataclass(frozen=True)
class Refusal:
    """One point kept out of the model: its index in the batch, the reason, an explanation."""

    index: int
    reason: RejectReason
    detail: str


class ModelScorer:
    """What the outlier test reads from a model, through the model protocol only.

    Parameters
    ----------
    model
        The model being learned.
    """

    def __init__(self, model: StreamingModel) -> None:
        self.model = model

    def warm_updates(self) -> int:
        """Stepwise updates the model made (0 before its initialisation)."""
        status = self.model.status
        return status.n_updates if status.initialized else 0

    def reference_log_likelihood(self) -> float | None:
        """The model's smoothed batch mean log-likelihood per point (None: no update yet)."""
        record = self.model.status.record
        return None if record is None else float(record.smoothed_log_likelihood)

    def scorable(self) -> bool:
        """Whether the family's declaration says its units can be scored alone."""
        return family_spec(self.model.family).scorable_alone

    def sequential(self) -> bool:
        """Whether the family's units are steps of keyed sequences (each with its filter)."""
        return family_spec(self.model.family).sequential

    def score_steps(self, X: Decoded, keys: Sequence[str] | None) -> npt.NDArray[np.float64] | None:
        """One-step-ahead predictive log-density of each step of a sequential family's batch,
        ``log p(x_t | x_1..x_{t-1})`` given its key's carried filter, in arrival order (NaN
        features are missing: the filter only predicts over them); None when the model refuses
        the rows (e.g. a status code outside a categorical alphabet: the update finds and
        dead-letters them)."""
        model = self.model
        try:
            batch = model.batch_from_rows(X, None if keys is None else tuple(keys))
        except ValidationError:
            return None
        return np.asarray(model.log_density(batch), dtype=np.float64)

    def score(self, X: Decoded) -> npt.NDArray[np.float64] | None:
        """Log-density of each point under the current model, shape ``(n_points,)`` (None if
        the family's declaration says its units cannot be scored alone: documents, or
        readings that form sequences, whose density depends on their sequence's filter at
        that step, which scoring a few candidates out of their order cannot give).
        """
        model = self.model
        if not self.scorable():
            return None
        return np.asarray(model.log_density(model.batch_from_rows(X)), dtype=np.float64)


class RowGuard:
    """Screens a micro-batch before it is learned; see the module docstring.

    Parameters
    ----------
    settings
        The ``guard`` section.
    features
        ``input.features``, to name a feature in a refusal's detail.
    bounds
        ``input.bounds``: feature name -> ``[low, high]``.
    """

    def __init__(
        self,
        settings: GuardSettings,
        features: Sequence[str],
        bounds: Mapping[str, Sequence[float]],
    ) -> None:
        self.settings = settings
        self.features = tuple(features)
        low = np.full(len(features), -np.inf)
        high = np.full(len(features), np.inf)
        for name, (lo, hi) in bounds.items():
            low[self.features.index(name)], high[self.features.index(name)] = lo, hi
        self._bounded = bool(bounds)
        self._low, self._high = low, high
        self._seen: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self._cold: Decoded | None = None
        self._margin = settings.outlier_margin

    def reset(self) -> None:
        """Forget the points kept so far (a new or restored model starts)."""
        self._seen = None
        self._cold = None
        self._margin = self.settings.outlier_margin

    def screen(
        self, X: Decoded, scorer: ModelScorer | None, keys: Sequence[str] | None = None
    ) -> list[Refusal]:
        """Return the points of ``X`` (shape ``(n_points, n_features)``, with their sequence
        ``keys`` for a sequential family) to keep out, by index."""
        refusals: list[Refusal] = []
        refused = np.zeros(len(X), dtype=bool)
        with np.errstate(invalid="ignore"):  # NaN (missing) compares False
            huge = np.abs(X) > MAX_MAGNITUDE
            outside = np.less(X, self._low) | np.greater(X, self._high) if self._bounded else None
        for row, col in _first_true(huge, refused):
            refusals.append(self._refusal(X, row, col, RejectReason.DEGENERATE, "too large"))
            refused[row] = True
        if outside is not None:
            for row, col in _first_true(outside, refused):
                bounds = f"outside [{self._low[col]:g}, {self._high[col]:g}]"
                refusals.append(self._refusal(X, row, col, RejectReason.OUT_OF_BOUNDS, bounds))
                refused[row] = True
        if self.settings.outliers and scorer is not None:
            updates = scorer.warm_updates()
            if not updates or (not scorer.sequential() and updates < self.settings.warm_batches):
                # no model, or one too young for its density to judge rare rows: the fence
                outliers = self._far(X, refused)
            elif scorer.sequential():
                self._cold = None
                outliers = self._low_steps(X, refused, scorer, keys)
            else:
                self._cold = None
                outliers = self._outliers(X, refused, scorer)
            refusals.extend(outliers)
            refusals.sort(key=lambda refusal: refusal.index)
        return refusals

    def _far(self, X: Decoded, refused: npt.NDArray[np.bool_]) -> list[Refusal]:
        """Before the model starts: the points far outside the bulk of the points kept so far
        (the last ``COLD_ROWS`` of them and this batch); the kept ones join them."""
        rows = np.flatnonzero(~refused)
        before = np.empty((0, X.shape[1])) if self._cold is None else self._cold
        reference = np.concatenate([before, X[rows]])
        far = far_from_bulk(reference, np.arange(len(before), len(reference))) - len(before)
        kept = np.ones(len(rows), dtype=bool)
        kept[far] = False
        self._cold = np.concatenate([before, X[rows[kept]]])[-COLD_ROWS:]
        return [
            Refusal(
                int(row),
                RejectReason.OUTLIER,
                f"a feature is more than {FENCE:g} widths of the 1%-99% range of the points "
                "kept so far beyond it (before the model starts)",
            )
            for row in rows[far].tolist()
        ]

    def _low_steps(
        self,
        X: Decoded,
        refused: npt.NDArray[np.bool_],
        scorer: ModelScorer,
        keys: Sequence[str] | None,
    ) -> list[Refusal]:
        """A sequential family's outliers: steps whose one-step-ahead predictive log-density
        given their key's filter is more than ``outlier_margin`` nats below the model's
        smoothed mean log-likelihood per step. Scored only when the batch has a candidate
        (outside the widened range of the steps kept). The earliest low step of each key is
        read as missing and the batch scored again, so that the steps after a refused one are
        judged by a filter that never saw it (at most ``MAX_PASSES`` passes; low steps left
        after them are refused too)."""
        settings = self.settings
        reference = scorer.reference_log_likelihood()
        rows = np.flatnonzero(~refused)
        if reference is None or not len(self._candidates(X, refused)):
            self._widen(X[rows])
            return []
        Y = np.array(X[rows], dtype=np.float64)
        row_keys = None if keys is None else [keys[i] for i in rows.tolist()]
        owners = np.zeros(len(rows), dtype=np.intp)
        if row_keys is not None:
            owners = np.unique(np.asarray(row_keys, dtype=str), return_inverse=True)[1].ravel()
        missing = np.zeros(len(rows), dtype=bool)
        scores = np.zeros(len(rows))
        for _ in range(MAX_PASSES):
            with np.errstate(all="ignore"):
                scored = scorer.score_steps(Y, row_keys)
            if scored is None:
                return []
            scores = scored
            low = low_density(scores, reference, self._margin, max_fraction=1.0)
            low = low[~missing[low]]
            if not len(low):
                break
            _, first = np.unique(owners[low], return_index=True)  # the earliest of each key
            missing[low[first]] = True
            Y[low[first]] = np.nan
        else:
            missing[low_density(scores, reference, self._margin, 1.0)] = True
        margin = self._margin  # the spread of the kept steps sets the next batches' margin
        self._margin = outlier_margin(scores[~missing], settings.outlier_margin)
        if missing.sum() > settings.max_outlier_fraction * len(rows):
            self._widen(X[rows])
            return []  # a change of regime: learn it
        self._widen(X[rows[~missing]])
        return [
            Refusal(
                int(rows[i]),
                RejectReason.OUTLIER,
                f"one-step-ahead predictive log-density {float(scores[i]):.6g} given its "
                f"sequence's filter is more than {margin:.4g} nats below the "
                f"model's smoothed mean log-likelihood per step ({reference:.6g})",
            )
            for i in np.flatnonzero(missing).tolist()
        ]

    def _candidates(self, X: Decoded, refused: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
        """Points to score: outside the widened range of the points kept so far (the whole
        batch while no range is known)."""
        if self._seen is None:
            return np.flatnonzero(~refused)
        low, high = self._seen
        width = high - low
        with np.errstate(invalid="ignore"):
            outside = np.less(X, low - width) | np.greater(X, high + width)
        return np.array([row for row, _ in _first_true(outside, refused)], dtype=np.intp)

    def _widen(self, X: Decoded) -> None:
        """Extend the range by points kept (NaN, a missing feature, is ignored)."""
        if not len(X):
            return
        low, high = np.fmin.reduce(X, axis=0), np.fmax.reduce(X, axis=0)
        if self._seen is not None:
            low, high = np.fmin(low, self._seen[0]), np.fmax(high, self._seen[1])
        self._seen = (low, high)

    def _refusal(self, X: Decoded, row: int, col: int, reason: RejectReason, why: str) -> Refusal:
        return Refusal(
            row, reason, f"feature {self.features[col]!r} is {float(X[row, col])!r}: {why}"
        )

    def _outliers(
        self, X: Decoded, refused: npt.NDArray[np.bool_], scorer: ModelScorer
    ) -> list[Refusal]:
        """Score the candidates; the range grows by the candidates that are kept."""
        settings = self.settings
        reference = scorer.reference_log_likelihood()
        if scorer.warm_updates() < settings.warm_batches or reference is None:
            return []
        whole = self._seen is None
        candidates = self._candidates(X, refused)
        if not len(candidates):
            return []
        with np.errstate(all="ignore"):
            scores = scorer.score(X[candidates])
        if scores is None:
            return []
        low = low_density(
            scores,
            reference,
            self._margin,
            settings.max_outlier_fraction,
            int((~refused).sum()),
        )
        kept = np.ones(len(candidates), dtype=bool)
        kept[low] = False
        margin = self._margin
        if whole:  # the first batch of the warm model, scored whole: the margin of the next
            self._margin = outlier_margin(scores[kept], settings.outlier_margin)
        self._widen(X[candidates[kept]])
        return [
            Refusal(
                int(candidates[i]),
                RejectReason.OUTLIER,
                f"log-density {float(scores[i]):.6g} is more than {margin:.4g} "
                f"nats below the model's smoothed mean log-likelihood ({reference:.6g})",
            )
            for i in low.tolist()
        ]


def _first_true(mask: npt.NDArray[np.bool_], skip: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``(row, first column)`` of the rows of ``mask`` with a True, not in ``skip``; the whole
    array is tested first (one fast pass) since such rows are rare."""
    if not mask.any():
        return []
    rows = np.flatnonzero(mask.any(axis=1) & ~skip)
    return [(int(row), int(np.flatnonzero(mask[row])[0])) for row in rows.tolist()]


def trial_accepts(model: StreamingModel, X: Decoded, keys: tuple[str, ...] | None = None) -> bool:
    """Whether the engine takes an update of ``model`` with ``X``: a trial on a copy."""
    trial = copy.deepcopy(model)
    refused = trial.status.n_refused
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RefusedUpdateWarning)
            trial.learn(trial.batch_from_rows(X, keys))
    except (StreamemError, ValueError, ArithmeticError, np.linalg.LinAlgError):
        return False
    return trial.status.n_refused == refused


def isolate_refused(
    model: StreamingModel, X: Decoded, keys: tuple[str, ...] | None = None
) -> list[int]:
    """The points of a batch that ``model`` refused, without which it takes the update.

    :func:`bisect_refused` over :func:`trial_accepts`; see there.
    """

    def accepts(rows: npt.NDArray[np.intp]) -> bool:
        subset = None if keys is None else tuple(keys[i] for i in rows.tolist())
        return trial_accepts(model, X[rows], subset)

    return bisect_refused(len(X), accepts)


def bisect_refused(
    n_points: int, accepts: Callable[[npt.NDArray[np.intp]], bool], max_trials: int = MAX_TRIALS
) -> list[int]:
    """Find the points of a refused batch without which the update is accepted.

    Bisection on trial updates (``accepts`` learns the points of the given indices on a copy
    of the model and says whether the engine took them): a half that is accepted is clean, a
    refused half is split again down to single points. ``k`` offending points among ``n``
    take about ``2 k log2(n)`` trials. Trials stop after ``max_trials``; the points still
    undecided are returned too (refusing a few good points beats losing the whole batch).

    Parameters
    ----------
    n_points
        Points in the refused batch.
    accepts
        Whether a trial update with the points of the given indices is accepted.
    max_trials
        Budget of trial updates.

    Returns
    -------
    list of int
        Sorted indices of the offending points (empty if every half was accepted: the
        refusal came from the points together, not from some of them).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(16.0).reshape(8, 2)
    >>> bisect_refused(len(X), lambda rows: not (X[rows] == 6.0).any())
    [3]
    """
    offending: list[int] = []
    pending: list[npt.NDArray[np.intp]] = [np.arange(n_points)]
    trials = 0
    while pending:
        subset = pending.pop()
        if trials >= max_trials:
            offending.extend(subset.tolist())
            continue
        trials += 1
        if trials > 1 and accepts(subset):  # the whole batch is known to be refused
            continue
        if len(subset) == 1:
            offending.append(int(subset[0]))
            continue
        half = len(subset) // 2
        pending.extend((subset[half:], subset[:half]))
    return sorted(offending)
