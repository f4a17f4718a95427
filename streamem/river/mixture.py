"""river adapters of the Gaussian mixture: a river clusterer and an anomaly detector.

``import streamem`` does not import river; ``import streamem.river`` does.

Both estimators wrap one :class:`streamem.GaussianMixture` through a small shared core,
:class:`_MixtureCore`, that turns river's ``dict`` rows into float vectors and decides when the
mixture learns:

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
"""

from __future__ import annotations

import collections
import math
import numbers
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
from streamem.errors import ValidationError
from streamem.models.common import covariance as cov
from streamem.models.mixture.gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixtureClusterer", "GaussianMixtureDetector"]

FloatArray = NDArray[np.float64]

HISTORY_SIZE = 100
"""Monitor records kept (one per update: the library default of 10,000 is megabytes at m=1)."""
WARMUP_PER_COMPONENT = 10
"""``init_size=None`` waits for this many rows per component."""

_NAN = math.nan


def _number(key: Hashable, value: Any) -> float:
    """``value`` as a float, NaN for missing (None, NaN); raise on anything else."""
    if type(value) is float:
        number = value
    elif type(value) is int:  # the common cases first: no ABC check (bool is not int here)
        try:
            return float(value)
        except OverflowError as error:
            raise ValidationError(f"feature {key!r} does not fit a float: {value!r}") from error
    elif value is None:
        return _NAN
    elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"feature {key!r} must be a real number (or None for missing), got "
            f"{type(value).__name__} {value!r}"
        )
    else:
        try:
            number = float(value)
        except (OverflowError, ValueError) as error:
            raise ValidationError(f"feature {key!r} does not fit a float: {value!r}") from error
    if number - number != 0.0 and number == number:
        raise ValidationError(f"feature {key!r} must be finite, got {value!r}")
    return number


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
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(n_components, int) or n_components < 1:
            raise ValidationError(f"n_components must be an integer >= 1, got {n_components!r}")
        if init_size is not None and (not isinstance(init_size, int) or init_size < 1):
            raise ValidationError(f"init_size must be an integer >= 1 or None, got {init_size!r}")
        if not isinstance(reg_covar, int | float) or not reg_covar >= 0.0:
            raise ValidationError(f"reg_covar must be a number >= 0, got {reg_covar!r}")
        cov.check_covariance_type(covariance_type)
        warmup = WARMUP_PER_COMPONENT * n_components if init_size is None else init_size
        self.mixture = GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            reg_covar=reg_covar,
            random_state=seed,
            schedule=schedule,
            init_size=max(warmup, batch_size, n_components),
            history_size=HISTORY_SIZE,
        )
        self.n_components = n_components
        self.batch_size = batch_size
        self.features: tuple[Hashable, ...] = ()
        self.index: dict[Hashable, int] = {}
        self.ignored: collections.Counter[Hashable] = collections.Counter()
        self.pending: list[FloatArray] = []
        self.initialized = False

    # ---- rows --------------------------------------------------------------------------------

    def vector(self, x: dict[Hashable, Any], unknown: list[Hashable] | None = None) -> FloatArray:
        """The known features of ``x`` in model order, NaN where missing. No state change.

        The names of the unknown features that hold a value are appended to ``unknown``.
        """
        return np.array(self._values(x, unknown)[0])

    def _values(
        self, x: dict[Hashable, Any], unknown: list[Hashable] | None = None
    ) -> tuple[list[float], int]:
        """:meth:`vector` as a list, and how many known features hold a value."""
        if not isinstance(x, dict):
            raise ValidationError(f"x must be a dict of features, got {type(x).__name__}")
        if not x:
            raise ValidationError("x is an empty dict; a row needs at least one feature")
        values = [_NAN] * len(self.features)
        index = self.index
        observed = 0
        for key, value in x.items():
            # a finite float as it is, without a call; anything else through the checks
            number = value if type(value) is float and value - value == 0.0 else _number(key, value)
            position = index.get(key)
            if position is not None:
                values[position] = number
                observed += number == number
            elif unknown is not None and number == number:
                unknown.append(key)
        return values, observed

    def learn_vector(self, x: dict[Hashable, Any]) -> FloatArray:
        """:meth:`vector` for learning: fixes the features at first sight, counts new ones."""
        if not self.features:
            return self._first_vector(x)
        unknown: list[Hashable] = []
        values, observed = self._values(x, unknown)
        if not observed:
            raise ValidationError(
                f"x has no value for any of the features the model knows {self.features[:5]}"
                f"{'...' if len(self.features) > 5 else ''}; nothing to learn from it"
            )
        if unknown:
            self.ignored.update(unknown)
        return np.array(values)

    def _first_vector(self, x: dict[Hashable, Any]) -> FloatArray:
        self.vector(x)  # the checks
        numbers_ = {key: _number(key, value) for key, value in x.items()}
        observed = {key: number for key, number in numbers_.items() if number == number}
        if not observed:
            raise ValidationError("the first row to learn has no value (all None or NaN)")
        self.features = tuple(observed)
        self.index = {key: position for position, key in enumerate(self.features)}
        return np.array(list(observed.values()))

    def matrix(self, X: pd.DataFrame, learning: bool) -> FloatArray:
        """The rows of ``X`` (n, d) in model order; columns are checked as :func:`_number`."""
        if not isinstance(X, pd.DataFrame):
            raise ValidationError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        if X.columns.has_duplicates:
            raise ValidationError(f"X has duplicated columns: {X.columns.tolist()}")
        if X.shape[1] == 0 or X.shape[0] == 0:
            raise ValidationError(f"X needs at least one row and one column, got shape {X.shape}")
        columns = {name: _column(name, X[name]) for name in X.columns}
        if learning and not self.features:
            observed = [name for name, values in columns.items() if not np.isnan(values).all()]
            if not observed:
                raise ValidationError("the first rows to learn have no value (all None or NaN)")
            features: tuple[Hashable, ...] = tuple(observed)
        else:
            features = self.features
        out = np.full((len(X), len(features)), _NAN)
        for position, name in enumerate(features):
            if name in columns:
                out[:, position] = columns[name]
        if learning:
            empty = np.flatnonzero(np.isnan(out).all(axis=1))
            if len(empty):
                raise ValidationError(
                    f"rows {empty[:5].tolist()} of X have no value for any known feature; "
                    "nothing to learn from them"
                )
            known = set(features)
            new = {name: int((~np.isnan(values)).sum()) for name, values in columns.items()}
            if not self.features:
                self.features = features
                self.index = {key: position for position, key in enumerate(features)}
            for name, count in new.items():
                if name not in known and count:
                    self.ignored[name] += count
        return out

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
        values, _ = self._values(x)
        if not self.initialized:
            return None
        return self.mixture.log_joint_row(np.array(values))


