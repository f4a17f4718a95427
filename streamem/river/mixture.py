"""river adapters of the Gaussian mixture: a river clusterer and an anomaly detector.

``import streamem`` does not import river; ``import streamem.river`` does.

Both estimators wrap one :class:`streamem.GaussianMixture` through a small shared core,
:class:`_MixtureCore`, that owns the mixture and decides when it learns; river's ``dict`` rows
become float vectors by the row helper it composes (:class:`streamem.river.rows.Rows`):

* **Update semantics.** With ``batch_size=1`` (the default) every ``learn_one`` is one online EM
  step (Cappé & Moulines 2009, mini-batch size m = 1): the running sufficient statistics are
  blended with the statistics of ``x`` with the step size of ``schedule``, and the parameters
  re-solved. With ``batch_size=m`` the rows are buffered and one stepwise update is made per
  ``m`` rows. ``learn_many(X)`` makes one update whose mini-batch is the rows of ``X`` (after
  the rows that ``learn_one`` buffered, if any).
* **Initialisation.** The first rows are kept in a warm-up buffer until it holds
  ``max(init_size, batch_size)`` rows (``init_size=None``: ``10 * n_components``) of which at
  least ``n_components`` are distinct. The mixture is then initialised on them (k-means++, see
  :meth:`streamem.GaussianMixture.partial_fit`) and makes its first update with all of them; if
  they give no valid mixture, a :class:`~streamem.errors.RefusedUpdateWarning` says so and the
  next row tries again. Until then ``predict_one`` returns 0,
  ``predict_proba_one`` returns ``{0: 1.0}``, the clusterer's ``score_one`` (log-density)
  returns 0.0 and the detector's ``score_one`` (anomaly score) returns 0.0: "no evidence yet".
* **Features.** The feature order is fixed by the first row that is learned: its keys that
  hold a value, in their order. A known feature missing from a later ``x`` (absent, None or
  NaN) is marginalised out of the Gaussian, not imputed. A feature that was not in that first
  row is ignored; the number of values ignored per name is in ``ignored_features``.
* **Input checks.** Values must be real numbers (``int``, ``float``, numpy numbers); a ``str``,
  a ``bool``, an infinite value or an empty ``dict`` raises
  :class:`~streamem.errors.ValidationError` before the model is touched. ``None`` and NaN mean
  "missing". ``learn_one`` also refuses a row with no value for any known feature (there is
  nothing to learn from it); inference on such a row uses the mixture weights alone (the
  marginal over no coordinate: log-density 0).
* **Guard.** With ``outlier_guard=True`` the mixture keeps out rows that would wreck it (one
  ``1e15``, an error sentinel): see ``outlier_guard`` of :class:`streamem.GaussianMixture`;
  ``mixture.n_outliers_`` counts them. Off by default.
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
    import pandas as pd
    from river import base
except ModuleNotFoundError as error:  # say which extra to install, not only the module
    raise (missing_extra(error, "streamem.river", "river") or error) from error

from streamem.engine import Schedule
from streamem.models.mixture.gaussian_mixture import GaussianMixture
from streamem.river.rows import Rows, check_adapter_parameters

__all__ = ["GaussianMixtureClusterer", "GaussianMixtureDetector"]

FloatArray = NDArray[np.float64]

HISTORY_SIZE = 100
"""Monitor records kept (one per update: the library default of 10,000 is megabytes at m=1)."""
WARMUP_PER_COMPONENT = 10
"""``init_size=None`` waits for this many rows per component."""


def _log_normaliser(joint: FloatArray) -> float:
    """``log sum_j exp(joint_j)`` of one row of log-joint values."""
    values: list[float] = joint.tolist()  # a short list: cheaper than numpy reductions
    peak = max(values)
    return peak + math.log(sum([math.exp(value - peak) for value in values]))


class _MixtureCore:
    """State and data handling shared by the river estimators (one instance per estimator).

    Owns the :class:`~streamem.GaussianMixture`, the feature order, the counters of ignored
    features, the warm-up buffer and the mini-batch buffer. It works on float vectors; the
    estimators only choose what to return.
    """

    def __init__(
        self,
        n_components: int,
        covariance_type: str,
        batch_size: int,
        init_size: int | None,
        schedule: Schedule | None,
        reg_covar: float,
        seed: int | None,
        outlier_guard: bool = False,
    ) -> None:
        check_adapter_parameters(n_components, covariance_type, batch_size, init_size, reg_covar)
        warmup = WARMUP_PER_COMPONENT * n_components if init_size is None else init_size
        self.mixture = GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            reg_covar=reg_covar,
            random_state=seed,
            schedule=schedule,
            init_size=max(warmup, batch_size, n_components),
            history_size=HISTORY_SIZE,
            outlier_guard=outlier_guard,
        )
        self.n_components = n_components
        self.batch_size = batch_size
        self.rows = Rows()
        self.pending: list[FloatArray] = []
        self.initialized = False

    # ---- learning ----------------------------------------------------------------------------

    def learn(self, row: FloatArray) -> None:
        """Learn one row (d,): one online EM step, or one row of the current mini-batch
        (the mixture keeps its own warm-up buffer until it can initialise)."""
        if self.initialized and self.batch_size == 1:
            self.mixture.learn_row(row)
        elif self.batch_size == 1:
            self._learn(row[np.newaxis])
        else:
            self.pending.append(row)
            if len(self.pending) >= self.batch_size:
                rows, self.pending = np.array(self.pending), []
                self._learn(rows)

    def learn_rows(self, X: FloatArray) -> None:
        """Learn a mini-batch (n, d) in one update, with the rows buffered before it."""
        if self.pending:
            X, self.pending = np.concatenate([np.array(self.pending), X]), []
        self._learn(X)

    def _learn(self, X: FloatArray) -> None:
        self.mixture.learn(X)
        if not self.initialized:
            self.initialized = self.mixture.status.initialized

    # ---- inference ---------------------------------------------------------------------------

    def log_joint(self, X: FloatArray) -> FloatArray:
        """``log w_j + log p(x_i | j)`` (n, K) over the observed coordinates of each row."""
        return self.mixture.log_joint_rows(X)

    def log_joint_one(self, x: dict[Hashable, Any]) -> FloatArray | None:
        """:meth:`log_joint` (K,) of the dict row ``x``; None before initialisation."""
        values, _ = self.rows.values(x)
        if not self.initialized:
            return None
        return self.mixture.log_joint_row(np.array(values))


class _MixtureEstimator:
    """The constructor, learning methods and attributes that both estimators share."""

    def __init__(
        self,
        n_components: int = 3,
        covariance_type: str = "full",
        batch_size: int = 1,
        init_size: int | None = None,
        schedule: Schedule | None = None,
        reg_covar: float = 1e-6,
        seed: int | None = None,
        outlier_guard: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.batch_size = batch_size
        self.init_size = init_size
        self.schedule = schedule
        self.reg_covar = reg_covar
        self.seed = seed
        self.outlier_guard = outlier_guard
        self._core = _MixtureCore(
            n_components,
            covariance_type,
            batch_size,
            init_size,
            schedule,
            reg_covar,
            seed,
            outlier_guard,
        )

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Learn from one row: one online EM step, or one row of the current mini-batch.

        Parameters
        ----------
        x
            Feature name -> real number; None or NaN for a missing value.
        """
        core = self._core
        core.learn(core.rows.learn_vector(x))

    def learn_many(self, X: pd.DataFrame) -> None:
        """One stepwise EM update with the rows of ``X`` as the mini-batch.

        Rows that ``learn_one`` buffered and not learned yet join the mini-batch first.

        Parameters
        ----------
        X
            One row per point, one column per feature; NaN or None for missing values.
        """
        core = self._core
        core.learn_rows(core.rows.matrix(X, learning=True))

    @property
    def mixture(self) -> GaussianMixture:
        """The :class:`streamem.GaussianMixture` learned (not fitted during the warm-up)."""
        return self._core.mixture

    @property
    def initialized(self) -> bool:
        """Whether the warm-up is over and the mixture has parameters."""
        return self._core.initialized

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        """The features the mixture models, in its order (empty before the first row)."""
        return self._core.rows.features

    @property
    def ignored_features(self) -> collections.Counter[Hashable]:
        """Number of values ignored per feature name that was not in the first row learned."""
        return self._core.rows.ignored

    def _log_joint_one(self, x: dict[Hashable, Any]) -> FloatArray | None:
        return self._core.log_joint_one(x)

    def _log_density_many(self, X: pd.DataFrame) -> FloatArray:
        core = self._core
        rows = core.rows.matrix(X, learning=False)
        if not core.initialized:
            return np.zeros(len(rows))
        return core.mixture.log_density(rows)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"seed": 42}
        yield {"n_components": 2, "covariance_type": "diag", "batch_size": 5, "seed": 7}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)


