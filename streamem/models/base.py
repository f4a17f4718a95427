"""What the estimators backed by one stepwise engine share.

An estimator that keeps its :class:`~streamem.engine.StepwiseEM` in ``engine_`` and stores the
streaming hyper-parameters under their common names (``schedule``, ``averaging_start``,
``parameter_tol``, ``smoothing``, ``patience``, ``history_size``) gets from
:class:`EngineBackedModel` the model protocol's ``status``, ``monitor_``, ``next_step_size``
and ``restart_schedule``, the fitted check, and its streaming engine. It says what its latent
classes weigh (``_class_weights``) and whether its fitted attributes are there yet
(``_has_parameters``).

The stream's warm-up is one template, :meth:`EngineBackedModel._warm_up`: buffer the units
given (``_buffer``) until ``_warmup_size`` of them are there, ask the family whether they allow
a start (``_cannot_start``), make its start (``_start``: candidate starts, refinement) and the
first update with every buffered unit (``_stepwise_update``). No unit given is lost: ``n_seen_``
counts the buffered ones too, and ``status.warmup`` and the not-fitted error say what the
warm-up holds and what it waits for.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from streamem.engine.family import Family
from streamem.engine.monitor import ConvergenceMonitor
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.engine.schedules import Constant, PowerDecay, Schedule, schedule_from_dict
from streamem.engine.stepwise import StepwiseEM
from streamem.errors import (
    DegenerateUpdateError,
    NotFittedError,
    RefusedUpdateWarning,
    StreamemWarning,
    ValidationError,
    format_mismatch,
    path_hint,
)
from streamem.models.protocol import ModelStatus, StreamingOptions

__all__ = [
    "ConvergenceWarning",
    "EngineBackedModel",
    "ModelNotFittedError",
    "as_float_array",
    "document_hyperparameters",
    "finite_or_none",
    "given_array",
    "jsonable",
    "parse_json_document",
]


F = TypeVar("F")


class ModelNotFittedError(NotFittedError, SklearnNotFittedError):  # type: ignore[misc]
    """A model was used before it learned anything (also scikit-learn's NotFittedError)."""


class ConvergenceWarning(StreamemWarning):
    """``fit`` stopped at ``max_iter`` before the log-likelihood settled."""


@dataclasses.dataclass(frozen=True)
class Bound:
    """A hyper-parameter that must be a number (an integer with ``integer``) >= ``low`` (>
    ``low`` with ``strict``), or None when ``optional`` (scikit-learn's
    ``_parameter_constraints``, as data).

    Examples
    --------
    >>> Bound(1, integer=True).check("n_components", 0)
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: n_components must be an integer >= 1, got 0
    >>> Bound(1, integer=True, optional=True).check("init_size", None)
    >>> Bound(0, strict=True, optional=True).check("doc_topic_prior", 0)
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: doc_topic_prior must be a number > 0 or None, got 0
    """

    low: float
    integer: bool = False
    optional: bool = False
    strict: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`~streamem.errors.ValidationError` naming ``name``, the bound and
        ``value`` if ``value`` breaks the constraint."""
        if self.optional and value is None:
            return
        kinds = (int, np.integer) if self.integer else (int, float, np.number)
        if not isinstance(value, kinds) or not (
            value > self.low if self.strict else value >= self.low
        ):
            kind = "an integer" if self.integer else "a number"
            relation = ">" if self.strict else ">="
            empty = " or None" if self.optional else ""
            raise ValidationError(
                f"{name} must be {kind} {relation} {self.low}{empty}, got {value!r}"
            )


@dataclasses.dataclass(frozen=True)
class OneOf:
    """A hyper-parameter that must be one of ``choices``.

    Examples
    --------
    >>> OneOf(("batch", "online")).check("learning_method", "fast")
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: learning_method must be one of ('batch', 'online'), got 'fast'
    """

    choices: tuple[Any, ...]

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`~streamem.errors.ValidationError` if ``value`` is not a choice."""
        if value not in self.choices:
            raise ValidationError(f"{name} must be one of {self.choices}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Letters:
    """A hyper-parameter that must be a string of letters among ``alphabet`` (hmmlearn's
    ``params`` / ``init_params``).

    Examples
    --------
    >>> Letters("stl").check("params", "sx")
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: params must be letters among 'stl', got 'sx'
    """

    alphabet: str

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`~streamem.errors.ValidationError` if ``value`` is not such letters."""
        if not isinstance(value, str) or set(value) - set(self.alphabet):
            raise ValidationError(f"{name} must be letters among {self.alphabet!r}, got {value!r}")


Constraint = Bound | OneOf | Letters
"""A declared constraint on one hyper-parameter."""


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
    n_features_in_: int
    schedule: Schedule | None
    averaging_start: int | None
    parameter_tol: float
    smoothing: float
    patience: int
    history_size: int

    def _parameter_constraints(self) -> dict[str, Constraint]:
        """Hyper-parameter name -> its constraint (checked in this order)."""
        return {}

    def _validate_parameters(self, names: tuple[str, ...] | None = None) -> None:
        """Check the hyper-parameters against :meth:`_parameter_constraints` (those of
        ``names`` only, when given); the first broken one raises, naming it."""
        for name, constraint in self._parameter_constraints().items():
            if names is None or name in names:
                constraint.check(name, getattr(self, name))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "engine_") and self.engine_.initialized

    def _check_fitted(self) -> None:
        """Raise :class:`ModelNotFittedError` if the model has not learned yet (saying what
        its warm-up holds and waits for, once ``partial_fit`` was called)."""
        if not self.__sklearn_is_fitted__():
            warmup = self._warmup_description()
            raise ModelNotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: {warmup}"
                if warmup
                else f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
                "'partial_fit' first."
            )

    @property
    def n_seen_(self) -> int:
        """Units given to the model: those learned and those waiting in the warm-up buffer
        (the units of refused updates are not learned)."""
        if not hasattr(self, "engine_"):
            raise AttributeError(f"{type(self).__name__} has no n_seen_ before it learns")
        return int(self.engine_.n_seen) + self._n_warmup()

    # ---- the warm-up template ----------------------------------------------------------------

    _UNITS: ClassVar[str] = "rows"
    """What the family's units are called in messages (rows, steps, documents)."""

    def _step(self, batch: Any) -> Self:
        """The warm-up with ``batch`` or, once the model is initialised, a stepwise update."""
        if self.engine_.initialized:
            self._stepwise_update(batch)
        else:
            self._warm_up(batch)
        return self

    def _warm_up(self, batch: Any) -> None:
        """The stream's warm-up: buffer ``batch``; once ``_warmup_size`` units are buffered
        and they allow a start, start from them and make the first update with all of them.
        While they do not, the reason is kept (``status.warmup``) and, when it first
        appears, a :class:`~streamem.errors.RefusedUpdateWarning` says it; the units stay
        buffered."""
        buffered = self._buffer(batch)
        if self._n_warmup() < self._warmup_size():
            return
        reason = self._cannot_start(buffered)
        if reason is None:
            try:
                start = self._start(buffered)
            except DegenerateUpdateError as error:
                reason = f"they give no valid start ({error})"
        if reason is not None:
            self._wait(reason)
            return
        self.__dict__.pop("warmup_blocked_", None)
        self.engine_.initialize(start)
        self._clear_warmup()
        self._stepwise_update(buffered)

    def _wait(self, reason: str) -> None:
        """Keep ``reason`` as why the buffered units cannot start the model; warn when a
        start is refused for the first time."""
        first = getattr(self, "warmup_blocked_", None) is None
        self.warmup_blocked_: str | None = reason
        if first:
            n = self._n_warmup()
            warnings.warn(
                f"{type(self).__name__} could not be initialised on the first {n:,} "
                f"{self._UNITS}: {reason}; they stay buffered and it will try again with the "
                "next ones",
                RefusedUpdateWarning,
                stacklevel=5,  # partial_fit's caller: partial_fit > learn > _step > _warm_up > here
            )

    def _warmup_description(self) -> str:
        """What the warm-up holds and waits for, in words ("" when there is no warm-up)."""
        if not hasattr(self, "engine_") or self.engine_.initialized:
            return ""
        n, units = self._n_warmup(), self._UNITS
        blocked = getattr(self, "warmup_blocked_", None)
        if blocked is not None:
            return f"warming up, {n:,} {units} buffered, which cannot start it yet: {blocked}"
        needed = self._warmup_size()
        if n < needed:
            return (
                f"warming up, {n:,} of {needed:,} {units} buffered (partial_fit starts the "
                f"model when {needed:,} are there)"
            )
        return f"warming up, {n:,} {units} buffered; the next partial_fit starts the model"

    def _n_warmup(self) -> int:
        """Units waiting in the warm-up buffer (none by default)."""
        return 0

    def _warmup_size(self) -> int:
        """Units the warm-up buffers before it tries a start (none by default)."""
        return 0

    def _buffer(self, batch: Any) -> Any:
        """Add ``batch`` to the warm-up buffer and return everything buffered as one batch."""
        raise NotImplementedError(f"{type(self).__name__} has no warm-up buffer")

    def _clear_warmup(self) -> None:
        """Empty the warm-up buffer (its units are about to be learned)."""
        raise NotImplementedError(f"{type(self).__name__} has no warm-up buffer")

    def _cannot_start(self, buffered: Any) -> str | None:
        """Why the ``buffered`` units cannot start the model yet (None: they may)."""
        return None

    def _start(self, buffered: Any) -> Any:
        """The starting parameters from the ``buffered`` units (candidate starts and their
        refinement); a :class:`~streamem.errors.DegenerateUpdateError` if there is none."""
        raise NotImplementedError(f"{type(self).__name__} has no warm-up start")

    def _stepwise_update(self, batch: Any) -> None:
        """One stepwise update of the initialised model with ``batch``."""
        raise NotImplementedError(f"{type(self).__name__} has no stepwise update")

    def _class_weights(self) -> FloatArray:
        """The weight of each latent class (components, states, topics); none by default."""
        return np.empty(0)

    def _occupancy_weights(self) -> FloatArray:
        """Each latent class's share of the occupancy ``resp`` of the running statistics
        (empty before there are statistics)."""
        stats = self.engine_.stats
        if stats is None:
            return np.empty(0)
        return np.asarray(stats.resp / stats.resp.sum())

    def _has_parameters(self) -> bool:
        """Whether the fitted attributes are set (an initialised engine sets them by default)."""
        return True

    def _refresh_fitted(self) -> None:
        """Set the fitted attributes from the engine, after its parameters were replaced from
        outside an update (a merge of shards' statistics)."""
        raise NotImplementedError(f"{type(self).__name__} does not refresh from its engine")

    @property
    def status(self) -> ModelStatus:
        """Counters, the newest monitor record and the class weights (see
        :class:`~streamem.models.protocol.ModelStatus`)."""
        if not hasattr(self, "engine_"):
            return ModelStatus()
        engine = self.engine_
        initialized = engine.initialized and self._has_parameters()
        return ModelStatus(
            initialized=initialized,
            n_seen=int(engine.n_seen),
            n_warmup=self._n_warmup(),
            warmup=self._warmup_description(),
            n_updates=int(engine.step),
            n_refused=int(getattr(self, "n_refused_", 0)),
            record=engine.monitor.last,
            converged=bool(getattr(self, "converged_", engine.monitor.converged)),
            weights=tuple(self._class_weights().tolist()) if initialized else (),
        )

    @property
    def monitor_(self) -> ConvergenceMonitor:
        """The convergence monitor of the stepwise updates (history of each batch)."""
        self._check_fitted()
        return self.engine_.monitor

    def next_step_size(self, n_units: int) -> float:
        """The step size the next update of ``n_units`` units will take."""
        return float(self.engine_.next_step_size(n_units)) if hasattr(self, "engine_") else 1.0

    def restart_schedule(self, step_size: float) -> None:
        """Make the decreasing schedule continue from ``step_size`` (a drift response)."""
        self._check_fitted()
        self.engine_.restart_schedule(step_size)

    def forget_idle_keys(self, recent: Iterable[str], max_keys: int) -> int:
        """Keep the carried filter states of at most ``max_keys`` sequence keys: the keys of
        ``recent`` (just continued) become the newest, and the least recently continued ones
        beyond ``max_keys`` are dropped (a dropped key's next reading starts from the model's
        initial state, as a new key). Return how many were dropped (none for a family that
        carries no keys).

        Examples
        --------
        >>> from streamem import GaussianHMM
        >>> model = GaussianHMM(2, init_size=4, random_state=0)
        >>> rows, keys = np.arange(12.0)[:, None], ["a", "b", "c"] * 4
        >>> model = model.learn(model.batch_from_rows(rows, keys))
        >>> model.forget_idle_keys(["c", "a"], 2), sorted(model.engine_.carry)
        (1, ['a', 'c'])
        """
        carry = getattr(self, "engine_", None) and self.engine_.carry
        if not isinstance(carry, dict):
            return 0
        for key in dict.fromkeys(recent):
            if key in carry:
                carry[key] = carry.pop(key)
        idle = list(carry)[: max(len(carry) - max_keys, 0)]
        for key in idle:
            del carry[key]
        return len(idle)

    def _engine_family(self, kind: type[F]) -> F:
        """The streaming engine's family, which is a ``kind``."""
        family = self.engine_.family
        assert isinstance(family, kind)
        return family

    def _anchored_engine(
        self, family: Any, anchor: Any, alpha: float
    ) -> StepwiseEM[Any, Any, Any, Any]:
        """:meth:`_stream_engine` over ``family`` held at ``anchor``, ``PowerDecay(alpha)``
        by default."""
        family.anchor = anchor
        return self._stream_engine(family, PowerDecay(alpha=alpha))

    def _refined(self, family: Any, start: Any, batch: Any, iterations: int) -> Any:
        """Up to ``iterations`` batch EM iterations (step size 1) from ``start`` on ``batch``,
        the warm-up's refinement; ``start`` itself if an iteration is degenerate."""
        family.anchor = start
        engine: StepwiseEM[Any, Any, Any, Any] = StepwiseEM(
            family, Constant(1.0), ConvergenceMonitor(1e-4, 1.0, 1)
        )
        engine.initialize(start)
        try:
            for _ in range(iterations):
                engine.update(batch)
                if engine.monitor.converged:
                    break
        except DegenerateUpdateError:
            return start
        return engine.params

    def _update_or_refuse(self, batch: Any, description: str) -> bool:
        """One stepwise update of the streaming engine; a degenerate one is refused with a
        :class:`~streamem.errors.RefusedUpdateWarning` naming ``description`` and counted in
        ``n_refused_`` (its units are not learned). Whether the update was made."""
        try:
            self.engine_.update(batch)
        except DegenerateUpdateError as error:
            self.n_refused_: int = getattr(self, "n_refused_", 0) + 1
            warnings.warn(
                f"partial_fit refused a degenerate {description} and kept the previous "
                f"parameters: {error}",
                RefusedUpdateWarning,
                stacklevel=6,  # partial_fit's caller: partial_fit > learn > _step > update > here
            )
            return False
        return True

    def _record_update(self) -> None:
        """After an update: the convergence flag, the update count and the smoothed
        log-likelihood per unit as ``converged_``, ``n_iter_``, ``lower_bound_``."""
        last = self.engine_.monitor.last
        self.converged_ = self.engine_.monitor.converged
        self.n_iter_ = self.engine_.step
        self.lower_bound_ = last.smoothed_log_likelihood if last else -np.inf

    _JSON_SEPARATORS: tuple[str, str] | None = None
    """``json.dumps`` separators of :meth:`to_json` (None: its defaults)."""

    def to_dict(self) -> dict[str, Any]:
        """The whole model as JSON data (the family's document)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_dict`'s output."""
        raise NotImplementedError

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (floats round-trip exactly)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=self._JSON_SEPARATORS)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Inverse of :meth:`to_json` (the document is validated as by :meth:`from_dict`)."""
        return cls.from_dict(parse_json_document(text))

    def _document_head(self, fmt: str, version: int) -> dict[str, Any]:
        """The start of :meth:`to_dict`'s document: format, version and the hyper-parameters
        as JSON data (:func:`jsonable`: a schedule as its document, arrays as lists)."""
        hyper: dict[str, Any] = getattr(self, "get_params")(deep=False)  # noqa: B009
        return {
            "format": fmt,
            "format_version": version,
            "hyperparameters": {name: jsonable(value) for name, value in hyper.items()},
        }

    def _state_head(self, anchor: ArrayRecord | None) -> dict[str, Any]:
        """The start of the document's state: input width, the engine's state, the anchor."""
        return {
            "n_features_in": int(self.n_features_in_),
            "engine": self.engine_.state_dict(),
            "anchor": None if anchor is None else anchor.to_dict(),
        }

    @classmethod
    def _from_common_options(
        cls, options: StreamingOptions, init_size: int | None, **family_options: Any
    ) -> Self:
        """A model from the options every family reads: ``n_components``, ``seed``
        (``random_state``), ``schedule``, ``averaging_start``, the warm-up ``init_size``,
        and the family's own (``family_options``, keyword arguments of its constructor)."""
        build: Any = cls  # a subclass's constructor, with scikit-learn's names
        model: Self = build(
            options.n_components,
            random_state=options.seed,
            schedule=options.schedule,
            averaging_start=options.averaging_start,
            init_size=init_size,
            **family_options,
        )
        return model

    @classmethod
    def _from_document(
        cls, document: Any, version: int, params_type: type[ArrayRecord]
    ) -> tuple[Self, dict[str, Any] | None]:
        """A model from its document's hyper-parameters and, when the document has a state,
        its engine and anchor loaded (:meth:`_state_head`'s inverse); and that state."""
        fmt: str = getattr(cls, "FORMAT")  # noqa: B009
        model = cls(**document_hyperparameters(document, fmt, version))
        state = document.get("state")
        if state is None:
            return model, None
        model.n_features_in_ = int(state["n_features_in"])
        anchor = state["anchor"]
        start = None if anchor is None else params_type.from_dict(anchor)
        model.engine_ = getattr(model, "_streaming_engine")(start)  # noqa: B009
        model.engine_.load_state_dict(state["engine"])
        return model, state

    def _counters_document(self) -> dict[str, Any]:
        """The counters of the document's state: refused updates, convergence flag, update
        count and lower bound (null when undefined)."""
        return {
            "n_refused": int(getattr(self, "n_refused_", 0)),
            "converged": bool(getattr(self, "converged_", False)),
            "n_iter": int(getattr(self, "n_iter_", 0)),
            "lower_bound": finite_or_none(getattr(self, "lower_bound_", None)),
        }

    def _load_counters(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_counters_document`, after the engine is loaded; an initialised
        model sets its fitted attributes."""
        self.n_refused_ = int(state["n_refused"])
        if self.engine_.initialized:
            self._refresh_fitted()
            self.converged_ = bool(state["converged"])
            self.n_iter_ = int(state["n_iter"])
            bound = state["lower_bound"]
            self.lower_bound_ = -np.inf if bound is None else float(bound)

    def _stream_engine(
        self, family: Family[Any, Any, Any, Any], default_schedule: Schedule
    ) -> StepwiseEM[Any, Any, Any, Any]:
        """A stepwise engine for ``partial_fit``: the ``schedule`` (``default_schedule`` when
        None), a monitor of the parameter change, and ``averaging_start``."""
        return StepwiseEM(
            family,
            self.schedule if self.schedule is not None else default_schedule,
            ConvergenceMonitor(
                self.parameter_tol,
                self.smoothing,
                self.patience,
                self.history_size,
                criterion="parameters",
            ),
            self.averaging_start,
        )


def as_float_array(value: ArrayLike) -> FloatArray:
    """``value`` as a float64 array, or a :class:`ValidationError` that shows it.

    Examples
    --------
    >>> as_float_array([1, 2]).dtype
    dtype('float64')
    """
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"expected an array of numbers, got {value!r}") from error


def jsonable(value: Any) -> Any:
    """A hyper-parameter as JSON data: arrays and tuples as lists, records and schedules by
    their ``to_dict``, numpy scalars as Python numbers.

    Examples
    --------
    >>> jsonable((1, 2)), jsonable(np.float64(0.5))
    ([1, 2], 0.5)
    """
    if isinstance(value, np.ndarray | list | tuple):
        return np.asarray(value).tolist() if not isinstance(value, tuple) else list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, np.generic):
        return value.item()
    return value


def parse_json_document(text: str | bytes) -> Any:
    """The JSON value of a model document's text, or a :class:`ValidationError` that says
    where it stops being JSON.

    Examples
    --------
    >>> parse_json_document('{"format": "f"}')
    {'format': 'f'}
    >>> parse_json_document('[1, 2')
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: model document: not JSON (Expecting ',' delimiter: ...)
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ValidationError(f"model document: not JSON ({reason}){path_hint(text)}") from None


def document_hyperparameters(document: Any, fmt: str, version: int) -> dict[str, Any]:
    """The hyper-parameters of a model document, after its ``format`` and ``format_version``
    are checked; a stored schedule comes back as its object.

    Examples
    --------
    >>> document_hyperparameters({"format": "f", "format_version": 1,
    ...                           "hyperparameters": {"schedule": None}}, "f", 1)
    {'schedule': None}
    >>> document_hyperparameters({"format": "f", "format_version": 2}, "f", 1)
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: format_version 2 is not supported (this streamem reads 1)
    """
    if not isinstance(document, dict):
        raise ValidationError(f"model document: expected a JSON object, got {document!r:.60}")
    found = document.get("format")
    if found != fmt:
        raise ValidationError(format_mismatch(document, fmt))
    if document.get("format_version") != version:
        raise ValidationError(
            f"format_version {document.get('format_version')!r} is not supported "
            f"(this streamem reads {version})"
        )
    hyper = document.get("hyperparameters")
    if not isinstance(hyper, dict):
        raise ValidationError(f"a {fmt} document needs its hyperparameters (an object)")
    hyper = dict(hyper)
    if hyper.get("schedule") is not None:
        hyper["schedule"] = schedule_from_dict(hyper["schedule"])
    return hyper


def finite_or_none(value: float | None) -> float | None:
    """JSON has no infinities: an undefined lower bound (-inf) is written as null.

    Examples
    --------
    >>> finite_or_none(float("-inf")) is None, finite_or_none(2.5)
    (True, 2.5)
    """
    return None if value is None or not np.isfinite(value) else float(value)


def given_array(name: str, value: ArrayLike) -> FloatArray:
    """A user-given starting value as a finite float array (errors name it).

    Examples
    --------
    >>> given_array("weights_init", [0.5, "x"])
    Traceback (most recent call last):
    ...
    streamem.errors.ValidationError: weights_init must be an array of numbers, got [0.5, 'x']
    """
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{name} must be an array of numbers, got {value!r}") from error
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{name} must be finite, got {array.tolist()}")
    return array
