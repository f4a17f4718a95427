"""The stepwise (online, mini-batch) EM engine, model-agnostic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

import numpy as np
from numpy.typing import NDArray

from streamem.engine.family import Family, P, S
from streamem.engine.monitor import ConvergenceMonitor, MonitorRecord
from streamem.engine.schedules import PowerDecay, Schedule
from streamem.errors import NotFittedError, ValidationError


@dataclass(frozen=True)
class UpdateReport:
    """The outcome of one :meth:`StepwiseEM.update`."""

    record: MonitorRecord
    log_likelihood: float


class StepwiseEM(Generic[P, S]):
    """Running sufficient statistics, blended per mini-batch, and the M-step after each.

    For a mini-batch ``B_k`` of ``m`` points::

        s_k = (1 - eta_k) s_{k-1} + eta_k * (1/m) sum_{i in B_k} E[S(x_i, z_i) | x_i, theta_{k-1}]
        theta_k = family.maximize(s_k)

    The first update takes ``eta = 1``. With a schedule that always gives 1 and the whole data
    set as the batch, each update is one iteration of batch EM.

    Parameters
    ----------
    family
        The model family (E-step statistics and M-step).
    schedule
        Step sizes; :class:`~streamem.engine.schedules.PowerDecay` by default.
    monitor
        Convergence monitor; a default :class:`ConvergenceMonitor` if None.
    averaging_start
        Polyak-Ruppert averaging of the parameters from this update on (None: off). The
        averaged parameters are what :attr:`output_params` gives; learning goes on from the
        unaveraged ones.

    Examples
    --------
    A family that estimates the mean of a Gaussian with unit variance (no latent variable):

    >>> import dataclasses
    >>> from streamem.engine.records import ArrayRecord
    >>> @dataclasses.dataclass(frozen=True)
    ... class Mean(ArrayRecord):
    ...     mean: np.ndarray
    >>> @dataclasses.dataclass(frozen=True)
    ... class Sums(ArrayRecord):
    ...     count: np.ndarray
    ...     total: np.ndarray
    >>> class UnitGaussian:
    ...     def expected_statistics(self, params, X):
    ...         ll = -0.5 * float(((X - params.mean) ** 2).sum() + X.size * np.log(2 * np.pi))
    ...         return Sums(np.array(len(X), float), X.sum(axis=0)), ll
    ...     def maximize(self, stats, previous):
    ...         return Mean(stats.total / stats.count)
    ...     def parameter_change(self, old, new):
    ...         return float(np.abs(new.mean - old.mean).max())
    ...     def interpolate(self, a, b, t):
    ...         return Mean((1 - t) * a.mean + t * b.mean)
    >>> engine = StepwiseEM(UnitGaussian())
    >>> engine.initialize(Mean(np.zeros(1)))
    >>> for batch in np.arange(1.0, 41.0).reshape(10, 4, 1):
    ...     report = engine.update(batch)
    >>> engine.n_seen, engine.step
    (40, 10)
    >>> print(engine.params.mean.round(2))
    [28.32]
    """

    def __init__(
        self,
        family: Family[P, S],
        schedule: Schedule | None = None,
        monitor: ConvergenceMonitor | None = None,
        averaging_start: int | None = None,
    ) -> None:
        if averaging_start is not None and averaging_start < 1:
            raise ValidationError(f"averaging_start must be >= 1 or None, got {averaging_start}")
        self.family = family
        self.schedule: Schedule = schedule if schedule is not None else PowerDecay()
        self.monitor = monitor if monitor is not None else ConvergenceMonitor()
        self.averaging_start = averaging_start
        self.step = 0
        self.n_seen = 0
        self.schedule_origin = 0.0
        self._params: P | None = None
        self.stats: S | None = None
        self._squared_weights = 0.0
        self.averaged: P | None = None
        self.n_averaged = 0

    @property
    def initialized(self) -> bool:
        """Whether parameters exist (after :meth:`initialize`)."""
        return self._params is not None

    @property
    def params(self) -> P:
        """The current (unaveraged) parameters, which the next E-step uses."""
        if self._params is None:
            raise NotFittedError("the engine has no parameters yet: call initialize() first")
        return self._params

    @property
    def output_params(self) -> P:
        """The parameters to report: the Polyak-Ruppert average when it is on and started."""
        return self.averaged if self.averaged is not None else self.params

    def initialize(self, params: P) -> None:
        """Start from ``params`` with no statistics; the next update takes ``eta = 1``."""
        self._params = params
        self.stats = None
        self._squared_weights = 0.0
        self.averaged = None
        self.n_averaged = 0

    def next_step_size(self, batch_size: int) -> float:
        """The step size the next update of ``batch_size`` points will take."""
        if self.stats is None:
            return 1.0
        return self.schedule.step_size(self.step - self.schedule_origin, batch_size)

    def restart_schedule(self, step_size: float) -> None:
        """Make a decreasing schedule continue from ``step_size`` (e.g. after drift)."""
        self.schedule_origin = self.step - self.schedule.index_for(step_size)

    def update(self, X: NDArray[np.floating]) -> UpdateReport:
        """One stepwise EM update with the mini-batch ``X`` of shape (n_samples, n_features).

        The engine's state changes only when the M-step succeeds: a
        :class:`~streamem.errors.DegenerateUpdateError` from the family leaves it as it was.
        """
        n_points = len(X)
        if n_points == 0:
            raise ValidationError("a mini-batch needs at least one row, got an empty one")
        params = self.params
        batch_stats, log_likelihood = self.family.expected_statistics(params, X)
        eta = self.next_step_size(n_points)
        batch_mean = batch_stats if n_points == 1 else batch_stats.scaled(1.0 / n_points)
        stats = batch_mean if self.stats is None else self.stats.blended(batch_mean, eta)
        # Kish's effective sample size of the running average: sum of squared point weights.
        squared_weights = eta**2 / n_points + (1.0 - eta) ** 2 * self._squared_weights
        new_params = self.family.maximize(stats.scaled(1.0 / squared_weights), params)
        change = self.family.parameter_change(params, new_params)

        self.stats, self._params = stats, new_params
        self._squared_weights = squared_weights
        self.step += 1
        self.n_seen += n_points
        self._average(new_params)
        record = self.monitor.record(log_likelihood / n_points, n_points, change, eta)
        return UpdateReport(record=record, log_likelihood=log_likelihood)

    @property
    def effective_count(self) -> float:
        """Effective number of points behind the running statistics (Kish's ``1 / sum w_i^2``
        over the points' weights in the average); the M-step sees the statistics scaled to it."""
        return 1.0 / self._squared_weights if self._squared_weights else 0.0

    def replace(self, params: P, stats: S) -> None:
        """Overwrite parameters and statistics (a family re-seeded a component)."""
        self._params, self.stats = params, stats

    def _average(self, params: P) -> None:
        if self.averaging_start is None or self.step < self.averaging_start:
            return
        self.n_averaged += 1
        if self.averaged is None:
            self.averaged = params
        else:
            self.averaged = self.family.interpolate(self.averaged, params, 1.0 / self.n_averaged)

    def state_dict(self) -> dict[str, Any]:
        """The engine's whole state as JSON-able data (parameters, statistics, counters)."""
        return {
            "step": self.step,
            "n_seen": self.n_seen,
            "schedule": self.schedule.to_dict(),
            "schedule_origin": self.schedule_origin,
            "averaging_start": self.averaging_start,
            "n_averaged": self.n_averaged,
            "params": None if self._params is None else self._params.to_dict(),
            "stats": None if self.stats is None else self.stats.to_dict(),
            "squared_weights": self._squared_weights,
            "averaged": None if self.averaged is None else self.averaged.to_dict(),
            "monitor": self.monitor.to_dict(),
        }

    def load_state_dict(
        self, state: dict[str, Any], params_type: type[P], stats_type: type[S]
    ) -> None:
        """Restore what :meth:`state_dict` wrote (the schedule comes from the constructor)."""
        self.step = int(state["step"])
        self.n_seen = int(state["n_seen"])
        self.schedule_origin = float(state["schedule_origin"])
        self.averaging_start = state["averaging_start"]
        self.n_averaged = int(state["n_averaged"])
        self._params = _load(params_type, state["params"])
        self.stats = _load(stats_type, state["stats"])
        self._squared_weights = float(state["squared_weights"])
        self.averaged = _load(params_type, state["averaged"])
        self.monitor = ConvergenceMonitor.from_dict(state["monitor"])


def _load(kind: type[P], data: dict[str, Any] | None) -> P | None:
    return None if data is None else kind.from_dict(data)
