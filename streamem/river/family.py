"""A river anomaly detector for any family whose rows can be scored alone, from the model
protocol only: what a new family (``docs/architecture.md``) gets without an adapter of its own.

:class:`FamilyDetector` buffers river's ``dict`` rows (:class:`~streamem.river.rows.Rows`),
makes one stepwise update of its estimator per ``batch_size`` rows
(:meth:`~streamem.models.protocol.StreamingModel.learn`) and scores a row by ``-log p(x)``
(:meth:`~streamem.models.protocol.StreamingModel.log_density`). Sequential families score a
reading by its filter and have their own detectors (:class:`~streamem.river.GaussianHMMDetector`,
:class:`~streamem.river.KalmanDetector`); topic models read documents
(:class:`~streamem.river.LDATransformer`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from streamem.extras import missing_extra

try:
    from river import base
except ModuleNotFoundError as error:  # say which extra to install, not only the module
    raise (missing_extra(error, "streamem.river", "river") or error) from error

from streamem.errors import ValidationError
from streamem.models.base import Bound
from streamem.models.mixture.gaussian_mixture import GaussianMixture
from streamem.models.protocol import StreamingModel
from streamem.models.registry import family_specs
from streamem.river.rows import Rows

__all__ = ["FamilyDetector"]


def _scores_rows_alone(model: object) -> bool:
    """Whether ``model``'s family is registered with rows that can be scored alone."""
    family = getattr(model, "family", None)
    return any(
        spec.name == family
        and spec.input_kind == "rows"
        and spec.scorable_alone
        and not spec.sequential
        for spec in family_specs()
    )


class FamilyDetector(base.AnomalyDetector):
    """Anomaly detection on rows by their density under a streamem model learned online:
    ``score_one(x)`` is ``-log p(x)`` (0.0 during the model's warm-up).

    Every ``batch_size`` rows make one stepwise update of ``model``; its own warm-up starts
    it. Values are checked by the model before anything changes; a known feature absent from
    ``x`` is missing (NaN), which the model accepts or refuses as its family does.

    Parameters
    ----------
    model
        An unfitted estimator of a registered family whose rows can be scored alone (its
        declaration's ``scorable_alone``, not ``sequential``), e.g.
        :class:`streamem.PoissonMixture` or a family of your own.
    batch_size
        Rows per stepwise update.

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import PoissonMixture
    >>> from streamem.river import FamilyDetector
    >>> rng = np.random.default_rng(0)
    >>> detector = FamilyDetector(PoissonMixture(2, random_state=0, init_size=40))
    >>> for _ in range(2000):
    ...     detector.learn_one({"events": int(rng.poisson(rng.choice([2.0, 9.0])))})
    >>> detector.score_one({"events": 40}) > detector.score_one({"events": 9})
    True
    """

    def __init__(self, model: StreamingModel, batch_size: int = 20) -> None:
        self.model = model
        self.batch_size = batch_size
        Bound(1, integer=True).check("batch_size", batch_size)
        if not _scores_rows_alone(model):
            raise ValidationError(
                f"model must be an estimator of a family whose rows can be scored alone, got "
                f"{type(model).__name__} (family {getattr(model, 'family', None)!r}); "
                "sequential families and topic models have their own river adapters"
            )
        self._rows = Rows()
        self._pending: list[np.ndarray] = []

    def _checked(self, x: dict[Hashable, Any], learning: bool) -> np.ndarray:
        row = self._rows.learn_vector(x) if learning else self._rows.vector(x)
        self.model.batch_from_rows(row[np.newaxis])  # the model's checks, no state change
        return row

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Buffer ``x``; every ``batch_size`` rows make one stepwise update."""
        self._pending.append(self._checked(x, learning=True))
        if len(self._pending) >= self.batch_size:
            rows, self._pending = np.array(self._pending), []
            self.model.learn(self.model.batch_from_rows(rows))

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """``-log p(x)`` under the current model (0.0 during the warm-up)."""
        if not self.model.status.initialized:
            self._rows.vector(x)  # the input checks still apply
            return 0.0
        row = self._checked(x, learning=False)
        return -float(self.model.log_density(self.model.batch_from_rows(row[np.newaxis]))[0])

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        """The features the model learns, in its order (empty before the first row)."""
        return self._rows.features

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"model": GaussianMixture(2, random_state=42, init_size=40)}
        yield {"model": GaussianMixture(3, random_state=7, init_size=30), "batch_size": 5}
