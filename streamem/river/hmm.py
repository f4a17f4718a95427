"""river adapters of the Gaussian hidden Markov model: a regime clusterer and an anomaly
detector of readings that break their regime's dynamics.

Both wrap one :class:`streamem.GaussianHMM` that models the stream as ONE sequence:

* **The filter.** The estimator keeps ``p(z_t | x_1..x_t)``, the state probabilities after
  the newest learned step. ``learn_one(x)`` advances it by ``x`` (under the current
  parameters); nothing else does: ``predict_one`` and ``score_one`` read ``x`` as the next
  step of the stream without advancing it (they are pure).
* **Updates.** The steps are also buffered, and every ``batch_size`` steps the HMM makes one
  stepwise update with them as a block that continues the sequence (block-online EM, see
  :meth:`streamem.GaussianHMM.partial_fit`); the filter is then the HMM's carried filter
  (the same numbers, computed under the same parameters).
* **Warm-up.** The first ``init_size`` steps (None: ``100 * n_components``, at least
  ``batch_size``) initialise the HMM (k-means, Baum-Welch on them) and make its first update.
  Until then ``predict_one`` returns 0 and the detector's ``score_one`` returns 0.0. The
  warm-up should see every regime: one that it misses may never get a state of its own (two
  states share a regime that k-means split; states are not re-seeded).
* **Features, missing values and input checks** are those of :mod:`streamem.river.rows`
  (the feature order is fixed by the first learned row; a missing known feature is
  marginalised out of the emission density).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.extras import missing_extra

try:
    from river import base
except ModuleNotFoundError as error:  # say which extra to install, not only the module
    raise (missing_extra(error, "streamem.river", "river") or error) from error

from streamem.engine import Schedule
from streamem.models.hmm.estimator import HMMEstimator
from streamem.models.hmm.family import Sequences
from streamem.models.hmm.gaussian_hmm import STREAM_KEY, GaussianHMM
from streamem.river.mixture import HISTORY_SIZE
from streamem.river.rows import Rows, check_adapter_parameters

__all__ = ["GaussianHMMClusterer", "GaussianHMMDetector"]

FloatArray = NDArray[np.float64]

WARMUP_PER_STATE = 100
"""``init_size=None`` waits for this many steps per state."""


class _HMMCore:
    """A hidden Markov model (:class:`~streamem.GaussianHMM`, :class:`~streamem.PoissonHMM`,
    ...), its block buffer and the stream's filter, over the row helper (feature order,
    missing values, checks)."""

    def __init__(self, hmm: HMMEstimator, batch_size: int, init_size: int | None) -> None:
        self.rows = Rows()
        self.batch_size = batch_size
        self.pending: list[FloatArray] = []
        self.initialized = False
        n_components = hmm.n_components
        warmup = WARMUP_PER_STATE * n_components if init_size is None else init_size
        self.warmup_size = max(warmup, batch_size, n_components)
        self.hmm = hmm
        self.filter: FloatArray | None = None

    # ---- learning ----------------------------------------------------------------------------

    def learn(self, row: FloatArray) -> None:
        """Advance the filter by one step (d,) and buffer it for the next update."""
        if self.filter is not None:
            self.filter = self._next_filter(row)
        self.pending.append(row)
        needed = self.batch_size if self.initialized else self.warmup_size
        if len(self.pending) >= needed:
            rows, self.pending = np.array(self.pending), []
            self.hmm.learn(Sequences.of(rows, keys=[STREAM_KEY], continues=[self.initialized]))
            self.initialized = self.hmm.status.initialized
            state = self.hmm.stream_filter() if self.initialized else None
            if state is not None:
                self.filter = state

    def learn_rows(self, X: FloatArray) -> None:
        """Learn the rows of X (n, d) as the next steps, in order."""
        for row in X:
            self.learn(row)

    # ---- inference ---------------------------------------------------------------------------

    def _prediction_terms(self, row: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log p(z_t = j | past)`` and ``log p(x_t | z_t = j)`` (K,) for the next step."""
        assert self.filter is not None
        log_prior, log_b = self.hmm.next_step_terms(self.filter, row[np.newaxis])
        return log_prior, log_b[0]

    def _next_filter(self, row: FloatArray) -> FloatArray:
        log_prior, log_b = self._prediction_terms(row)
        joint = log_prior + log_b
        proba = np.exp(joint - joint.max())
        return np.asarray(proba / proba.sum())

    def log_joint(self, X: FloatArray) -> FloatArray:
        """``log p(z = j | past) + log p(x | z = j)`` (n, K) of each row as the next step."""
        return np.stack([self._log_joint_row(row) for row in X])

    def _log_joint_row(self, row: FloatArray) -> FloatArray:
        log_prior, log_b = self._prediction_terms(row)
        return np.asarray(log_prior + log_b)

    def log_joint_one(self, x: dict[Hashable, Any]) -> FloatArray | None:
        """:meth:`log_joint` (K,) of the dict row ``x``; None before initialisation."""
        values, _ = self.rows.values(x)
        if self.filter is None:
            return None
        return self._log_joint_row(np.array(values))


