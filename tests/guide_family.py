"""A family of waiting times: a mixture of exponential distributions (docs/architecture.md)."""

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from streamem.errors import ValidationError
from streamem.models.emissions.base import TableStats, masses_or_fallback
from streamem.models.mixture.table_mixture import TableMixture
from streamem.models.protocol import FamilySpec


class ExponentialEmission:
    """p(x | j) = rate_j exp(-rate_j x) for x >= 0, one column; statistics: the class's
    mass and the sum of its x; M-step: rate = mass / sum."""

    attribute: ClassVar[str] = "rates_"

    def check_rows(self, X: Any, width: int | None) -> Any:
        rows = np.asarray(X, dtype=np.float64)
        if rows.shape[1] != 1 or not np.all(np.isfinite(rows) & (rows >= 0)):
            raise ValidationError(f"X must be one column of times >= 0, got shape {rows.shape}")
        return rows

    def width(self, X: Any) -> int:
        return 1

    def log_likelihood(self, table: Any, X: Any) -> Any:
        return np.log(table[:, 0]) - X @ table.T

    def statistics(self, X: Any, weights: Any, width: int) -> TableStats:
        return TableStats(weights.sum(axis=0), weights.T @ X)

    def maximize(self, stats: TableStats, fallback: Any) -> Any:
        rates = stats.resp[:, np.newaxis] / np.where(stats.sums > 0, stats.sums, 1.0)
        return masses_or_fallback(stats, rates, fallback)

    def initial(self, X: Any, labels: Any, k: int, width: int) -> Any:
        means = [X[labels == j].mean() if (labels == j).any() else X.mean() for j in range(k)]
        return 1.0 / np.maximum(np.array(means), 1e-9)[:, np.newaxis]

    def check_table(self, name: str, table: Any) -> None:
        if np.any(table <= 0):
            raise ValidationError(f"{name} must be rates > 0, got {table.tolist()}")

    def draw(self, table: Any, states: Any, rng: np.random.Generator) -> Any:
        return rng.exponential(1.0 / table[states])

    def change(self, old: Any, new: Any) -> float:
        return float((np.abs(new - old) / np.maximum(old, new)).max())


class ExponentialMixture(TableMixture, BaseEstimator):
    """A mixture of exponential waiting times: the lifecycle is TableMixture's."""

    family = "exponential_mixture"
    FORMAT = "example.ExponentialMixture"
    _TABLE = "rates_"

    def __init__(
        self,
        n_components=1,
        *,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        random_state=None,
        weights_init=None,
        rates_init=None,
        schedule=None,
        averaging_start=None,
        init_size=None,
        init_em_iter=10,
        parameter_tol=0.01,
        patience=5,
        smoothing=0.1,
        history_size=10_000,
    ):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.weights_init = weights_init
        self.rates_init = rates_init
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.init_size = init_size
        self.init_em_iter = init_em_iter
        self.parameter_tol = parameter_tol
        self.patience = patience
        self.smoothing = smoothing
        self.history_size = history_size

    @classmethod
    def from_options(cls, options):
        return cls(
            options.n_components,
            random_state=options.seed,
            schedule=options.schedule,
            init_size=options.init_size,
        )

    def _emission(self):
        return ExponentialEmission()


EXPONENTIAL_MIXTURE = FamilySpec(
    name="exponential_mixture",
    estimator=ExponentialMixture,
    options=("n_components", "init_size", "seed", "schedule"),
    snapshot={
        "title": "exponential_mixture",
        "required": ["n_components", "weights", "rates"],
        "properties": {
            "n_components": {"type": "integer", "minimum": 1, "description": "K."},
            "weights": {
                "$ref": "#/$defs/vector",
                "description": "Component weights (K,), summing to 1.",
            },
            "rates": {"$ref": "#/$defs/matrix", "description": "Each component's rate (K, 1)."},
        },
    },
    structural=("n_components",),
)
