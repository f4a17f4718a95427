"""The part of the model protocol that an estimator backed by one stepwise engine shares.

An estimator that keeps its :class:`~streamem.engine.StepwiseEM` in ``engine_`` gets the
protocol's ``status``, ``monitor_``, ``next_step_size`` and ``restart_schedule`` from
:class:`EngineBackedModel`; it says what its latent classes weigh (``_class_weights``) and how
it refuses use before it learned (``_check_fitted``).
"""

from __future__ import annotations

from typing import Any

from streamem.engine import ConvergenceMonitor, StepwiseEM
from streamem.engine.records import FloatArray
from streamem.models.protocol import ModelStatus


class EngineBackedModel:
    """Mixin of the engine-backed parts of :class:`~streamem.models.protocol.StreamingModel`.

    Examples
    --------
    >>> class Unfitted(EngineBackedModel):
    ...     pass
    >>> Unfitted().status.initialized, Unfitted().next_step_size(10)
    (False, 1.0)
    """

    engine_: StepwiseEM[Any, Any, Any, Any]

    def _check_fitted(self) -> None:
        """Raise if the model has not learned yet."""
        raise NotImplementedError

    def _class_weights(self) -> FloatArray:
        """The weight of each latent class (components, states, topics), summing to one."""
        raise NotImplementedError

    @property
    def status(self) -> ModelStatus:
        """Counters, the newest monitor record and the class weights (see
        :class:`~streamem.models.protocol.ModelStatus`)."""
        if not hasattr(self, "engine_"):
            return ModelStatus()
        engine = self.engine_
        return ModelStatus(
            initialized=engine.initialized,
            n_seen=int(engine.n_seen),
            n_updates=int(engine.step),
            record=engine.monitor.last,
            converged=bool(engine.monitor.converged),
            weights=tuple(self._class_weights().tolist()) if engine.initialized else (),
        )

    @property
    def monitor_(self) -> ConvergenceMonitor:
        """The convergence monitor of the stepwise updates."""
        self._check_fitted()
        return self.engine_.monitor

    def next_step_size(self, n_units: int) -> float:
        """The step size the next update of ``n_units`` units will take."""
        return float(self.engine_.next_step_size(n_units)) if hasattr(self, "engine_") else 1.0

    def restart_schedule(self, step_size: float) -> None:
        """Make the decreasing schedule continue from ``step_size`` (a drift response)."""
        self._check_fitted()
        self.engine_.restart_schedule(step_size)
