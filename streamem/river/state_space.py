"""river adapter of the linear-Gaussian state space model: an innovation-surprise detector.

``KalmanDetector`` treats the rows given to ``learn_one`` as consecutive steps of one time
series. Its score is the innovation surprise ``-log p(y_t | y_1..y_{t-1})``: the negative log
density of the row under the Kalman filter's one-step prediction, over the observed
features (a row whose reading jumps away from the filter's forecast scores high).

* **Update semantics.** Rows are buffered; every ``batch_size`` rows make one stepwise EM
  update of a :class:`streamem.LinearGaussianSSM` (the first block also starts it: batch EM
  on that block, see ``init_em_iter``). Between updates the filter state advances with every
  ``learn_one`` under the current parameters, so that ``score_one`` always predicts the next
  step; after an update it is the model's carried filter state (the same state, computed in
  the block's E-step).
* **Features.** As :class:`streamem.river.GaussianMixtureDetector`: the feature order is
  fixed by the first row learned; a missing known feature (absent, None, NaN) drops out of
  that step's update only; a feature not in the first row is ignored and counted in
  ``ignored_features``.
* **Warm-up.** Until the first block is learned, ``score_one`` returns 0.0.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import base

from streamem.engine import Schedule
from streamem.errors import ValidationError
from streamem.models.state_space.kalman_filter import kalman_filter
from streamem.models.state_space.linear_gaussian_ssm import LinearGaussianSSM
from streamem.models.state_space.records import FilterState
from streamem.river.rows import Rows

__all__ = ["KalmanDetector"]

FloatArray = NDArray[np.float64]
HISTORY_SIZE = 100
"""Monitor records kept."""
UNIT_TEST_SKIPS: dict[str, str] = {}
"""river checks that the detector skips, with the reason."""


class KalmanDetector(base.AnomalyDetector):
    """Anomaly score ``-log p(y_t | y_1..y_{t-1})`` of a streaming Kalman filter whose Q and R
    (and, on request, the other parameters) are learned by stepwise EM.

    Parameters
    ----------
    n_dim_state
        State dimension; None: one state per feature (with the default matrices a local
        level, a random walk seen through noise, per feature).
    transition_matrices, observation_matrices, transition_covariance,
    observation_covariance
        Starting (or fixed) values, as nested tuples; None: pykalman's defaults (identity).
    em_vars
        Parameters learned (pykalman names); Q and R by default.
    batch_size
        Rows per stepwise EM update.
    schedule
        Step sizes (:mod:`streamem.engine.schedules`); None: the model's default.
        ``HalfLife`` follows a drifting Q or R.

    Attributes
    ----------
    model
        The :class:`streamem.LinearGaussianSSM`.
    feature_names, ignored_features
        The modelled features in order; values ignored per unknown feature name.

    Examples
    --------
    >>> import random
    >>> from streamem.river import KalmanDetector
    >>> rng = random.Random(0)
    >>> detector = KalmanDetector(batch_size=50)
    >>> level = 0.0
    >>> for _ in range(500):
    ...     level += rng.gauss(0.0, 0.1)
    ...     detector.learn_one({"temperature": level + rng.gauss(0.0, 0.5)})
    >>> usual, jump = {"temperature": level}, {"temperature": level + 5.0}
    >>> detector.score_one(jump) > detector.score_one(usual) + 10
    True
    """

    def __init__(
        self,
        n_dim_state: int | None = None,
        transition_matrices: Any = None,
        observation_matrices: Any = None,
        transition_covariance: Any = None,
        observation_covariance: Any = None,
        em_vars: tuple[str, ...] = ("transition_covariance", "observation_covariance"),
        batch_size: int = 100,
        schedule: Schedule | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.n_dim_state = n_dim_state
        self.transition_matrices = transition_matrices
        self.observation_matrices = observation_matrices
        self.transition_covariance = transition_covariance
        self.observation_covariance = observation_covariance
        self.em_vars = em_vars
        self.batch_size = batch_size
        self.schedule = schedule
        self._rows = Rows()
        self._pending: list[FloatArray] = []
        self._model: LinearGaussianSSM | None = None
        self._state: FilterState | None = None

    @property
    def model(self) -> LinearGaussianSSM:
        """The :class:`streamem.LinearGaussianSSM` (a ValidationError before the first row)."""
        if self._model is None:
            raise ValidationError("the detector has not learned a row yet")
        return self._model

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        return self._rows.features

    @property
    def ignored_features(self) -> collections.Counter[Hashable]:
        return self._rows.ignored

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Learn the next step of the series (feature name -> real number; None or NaN for
        missing)."""
        y = self._rows.learn_vector(x)
        if self._model is None:
            self._model = self._new_model(len(y))
        model = self._model
        if self._state is not None:
            self._state = self._advance(y)
        self._pending.append(y)
        if len(self._pending) < self.batch_size:
            return
        block, self._pending = np.array(self._pending), []
        model.learn(model.batch_from_rows(block))
        if model.status.initialized:
            self._state = model.filter_state_

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """``-log p(x | the rows learned)`` over the observed features (0.0 in the warm-up)."""
        y = self._rows.vector(x)
        if self._state is None or np.isnan(y).all():
            return 0.0
        mean, covariance = self._prediction()
        filtered = kalman_filter(self.model.engine_.params, y[np.newaxis], mean, covariance, 0.0)
        return -float(filtered.log_likelihoods[0])

    def _prediction(self) -> tuple[FloatArray, FloatArray]:
        params, state = self.model.engine_.params, self._state
        assert state is not None
        mean = params.A @ state.mean + params.b
        return mean, params.A @ state.covariance @ params.A.T + params.Q

    def _advance(self, y: FloatArray) -> FilterState:
        mean, covariance = self._prediction()
        filtered = kalman_filter(self.model.engine_.params, y[np.newaxis], mean, covariance, 0.0)
        return FilterState(filtered.filtered_means[0], filtered.filtered_covariances[0])

    def _new_model(self, n_features: int) -> LinearGaussianSSM:
        def array(value: Any) -> Any:
            return None if value is None else np.asarray(value, dtype=np.float64)

        return LinearGaussianSSM(
            transition_matrices=array(self.transition_matrices),
            observation_matrices=array(self.observation_matrices),
            transition_covariance=array(self.transition_covariance),
            observation_covariance=array(self.observation_covariance),
            n_dim_state=n_features if self.n_dim_state is None else self.n_dim_state,
            n_dim_obs=n_features,
            em_vars=tuple(self.em_vars),
            schedule=self.schedule,
            history_size=HISTORY_SIZE,
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"batch_size": 20, "em_vars": ("observation_covariance",)}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)
