"""river adapters of the count families: anomaly detectors of count readings (events per
interval) and of status codes, by the surprise of the stream's next step, and of independent
count rows by their density under a Poisson mixture.

Each wraps one :class:`streamem.PoissonHMM` or :class:`streamem.CategoricalHMM` that models the
stream as one sequence, with the filter, the block updates and the warm-up of
:class:`~streamem.river.GaussianHMMDetector` (the same core, :mod:`streamem.river.hmm`).
``score_one(x)`` is ``-log p(x_t = x | x_1..x_{t-1})``. Values are checked by the model before
anything changes: counts (finite numbers >= 0) for the Poisson HMM; one feature of symbols
(integers >= 0, below the warm-up's largest plus one) for the categorical HMM. A count or a
code cannot be missing: a known feature absent from ``x`` is an error.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, ClassVar

import numpy as np

from streamem.extras import missing_extra

try:
    from river import base
except ModuleNotFoundError as error:  # say which extra to install, not only the module
    raise (missing_extra(error, "streamem.river", "river") or error) from error

from streamem.engine import Schedule
from streamem.models.base import Bound
from streamem.models.hmm.categorical_hmm import CategoricalHMM
from streamem.models.hmm.estimator import HMMEstimator
from streamem.models.hmm.poisson_hmm import PoissonHMM
from streamem.models.hmm.table_hmm import TableHMM
from streamem.models.mixture.poisson_mixture import PoissonMixture
from streamem.river.family import FamilyDetector
from streamem.river.hmm import _HMMCore, _HMMFace
from streamem.river.mixture import HISTORY_SIZE

__all__ = ["CategoricalHMMDetector", "PoissonHMMDetector", "PoissonMixtureDetector"]

UNIT_TEST_SKIPS: dict[str, str] = {
    "check_disappearing_features": "a count or a code cannot be missing: the row is refused",
    "check_radically_disappearing_features": "a count or a code cannot be missing",
    "check_emerging_features": "river's check drops features from rows of counts or codes "
    "(one or two features here) down to empty rows, which are refused",
}
"""river checks that the detectors skip, with the reason."""


def _check_sizes(n_components: int, batch_size: int, init_size: int | None) -> None:
    """The constructor checks every count detector shares (errors name the parameter)."""
    Bound(1, integer=True).check("n_components", n_components)
    Bound(1, integer=True).check("batch_size", batch_size)
    Bound(1, integer=True, optional=True).check("init_size", init_size)


class _CountHMMDetector(_HMMFace, base.AnomalyDetector):
    """The constructor, learning and scoring that both detectors share."""

    _MODEL: ClassVar[type[TableHMM]]

    def __init__(
        self,
        n_components: int = 2,
        batch_size: int = 50,
        init_size: int | None = None,
        schedule: Schedule | None = None,
        seed: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.batch_size = batch_size
        self.init_size = init_size
        self.schedule = schedule
        self.seed = seed
        _check_sizes(n_components, batch_size, init_size)
        build: Any = self._MODEL  # PoissonHMM or CategoricalHMM, hmmlearn's names
        hmm: TableHMM = build(
            n_components,
            random_state=seed,
            schedule=schedule,
            init_size=None,
            history_size=HISTORY_SIZE,
        )
        self._core = _HMMCore(hmm, batch_size, init_size)

    def _checked(self, x: dict[Hashable, Any], learning: bool) -> np.ndarray:
        core = self._core
        row = core.rows.learn_vector(x) if learning else core.rows.vector(x)
        core.hmm.batch_from_rows(row[np.newaxis])  # the model's checks, no state change
        return row

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Take ``x`` as the stream's next step: advance the filter, buffer it for the next
        update (every ``batch_size`` steps)."""
        self._core.learn(self._checked(x, learning=True))

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """Surprise ``-log p(x | past)`` of ``x`` as the next step (0.0 during the warm-up)."""
        core = self._core
        if core.filter is None:
            core.rows.vector(x)  # the input checks still apply
            return 0.0
        self._checked(x, learning=False)
        return self._surprise(x)

    @property
    def hmm(self) -> HMMEstimator:
        """The :class:`streamem.PoissonHMM` or :class:`streamem.CategoricalHMM` learned (not
        fitted during the warm-up)."""
        return self._core.hmm

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"seed": 42}
        yield {"n_components": 3, "batch_size": 5, "seed": 7}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)