def _column(name: Hashable, values: pd.Series) -> FloatArray:
    """A DataFrame column as floats with NaN for missing; the checks of :func:`_number`."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ValidationError(f"feature {name!r} must hold real numbers, got booleans")
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        column: FloatArray = values.to_numpy(dtype=np.float64, na_value=_NAN)
        if np.isinf(column).any():
            raise ValidationError(f"feature {name!r} must be finite, got an infinite value")
        return column
    return np.array([_NAN if v is pd.NA else _number(name, v) for v in values], dtype=float)


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
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.batch_size = batch_size
        self.init_size = init_size
        self.schedule = schedule
        self.reg_covar = reg_covar
        self.seed = seed
        self._core = _MixtureCore(
            n_components, covariance_type, batch_size, init_size, schedule, reg_covar, seed
        )

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Learn from one row: one online EM step, or one row of the current mini-batch.

        Parameters
        ----------
        x
            Feature name -> real number; None or NaN for a missing value.
        """
        core = self._core
        core.learn(core.learn_vector(x))

    def learn_many(self, X: pd.DataFrame) -> None:
        """One stepwise EM update with the rows of ``X`` as the mini-batch.

        Rows that ``learn_one`` buffered and not learned yet join the mini-batch first.

        Parameters
        ----------
        X
            One row per point, one column per feature; NaN or None for missing values.
        """
        core = self._core
        core.learn_rows(core.matrix(X, learning=True))

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
        return self._core.features

    @property
    def ignored_features(self) -> collections.Counter[Hashable]:
        """Number of values ignored per feature name that was not in the first row learned."""
        return self._core.ignored

    def _log_joint_one(self, x: dict[Hashable, Any]) -> FloatArray | None:
        return self._core.log_joint_one(x)

    def _log_density_many(self, X: pd.DataFrame) -> FloatArray:
        core = self._core
        rows = core.matrix(X, learning=False)
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
        rows = core.matrix(X, learning=False)
        labels = core.log_joint(rows).argmax(axis=1) if core.initialized else np.zeros(len(rows))
        return pd.Series(labels.astype(int), index=X.index)

    def predict_proba_many(self, X: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict_proba_one` of every row of ``X``, one column per component."""
        core = self._core
        rows = core.matrix(X, learning=False)
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
