"""``GaussianMixture``: batch and stepwise EM with a scikit-learn estimator's API."""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import validate_data

from streamem.engine import (
    Constant,
    ConvergenceMonitor,
    PowerDecay,
    Schedule,
    StepwiseEM,
)
from streamem.engine.records import FloatArray
from streamem.errors import (
    DegenerateUpdateError,
    ValidationError,
    input_error,
)
from streamem.models.base import (
    Bound,
    Constraint,
    ConvergenceWarning,
    EngineBackedModel,
    OneOf,
    as_float_array,
)
from streamem.models.common import covariance as cov
from streamem.models.common.screen import (
    MAX_OUTLIER_FRACTION,
    MAX_OUTLIER_RUN,
    MIN_GUARDED_BATCH,
    OUTLIER_MARGIN,
    far_from_bulk,
    low_density,
    outlier_margin,
)
from streamem.models.mixture.document import FORMAT, FORMAT_VERSION, validate_model_document
from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams, GaussianStats
from streamem.models.mixture.gaussian_online import OneRowStep
from streamem.models.mixture.gaussian_start import INIT_METHODS, GaussianStart
from streamem.models.protocol import StreamingOptions

STREAMING_PRIOR = 0.01
# Exponent of partial_fit's default PowerDecay schedule. The running statistics end up worth
# about m * k**alpha points (Kish's effective sample size, m points per mini-batch, k updates),
# and both the noise of the last iterate and the MAP prior's pull on a covariance scale as
# one over that count. Measured on the 1M-point, 8-d, 6-component accuracy test (batches of
# 1,000, 5 data seeds): alpha 0.6 leaves a component with a very thin direction (smallest
# covariance eigenvalue 4e-6, overall spread ~5) 0.13% below scikit-learn on one seed; 0.8
# ends 0.032% below on that seed, within 0.003% on the others, and gets within 0.1% sooner.
# alpha stays below 1 so that a poor start is still forgotten (Cappé & Moulines 2009).
STREAMING_ALPHA = 0.8
# Candidate starts of partial_fit's warm-up (each k-means++ + Lloyd, then EM on the warm-up
# rows; the one of highest log-likelihood there is kept), and the mass of the statistics
# beyond which the streaming prior fades (GaussianFamily.prior_fade). Measured on the real-data
# panel (benchmarks/real_data.py, 3 split seeds; see README): one candidate chosen by k-means
# inertia leaves wine (K=3) 2.4% and bananas (K=6) up to 1.1% below scikit-learn, three chosen
# by log-likelihood 0.03% and 0.24%; a fixed prior holds image segments (K=7) 12-19% below,
# the fading one -3%..+5%.
STREAMING_N_INIT = 3
PRIOR_FADE = 500.0
# init_size=None waits for at least this many rows per component and coordinate (3 K (d + 1))
# before it initialises: 500-row mini-batches of the 61-pixel digits at K=10 start 0.9-1.3%
# below scikit-learn after three passes, 1,860 rows 0.05-0.5%; the other panel rows are the same.
WARMUP_PER_PARAMETER = 3
FIXABLE = ("weights", "means", "covariances")
MixtureEngine = StepwiseEM[NDArray[np.floating], GaussianParams, GaussianStats, None]