class PoissonHMMDetector(_CountHMMDetector):
    """Anomaly detection on count readings by the surprise of a Poisson hidden Markov model
    learned online (one rate per state and feature).

    Parameters
    ----------
    n_components
        Number of regimes (hidden states) K.
    batch_size
        Steps per stepwise update (a block of the sequence).
    init_size
        Steps that initialise the HMM (None: ``100 * n_components``).
    schedule
        Step sizes; None is the default of :meth:`streamem.PoissonHMM.partial_fit`.
    seed
        Seed of the k-means initialisation.

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.river import PoissonHMMDetector
    >>> rng = np.random.default_rng(0)
    >>> detector = PoissonHMMDetector(batch_size=20, seed=0)
    >>> for t in range(1000):
    ...     rate = 2.0 if (t // 100) % 2 == 0 else 9.0
    ...     detector.learn_one({"events": int(rng.poisson(rate))})

    The stream is in its busy regime: a quiet count is a surprise now, a burst of 40 more so.

    >>> [round(detector.score_one({"events": n}), 1) for n in (9, 1, 40)]
    [2.0, 5.8, 32.2]
    """

    _MODEL = PoissonHMM


class CategoricalHMMDetector(_CountHMMDetector):
    """Anomaly detection on status codes (one feature of symbols 0..m-1) by the surprise of a
    categorical hidden Markov model learned online.

    Parameters
    ----------
    n_components, batch_size, init_size, schedule, seed
        As :class:`PoissonHMMDetector`'s; every code should show in the ``init_size``
        warm-up steps (the alphabet is theirs).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.river import CategoricalHMMDetector
    >>> rng = np.random.default_rng(0)
    >>> detector = CategoricalHMMDetector(batch_size=20, seed=0)
    >>> for t in range(1000):
    ...     codes = [0.9, 0.05, 0.05] if (t // 100) % 2 == 0 else [0.05, 0.05, 0.9]
    ...     detector.learn_one({"code": int(rng.choice(3, p=codes))})
    >>> round(detector.score_one({"code": 2}), 1) < round(detector.score_one({"code": 0}), 1)
    True
    """

    _MODEL = CategoricalHMM


class PoissonMixtureDetector(FamilyDetector):
    """Anomaly detection on independent count rows by their density under a Poisson mixture
    learned online: ``score_one(x)`` is ``-log p(x)`` (0.0 during the warm-up).

    A :class:`~streamem.river.FamilyDetector` of a :class:`streamem.PoissonMixture`: every
    ``batch_size`` rows make one stepwise update (the first ``init_size`` rows, None:
    ``10 * n_components``, start it). Values are counts (finite numbers >= 0), checked by the
    model before anything changes; a known feature absent from ``x`` is an error.

    Parameters
    ----------
    n_components
        Number of components K.
    batch_size
        Rows per stepwise update.
    init_size
        Rows that start the mixture (None: ``10 * n_components``, at least ``batch_size``).
    schedule
        Step sizes; None is the default of :meth:`streamem.PoissonMixture.partial_fit`.
    seed
        Seed of the k-means start.

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.river import PoissonMixtureDetector
    >>> rng = np.random.default_rng(0)
    >>> detector = PoissonMixtureDetector(seed=0)
    >>> for _ in range(2000):
    ...     detector.learn_one({"events": int(rng.poisson(rng.choice([2.0, 9.0])))})
    >>> detector.score_one({"events": 40}) > detector.score_one({"events": 9})
    True
    """

    def __init__(
        self,
        n_components: int = 2,
        batch_size: int = 20,
        init_size: int | None = None,
        schedule: Schedule | None = None,
        seed: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.init_size = init_size
        self.schedule = schedule
        self.seed = seed
        _check_sizes(n_components, batch_size, init_size)
        warmup = 10 * n_components if init_size is None else init_size
        mixture = PoissonMixture(
            n_components,
            random_state=seed,
            schedule=schedule,
            init_size=max(warmup, batch_size),
            history_size=HISTORY_SIZE,
        )
        super().__init__(mixture, batch_size)

    @property
    def mixture(self) -> PoissonMixture:
        """The Poisson mixture it learns."""
        assert isinstance(self.model, PoissonMixture)
        return self.model

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"seed": 42}
        yield {"n_components": 3, "batch_size": 5, "seed": 7}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)