UNIT_TEST_SKIPS: dict[str, str] = {}
"""river checks that the estimators skip, with the reason."""


class GaussianMixtureClusterer(_MixtureEstimator, base.Clusterer):
    """Streaming Gaussian mixture clustering by online (stepwise) EM.

    Each component j of the mixture is a cluster with a weight, a mean and a covariance;
    ``predict_one`` gives the most probable component, ``predict_proba_one`` the posterior
    probabilities (soft assignment) and ``score_one`` the log-density of ``x``. See the module
    documentation for the update semantics, the warm-up, missing and new features, and the
    input checks.

    Parameters
    ----------
    n_components
        Number of clusters K.
    covariance_type
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    batch_size
        Rows per stepwise EM update; 1 is online EM (one step per ``learn_one``).
    init_size
        Rows in the warm-up buffer that initialises the mixture by k-means++ (None:
        ``10 * n_components``); at least ``n_components`` of them distinct, and at least
        ``batch_size`` rows.
    schedule
        Step sizes, a :mod:`streamem.engine.schedules` object; None is ``PowerDecay(0.8, 2)``,
        the default of :meth:`streamem.GaussianMixture.partial_fit`. ``HalfLife`` or
        ``Constant`` forget the past, to follow drift.
    reg_covar
        Added to the diagonal of the covariances.
    seed
        Seed of the k-means++ initialisation.
    outlier_guard
        Keep out rows that would wreck the mixture (``outlier_guard`` of
        :class:`streamem.GaussianMixture`; ``mixture.n_outliers_`` counts them). Off by
        default (every finite row is learned).

    Attributes
    ----------
    mixture
        The :class:`streamem.GaussianMixture` (``weights_``, ``means_``, ``covariances_``,
        ``n_seen_``, ...).
    feature_names
        The modelled features, in order.
    ignored_features
        Values ignored per feature name that appeared after the first learned row.

    Examples
    --------
    >>> from river import stream
    >>> from streamem.river import GaussianMixtureClusterer

    The first ``init_size`` rows are a warm-up: they are assigned to cluster 0 until the
    mixture is initialised on them.

    >>> X = [[1, 2], [-4, 2], [1, 4], [-4, 4], [1, 0], [-4, 0], [1, 3], [-4, 1]]
    >>> model = GaussianMixtureClusterer(n_components=2, init_size=4, seed=42)
    >>> for x, _ in stream.iter_array(X):
    ...     model.learn_one(x)
    ...     print(f"{list(x.values())} is assigned to cluster {model.predict_one(x)}")
    [1, 2] is assigned to cluster 0
    [-4, 2] is assigned to cluster 0
    [1, 4] is assigned to cluster 0
    [-4, 4] is assigned to cluster 1
    [1, 0] is assigned to cluster 0
    [-4, 0] is assigned to cluster 1
    [1, 3] is assigned to cluster 0
    [-4, 1] is assigned to cluster 1

    A missing feature is marginalised out:

    >>> model.predict_one({0: 0.5, 1: 1.0}), model.predict_one({0: -3.5})
    (0, 1)
    >>> {k: round(p, 3) for k, p in model.predict_proba_one({0: 1, 1: 9}).items()}
    {0: 1.0, 1: 0.0}
    >>> model.mixture.means_.round(2)
    array([[ 1.  ,  2.29],
           [-4.  ,  1.65]])
    """

    def predict_one(self, x: dict[Hashable, Any]) -> int:
        """The most probable component of ``x`` (0 during the warm-up)."""
        joint = self._log_joint_one(x)
        return 0 if joint is None else int(joint.argmax())

    def predict_proba_one(self, x: dict[Hashable, Any]) -> dict[int, float]:
        """Posterior probability of each component given the observed features of ``x``."""
        joint = self._log_joint_one(x)
        if joint is None:
            return {0: 1.0}
        proba = np.exp(joint - _log_normaliser(joint))
        return dict(enumerate(proba.tolist()))

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """Log-density of the observed features of ``x`` (0.0 during the warm-up)."""
        joint = self._log_joint_one(x)
        return 0.0 if joint is None else _log_normaliser(joint)

    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        """:meth:`predict_one` of every row of ``X``."""
        core = self._core
        rows = core.rows.matrix(X, learning=False)
        labels = core.log_joint(rows).argmax(axis=1) if core.initialized else np.zeros(len(rows))
        return pd.Series(labels.astype(int), index=X.index)

    def predict_proba_many(self, X: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict_proba_one` of every row of ``X``, one column per component."""
        core = self._core
        rows = core.rows.matrix(X, learning=False)
        if not core.initialized:
            return pd.DataFrame({0: np.ones(len(rows))}, index=X.index)
        joint = core.log_joint(rows)
        proba = np.exp(joint - joint.max(axis=1, keepdims=True))
        return pd.DataFrame(proba / proba.sum(axis=1, keepdims=True), index=X.index)

    def score_many(self, X: pd.DataFrame) -> pd.Series:
        """:meth:`score_one` (log-density) of every row of ``X``."""
        return pd.Series(self._log_density_many(X), index=X.index)


class GaussianMixtureDetector(_MixtureEstimator, base.AnomalyDetector):
    """Anomaly detection by the negative log-density of a streaming Gaussian mixture.

    ``score_one(x)`` is ``-log p(x)`` under the current mixture (high = anomalous), over the
    observed features of ``x`` (scores of rows with missing features are densities of fewer
    coordinates and are not on the same scale). Score a row before learning it
    (progressive validation). See the module documentation for the update semantics, the
    warm-up (scores are 0.0 until the mixture is initialised), missing and new features, and
    the input checks.

    Parameters
    ----------
    n_components
        Number of mixture components K. The default is one Gaussian: every component also
        learns what is frequent, and a recurring kind of anomaly (a cluster of anomalies, as
        in river's Shuttle data) becomes a component of high density and low scores. Use
        more components for normal data with several modes.
    covariance_type, batch_size, init_size, schedule, reg_covar, seed, outlier_guard
        As :class:`GaussianMixtureClusterer`'s.

    Attributes
    ----------
    mixture
        The :class:`streamem.GaussianMixture`.
    feature_names
        The modelled features, in order.
    ignored_features
        Values ignored per feature name that appeared after the first learned row.

    Examples
    --------
    >>> import random
    >>> from streamem.river import GaussianMixtureDetector

    Normal data with two modes; the point between them is the anomaly (a single Gaussian
    would give it its highest density):

    >>> rng = random.Random(0)
    >>> detector = GaussianMixtureDetector(n_components=2, seed=0)
    >>> for _ in range(500):
    ...     centre = rng.choice([-5.0, 5.0])
    ...     detector.learn_one({"a": rng.gauss(centre, 1.0), "b": rng.gauss(0.0, 1.0)})

    >>> normal, odd = {"a": 5.0, "b": 0.0}, {"a": 0.0, "b": 0.0}
    >>> round(detector.score_one(normal), 1), round(detector.score_one(odd), 1)
    (2.5, 15.7)
    >>> detector.score_one(odd) > detector.score_one(normal)
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "full",
        batch_size: int = 1,
        init_size: int | None = None,
        schedule: Schedule | None = None,
        reg_covar: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            n_components, covariance_type, batch_size, init_size, schedule, reg_covar, seed
        )

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """Anomaly score ``-log p(x)`` over the observed features (0.0 during the warm-up)."""
        joint = self._log_joint_one(x)
        return 0.0 if joint is None else -_log_normaliser(joint)

    def score_many(self, X: pd.DataFrame) -> pd.Series:
        """:meth:`score_one` of every row of ``X``."""
        return pd.Series(-self._log_density_many(X), index=X.index)
