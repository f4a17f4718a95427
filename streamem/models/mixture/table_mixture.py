"""Mixtures whose components are an emission distribution with a table of parameters
(independent Poisson counts, ...): batch EM (``fit``), stepwise EM (``partial_fit``), the
model protocol and the JSON document, over the emission a subclass names."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import check_array

from streamem.engine import Constant, ConvergenceMonitor, StepwiseEM
from streamem.engine.records import FloatArray
from streamem.errors import ValidationError, input_error
from streamem.models.base import (
    Bound,
    Constraint,
    ConvergenceWarning,
    EngineBackedModel,
    given_array,
)
from streamem.models.mixture.gaussian_mixture import STREAMING_ALPHA
from streamem.models.mixture.table_family import (
    TableMixtureFamily,
    TableMixtureParams,
    TableMixtureStart,
)
from streamem.models.protocol import StreamingOptions

FORMAT_VERSION = 1
WARMUP_RESTARTS = 3
"""k-means restarts of ``partial_fit``'s warm-up start."""
TableEngine = StepwiseEM[FloatArray, TableMixtureParams, Any, None]


class TableMixture(EngineBackedModel):
    """The lifecycle of a table mixture (see the module docstring). A subclass names
    ``FORMAT``, ``family``, ``_TABLE`` (the fitted table's attribute) and makes its emission
    in ``_emission``."""

    FORMAT: ClassVar[str]
    _TABLE: ClassVar[str]
    sequential = False
    """Rows are independent."""

    n_components: int
    tol: float
    max_iter: int
    n_init: int
    random_state: int | None
    weights_init: ArrayLike | None
    init_size: int | None
    init_em_iter: int
    n_features_in_: int
    weights_: FloatArray

    if TYPE_CHECKING:  # scikit-learn's BaseEstimator gives it

        def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    @classmethod
    def from_options(cls, options: StreamingOptions) -> Self:
        """A mixture for streaming from the model protocol's common options (``seed`` is
        ``random_state``)."""
        return cls._from_common_options(options, options.init_size)

    def _emission(self) -> Any:
        raise NotImplementedError

    def _table_init(self) -> ArrayLike | None:
        init: ArrayLike | None = getattr(self, f"{self._TABLE.rstrip('_')}_init")
        return init

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None) -> Self:
        """Batch EM from the given or k-means start until the mean log-likelihood per row
        changes by less than ``tol`` (at most ``max_iter`` iterations)."""
        rows = self._rows(X, reset=True)
        family = self._family(self.n_init)
        start = family.initial_params(rows, np.random.default_rng(self.random_state))
        family.anchor = start
        engine: TableEngine = StepwiseEM(
            family, Constant(1.0), ConvergenceMonitor(max(self.tol, 0.0), 1.0, 1)
        )
        engine.initialize(start)
        for _ in range(self.max_iter):
            engine.update(rows)
            if engine.monitor.converged:
                break
        else:
            if self.max_iter > 0 and self.tol > 0:
                warnings.warn(
                    f"fit stopped at max_iter={self.max_iter} before the log-likelihood "
                    f"settled (tol={self.tol})",
                    ConvergenceWarning,
                    stacklevel=2,
                )
        self.engine_ = self._streaming_engine(start)
        if engine.stats is not None:
            self.engine_.initialize(engine.params, engine.stats, n_units=len(rows))
        else:
            self.engine_.initialize(engine.params)
        self.warmup_: list[FloatArray] = []
        self.n_refused_ = 0
        self._publish()
        last = engine.monitor.last
        self.converged_ = engine.monitor.converged
        self.n_iter_ = engine.step
        self.lower_bound_ = last.mean_log_likelihood if last else -np.inf
        return self

    def partial_fit(self, X: ArrayLike, y: object = None) -> Self:
        """One stepwise EM update with the rows X (n, d); the first ``init_size`` rows warm
        up (k-means start, ``init_em_iter`` EM iterations, then the first update)."""
        return self.learn(self.batch_from_rows(X))

    def learn(self, batch: FloatArray) -> Self:
        """One stepwise update with validated rows (the model protocol)."""
        if not hasattr(self, "engine_"):
            self._check_parameters()
            self.n_features_in_ = batch.shape[1]
            self.engine_ = self._streaming_engine(None)
            self.warmup_ = []
            self.n_refused_ = 0
        return self._step(batch)

    def _warmup_size(self) -> int:
        return max(self.init_size or 0, self.n_components)

    def _buffer(self, batch: FloatArray) -> FloatArray:
        self.warmup_.append(batch)
        return np.concatenate(self.warmup_)

    def _clear_warmup(self) -> None:
        self.warmup_ = []

    def _start(self, rows: FloatArray) -> TableMixtureParams:
        """A k-means start (``WARMUP_RESTARTS`` restarts) refined by up to ``init_em_iter``
        EM iterations on the buffered rows."""
        family = self._family(WARMUP_RESTARTS)
        start = family.initial_params(rows, np.random.default_rng(self.random_state))
        self._mixture_family.anchor = start
        refined: TableMixtureParams = self._refined(family, start, rows, self.init_em_iter)
        return refined

    def _stepwise_update(self, rows: FloatArray) -> None:
        if self._update_or_refuse(rows, f"batch of {len(rows)} rows"):
            self._publish()
            self._record_update()

    # ---- engines and checks ------------------------------------------------------------------

    def _family(self, n_restarts: int) -> TableMixtureFamily:
        weights = self.weights_init
        table = self._table_init()
        start = TableMixtureStart(
            self.n_components,
            weights=None if weights is None else given_array("weights_init", weights),
            table=None if table is None else given_array(f"{self._TABLE[:-1]}_init", table),
            n_restarts=n_restarts,
        )
        return TableMixtureFamily(self._emission(), start)

    def _streaming_engine(self, anchor: TableMixtureParams | None) -> TableEngine:
        return self._anchored_engine(self._family(1), anchor, STREAMING_ALPHA)

    @property
    def _mixture_family(self) -> TableMixtureFamily:
        return self._engine_family(TableMixtureFamily)

    def _rows(self, X: ArrayLike, reset: bool) -> FloatArray:
        try:
            rows = check_array(X, dtype=[np.float64, np.float32])
        except ValueError as error:
            raise input_error(error) from error
        if reset:
            self._check_parameters()
            self.n_features_in_ = rows.shape[1]
        width = getattr(self, "n_features_in_", None)
        checked: FloatArray = self._emission().check_rows(rows, width)
        return checked

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "n_components": Bound(1, integer=True),
            "tol": Bound(0),
            "max_iter": Bound(0, integer=True),
            "n_init": Bound(1, integer=True),
            "init_em_iter": Bound(0, integer=True),
            "init_size": Bound(1, optional=True),
        }

    def _check_parameters(self) -> None:
        """Validate the hyper-parameters and given starting values; errors name them."""
        k = self.n_components
        self._validate_parameters()
        if self.weights_init is not None:
            weights = given_array("weights_init", self.weights_init)
            if weights.shape != (k,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1):
                raise ValidationError(
                    f"weights_init must be {k} non-negative weights summing to 1, got "
                    f"{weights.tolist()}"
                )
        table = self._table_init()
        if table is not None:
            name = f"{self._TABLE[:-1]}_init"
            given = given_array(name, table)
            self._emission().check_table(name, given)
            if given.ndim != 2 or given.shape[0] != k:
                raise ValidationError(
                    f"{name} must have shape ({k}, n_features), got {given.shape}"
                )

    # ---- results -----------------------------------------------------------------------------

    def _refresh_fitted(self) -> None:
        self._publish()

    def _publish(self) -> None:
        params = self.engine_.output_params
        self.weights_ = params.weights
        setattr(self, self._TABLE, params.table)

    def batch_from_rows(self, X: ArrayLike, keys: Any = None) -> FloatArray:
        """The batch of rows X (n, d) (the model protocol); rows are independent: ``keys``
        must be None."""
        if keys is not None:
            raise ValidationError(f"{type(self).__name__} rows are independent: keys must be None")
        return self._rows(X, reset=not hasattr(self, "n_features_in_"))

    def log_density(self, batch: FloatArray) -> FloatArray:
        """Log density of each validated row (n,) under the current parameters."""
        self._check_fitted()
        return self._mixture_family.responsibilities(self.engine_.output_params, batch)[1]

    def score_samples(self, X: ArrayLike) -> FloatArray:
        """Log density of each row of X (n,)."""
        self._check_fitted()
        return self.log_density(self._rows(X, reset=False))

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log density per row."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Responsibilities (n, K)."""
        self._check_fitted()
        rows = self._rows(X, reset=False)
        return self._mixture_family.responsibilities(self.engine_.output_params, rows)[0]

    def predict(self, X: ArrayLike) -> NDArray[np.intp]:
        """The most responsible component of each row (n,)."""
        return np.asarray(self.predict_proba(X).argmax(axis=1), dtype=np.intp)

    def sample(self, n_samples: int = 1) -> tuple[NDArray[Any], NDArray[np.intp]]:
        """Draw ``n_samples`` rows and their components."""
        self._check_fitted()
        if n_samples < 1:
            raise ValidationError(f"n_samples must be >= 1, got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        params = self.engine_.output_params
        labels = rng.choice(self.n_components, size=n_samples, p=params.weights)
        drawn: NDArray[Any] = self._emission().draw(params.table, labels, rng)
        return drawn, np.asarray(labels, dtype=np.intp)

    def _n_parameters(self) -> int:
        k = self.n_components
        return int(k - 1 + k * self.engine_.output_params.table.shape[1])

    def bic(self, X: ArrayLike) -> float:
        """Bayesian information criterion on X (lower is better)."""
        n = len(self._rows(X, reset=False))
        return float(-2 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X: ArrayLike) -> float:
        """Akaike information criterion on X (lower is better)."""
        n = len(self._rows(X, reset=False))
        return float(-2 * self.score(X) * n + 2 * self._n_parameters())

    def _class_weights(self) -> FloatArray:
        return self._occupancy_weights()

    def _n_warmup(self) -> int:
        return sum(len(rows) for rows in getattr(self, "warmup_", []))

    def parameters_document(self) -> dict[str, Any]:
        """The mixture's fields of a published snapshot: the number of components, weights
        (K,) and the emission table (K, m) under its attribute's name."""
        self._check_fitted()
        return {
            "n_components": int(self.n_components),
            "weights": np.asarray(self.weights_, dtype=float).tolist(),
            self._TABLE.rstrip("_"): np.asarray(getattr(self, self._TABLE), dtype=float).tolist(),
        }

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, warm-up rows,
        counters) as JSON data; ``from_dict(model.to_dict())`` continues exactly."""
        document = self._document_head(self.FORMAT, FORMAT_VERSION)
        if hasattr(self, "engine_"):
            anchor = self._mixture_family.anchor
            document["state"] = {
                **self._state_head(anchor),
                "warmup": [rows.tolist() for rows in self.warmup_],
                **self._counters_document(),
            }
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_dict`'s output."""
        model, state = cls._from_document(document, FORMAT_VERSION, TableMixtureParams)
        if state is None:
            return model
        width = model.n_features_in_
        model.warmup_ = [
            np.asarray(rows, dtype=np.float64).reshape(-1, width) for rows in state["warmup"]
        ]
        model._load_counters(state)
        return model
