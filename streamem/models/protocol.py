"""The model protocol: the one door through which everything above ``models/`` uses a model.

The river adapters, the daemon's learner, the published snapshot and the commands speak to a
:class:`StreamingModel` only: learn a validated batch, score a batch, read the status, save and
restore the whole model, and describe its parameters for the published document. A family
added to ``models/`` is usable everywhere once its estimator implements this protocol, its
package declares it (a :class:`FamilySpec`) and :mod:`streamem.models.registry` names that
declaration.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from streamem.engine.monitor import ConvergenceMonitor, MonitorRecord
from streamem.engine.schedules import Schedule

if TYPE_CHECKING:
    from streamem.models.results import FamilyResults

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ModelStatus:
    """What a model is, after its newest update; immutable, safe to hand to another thread.

    Attributes
    ----------
    initialized
        Whether the model has parameters (its warm-up is over).
    n_seen
        Units (rows, time steps, documents) learned.
    n_warmup
        Units waiting in the warm-up buffer.
    warmup
        What the warm-up holds and waits for, in words ("10 of 500 steps buffered ...", or
        why the buffered units cannot start the model yet); empty once initialised.
    n_updates
        Stepwise updates made.
    n_refused
        Updates refused because they were degenerate (their units are not in ``n_seen``).
    record
        The monitor's record of the newest update (None before the first).
    converged
        The monitor's convergence flag.
    weights
        Weight of each latent class (mixture components, a hidden Markov model's states);
        empty before initialisation or for a family without classes.
    """

    initialized: bool = False
    n_seen: int = 0
    n_warmup: int = 0
    warmup: str = ""
    n_updates: int = 0
    n_refused: int = 0
    record: MonitorRecord | None = None
    converged: bool = False
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class StreamingOptions:
    """The options every family's streaming face understands (the daemon's ``model`` section).

    Attributes
    ----------
    n_components
        Number of latent classes (mixture components, hidden states, topics).
    covariance_type
        Covariance structure of Gaussian families (``full``, ``diag``, ``spherical``, ``tied``).
    reg_covar
        Added to the diagonal of Gaussian covariances.
    init_size, n_init
        Units buffered before the first initialisation, and starting candidates tried on them
        (None: the family's streaming defaults).
    seed
        Seed of the starting values.
    schedule
        Step sizes (None: the family's default).
    averaging_start
        Polyak-Ruppert averaging from this update on (None: off).
    vocabulary
        A topic model's columns: a sequence of words or a number of hashed columns (None:
        columns only).
    snapshot_top_words, snapshot_components
        What a topic model publishes: the top words of each topic, and its whole topic-word
        matrix or not.
    n_symbols
        The size of a categorical family's alphabet, symbols ``0 .. n_symbols - 1`` (None: the
        warm-up's largest symbol plus one).

    Examples
    --------
    >>> StreamingOptions(n_components=3).covariance_type
    'full'
    """

    n_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    init_size: int | None = None
    n_init: int | None = None
    seed: int | None = None
    schedule: Schedule | None = None
    averaging_start: int | None = None
    vocabulary: Sequence[str] | int | None = None
    snapshot_top_words: int = 10
    snapshot_components: bool = False
    n_symbols: int | None = None


@runtime_checkable
class StreamingModel(Protocol):
    """A stepwise-EM model as the faces above ``models/`` see it.

    ``family`` names the family in documents and configs (``"gaussian_mixture"``,
    ``"gaussian_hmm"``, ...). A batch is the family's own type (rows for a mixture, rows of
    one or more sequences for a hidden Markov model); :meth:`learn` and :meth:`log_density`
    take it already validated.
    """

    family: str
    FORMAT: str
    """The ``format`` of the family's :meth:`to_dict` document."""
    sequential: bool
    """Whether units form sequences (a batch's rows continue per-key sequence states)."""

    @classmethod
    def from_options(cls, options: StreamingOptions) -> Self:
        """A new model from the options every family's streaming face understands (the
        daemon's ``model`` section); a family uses those that have a meaning for it."""
        ...

    def batch_from_rows(self, X: FloatArray, keys: tuple[str, ...] | None = None) -> Any:
        """The family's batch of decoded rows X (n, d) in arrival order; ``keys`` gives each
        row's sequence key (sequential families: each key's rows continue that key's state;
        None: one anonymous stream)."""
        ...

    def learn(self, batch: Any) -> Self:
        """One stepwise update with a validated batch (or warm-up until the model can start)."""
        ...

    def log_density(self, batch: Any) -> FloatArray:
        """Log density of each unit of a validated batch under the current parameters."""
        ...

    @property
    def status(self) -> ModelStatus:
        """The model's status after its newest update."""
        ...

    @property
    def monitor_(self) -> ConvergenceMonitor:
        """The convergence monitor of the stepwise updates."""
        ...

    def next_step_size(self, n_units: int) -> float:
        """The step size the next update of ``n_units`` units will take."""
        ...

    def restart_schedule(self, step_size: float) -> None:
        """Make a decreasing schedule continue from ``step_size`` (a drift response)."""
        ...

    def parameters_document(self) -> dict[str, Any]:
        """The family's fields of the published snapshot (its branch of the schema)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, counters) as JSON data."""
        ...

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_dict`'s output."""
        ...


InputKind = Literal["rows", "documents"]
"""What a family learns from: ``rows`` of numeric readings (one per record) or ``documents``
(text records counted into the columns of a vocabulary)."""


@dataclass(frozen=True)
class FamilySpec:
    """One family's declaration: everything the layers above ``models/`` know about it.

    The configuration's ``model`` section, the published snapshot's schema, the daemon's
    decoding, batching, guard and checkpoint check, ``streamem``'s top-level names and the
    commands read these fields, never a family's name.

    Attributes
    ----------
    name
        The family's name in configurations, documents and snapshots (``model.family``).
    estimator
        ``"module:Class"`` of its :class:`StreamingModel` (imported on first use, so that a
        declaration stays as light as ``import streamem``), or the class itself (a family
        defined outside streamem).
    options
        The :class:`StreamingOptions` fields the family reads (the ``model`` keys that apply).
    snapshot
        File name, in the family's package, of its branch of the published snapshot's schema,
        ``{"title": name, "required": [fields in document order], "properties": {...}}``, or
        that branch itself.
    input_kind
        ``"rows"`` or ``"documents"`` (see :data:`InputKind`).
    sequential
        Whether units form sequences (each key's rows continue that key's filter state).
    scorable_alone
        Whether a unit can be scored on its own, out of its order (the guard's outlier test).
    structural
        Hyper-parameters whose change makes stored statistics unusable (a checkpoint written
        with other values is refused).
    results
        ``"module:NAME"`` of the family's :class:`~streamem.models.results.FamilyResults` (its
        per-record results on the daemon's results topic), or that object itself; None: the
        family gives no results.

    Examples
    --------
    >>> from streamem.models.registry import family_spec
    >>> spec = family_spec("gaussian_mixture")
    >>> spec.input_kind, spec.sequential, spec.scorable_alone, spec.structural
    ('rows', False, True, ('n_components', 'covariance_type'))
    >>> spec.load().__name__
    'GaussianMixture'
    >>> spec.snapshot_branch()["required"][:2]
    ['covariance_type', 'n_components']
    """

    name: str
    estimator: str | type[Any]
    options: tuple[str, ...]
    snapshot: str | Mapping[str, Any]
    input_kind: InputKind = "rows"
    sequential: bool = False
    scorable_alone: bool = True
    structural: tuple[str, ...] = ()
    results: str | FamilyResults | None = None

    @property
    def estimator_name(self) -> str:
        """The estimator's class name (its name at the top of ``streamem``)."""
        if isinstance(self.estimator, str):
            return self.estimator.rpartition(":")[2]
        return self.estimator.__name__

    def load(self) -> type[StreamingModel]:
        """The estimator class (imports its module)."""
        if not isinstance(self.estimator, str):
            return self.estimator
        module, _, name = self.estimator.partition(":")
        kind: type[StreamingModel] = getattr(importlib.import_module(module), name)
        return kind

    def result_family(self) -> FamilyResults | None:
        """The family's :class:`~streamem.models.results.FamilyResults` (imports its module),
        or None if it gives no results."""
        if not isinstance(self.results, str):
            return self.results
        module, _, name = self.results.partition(":")
        found: FamilyResults = getattr(importlib.import_module(module), name)
        return found

    def snapshot_branch(self) -> dict[str, Any]:
        """The family's branch of the snapshot schema (read from its package)."""
        if not isinstance(self.snapshot, str):
            return dict(self.snapshot)
        estimator = self.estimator
        module = estimator if isinstance(estimator, str) else estimator.__module__
        package = module.partition(":")[0].rpartition(".")[0]
        branch: dict[str, Any] = json.loads(files(package).joinpath(self.snapshot).read_text())
        return branch
