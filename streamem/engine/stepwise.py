"""The stepwise (online, mini-batch) EM engine, model-agnostic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

import numpy as np

from streamem.engine.family import B, C, Family, P, S
from streamem.engine.monitor import ConvergenceMonitor, MonitorRecord
from streamem.engine.records import ArrayRecord
from streamem.engine.schedules import PowerDecay, Schedule
from streamem.errors import NotFittedError, ValidationError


@dataclass(frozen=True)
class UpdateReport:
    """The outcome of one :meth:`StepwiseEM.update`."""

    record: MonitorRecord
    log_likelihood: float
    n_units: int


class StepwiseEM(Generic[B, P, S, C]):
    """Running sufficient statistics, blended per mini-batch, and the M-step after each.

    For a mini-batch ``B_k`` of ``m`` units (rows, time steps, documents: the family counts)::

        s_k = (1 - eta_k) s_{k-1} + eta_k * (1/m) sum_{i in B_k} E[S(x_i, z_i) | x_i, theta_{k-1}]
        theta_k = family.maximize(s_k)

    The first update takes ``eta = 1``. Whenever statistics of ``n`` units stand behind the
    model without a schedule history (after that first update, or after :meth:`initialize`
    with given statistics, e.g. those of a batch ``fit``), the next update of ``m`` units takes
    ``eta = m / (n + m)`` (the exact running average of the ``n + m`` units) and a decreasing
    schedule continues from the index that gives that step size, so the step neither ignores
    the mass behind the statistics nor gives it more weight than it has; a forgetting schedule
    (``Constant``, ``HalfLife``) takes its own step if that is larger. With a schedule that
    always gives 1 and the whole data set as the batch, each update is one iteration of batch
    EM.

    Parameters
    ----------
    family
        The model family (batch type, E-step statistics, M-step, carry).
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
    >>> from streamem.engine.family import Expectation, NoCarry
    >>> from streamem.engine.records import ArrayRecord
    >>> @dataclasses.dataclass(frozen=True)
    ... class Mean(ArrayRecord):
    ...     mean: np.ndarray
    >>> @dataclasses.dataclass(frozen=True)
    ... class Sums(ArrayRecord):
    ...     count: np.ndarray
    ...     total: np.ndarray
    >>> class UnitGaussian(NoCarry):
    ...     params_type, stats_type = Mean, Sums
    ...     def initial_params(self, X, rng):
    ...         return Mean(X.mean(axis=0))
    ...     def expected_statistics(self, params, X, carry):
    ...         ll = -0.5 * float(((X - params.mean) ** 2).sum() + X.size * np.log(2 * np.pi))
    ...         return Expectation(Sums(np.array(len(X), float), X.sum(axis=0)), ll, len(X))
    ...     def maximize(self, stats):
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
    [28.19]
    """

    def __init__(
        self,
        family: Family[B, P, S, C],
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
        self.carry: C | None = None
        self._squared_weights = 0.0
        self._units_behind = 0.0
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

    def initialize(self, params: P, stats: S | None = None, n_units: float = 0.0) -> None:
        """Start from ``params``; optionally warm, with running statistics behind them.

        Without ``stats`` the next update takes ``eta = 1``. With ``stats`` (the per-unit
        average of the statistics of ``n_units`` units, as :attr:`stats` holds them), the
        next update of ``m`` units takes ``eta = m / (n_units + m)`` (or a forgetting
        schedule's larger step), and ``n_seen`` counts the ``n_units`` units. The carry is
        cleared.
        """
        if stats is not None and not n_units > 0:
            raise ValidationError(f"warm statistics need n_units > 0, got {n_units!r}")
        self._params = params
        self.stats = stats
        self.carry = None
        self._squared_weights = 1.0 / n_units if stats is not None else 0.0
        self._units_behind = float(n_units) if stats is not None else 0.0
        self.n_seen = int(n_units) if stats is not None else 0
        self.averaged = None
        self.n_averaged = 0

    def start(self, batch: B, rng: np.random.Generator) -> None:
        """:meth:`initialize` from the family's starting values for ``batch``."""
        self.initialize(self.family.initial_params(batch, rng))

    def next_step_size(self, n_units: int) -> float:
        """The step size the next update of ``n_units`` units will take."""
        if self.stats is None:
            return 1.0
        if self._units_behind:
            running_mean = n_units / (self._units_behind + n_units)
            k = self.schedule.index_for(running_mean)
            return max(running_mean, self.schedule.step_size(k, n_units))
        return self.schedule.step_size(self.step - self.schedule_origin, n_units)

    def restart_schedule(self, step_size: float) -> None:
        """Make a decreasing schedule continue from ``step_size`` (e.g. after drift)."""
        self._units_behind = 0.0
        self.schedule_origin = self.step - self.schedule.index_for(step_size)

    def update(self, batch: B) -> UpdateReport:
        """One stepwise EM update with the mini-batch ``batch`` (the family's batch type).

        The engine's state (parameters, statistics, carry, counters) changes only when the
        M-step succeeds: a :class:`~streamem.errors.DegenerateUpdateError` from the family
        leaves it as it was.
        """
        params = self.params
        expectation = self.family.expected_statistics(params, batch, self.carry)
        n_units = expectation.n_units
        if n_units < 1:
            raise ValidationError("a mini-batch needs at least one unit, got an empty one")
        eta = self.next_step_size(n_units)
        batch_stats = expectation.stats
        batch_mean = batch_stats if n_units == 1 else batch_stats.scaled(1.0 / n_units)
        stats = batch_mean if self.stats is None else self.stats.blended(batch_mean, eta)
        squared_weights = self.next_squared_weights(eta, n_units)
        new_params = self.family.maximize(stats.scaled(1.0 / squared_weights))
        change = self.family.parameter_change(params, new_params)
        self.commit(
            new_params,
            stats,
            expectation.carry,
            squared_weights,
            n_units,
            expectation.log_likelihood,
            change,
            eta,
        )
        record = self.monitor.last
        assert record is not None
        return UpdateReport(record, expectation.log_likelihood, n_units)

    @property
    def schedule_known(self) -> bool:
        """Whether the next update's step size follows from the schedule's history alone:
        running statistics exist and are not those of a warm start, whose first update
        restarts the schedule (what :meth:`commit` does after such an update)."""
        return self.stats is not None and not self._units_behind

    def next_squared_weights(self, eta: float, n_units: int) -> float:
        """Kish's sum of squared unit weights of the running average after an update of
        ``n_units`` units with step size ``eta`` (the M-step sees the statistics scaled by
        its inverse, the effective count)."""
        return eta**2 / n_units + (1.0 - eta) ** 2 * self._squared_weights

    def commit(
        self,
        params: P,
        stats: S,
        carry: C | None,
        squared_weights: float,
        n_units: int,
        log_likelihood: float,
        change: float,
        eta: float,
    ) -> None:
        """Make an update that was computed outside :meth:`update` the engine's state.

        ``stats`` are the blended statistics with step size ``eta`` (from
        :meth:`next_step_size`), ``params`` their M-step (scaled by ``squared_weights`` from
        :meth:`next_squared_weights`), ``change`` the family's parameter change and
        ``log_likelihood`` that of the ``n_units`` units. :meth:`update` ends with this
        call; a fused kernel of one family's whole step (E-step, blend, M-step) calls it in
        place of :meth:`update`. The monitor notes the update without building its record
        (:meth:`ConvergenceMonitor.note`).
        """
        if self.stats is None:
            self._units_behind = float(n_units)
        elif self._units_behind:
            self.restart_schedule(eta)
        self.stats, self._params, self.carry = stats, params, carry
        self._squared_weights = squared_weights
        self.step += 1
        self.n_seen += n_units
        self._average(params)
        self.monitor.note(log_likelihood / n_units, n_units, change, eta)

    @property
    def effective_count(self) -> float:
        """Effective number of units behind the running statistics (Kish's ``1 / sum w_i^2``
        over the units' weights in the average); the M-step sees the statistics scaled to it."""
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

    def state_dict(self, encode: Callable[[ArrayRecord], Any] | None = None) -> dict[str, Any]:
        """The engine's whole state as JSON-able data (parameters, statistics, carry, counters).

        ``encode`` turns the parameter and statistics records into JSON data (default: their
        ``to_dict``, lists of floats); a family with large records gives a compact encoding,
        so that the lists are never built."""
        write = encode if encode is not None else ArrayRecord.to_dict
        return {
            "step": self.step,
            "n_seen": self.n_seen,
            "schedule": self.schedule.to_dict(),
            "schedule_origin": self.schedule_origin,
            "units_behind": self._units_behind,
            "averaging_start": self.averaging_start,
            "n_averaged": self.n_averaged,
            "params": None if self._params is None else write(self._params),
            "stats": None if self.stats is None else write(self.stats),
            "carry": None if self.carry is None else self.family.carry_to_dict(self.carry),
            "squared_weights": self._squared_weights,
            "averaged": None if self.averaged is None else write(self.averaged),
            "monitor": self.monitor.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` wrote (the schedule comes from the constructor)."""
        family = self.family
        self.step = int(state["step"])
        self.n_seen = int(state["n_seen"])
        self.schedule_origin = float(state["schedule_origin"])
        self._units_behind = float(state.get("units_behind", 0.0))
        self.averaging_start = state["averaging_start"]
        self.n_averaged = int(state["n_averaged"])
        self._params = _load(family.params_type, state["params"])
        self.stats = _load(family.stats_type, state["stats"])
        carry = state.get("carry")
        self.carry = None if carry is None else family.carry_from_dict(carry)
        self._squared_weights = float(state["squared_weights"])
        self.averaged = _load(family.params_type, state["averaged"])
        self.monitor = ConvergenceMonitor.from_dict(state["monitor"])


def _load(kind: type[P], data: dict[str, Any] | None) -> P | None:
    return None if data is None else kind.from_dict(data)
