"""Convergence monitoring of a stream of EM updates."""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from streamem.errors import ValidationError

CRITERIA = ("log_likelihood", "parameters")


@dataclass(frozen=True)
class MonitorRecord:
    """What one update looked like.

    ``change`` is the change of the smoothed mean log-likelihood since the previous update
    (NaN for the first update).
    """

    batch: int
    n_points: int
    mean_log_likelihood: float
    smoothed_log_likelihood: float
    change: float
    parameter_change: float
    step_size: float
    converged: bool


class ConvergenceMonitor:
    """Tracks the per-batch mean log-likelihood, its smoothed value, and convergence.

    The smoothed value is an exponentially weighted mean with weight ``smoothing`` on the
    newest batch (1.0: no smoothing, as batch EM wants). The monitor says converged once the
    watched quantity stayed below ``tol`` for ``patience`` updates in a row: with
    ``criterion="log_likelihood"`` the absolute change of the smoothed log-likelihood (batch
    EM), with ``criterion="parameters"`` the parameter change, whose decrease with the step
    size is what a stream can observe through the sampling noise of its mini-batches.

    Examples
    --------
    >>> monitor = ConvergenceMonitor(tol=1e-3, smoothing=1.0, patience=1)
    >>> monitor.record(-2.0, n_points=10, parameter_change=0.5, step_size=1.0).converged
    False
    >>> monitor.record(-1.9995, n_points=10, parameter_change=0.01, step_size=1.0).converged
    True
    >>> monitor.note(-1.9994, n_points=1, parameter_change=0.01, step_size=0.5)  # no record yet
    >>> monitor.converged, monitor.last.batch, monitor.last.step_size
    (True, 3, 0.5)
    """

    def __init__(
        self,
        tol: float = 1e-3,
        smoothing: float = 0.1,
        patience: int = 5,
        history_size: int = 10_000,
        criterion: str = "log_likelihood",
    ) -> None:
        if not tol >= 0.0:
            raise ValidationError(f"tol must be >= 0, got {tol!r}")
        if not 0.0 < smoothing <= 1.0:
            raise ValidationError(f"smoothing must be in (0, 1], got {smoothing!r}")
        if patience < 1:
            raise ValidationError(f"patience must be >= 1, got {patience!r}")
        if criterion not in CRITERIA:
            raise ValidationError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.criterion = criterion
        self.tol = tol
        self.smoothing = smoothing
        self.patience = patience
        self._history: deque[MonitorRecord] = deque(maxlen=history_size)
        self._streak = 0
        self._batch = 0
        self._smoothed: float | None = None
        self._converged = False
        # The newest update's record, not built yet (see note): mean log-likelihood, points,
        # change of the smoothed value, parameter change, step size.
        self._pending: tuple[float, int, float, float, float] | None = None

    @property
    def history(self) -> deque[MonitorRecord]:
        """The newest records, oldest first (at most ``history_size``)."""
        if self._pending is not None:
            self._flush()
        return self._history

    @property
    def last(self) -> MonitorRecord | None:
        """The newest record, or None before the first update."""
        history = self.history
        return history[-1] if history else None

    @property
    def converged(self) -> bool:
        """Whether the newest update met the convergence criterion."""
        return self._converged

    @property
    def smoothed_log_likelihood(self) -> float | None:
        """The newest smoothed mean log-likelihood, or None before the first update."""
        return self._smoothed

    def record(
        self,
        mean_log_likelihood: float,
        n_points: int,
        parameter_change: float,
        step_size: float,
    ) -> MonitorRecord:
        """Add one update and return its record."""
        self.note(mean_log_likelihood, n_points, parameter_change, step_size)
        return self._flush()

    def note(
        self,
        mean_log_likelihood: float,
        n_points: int,
        parameter_change: float,
        step_size: float,
    ) -> None:
        """:meth:`record` without building the record: the smoothed value, the streak and
        :attr:`converged` are updated now, the record when :attr:`history`, :attr:`last` or
        :meth:`to_dict` is read (an update per row need not pay for an object per row)."""
        if self._pending is not None:
            self._flush()
        previous = self._smoothed
        if previous is None:
            smoothed, change = mean_log_likelihood, math.nan
        else:
            smoothed = previous + self.smoothing * (mean_log_likelihood - previous)
            change = smoothed - previous
        watched = change if self.criterion == "log_likelihood" else parameter_change
        self._streak = self._streak + 1 if abs(watched) < self.tol else 0
        self._converged = self._streak >= self.patience
        self._batch += 1
        self._smoothed = smoothed
        self._pending = (mean_log_likelihood, n_points, change, parameter_change, step_size)

    def _flush(self) -> MonitorRecord:
        """Build the pending record (the newest update's) into the history; the record."""
        assert self._pending is not None
        assert self._smoothed is not None
        mean, n_points, change, parameter_change, step_size = self._pending
        self._pending = None
        entry = MonitorRecord(
            self._batch,
            n_points,
            mean,
            self._smoothed,
            change,
            parameter_change,
            step_size,
            self._converged,
        )
        self._history.append(entry)
        return entry

    def __deepcopy__(self, memo: dict[int, Any]) -> ConvergenceMonitor:
        """A copy with a history of its own that shares the (frozen) records: copying a model
        does not copy every record of a long history one by one."""
        clone = copy.copy(self)
        clone._history = deque(self._history, maxlen=self._history.maxlen)
        memo[id(self)] = clone
        return clone

    def reset(self) -> None:
        """Forget the history (a new fit starts)."""
        self._history.clear()
        self._streak = self._batch = 0
        self._smoothed, self._converged, self._pending = None, False, None

    def to_dict(self, history: int = 100) -> dict[str, Any]:
        """JSON-able state with the newest ``history`` records (NaN written as None)."""
        records = list(self.history)[-history:] if history else []
        return {
            "tol": self.tol,
            "smoothing": self.smoothing,
            "patience": self.patience,
            "history_size": self.history.maxlen,
            "criterion": self.criterion,
            "streak": self._streak,
            "history": [_nan_to_none(vars(entry)) for entry in records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConvergenceMonitor:
        """Inverse of :meth:`to_dict`."""
        monitor = cls(
            data["tol"],
            data["smoothing"],
            data["patience"],
            data["history_size"],
            data["criterion"],
        )
        monitor._streak = data["streak"]
        for entry in data["history"]:
            monitor._history.append(MonitorRecord(**_none_to_nan(entry)))
        last = monitor.last
        if last is not None:
            monitor._batch = last.batch
            monitor._smoothed = last.smoothed_log_likelihood
            monitor._converged = last.converged
        return monitor


def _nan_to_none(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()}


def _none_to_nan(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: math.nan if v is None else v for k, v in entry.items()}