class GaussianMixture(EngineBackedModel, DensityMixin, BaseEstimator):  # type: ignore[misc]
    """Gaussian mixture learned by batch EM (``fit``) or stepwise EM (``partial_fit``).

    ``fit(X)`` runs batch EM to convergence, as :class:`sklearn.mixture.GaussianMixture`
    does (from the same starting values it gives the same parameters). ``partial_fit(X)``
    makes ONE stepwise EM update with the mini-batch ``X``: the running sufficient
    statistics are blended with the mini-batch's, ``s <- (1 - eta) s + eta s_batch``, and
    the parameters re-solved from them.

    Parameters
    ----------
    n_components
        Number of mixture components K.
    covariance_type
        ``"full"`` (K, d, d), ``"tied"`` (d, d), ``"diag"`` (K, d) or ``"spherical"`` (K,).
    tol
        ``fit`` converges when the mean log-likelihood changes less than this between two
        iterations (as scikit-learn).
    reg_covar
        Non-negative regularisation added to the diagonal of the covariances.
    max_iter
        Largest number of EM iterations of ``fit``.
    n_init
        ``fit``: number of EM runs from different starts, the best is kept (None: 1, as
        scikit-learn). ``partial_fit``: number of candidate starts on the warm-up rows, each
        refined by up to ``init_em_iter`` EM iterations there; the one of highest
        log-likelihood on those rows is kept (None: 3; on a stream there is no second try).
    init_params
        ``"kmeans"`` (greedy k-means++ then Lloyd), ``"k-means++"`` (seeding only) or
        ``"random"``.
    weights_init, means_init, covariances_init, precisions_init
        User-given starting values of shapes (K,), (K, d) and the covariance type's shape;
        give covariances or precisions, not both.
    fixed
        Any of ``"weights"``, ``"means"``, ``"covariances"``: held at their starting values
        while the rest is learned.
    random_state
        Seed of the initialisation and of ``sample``.
    schedule
        Step sizes of ``partial_fit``: a :mod:`streamem.engine.schedules` object; None is
        ``PowerDecay(alpha=0.8, t0=2.0)`` (the engine's generic default is alpha 0.6; a larger
        alpha gives the running statistics more effective points, which shrinks both the
        stream's noise and the prior's bias). ``HalfLife`` or ``Constant`` forget the past.
    averaging_start
        Polyak-Ruppert averaging of the parameters from this ``partial_fit`` update on
        (None: off).
    init_size
        ``partial_fit`` buffers this many points before it initialises and makes its first
        update with all of them (None: the first mini-batch, or ``3 K (d + 1)`` rows if that
        is more: three rows per coordinate of each component's mean and variance; the first
        mini-batch alone when all starting values are given).
    init_em_iter
        ``partial_fit`` runs up to this many batch EM iterations (until ``tol``) on those
        first points from each candidate start, before the stream takes over (0: start from
        k-means alone). A start near an optimum of the first points saves the stream many
        noisy steps.
    prior_strength
        Pseudo-points of a conjugate prior pulling covariances towards the data's overall
        spread (see :class:`GaussianFamily`). None: 0.01 in ``partial_fit``, fading as
        ``500 / N`` once ``N > 500`` points are behind the statistics, and 0 (maximum
        likelihood, as scikit-learn) in ``fit``. A given value does not fade.
    reseed_weight
        In ``partial_fit``, a component whose weight falls below this is re-seeded at the
        worst-explained point of the mini-batch.
    parameter_tol, patience
        ``partial_fit`` converges when the largest parameter change of an update (a weight,
        a mean in standard deviations, a log-variance) stays below ``parameter_tol`` for
        ``patience`` updates in a row (the log-likelihood of a mini-batch is too noisy).
    smoothing
        Weight of the newest mini-batch in the smoothed mean log-likelihood.
    history_size
        Records of the newest ``partial_fit`` updates that the monitor keeps.
    outlier_guard
        ``partial_fit`` keeps rows out that would wreck the model (one ``1e15``, an error
        sentinel, a unit mix-up), with the tests of :mod:`streamem.models.common.screen`: before
        the start, a row far outside the bulk of the buffered rows and its own mini-batch; after
        it, a row whose log-density is more than 30 nats below the model's smoothed mean
        log-likelihood per row (or 10 times the spread of the kept rows' log-densities in the
        last mini-batch of 100 rows or more, if that is more). More than 5% of a mini-batch (of
        at least 100 rows) that low, or more than 100 such rows in a row, is a change of regime
        and is learned. Off by default: ``partial_fit`` then learns every finite row, as ``fit``
        does, and scores nothing.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        Learned parameters, shapes (K,), (K, d) and the covariance type's shape. After a
        compiled one-row step (:meth:`learn_row`) they are views of the step's buffers, which
        the next but one compiled step overwrites: copy them to keep them.
    converged_, n_iter_, lower_bound_
        ``fit``: as scikit-learn. ``partial_fit``: the monitor's flag, the number of updates
        and the smoothed mean log-likelihood.
    n_seen_
        Number of points learned (rows of ``fit`` or all rows given to ``partial_fit``).
    n_reseeded_, n_refused_
        Components re-seeded; mini-batch updates refused because they were degenerate.
    n_outliers_, outliers_
        With ``outlier_guard``: rows kept out by the guard so far (not in ``n_seen_``), and
        their indices in the last call's rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
    >>> model = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> print(np.sort(model.means_[:, 0]).round(1))
    [-3.1  3. ]
    >>> stream = GaussianMixture(n_components=2, random_state=0)
    >>> for batch in np.array_split(rng.permutation(X), 10):
    ...     stream = stream.partial_fit(batch)
    >>> print(stream.n_seen_, np.sort(stream.means_[:, 0]).round(1))
    1000 [-3.1  3. ]
    """

    engine_: MixtureEngine
    warmup_: NDArray[np.floating]
    warmup_repeats_: NDArray[np.int64]
    family = "gaussian_mixture"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = FORMAT
    """The ``format`` of :meth:`to_dict`'s document."""
    sequential = False
    """Rows are independent: no sequence keys."""

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int | None = None,
        init_params: str = "kmeans",
        weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None,
        covariances_init: ArrayLike | None = None,
        precisions_init: ArrayLike | None = None,
        fixed: tuple[str, ...] = (),
        random_state: int | None = None,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        init_size: int | None = None,
        init_em_iter: int = 100,
        prior_strength: float | None = None,
        reseed_weight: float = 1e-4,
        parameter_tol: float = 0.01,
        smoothing: float = 0.1,
        patience: int = 5,
        history_size: int = 10_000,
        outlier_guard: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.precisions_init = precisions_init
        self.fixed = fixed
        self.random_state = random_state
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.init_size = init_size
        self.init_em_iter = init_em_iter
        self.prior_strength = prior_strength
        self.reseed_weight = reseed_weight
        self.parameter_tol = parameter_tol
        self.smoothing = smoothing
        self.patience = patience
        self.history_size = history_size
        self.outlier_guard = outlier_guard

    @classmethod
    def from_options(cls, options: StreamingOptions) -> GaussianMixture:
        """A mixture for streaming from the model protocol's common options (``seed`` is
        ``random_state``)."""
        return cls._from_common_options(
            options,
            options.init_size,
            covariance_type=options.covariance_type,
            reg_covar=options.reg_covar,
            n_init=options.n_init,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None) -> Self:
        """Batch EM to convergence (at most ``max_iter`` iterations) on X (n_samples, d)."""
        X_checked = self._validate(X, reset=True)
        self._check_parameters(X_checked.shape[1])
        self._check_enough_rows(len(X_checked))
        rng = np.random.default_rng(self.random_state)
        best: tuple[float, MixtureEngine] | None = None
        for _ in range(1 if self.n_init is None else self.n_init):
            engine = self._batch_engine(self._family(0.0).initial_params(X_checked, rng))
            for _ in range(self.max_iter):
                engine.update(X_checked)
                if engine.monitor.converged:
                    break
            bound = engine.monitor.last.mean_log_likelihood if engine.monitor.last else -np.inf
            if best is None or bound > best[0]:
                best = (bound, engine)
        assert best is not None
        engine = best[1]
        if not engine.monitor.converged and self.max_iter > 0:
            warnings.warn(
                f"fit did not converge in max_iter={self.max_iter} iterations; increase "
                "max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.converged_ = engine.monitor.converged
        self.n_iter_ = engine.step
        self.lower_bound_ = best[0]
        self.engine_ = self._streaming_engine(engine.params)
        if engine.stats is not None:
            self.engine_.initialize(engine.params, engine.stats, n_units=len(X_checked))
        self._reset_counters()
        self._publish(from_fit=True)
        return self

    def partial_fit(self, X: ArrayLike, y: object = None) -> Self:
        """One stepwise EM update with the mini-batch X (n_samples, d).

        The first call initialises (after ``init_size`` points, if set). A degenerate
        update is refused with a :class:`~streamem.errors.RefusedUpdateWarning` and the
        previous parameters are kept.
        """
        first_call = not hasattr(self, "n_features_in_") or not hasattr(self, "engine_")
        X_checked = self._validate(X, reset=first_call)
        if first_call:
            self._check_parameters(X_checked.shape[1])
            self.engine_ = self._streaming_engine(None)
            self._reset_counters()
        return self._step(X_checked)

    def learn(self, X: NDArray[np.floating]) -> Self:
        """:meth:`partial_fit` for an already validated float array (n, d): no checks.

        For callers that validated the rows themselves (the river adapter, the daemon) and
        want the least overhead per update (the first call validates, as ``partial_fit``).
        """
        if not hasattr(self, "engine_"):
            return self.partial_fit(X)
        return self._step(X)

    def learn_row(self, x: NDArray[np.floating]) -> Self:
        """:meth:`learn` of one validated row ``x`` (d,): one online-EM step, by the compiled
        step where it applies (:mod:`streamem.models.mixture.gaussian_online`).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> model = GaussianMixture(2, init_size=20, random_state=0)
        >>> for row in rng.normal(size=(100, 2)):
        ...     model = model.learn_row(row)
        >>> model.n_seen_, model.n_iter_
        (100, 81)
        """
        engine = getattr(self, "engine_", None)
        if engine is None or not engine.initialized or self.outlier_guard:
            return self.learn(x[np.newaxis])
        if not self._compiled_step(x):
            self._numpy_update(x[np.newaxis])
        return self

    def _step(self, batch: NDArray[np.floating]) -> Self:
        """The warm-up or a stepwise update with the rows of ``batch`` the guard keeps."""
        if self.outlier_guard:
            refused = (
                self._far_rows(batch) if not self.engine_.initialized else self._outliers(batch)
            )
            self.outliers_: NDArray[np.intp] = refused
            self.n_outliers_: int = getattr(self, "n_outliers_", 0) + len(refused)
            if len(refused):
                batch = np.delete(batch, refused, axis=0)
                if not len(batch):
                    return self
        return super()._step(batch)

    def _far_rows(self, X: NDArray[np.floating]) -> NDArray[np.intp]:
        """Before the start: the rows of ``X`` far from the bulk of the buffered rows and
        ``X`` (:func:`~streamem.models.common.screen.far_from_bulk`). When ``X`` completes
        the warm-up, the buffered rows are screened again (they were judged against fewer
        rows); those found far leave the buffer, counted in ``n_outliers_``."""
        before = self.warmup_
        reference = np.concatenate([before, X])
        starting = len(reference) + int(self._warmup_repeats().sum()) >= self._warmup_size()
        far = far_from_bulk(reference, None if starting else np.arange(len(before), len(reference)))
        earlier = far[far < len(before)]
        if len(earlier):
            self.warmup_ = np.delete(before, earlier, axis=0)
            self.warmup_repeats_ = np.delete(self._warmup_repeats(), earlier)
            self.n_outliers_ = getattr(self, "n_outliers_", 0) + len(earlier)
        return far[far >= len(before)] - len(before)

    def _outliers(self, X: NDArray[np.floating]) -> NDArray[np.intp]:
        """Once started: the rows of ``X`` whose log-density is far below the model's (see
        ``outlier_guard``)."""
        bound = float(getattr(self, "lower_bound_", -np.inf))
        if not np.isfinite(bound):
            return np.empty(0, dtype=np.intp)
        margin = getattr(self, "outlier_margin_", OUTLIER_MARGIN)
        with np.errstate(all="ignore"):
            one = len(X) == 1
            scores = (
                _logsumexp(self.log_joint_row(X[0])[np.newaxis]) if one else self.log_density(X)
            )
            low = low_density(scores, bound, margin, max_fraction=1.0)
        if len(X) >= MIN_GUARDED_BATCH:  # the kept rows' spread sets the next calls' margin
            self.outlier_margin_: float = outlier_margin(np.delete(scores, low))
        run = getattr(self, "outlier_run_", 0)
        self.outlier_run_: int = run + len(X) if len(low) == len(X) else 0
        if run >= MAX_OUTLIER_RUN or len(low) > MAX_OUTLIER_FRACTION * max(
            len(X), MIN_GUARDED_BATCH
        ):
            return np.empty(0, dtype=np.intp)  # a change of regime: learn it
        return low

    def _buffer(self, X: NDArray[np.floating]) -> NDArray[np.floating]:
        """Add the rows X to the warm-up buffer; all buffered rows, repeats expanded.

        While the buffer holds fewer than K distinct rows (a stuck sensor), it keeps each
        distinct row once with the count of its repeats (``warmup_repeats_``): its memory
        stays bounded and no row is lost.
        """
        rows = np.concatenate([self.warmup_, X]) if len(self.warmup_) else np.array(X)
        repeats = np.concatenate([self._warmup_repeats(), np.zeros(len(X), dtype=np.int64)])
        if len(rows) + int(repeats.sum()) >= self._warmup_size():
            distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
            if len(distinct) < self.n_components:
                counts = np.bincount(inverse.ravel(), weights=repeats + 1, minlength=len(distinct))
                rows, repeats = distinct, counts.astype(np.int64) - 1
        self.warmup_, self.warmup_repeats_ = rows, repeats
        return np.repeat(rows, repeats + 1, axis=0) if repeats.any() else rows

    def _warmup_repeats(self) -> NDArray[np.int64]:
        """Extra copies of each buffered row (zeros unless a stuck sensor was collapsed)."""
        repeats = getattr(self, "warmup_repeats_", None)
        return np.zeros(len(self.warmup_), dtype=np.int64) if repeats is None else repeats

    def _clear_warmup(self) -> None:
        self.warmup_ = np.empty((0, self.n_features_in_))
        self.warmup_repeats_ = np.zeros(0, dtype=np.int64)

    def _cannot_start(self, buffered: NDArray[np.floating]) -> str | None:
        if not self._warmup_repeats().any():
            return None  # repeats are collapsed only while fewer than K rows are distinct
        n_distinct = len(np.unique(self.warmup_, axis=0))
        if n_distinct >= self.n_components:
            return None
        if n_distinct == 1:
            return (
                f"all {len(buffered):,} buffered rows are identical; "
                f"{self.n_components} components need {self.n_components} distinct rows"
            )
        return (
            f"the {len(buffered):,} buffered rows hold only {n_distinct} distinct rows; "
            f"{self.n_components} components need {self.n_components}"
        )

    def _start(self, buffered: NDArray[np.floating]) -> GaussianParams:
        """The best of ``n_init`` candidate starts (k-means, then up to ``init_em_iter`` EM
        iterations) on the buffered rows, by their log-likelihood there; the stream's anchor
        is its k-means start."""
        rng = np.random.default_rng(self.random_state)
        family = self._family(0.0)
        best: tuple[float, GaussianParams, GaussianParams] | None = None
        failure: DegenerateUpdateError | None = None
        n_candidates = STREAMING_N_INIT if self.n_init is None else self.n_init
        for _ in range(n_candidates):
            try:
                start = family.initial_params(buffered, rng)
            except DegenerateUpdateError as error:
                failure = error
                continue
            refined = self._refine(start, buffered)
            fit = float(_logsumexp(family.log_joint(refined, buffered)).mean())
            # A later candidate must be better by more than tol: two starts that reach the
            # same optimum keep the first one, whatever rounding does to their scores.
            if best is None or fit > best[0] + self.tol:
                best = (fit, refined, start)
        if best is None:
            assert failure is not None
            raise failure
        _, refined, start = best
        self._gaussian_family.anchor = start
        return refined

    def _warmup_size(self) -> int:
        """Rows buffered before a start: ``init_size`` and at least K; None: ``3 K (d + 1)``
        when starting values are estimated from the rows, K when all of them are given."""
        if self.init_size is not None:
            return max(int(self.init_size), self.n_components)
        given = (self.weights_init, self.means_init, self._given_covariances())
        if all(value is not None for value in given):
            return self.n_components
        return WARMUP_PER_PARAMETER * int(self.n_components) * (self.n_features_in_ + 1)

    def _refine(self, start: GaussianParams, X: NDArray[np.floating]) -> GaussianParams:
        """Up to ``init_em_iter`` batch EM iterations on the first points (until ``tol``), if
        they allow it."""
        engine = self._batch_engine(start)
        try:
            for _ in range(self.init_em_iter):
                engine.update(X)
                if engine.monitor.converged:
                    break
        except DegenerateUpdateError:
            return start
        return engine.params

    def _stepwise_update(self, X: NDArray[np.floating]) -> None:
        if len(X) > 1 or not self._compiled_step(X[0]):
            self._numpy_update(X)

    def _numpy_update(self, X: NDArray[np.floating]) -> None:
        """The update with the mini-batch X by the engine (the reference path)."""
        if self._update_or_refuse(X, f"mini-batch of {len(X)} rows"):
            self._reseed_collapsed(X)
            self._publish(from_fit=False)

    def _compiled_step(self, x: NDArray[np.floating]) -> bool:
        """The update with one row ``x`` (d,) by the compiled step, where it applies (see
        :mod:`streamem.models.mixture.gaussian_online`); whether it was made."""
        fast = self._one_row_step()
        if not fast.step(x):
            return False
        if fast.smallest_weight < self.reseed_weight:
            self._reseed_collapsed(x[np.newaxis])
        self._publish(from_fit=False)
        return True

    def _one_row_step(self) -> OneRowStep:
        """The compiled one-row step bound to the current engine."""
        fast: OneRowStep | None = getattr(self, "_one_row", None)
        if fast is None or fast.engine is not self.engine_:
            fast = self._one_row = OneRowStep(self.engine_)
        return fast

    def _reseed_collapsed(self, X: NDArray[np.floating]) -> None:
        """Move components whose weight collapsed to the worst-explained rows of X."""
        engine = self.engine_
        params, stats = engine.params, engine.stats
        assert stats is not None
        if "weights" in self.fixed or "means" in self.fixed:
            return
        if min(params.weights.tolist()) >= self.reseed_weight:  # the common case, cheaply
            return
        collapsed = np.flatnonzero(params.weights < self.reseed_weight)
        family = self._gaussian_family
        fit = family.log_joint(params, X).max(axis=1)
        worst = np.argsort(fit)[: len(collapsed)]
        spread = np.nanvar(X, axis=0) + self.reg_covar if len(X) > 1 else np.ones(X.shape[1])
        resp, first, second = stats.resp.copy(), stats.first.copy(), stats.second.copy()
        mass = resp.sum() / (2 * self.n_components)
        for j, row in zip(collapsed, worst, strict=False):
            point = np.where(np.isnan(X[row]), params.weights @ params.means, X[row])
            resp[j], first[j] = mass, mass * point
            outer = np.diag(spread) + np.outer(point, point)
            if self.covariance_type == "full":
                second[j] = mass * outer
            elif self.covariance_type == "tied":
                second = second + mass * outer
            else:
                second[j] = mass * np.diag(outer)
        stats = GaussianStats(resp=resp, first=first, second=second)
        try:
            engine.replace(family.maximize(stats.scaled(engine.effective_count)), stats)
        except DegenerateUpdateError:
            return
        self.n_reseeded_ += len(collapsed)

    # ---- engines and starting values ---------------------------------------------------------

    def _family(self, prior_strength: float) -> GaussianFamily:
        covariance_type = cov.check_covariance_type(self.covariance_type)
        return GaussianFamily(
            covariance_type=covariance_type,
            reg_covar=self.reg_covar,
            prior_strength=prior_strength,
            fixed=tuple(self.fixed),
            start=GaussianStart(
                self.n_components,
                method=self.init_params,
                weights=None if self.weights_init is None else as_float_array(self.weights_init),
                means=None if self.means_init is None else as_float_array(self.means_init),
                covariances=self._given_covariances(),
            ),
        )

    def _batch_engine(self, start: GaussianParams) -> MixtureEngine:
        family = self._family(self.prior_strength or 0.0)
        family.anchor = start
        engine = StepwiseEM(family, Constant(1.0), ConvergenceMonitor(self.tol, 1.0, 1))
        engine.initialize(start)
        return engine

    def _streaming_engine(self, start: GaussianParams | None) -> MixtureEngine:
        prior = STREAMING_PRIOR if self.prior_strength is None else self.prior_strength
        family = self._family(prior)
        if self.prior_strength is None:
            family.prior_fade = PRIOR_FADE
        family.anchor = start
        engine: MixtureEngine = self._stream_engine(family, PowerDecay(alpha=STREAMING_ALPHA))
        if start is not None:
            engine.initialize(start)
        return engine

    def _given_covariances(self) -> FloatArray | None:
        covariance_type = cov.check_covariance_type(self.covariance_type)
        if self.covariances_init is not None:
            return as_float_array(self.covariances_init)
        if self.precisions_init is not None:
            return cov.covariances_from_precisions(
                as_float_array(self.precisions_init), covariance_type
            )
        return None

    # ---- checks ------------------------------------------------------------------------------

    def _validate(self, X: ArrayLike, reset: bool) -> NDArray[np.floating]:
        if self._is_plain_finite_batch(X, reset):
            return X  # type: ignore[return-value]
        try:
            checked = validate_data(
                self,
                X,
                reset=reset,
                dtype=[np.float64, np.float32],
                ensure_all_finite="allow-nan",
                ensure_min_samples=1,
            )
        except ValueError as error:
            raise input_error(error) from error
        empty_rows = np.flatnonzero(np.isnan(checked).all(axis=1))
        if len(empty_rows):
            raise ValidationError(
                f"rows {empty_rows[:5].tolist()} have no observed coordinate (all NaN); "
                "every row needs at least one"
            )
        return np.asarray(checked)

    def _is_plain_finite_batch(self, X: ArrayLike, reset: bool) -> bool:
        """Fast path of :meth:`_validate` for the common case of a mini-batch stream: a
        finite 2-D float array of the known width from a model fitted without feature
        names (one pass over the data instead of scikit-learn's full validation)."""
        return (
            not reset
            and isinstance(X, np.ndarray)
            and X.dtype in (np.float64, np.float32)
            and X.ndim == 2
            and len(X) > 0
            and X.shape[1] == getattr(self, "n_features_in_", -1)
            and not hasattr(self, "feature_names_in_")
            and bool(np.isfinite(X).all())
        )

    def _check_enough_rows(self, n_samples: int) -> None:
        if n_samples < self.n_components:
            raise ValidationError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n_samples}"
            )

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "n_components": Bound(1, integer=True),
            "tol": Bound(0.0),
            "reg_covar": Bound(0.0),
            "max_iter": Bound(0),
            "n_init": Bound(1, optional=True),
            "init_em_iter": Bound(0),
            "init_params": OneOf(INIT_METHODS),
            "init_size": Bound(1, optional=True),
        }

    def _check_parameters(self, d: int) -> None:
        """Validate the hyper-parameters (:meth:`_parameter_constraints`) and the starting
        values; errors name the parameter."""
        k = self.n_components
        self._validate_parameters()
        covariance_type = cov.check_covariance_type(self.covariance_type)
        unknown = [name for name in self.fixed if name not in FIXABLE]
        if unknown or isinstance(self.fixed, str):
            raise ValidationError(f"fixed must hold names among {FIXABLE}, got {self.fixed!r}")
        if self.covariances_init is not None and self.precisions_init is not None:
            raise ValidationError("give covariances_init or precisions_init, not both")
        if self.weights_init is not None:
            _check_weights(as_float_array(self.weights_init), k)
        if self.means_init is not None:
            _check_shape("means_init", as_float_array(self.means_init), (k, d))
        for name, given in (
            ("covariances_init", self.covariances_init),
            ("precisions_init", self.precisions_init),
        ):
            if given is not None:
                _check_shape(name, as_float_array(given), cov.expected_shape(covariance_type, k, d))
                _check_positive_definite(name, as_float_array(given), covariance_type)
        for name in self.fixed:
            if getattr(self, f"{name}_init") is None and not (
                name == "covariances" and self.precisions_init is not None
            ):
                raise ValidationError(f"fixed={self.fixed!r} needs {name}_init to be given")

    # ---- results -----------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        """An empty warm-up buffer and no re-seeded component or refused update (a new
        stream, or the model of a fit)."""
        self._clear_warmup()
        self.n_reseeded_ = 0
        self.n_refused_ = 0

    def _refresh_fitted(self) -> None:
        self._publish(from_fit=False)

    def _publish(self, from_fit: bool) -> None:
        """Copy the engine's output parameters to the fitted attributes."""
        engine = self.engine_
        params = engine.output_params
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        if not from_fit:
            monitor = engine.monitor
            smoothed = monitor.smoothed_log_likelihood
            self.converged_ = monitor.converged
            self.n_iter_ = engine.step
            self.lower_bound_ = smoothed if smoothed is not None else -np.inf

    @property
    def precisions_(self) -> FloatArray:
        """Precision matrices (or inverse variances) in the covariance type's shape, from
        ``precisions_cholesky_`` when asked (not on every update)."""
        factors = self.__dict__.get("precisions_cholesky_")
        if factors is None:
            raise AttributeError(f"{type(self).__name__} has no precisions_ before it is fitted")
        return cov.precisions_from_cholesky(
            factors, cov.check_covariance_type(self.covariance_type)
        )

    # ---- the model protocol (streamem.models.protocol.StreamingModel) -------------------------

    def _class_weights(self) -> FloatArray:
        return np.asarray(self.weights_, dtype=np.float64)

    def _n_warmup(self) -> int:
        if not hasattr(self, "warmup_"):
            return 0
        return len(self.warmup_) + int(self._warmup_repeats().sum())

    def _has_parameters(self) -> bool:
        return hasattr(self, "weights_")

    def batch_from_rows(
        self, X: NDArray[np.floating], keys: tuple[str, ...] | None = None
    ) -> NDArray[np.floating]:
        """The rows themselves: a mixture's batch (its rows are independent, so keys, which
        only sequential families use, must be None)."""
        if keys is not None:
            raise ValidationError("a Gaussian mixture's rows are independent: no sequence keys")
        return X

    def log_density(self, X: NDArray[np.floating]) -> FloatArray:
        """:meth:`score_samples` of already validated rows (n, d), without the checks; a row
        without any observed coordinate has log density 0 (the marginal over nothing)."""
        return _logsumexp(self.log_joint_rows(X))

    def log_joint_rows(self, X: NDArray[np.floating]) -> FloatArray:
        """``log w_j + log N(x_i | mu_j, Sigma_j)`` (n, K) of already validated rows, over the
        observed coordinates of each row (log weights for a row without any)."""
        self._check_fitted()
        params, family = self.engine_.output_params, self._gaussian_family
        empty = np.isnan(X).all(axis=1)
        if not empty.any():
            return family.log_joint(params, X)
        out = np.empty((len(X), self.n_components))
        out[empty] = np.log(params.weights)
        if not empty.all():
            out[~empty] = family.log_joint(params, X[~empty])
        return out

    def log_joint_row(self, x: NDArray[np.floating]) -> FloatArray:
        """:meth:`log_joint_rows` (K,) of one validated row (d,), on the fast one-row path."""
        params = self.engine_.output_params
        fast: OneRowStep | None = getattr(self, "_one_row", None)
        if fast is not None:
            joint = fast.log_joint(params, x)
            if joint is not None:
                return joint
        if np.isnan(x).all():
            return np.log(params.weights)
        return self._gaussian_family.log_joint_row(params, x)

    def parameters_document(self) -> dict[str, Any]:
        """The mixture's fields of a published snapshot: covariance type, weights, means and
        covariances (shapes (K,), (K, d) and the covariance type's)."""
        self._check_fitted()
        return {
            "covariance_type": str(self.covariance_type),
            "n_components": int(self.n_components),
            "weights": np.asarray(self.weights_, dtype=float).tolist(),
            "means": np.asarray(self.means_, dtype=float).tolist(),
            "covariances": np.asarray(self.covariances_, dtype=float).tolist(),
        }

    @property
    def _gaussian_family(self) -> GaussianFamily:
        return self._engine_family(GaussianFamily)

    def _log_joint(self, X: ArrayLike) -> FloatArray:
        self._check_fitted()
        X_checked = self._validate(X, reset=False)
        return self._gaussian_family.log_joint(self.engine_.output_params, X_checked)

    def score_samples(self, X: ArrayLike) -> FloatArray:
        """Log density of each row of X (n_samples, d), NaN coordinates marginalised."""
        return _logsumexp(self._log_joint(X))

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log density of the rows of X."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Responsibilities (n_samples, K): probability of each component given each row."""
        joint = self._log_joint(X)
        return np.exp(joint - _logsumexp(joint)[:, np.newaxis])

    def predict(self, X: ArrayLike) -> NDArray[np.intp]:
        """Most probable component of each row."""
        return np.asarray(self._log_joint(X).argmax(axis=1))

    def fit_predict(self, X: ArrayLike, y: object = None) -> NDArray[np.intp]:
        """``fit(X)`` then ``predict(X)``."""
        return self.fit(X).predict(X)

    def sample(self, n_samples: int = 1) -> tuple[FloatArray, NDArray[np.intp]]:
        """Draw ``n_samples`` points (n_samples, d) and their components (n_samples,)."""
        self._check_fitted()
        if n_samples < 1:
            raise ValidationError(f"n_samples must be >= 1, got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        k, d = self.means_.shape
        counts = rng.multinomial(n_samples, self.weights_)
        full = cov.full_matrices(
            self.covariances_, cov.check_covariance_type(self.covariance_type), k, d
        )
        points = [
            rng.multivariate_normal(self.means_[j], full[j], size=count)
            for j, count in enumerate(counts)
        ]
        labels = np.repeat(np.arange(k), counts)
        return np.vstack(points), labels

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        return cov.n_parameters(cov.check_covariance_type(self.covariance_type), k, d)

    def bic(self, X: ArrayLike) -> float:
        """Bayesian information criterion on X (lower is better)."""
        n = len(np.asarray(X))
        return -2.0 * self.score(X) * n + self._n_parameters() * float(np.log(n))

    def aic(self, X: ArrayLike) -> float:
        """Akaike information criterion on X (lower is better)."""
        return -2.0 * self.score(X) * len(np.asarray(X)) + 2.0 * self._n_parameters()

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, counters) as JSON data.

        ``from_dict(model.to_dict())`` continues learning exactly where ``model`` was.
        """
        document = self._document_head(FORMAT, FORMAT_VERSION)
        if hasattr(self, "engine_"):
            document["state"] = {
                **self._state_head(self._gaussian_family.anchor),
                "feature_names_in": (
                    self.feature_names_in_.tolist() if hasattr(self, "feature_names_in_") else None
                ),
                "warmup": _nan_to_none(getattr(self, "warmup_", np.empty((0, 0)))),
                "n_reseeded": self.n_reseeded_,
                **self._counters_document(),
            }
            if hasattr(self, "warmup_") and self._warmup_repeats().any():
                document["state"]["warmup_repeats"] = self._warmup_repeats().tolist()
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> GaussianMixture:
        """Rebuild a model from :meth:`to_dict`'s output.

        The document is validated first, by
        :func:`~streamem.models.mixture.document.validate_model_document` (its schema, then shapes
        and values).

        Raises
        ------
        ValidationError
            Naming the first field that is wrong; nothing is built.
        """
        validate_model_document(document)
        document = dict(document, hyperparameters=dict(document["hyperparameters"]))
        document["hyperparameters"]["fixed"] = tuple(document["hyperparameters"].get("fixed", ()))
        model, state = cls._from_document(document, FORMAT_VERSION, GaussianParams)
        if state is None:
            return model
        if state["feature_names_in"] is not None:
            model.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        model.warmup_ = np.array(
            [[np.nan if v is None else v for v in row] for row in state["warmup"]], dtype=float
        ).reshape(-1, model.n_features_in_)
        model.warmup_repeats_ = np.asarray(
            state.get("warmup_repeats", [0] * len(model.warmup_)), dtype=np.int64
        )
        model.n_reseeded_ = state["n_reseeded"]
        model._load_counters(state)
        return model


def _check_shape(name: str, value: FloatArray, shape: tuple[int, ...]) -> None:
    if value.shape != shape:
        raise ValidationError(f"{name} must have shape {shape}, got {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValidationError(f"{name} must be finite, got {value.tolist()}")


def _check_weights(weights: FloatArray, k: int) -> None:
    _check_shape("weights_init", weights, (k,))
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        raise ValidationError(f"weights_init must be in [0, 1], got {weights.tolist()}")
    if not np.isclose(weights.sum(), 1.0, rtol=0.0, atol=1e-6):
        raise ValidationError(
            f"weights_init must sum to 1, got sum(weights_init) = {weights.sum():.5f}"
        )


def _check_positive_definite(
    name: str, value: FloatArray, covariance_type: cov.CovarianceType
) -> None:
    if covariance_type in ("full", "tied"):
        stack = value if covariance_type == "full" else value[np.newaxis]
        for j, matrix in enumerate(stack):
            if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0.0):
                raise ValidationError(
                    f"{name} must be symmetric positive definite, but component {j} is not"
                )
    elif np.any(value <= 0.0):
        raise ValidationError(f"{name} must be positive, got {value.tolist()}")


def _logsumexp(joint: FloatArray) -> FloatArray:
    peak = joint.max(axis=1)
    return np.asarray(np.log(np.exp(joint - peak[:, np.newaxis]).sum(axis=1)) + peak)


def _nan_to_none(rows: NDArray[np.floating]) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]
