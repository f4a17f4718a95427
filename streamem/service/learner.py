"""The learn and monitor stages: one stepwise EM update per micro-batch, and drift detection.

:class:`Learner` owns the model (any family of :mod:`streamem.models.registry`, used through
the model protocol :class:`~streamem.models.protocol.StreamingModel` only) built from the
``model`` section, feeds it micro-batches, and watches the mean log-likelihood of each batch
(computed under the parameters *before* the batch is learned, so it measures how well the model
predicts new data) with a river drift detector. Its whole state, the model's warm-up buffer and
the detector included, round-trips through :meth:`Learner.state_dict` /
:meth:`Learner.from_state`, which the checkpoint stores.

The number of points the model learned is ``n_seen``; points can also be *dropped*: a mini-batch
that the engine refuses as degenerate (the previous parameters are kept) or whose update fails.
Every point given to :meth:`Learner.learn` is in exactly one of ``n_seen``, the warm-up buffer
(before the first initialisation) and ``n_dropped``.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from river import drift as river_drift

from streamem.engine.monitor import MonitorRecord
from streamem.engine.schedules import Constant, HalfLife, PowerDecay, Schedule
from streamem.errors import RefusedUpdateWarning, StreamemError
from streamem.models.protocol import ModelStatus, StreamingModel, StreamingOptions
from streamem.models.registry import family_spec, model_class
from streamem.service.codecs import Decoded
from streamem.service.config import DriftSettings, ModelSettings, ScheduleSettings

__all__ = [
    "AVERAGING_START",
    "DRIFT_HISTORY",
    "BatchOutcome",
    "DriftMonitor",
    "Learner",
    "LearnerStateError",
    "LearnerStatus",
    "build_model",
    "build_schedule",
    "initial_model",
]

log = logging.getLogger(__name__)

AVERAGING_START = 20
"""With ``model.averaging``, Polyak-Ruppert averaging starts at this update (the first updates
come from a rough initialisation and would bias the average)."""

DRIFT_HISTORY = 1000
"""Number of recent detector inputs kept in the state; a restored detector replays them."""

_FORMAT = "streamem.daemon.learner"
_FORMAT_VERSION = 1


_Isolate = Callable[[Decoded, tuple[str, ...] | None], list[int]]


class LearnerStateError(StreamemError):
    """A stored learner state cannot be used with this configuration; the message says why."""


def build_model(settings: ModelSettings) -> StreamingModel:
    """Return a new model of the family that ``model.family`` names, from the ``model`` section.

    Examples
    --------
    >>> build_model(ModelSettings(n_components=2)).family
    'gaussian_mixture'
    """
    options = StreamingOptions(
        n_components=settings.n_components,
        covariance_type=settings.covariance_type,
        reg_covar=settings.reg_covar,
        init_size=settings.init_size,
        n_init=settings.n_init,
        seed=settings.seed,
        schedule=build_schedule(settings.schedule),
        averaging_start=AVERAGING_START if settings.averaging else None,
        vocabulary=None if settings.vocabulary is None else settings.vocabulary.spec(),
        snapshot_top_words=settings.snapshot_top_words,
        snapshot_components=settings.snapshot_components,
        n_symbols=settings.n_symbols,
    )
    return model_class(settings.family).from_options(options)


def initial_model(settings: ModelSettings, features: tuple[str, ...]) -> StreamingModel:
    """The fitted model of the document ``model.initial`` names, to continue with the mass of
    its statistics behind it (its engine's warm start): the configuration's ``schedule`` and
    ``averaging``, the document's other hyper-parameters.

    Raises
    ------
    LearnerStateError
        If the document is not a fitted model of the configured family, components,
        covariance type, vocabulary and features (the message names the key).
    """
    assert settings.initial is not None
    path = settings.initial
    fresh = build_model(settings)
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as error:
        raise LearnerStateError(f"model.initial: {path} cannot be read: {error}") from error
    wanted = fresh.to_dict()["hyperparameters"]
    stored = document.get("hyperparameters") if isinstance(document, dict) else None
    if not isinstance(stored, dict) or document.get("format") != fresh.FORMAT:
        found = document.get("format") if isinstance(document, dict) else None
        raise LearnerStateError(
            f"model.initial: expected a {fresh.FORMAT!r} model document (model.family "
            f"{settings.family!r}), received format {found!r} in {path}"
        )
    for name in family_spec(settings.family).structural:
        if stored.get(name) != wanted.get(name):
            raise LearnerStateError(
                f"model.{name}: the initial model {path} has {stored.get(name)!r}, the "
                f"configuration says {wanted.get(name)!r}"
            )
    hyper = {**stored, "schedule": wanted["schedule"], "averaging_start": wanted["averaging_start"]}
    try:
        model = type(fresh).from_dict({**document, "hyperparameters": hyper})
    except (KeyError, TypeError, ValueError) as error:
        raise LearnerStateError(f"model.initial: {path} cannot be read: {error}") from error
    state = document.get("state") or {}
    names = state.get("feature_names_in")
    if (
        not model.status.initialized
        or list(names or features) != list(features)
        or state.get("n_features_in") != len(features)
    ):
        raise LearnerStateError(
            f"model.initial: expected a fitted model of the {len(features)} features "
            f"{list(features)}, received one of {state.get('n_features_in')} features "
            f"{names}, initialized={model.status.initialized}, in {path}"
        )
    return model


def build_schedule(settings: ScheduleSettings) -> Schedule:
    """Return the step-size schedule that ``model.schedule`` describes.

    Examples
    --------
    >>> build_schedule(ScheduleSettings(kind="half_life", half_life=500))
    HalfLife(half_life=500.0)
    >>> build_schedule(ScheduleSettings())
    PowerDecay(alpha=0.6, t0=2.0)
    """
    if settings.kind == "power":
        return PowerDecay(alpha=settings.alpha, t0=settings.t0)
    if settings.kind == "constant":
        return Constant(settings.step_size)
    return HalfLife(settings.half_life)


class DriftMonitor:
    """A river drift detector watching for a *fall* of the batch mean log-likelihood.

    ``page_hinkley`` runs :class:`river.drift.PageHinkley` in ``down`` mode. ``adwin`` runs
    :class:`river.drift.ADWIN` (checking at every batch) and reports a change only when the mean
    of its window fell: a rising log-likelihood is the model improving, not a drift.

    Both river detectors start over after a detection, so their state is a function of the
    inputs since the last detection; :meth:`state_dict` keeps the last :data:`DRIFT_HISTORY`
    of them and :meth:`load_state_dict` replays them (exact unless more batches than that
    passed since the last detection).

    Parameters
    ----------
    settings
        The ``drift`` section.

    Examples
    --------
    >>> monitor = DriftMonitor(DriftSettings(min_batches=5, threshold=5.0))
    >>> [monitor.update(-3.0) for _ in range(10)].count(True)
    0
    >>> [monitor.update(-6.0) for _ in range(5)].index(True)
    1
    """

    def __init__(self, settings: DriftSettings) -> None:
        self.settings = settings
        self.history: deque[float] = deque(maxlen=DRIFT_HISTORY)
        self._detector = self._new_detector()

    def _new_detector(self) -> Any:
        s = self.settings
        if s.detector == "adwin":
            delta = 0.002 if s.delta is None else s.delta
            return river_drift.ADWIN(  # type: ignore[no-untyped-call]
                delta=delta, clock=1, grace_period=s.min_batches
            )
        return river_drift.PageHinkley(
            min_instances=s.min_batches,
            delta=0.005 if s.delta is None else s.delta,
            threshold=s.threshold,
            mode="down",
        )

    def update(self, mean_log_likelihood: float) -> bool:
        """Watch one batch's mean log-likelihood; return True if a drift is detected."""
        detector = self._detector
        before = detector.estimation if self.settings.detector == "adwin" else 0.0
        detector.update(mean_log_likelihood)
        if not detector.drift_detected:
            self.history.append(mean_log_likelihood)
            return False
        self.history.clear()  # the detector starts over at its next update
        if self.settings.detector == "adwin":
            return bool(detector.estimation < before)
        return True

    def state_dict(self) -> dict[str, Any]:
        """The inputs since the last detection (at most :data:`DRIFT_HISTORY`)."""
        return {"detector": self.settings.detector, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the detector by replaying the stored inputs (see the class docstring)."""
        self._detector = self._new_detector()
        self.history.clear()
        if state.get("detector") != self.settings.detector:
            return  # the configuration changed detector: start it afresh
        for value in state["history"]:
            self.update(float(value))


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one micro-batch.

    Attributes
    ----------
    n_points
        Points in the batch.
    learned
        Whether the model made an update (False while warming up, or if the update was refused).
    record
        The monitor's record of the update (None if no update).
    drift
        Whether the drift detector fired on this batch.
    isolated
        Indices of the points left out because the engine refused the update with them
        (see the ``isolate`` argument of :meth:`Learner.learn`).
    """

    n_points: int
    learned: bool
    record: MonitorRecord | None = None
    drift: bool = False
    isolated: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LearnerStatus:
    """An immutable view of the learner after a batch, safe to read from another thread.

    Attributes
    ----------
    initialized
        Whether the model has parameters (the warm-up is over).
    n_seen
        Points learned by the model.
    n_warmup
        Points waiting in the warm-up buffer.
    n_dropped
        Points of refused or failed updates.
    n_updates
        Stepwise updates of the model (micro-batches learned).
    weights
        Component weights, shape ``(n_components,)`` (empty before initialisation).
    record
        The monitor's newest record.
    converged
        The monitor's convergence flag.
    drift_events
        Drifts detected so far.
    drift
        Whether the newest batch triggered a drift.
    """

    initialized: bool = False
    n_seen: int = 0
    n_warmup: int = 0
    n_dropped: int = 0
    n_updates: int = 0
    weights: tuple[float, ...] = ()
    record: MonitorRecord | None = None
    converged: bool = False
    drift_events: int = 0
    drift: bool = False


@dataclass
class _Counters:
    n_dropped: int = 0
    drift_events: int = 0
    last_drift: bool = False


class Learner:
    """Learns micro-batches with stepwise EM and watches them for drift.

    Parameters
    ----------
    model
        The ``model`` section (family hyper-parameters, schedule, seed).
    drift
        The ``drift`` section.
    features
        The feature names (``input.features``); their number is the dimension.

    Examples
    --------
    >>> from streamem.synthetic import SensorModes
    >>> learner = Learner(ModelSettings(init_size=1000), DriftSettings(), ["temp", "hum", "vib"])
    >>> X, _ = SensorModes.default().sample(2000, np.random.default_rng(0))
    >>> [learner.learn(batch).learned for batch in np.split(X, 4)]
    [False, True, True, True]
    >>> status = learner.status
    >>> status.n_seen, status.n_updates, round(sum(status.weights), 6)
    (2000, 3, 1.0)
    >>> restored = Learner.from_state(learner.state_dict(), ModelSettings(init_size=1000),
    ...                               DriftSettings(), ["temp", "hum", "vib"])
    >>> restored.status == status
    True
    """

    def __init__(
        self, model: ModelSettings, drift: DriftSettings, features: list[str] | tuple[str, ...]
    ) -> None:
        self.settings = model
        self.drift_settings = drift
        self.features = tuple(features)
        self.model = (
            build_model(model) if model.initial is None else initial_model(model, self.features)
        )
        self.drift = DriftMonitor(drift) if drift.enabled else None
        self._counters = _Counters()
        self.status = LearnerStatus()
        if model.initial is not None:  # the statistics of the initial model are behind it
            self.status = self._status(self.model.status)

    # ---- learning -----------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """Whether the model has parameters."""
        return self.model.status.initialized

    def learn(
        self, X: Decoded, keys: tuple[str, ...] | None = None, isolate: _Isolate | None = None
    ) -> BatchOutcome:
        """Learn one micro-batch of shape ``(n_points, n_features)`` (NaN = missing; a sparse
        matrix of counts for a topic model's documents); ``keys`` gives each point's sequence
        for a sequential family (see ``batch_from_rows``).

        The first points fill the model's warm-up buffer until ``model.init_size`` of them
        arrived (the library's default when null); the model then initialises and makes its
        first update with all of them. A degenerate batch is refused (the previous parameters
        are kept) and its points counted as dropped; an error in the update is logged and its
        points dropped too: bad data never stops the learner. With ``isolate``
        (:func:`streamem.service.guard.isolate_refused`), a refused update of an initialised
        model is retried without the points that ``isolate`` finds (by trial updates on copies
        of the model); they are in the outcome's ``isolated``.
        """
        model = self.model
        n = X.shape[0]
        before = model.status
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RefusedUpdateWarning)
                model.learn(model.batch_from_rows(X, keys))
        except (StreamemError, ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
            log.error("the update with a batch of %d points failed, dropped: %s", n, error)
        after = model.status
        dropped = before.n_seen + before.n_warmup + n - after.n_seen - after.n_warmup
        if dropped == n and isolate is not None and before.initialized and n > 1:
            offending = isolate(X, keys)  # the refused update left the model as it was
            if 0 < len(offending) < n:
                kept = np.delete(np.arange(n), offending)
                rest = None if keys is None else tuple(keys[i] for i in kept.tolist())
                outcome = self.learn(X[kept], rest)
                return replace(outcome, n_points=n, isolated=offending)
        if dropped > 0:
            self._counters.n_dropped += dropped
            log.warning(
                "dropped %d points: the engine refused a degenerate batch and kept the "
                "previous parameters",
                dropped,
            )
        learned = after.n_updates > before.n_updates and after.record is not None
        record = after.record if learned else None
        drift = False
        if record is not None and self.drift is not None:
            drift = self.drift.update(record.mean_log_likelihood)
            if drift:
                self._on_drift(record)
        self._counters.last_drift = drift
        self.status = self._status(after)
        return BatchOutcome(n, learned, record, drift)

    def _on_drift(self, record: MonitorRecord) -> None:
        self._counters.drift_events += 1
        boost = self.drift_settings.response == "boost"
        log.warning(
            "drift detected at update %d (batch mean log-likelihood %.4g, smoothed %.4g)%s",
            record.batch,
            record.mean_log_likelihood,
            record.smoothed_log_likelihood,
            f"; step size raised to {self.drift_settings.boost_step_size}" if boost else "",
        )
        if boost:
            self.model.restart_schedule(self.drift_settings.boost_step_size)

    def _status(self, model: ModelStatus) -> LearnerStatus:
        return LearnerStatus(
            initialized=model.initialized,
            n_seen=model.n_seen,
            n_warmup=model.n_warmup,
            n_dropped=self._counters.n_dropped,
            n_updates=model.n_updates,
            weights=model.weights,
            record=model.record,
            converged=model.converged,
            drift_events=self._counters.drift_events,
            drift=self._counters.last_drift,
        )

    def refresh(self) -> None:
        """Re-read the model's status after the model was changed outside :meth:`learn`."""
        self.status = self._status(self.model.status)

    def next_step_size(self, batch_size: int) -> float:
        """The step size the next update of ``batch_size`` points will take."""
        return self.model.next_step_size(batch_size)

    # ---- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The learner's whole state as JSON data (no NaN, no infinities).

        It holds the model's ``to_dict`` document (statistics, counters, warm-up
        buffer, monitor), the drift detector's recent inputs and the learner's counters.
        """
        estimator = self.model.to_dict()
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "features": list(self.features),
            "estimator": estimator,
            "drift": None if self.drift is None else self.drift.state_dict(),
            "counters": {
                "n_dropped": self._counters.n_dropped,
                "drift_events": self._counters.drift_events,
                "last_drift": self._counters.last_drift,
            },
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        model: ModelSettings,
        drift: DriftSettings,
        features: list[str] | tuple[str, ...],
        *,
        stored_in: str = "the checkpoint",
        start_over: str = "delete the checkpoint to start the model over",
    ) -> Learner:
        """Rebuild a learner from :meth:`state_dict`'s output.

        The stored hyper-parameters win over ``model`` (a warning lists the differences), except
        that a different number of components, covariance type or feature list is an error:
        the stored statistics cannot be used with them. ``stored_in`` names where the state was
        kept and ``start_over`` what the operator does to start the model over, in the errors.

        Raises
        ------
        LearnerStateError
            If the state is not a learner state or does not fit the configuration.
        """
        learner = cls(model.model_copy(update={"initial": None}), drift, features)
        if state.get("format") != _FORMAT or state.get("format_version") != _FORMAT_VERSION:
            raise LearnerStateError(
                f"expected a {_FORMAT} state of format_version {_FORMAT_VERSION}, received "
                f"format {state.get('format')!r} version {state.get('format_version')!r}"
            )
        if list(state["features"]) != list(features):
            raise LearnerStateError(
                f"input.features: {stored_in} was written for {state['features']}, the "
                f"configuration says {list(features)}; restore the configuration or "
                f"{start_over}"
            )
        stored = dict(state["estimator"]["hyperparameters"])
        wanted = learner.model.to_dict()["hyperparameters"]
        # hyper-parameters whose change makes a checkpoint unusable (the statistics' shapes or
        # columns differ): the family's declaration names them
        for name in family_spec(model.family).structural:
            if stored.get(name) != wanted.get(name):
                raise LearnerStateError(
                    f"model.{name}: {stored_in} was written with {stored.get(name)!r}, the "
                    f"configuration says {wanted.get(name)!r}; restore the configuration or "
                    f"{start_over}"
                )
        changed = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
        if changed:
            log.warning(
                "the checkpoint's model hyper-parameters differ from the configuration and are "
                "kept: %s (checkpoint, configuration)",
                changed,
            )
        if state["estimator"].get("format") != learner.model.FORMAT:
            raise LearnerStateError(
                f"model.family: {stored_in} holds a {state['estimator'].get('format')!r} "
                f"model, the configuration says {model.family!r}; restore the configuration or "
                f"{start_over}"
            )
        try:
            learner.model = type(learner.model).from_dict(state["estimator"])
        except (KeyError, TypeError, ValueError) as error:
            raise LearnerStateError(f"the stored model cannot be read: {error}") from error
        if learner.drift is not None and state.get("drift") is not None:
            learner.drift.load_state_dict(state["drift"])
        counters = state["counters"]
        learner._counters = _Counters(
            n_dropped=int(counters["n_dropped"]),
            drift_events=int(counters["drift_events"]),
            last_drift=bool(counters["last_drift"]),
        )
        learner.status = learner._status(learner.model.status)
        return learner