def _log_normaliser(joint: FloatArray) -> float:
    peak = float(joint.max())
    return peak + math.log(float(np.exp(joint - peak).sum()))


class _HMMFace:
    """What every HMM adapter reads from its core: the warm-up's end, the filter, the
    features."""

    _core: _HMMCore

    def _surprise(self, x: dict[Hashable, Any]) -> float:
        """``-log p(x | past)`` of ``x`` as the next step (0.0 during the warm-up)."""
        joint = self._core.log_joint_one(x)
        return 0.0 if joint is None else -_log_normaliser(joint)

    @property
    def initialized(self) -> bool:
        """Whether the warm-up is over and the HMM has parameters."""
        return self._core.initialized

    @property
    def regime_probabilities(self) -> dict[int, float]:
        """``p(z_t | x_1..x_t)`` after the newest learned step (``{0: 1.0}`` before)."""
        state = self._core.filter
        return {0: 1.0} if state is None else dict(enumerate(state.tolist()))

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        """The features the HMM models, in its order (empty before the first row)."""
        return self._core.rows.features

    @property
    def ignored_features(self) -> collections.Counter[Hashable]:
        """Number of values ignored per feature name that was not in the first row learned."""
        return self._core.rows.ignored


class _HMMEstimator(_HMMFace):
    """The constructor, learning methods and attributes that both estimators share."""

    def __init__(
        self,
        n_components: int = 3,
        covariance_type: str = "full",
        batch_size: int = 50,
        init_size: int | None = None,
        schedule: Schedule | None = None,
        reg_covar: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.batch_size = batch_size
        self.init_size = init_size
        self.schedule = schedule
        self.reg_covar = reg_covar
        self.seed = seed
        check_adapter_parameters(n_components, covariance_type, batch_size, init_size, reg_covar)
        hmm = GaussianHMM(
            n_components,
            covariance_type,
            reg_covar=reg_covar,
            random_state=seed,
            schedule=schedule,
            init_size=None,
            history_size=HISTORY_SIZE,
        )
        self._core = _HMMCore(hmm, batch_size, init_size)

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Take ``x`` as the stream's next step: advance the filter, buffer it for the next
        update (every ``batch_size`` steps).

        Parameters
        ----------
        x
            Feature name -> real number; None or NaN for a missing value.
        """
        core = self._core
        core.learn(core.rows.learn_vector(x))

    @property
    def hmm(self) -> GaussianHMM:
        """The :class:`streamem.GaussianHMM` learned (not fitted during the warm-up)."""
        hmm = self._core.hmm
        assert isinstance(hmm, GaussianHMM)
        return hmm

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"seed": 42}
        yield {"n_components": 2, "covariance_type": "diag", "batch_size": 5, "seed": 7}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)


UNIT_TEST_SKIPS: dict[str, str] = {}
"""river checks that the estimators skip, with the reason."""


class GaussianHMMClusterer(_HMMEstimator, base.Clusterer):
    """The current regime of a stream, by a Gaussian hidden Markov model learned online.

    ``predict_one(x)`` is the most probable state of ``x`` read as the stream's next step,
    ``argmax_j p(z_t = j | x_1..x_{t-1}, x)``: a reading is placed by its regime's dynamics
    (where the stream was, how it moves) as well as by the emission densities. It is pure:
    only ``learn_one`` advances the filter. See the module documentation for the filter, the
    updates, the warm-up, missing features and the input checks.

    Parameters
    ----------
    n_components
        Number of regimes (hidden states) K.
    covariance_type
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    batch_size
        Steps per stepwise update (a block of the sequence).
    init_size
        Steps that initialise the HMM (None: ``100 * n_components``).
    schedule
        Step sizes, a :mod:`streamem.engine.schedules` object; None is the default of
        :meth:`streamem.GaussianHMM.partial_fit`.
    reg_covar
        Added to the diagonal of the covariances.
    seed
        Seed of the k-means initialisation.

    Examples
    --------
    >>> import random
    >>> from streamem.river import GaussianHMMClusterer

    A signal that switches between a low and a high regime every 50 steps:

    >>> rng = random.Random(1)
    >>> model = GaussianHMMClusterer(n_components=2, batch_size=20, seed=0)
    >>> for t in range(1000):
    ...     level = 0.0 if (t // 50) % 2 == 0 else 3.0
    ...     model.learn_one({"v": level + rng.gauss(0.0, 1.0)})
    >>> low = min(range(2), key=lambda j: model.hmm.means_[j, 0])

    A reading between the regimes belongs to the regime the stream is in (the last steps
    were high):

    >>> model.predict_one({"v": 1.6}) == 1 - low
    True
    >>> round(float(model.hmm.transmat_[low, low]), 2)
    0.98
    """

    def predict_one(self, x: dict[Hashable, Any]) -> int:
        """The most probable regime of ``x`` as the next step (0 during the warm-up)."""
        joint = self._core.log_joint_one(x)
        return 0 if joint is None else int(joint.argmax())


class GaussianHMMDetector(_HMMEstimator, base.AnomalyDetector):
    """Anomaly detection by the surprise of a Gaussian hidden Markov model learned online.

    ``score_one(x)`` is ``-log p(x_t = x | x_1..x_{t-1})`` (high = anomalous): the density of
    ``x`` as the stream's next step, a mixture of the regimes' densities weighted by where the
    filter says the stream is going. A reading that is normal for some regime but not for
    the current one (a jump to another regime's level between two steps of a sticky regime)
    scores high, which a density of the readings alone does not see. Score before learning
    (progressive validation); ``learn_one`` advances the filter. See the module documentation
    for the filter, the updates, the warm-up (scores 0.0), missing features and the checks.

    Parameters
    ----------
    n_components, covariance_type, batch_size, init_size, schedule, reg_covar, seed
        As :class:`GaussianHMMClusterer`'s.

    Examples
    --------
    >>> import random
    >>> from streamem.river import GaussianHMMDetector
    >>> rng = random.Random(2)
    >>> detector = GaussianHMMDetector(n_components=2, batch_size=20, seed=0)
    >>> for t in range(1000):
    ...     level = 0.0 if (t // 100) % 2 == 0 else 4.0
    ...     detector.learn_one({"v": level + rng.gauss(0.0, 0.5)})

    The stream is in its high regime: the low regime's level is a surprise now, though it
    is as frequent as the high one overall.

    >>> usual, jump = {"v": 4.0}, {"v": 0.0}
    >>> round(detector.score_one(usual), 1), round(detector.score_one(jump), 1)
    (0.2, 5.2)
    """

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """Surprise ``-log p(x | past)`` of ``x`` as the next step (0.0 during the warm-up)."""
        return self._surprise(x)
