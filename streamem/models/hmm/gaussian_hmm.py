"""``GaussianHMM``: a hidden Markov model with Gaussian emissions, batch and stepwise EM, with
hmmlearn's names and semantics and a stream's ``partial_fit``."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from streamem.engine import (
    Constant,
    ConvergenceMonitor,
    PowerDecay,
    Schedule,
    StepwiseEM,
)
from streamem.engine.records import FloatArray
from streamem.errors import DegenerateUpdateError, RefusedUpdateWarning, ValidationError
from streamem.models.base import (
    EngineBackedModel,
    ModelNotFittedError,
    document_hyperparameters,
    parse_json_document,
)
from streamem.models.common import covariance as cov
from streamem.models.hmm.family import Carry, GaussianHMMFamily, HMMParams, HMMStats, Sequences
from streamem.models.hmm.start import LETTERS, HMMStart
from streamem.models.mixture.gaussian_mixture import (
    STREAMING_ALPHA,
    STREAMING_PRIOR,
    _finite_or_none,
)
from streamem.models.protocol import StreamingOptions

FORMAT = "streamem.GaussianHMM"
FORMAT_VERSION = 1
STREAM_KEY = ""
"""The key under which ``partial_fit`` carries the filter of the stream's current sequence."""
WARMUP_RESTARTS = 3
"""k-means restarts on the first steps of ``partial_fit``."""
WARMUP_STEPS = 5000
"""``partial_fit`` starts once this many steps are there (the default ``init_size``). Measured
on the 3-state, 4-d sticky HMM of ``benchmarks/hmm.py`` (stay probability 0.98, 100,000 steps,
blocks of 500, 5 data seeds): starting on the first block alone ends in a poor optimum on two
seeds of five (held-out log-likelihood 0.37 and 1.2 nats per step below the true model's);
starting on 5,000 steps ends within 0.0013 nats of it on all five."""
HMMEngine = StepwiseEM[Sequences, HMMParams, HMMStats, Carry]
_GIVEN = ("startprob_", "transmat_", "means_", "covariances_")
"""Starting values a user sets before learning (saved while the model warms up)."""
_FIXED_NAMES = {"s": "startprob", "t": "transmat", "m": "means", "c": "covariances"}


class GaussianHMM(EngineBackedModel, BaseEstimator):  # type: ignore[misc]
    """Hidden Markov model with Gaussian emissions: batch EM (``fit``), stepwise EM
    (``partial_fit``), with hmmlearn's names and semantics.

    ``fit(X, lengths)`` is Baum-Welch: the stepwise engine with step size 1 and the whole data
    as its batch; from the same starting values it gives hmmlearn's
    ``GaussianHMM(covars_prior=0)`` parameters. ``partial_fit(X, lengths=None)`` makes ONE
    stepwise update (block-online EM, Le Corff & Fort 2013): the running statistics are
    blended with the block's, ``s <- (1 - eta) s + eta s_block``, and the parameters
    re-solved. Without ``lengths`` the block continues the stream's current sequence (the
    forward filter at its last step is carried to the next call); with ``lengths`` each
    segment is a new sequence and the last one becomes the stream's current sequence.

    The inference methods (``score``, ``score_samples``, ``predict``, ``predict_proba``,
    ``decode``) read X as new sequences from ``startprob``, as hmmlearn;
    :meth:`log_density` continues the stream instead.

    Parameters
    ----------
    n_components
        Number of states K.
    covariance_type
        ``"diag"`` (hmmlearn's default), ``"full"``, ``"tied"`` or ``"spherical"``.
    min_covar
        Added to the diagonal of the data covariance that starts ``c`` (hmmlearn's meaning).
    reg_covar
        Added to the diagonal of every covariance after each M-step (scikit-learn's meaning;
        hmmlearn's ``covars_prior=0`` is ``reg_covar=0``).
    n_iter, tol
        ``fit`` runs at most ``n_iter`` iterations and stops when the total log-likelihood
        changes by less than ``tol`` (hmmlearn's meaning; as hmmlearn, reaching ``n_iter``
        is not a warning: ``converged_`` says which happened).
    params, init_params
        hmmlearn's letters: ``s`` startprob, ``t`` transmat, ``m`` means, ``c`` covariances.
        Parameters whose letter is not in ``params`` are held at their starting values; those
        whose letter is not in ``init_params`` start from the attributes set before fitting
        (``startprob_``, ``transmat_``, ``means_``, ``covars_``).
    random_state
        Seed of the k-means start and of ``sample``.
    schedule
        Step sizes of ``partial_fit``; None is ``PowerDecay(alpha=0.8, t0=2.0)``.
    averaging_start
        Polyak-Ruppert averaging of the parameters from this ``partial_fit`` update on.
    init_size
        ``partial_fit`` buffers this many steps before it starts (k-means, ``init_em_iter``
        Baum-Welch iterations, then its first update with all of them); None: the first
        call's steps. A few regime changes should be in them.
    init_em_iter
        Batch EM iterations on those first steps before the stream takes over.
    prior_strength
        Pseudo-steps of the covariance prior (see
        :class:`~streamem.models.mixture.gaussian_family.GaussianFamily`); None: 0.01 in
        ``partial_fit``, 0 in ``fit``.
    parameter_tol, patience, smoothing, history_size
        ``partial_fit``'s convergence monitor, as :class:`streamem.GaussianMixture`'s.

    Attributes
    ----------
    startprob_, transmat_, means_
        (K,), (K, K), (K, d).
    covars_
        hmmlearn's getter convention: every state's full covariance matrix (K, d, d), whatever
        the covariance type; set it (before fitting with ``init_params`` without ``c``) in the
        type's own shape: (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
        :attr:`covariances_` holds the type's shape.
    n_features, n_seen_, converged_, n_iter_, lower_bound_
        As :class:`streamem.GaussianMixture` (``n_seen_`` counts time steps).

    Examples
    --------
    >>> import numpy as np
    >>> truth = GaussianHMM(2, random_state=0)
    >>> truth.startprob_ = np.array([0.5, 0.5])
    >>> truth.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
    >>> truth.means_ = np.array([[-2.0], [2.0]])
    >>> truth.covars_ = np.array([[1.0], [1.0]])
    >>> X, states = truth.sample(2000)
    >>> model = GaussianHMM(2, n_iter=50, random_state=0).fit(X)
    >>> print(np.sort(model.means_.ravel()).round(1))
    [-2.  2.]
    >>> stream = GaussianHMM(2, init_size=500, random_state=0)
    >>> for block in np.array_split(X, 8):
    ...     stream = stream.partial_fit(block)
    >>> print(stream.n_seen_, np.sort(np.diag(stream.transmat_)).round(2))
    2000 [0.94 0.94]
    """

    family = "gaussian_hmm"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = FORMAT
    """The ``format`` of :meth:`to_dict`'s document."""
    sequential = True
    """Time steps form sequences: a batch's rows continue their keys' filters."""

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        reg_covar: float = 1e-6,
        n_iter: int = 10,
        tol: float = 1e-2,
        params: str = LETTERS,
        init_params: str = LETTERS,
        random_state: int | None = None,
        *,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        init_size: int | None = WARMUP_STEPS,
        init_em_iter: int = 10,
        prior_strength: float | None = None,
        parameter_tol: float = 0.01,
        patience: int = 5,
        smoothing: float = 0.1,
        history_size: int = 10_000,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.reg_covar = reg_covar
        self.n_iter = n_iter
        self.tol = tol
        self.params = params
        self.init_params = init_params
        self.random_state = random_state
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.init_size = init_size
        self.init_em_iter = init_em_iter
        self.prior_strength = prior_strength
        self.parameter_tol = parameter_tol
        self.patience = patience
        self.smoothing = smoothing
        self.history_size = history_size

    @classmethod
    def from_options(cls, options: StreamingOptions) -> GaussianHMM:
        """An HMM for streaming from the model protocol's common options (``seed`` is
        ``random_state``; ``init_size`` None is :data:`WARMUP_STEPS`; ``n_init`` has no
        meaning here: the warm-up's k-means makes :data:`WARMUP_RESTARTS` restarts)."""
        return cls(
            options.n_components,
            options.covariance_type,
            reg_covar=options.reg_covar,
            random_state=options.seed,
            schedule=options.schedule,
            averaging_start=options.averaging_start,
            init_size=WARMUP_STEPS if options.init_size is None else options.init_size,
        )

    # ---- hmmlearn's covariance attribute -----------------------------------------------------

    @property
    def covars_(self) -> FloatArray:
        """Every state's covariance matrix (K, d, d), as hmmlearn's getter."""
        covariances = self.covariances_
        k = self.n_components
        d = self.means_.shape[1]
        return cov.full_matrices(covariances, self._covariance_type(), k, d)

    @covars_.setter
    def covars_(self, value: ArrayLike) -> None:
        self.covariances_ = _array("covars_", value)

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, lengths: ArrayLike | None = None) -> Self:
        """Baum-Welch (batch EM) on the sequences of X (n_samples, d) split by ``lengths``."""
        batch = self._batch(X, lengths, reset=True)
        family = self._family(0.0 if self.prior_strength is None else self.prior_strength)
        rng = np.random.default_rng(self.random_state)
        start = family.initial_params(batch, rng)
        family.anchor = start
        # hmmlearn stops when the total log-likelihood gains less than tol; the monitor
        # watches the per-step mean.
        monitor = ConvergenceMonitor(max(self.tol, 0.0) / batch.n_steps, 1.0, 1)
        engine: HMMEngine = StepwiseEM(family, Constant(1.0), monitor)
        engine.initialize(start)
        for _ in range(self.n_iter):
            engine.update(batch)
            if engine.monitor.converged:
                break
        self.engine_ = self._streaming_engine(start)
        if engine.stats is not None:
            self.engine_.initialize(engine.params, engine.stats, n_units=batch.n_steps)
        else:  # n_iter=0: the starting values
            self.engine_.initialize(engine.params)
        self.warmup_: list[Sequences] = []
        self.n_refused_ = 0
        last = engine.monitor.last
        self._publish()
        self.converged_ = engine.monitor.converged
        self.n_iter_ = engine.step
        self.lower_bound_ = last.mean_log_likelihood * batch.n_steps if last else -np.inf
        return self

    def partial_fit(self, X: ArrayLike, lengths: ArrayLike | None = None) -> Self:
        """One stepwise EM update with the block X (n_samples, d).

        Without ``lengths`` X continues the stream's current sequence; with ``lengths`` each
        segment is a new sequence and the last one becomes the stream's current sequence.
        A degenerate update is refused with a
        :class:`~streamem.errors.RefusedUpdateWarning`.
        """
        first_call = not hasattr(self, "engine_")
        rows = self._rows(X, reset=first_call)
        sizes = _lengths(lengths, len(rows))
        if lengths is None:
            continues = self.has_filter(STREAM_KEY)
            batch = Sequences(rows, sizes, (STREAM_KEY,), (continues,))
        else:
            keys = (None,) * (len(sizes) - 1) + (STREAM_KEY,)
            batch = Sequences(rows, sizes, keys, (False,) * len(sizes))
        return self.learn(batch)

    def has_filter(self, key: str) -> bool:
        """Whether a sequence of ``key`` can continue: the model carries its filter, or a
        batch waiting in the warm-up holds the key (a caller of :meth:`learn` sets
        ``continues`` from this)."""
        if not hasattr(self, "engine_"):
            return False
        if any(key in batch.keys for batch in self.warmup_):
            return True
        carry = self.engine_.carry
        return carry is not None and key in carry

    def learn(self, batch: Sequences) -> Self:
        """One stepwise update with an already validated :class:`Sequences` batch (the model
        protocol: keys continue their carried filters); the first batches warm up."""
        if not hasattr(self, "engine_"):
            self._check_parameters(batch.X.shape[1])
            self.n_features_in_ = batch.X.shape[1]
            self.engine_ = self._streaming_engine(None)
            self.warmup_ = []
            self.n_refused_ = 0
        if not self.engine_.initialized:
            self._warm_up(batch)
        else:
            self._stepwise_update(batch)
        return self

    def _warm_up(self, batch: Sequences) -> None:
        self.warmup_.append(batch)
        buffered = merge_sequences(self.warmup_)
        if buffered.n_steps < max(self.init_size or 0, self.n_components):
            return
        rng = np.random.default_rng(self.random_state)
        family = self._family(0.0, n_restarts=WARMUP_RESTARTS)
        try:
            start = family.initial_params(buffered, rng)
        except DegenerateUpdateError as error:
            warnings.warn(
                f"the HMM could not be initialised on the first {buffered.n_steps} steps, it "
                f"will try again with the next ones: {error}",
                RefusedUpdateWarning,
                stacklevel=4,
            )
            return
        self._hmm_family.anchor = start
        self.engine_.initialize(self._refine(family, start, buffered))
        self.warmup_ = []
        self._stepwise_update(buffered)

    def _refine(self, family: GaussianHMMFamily, start: HMMParams, batch: Sequences) -> HMMParams:
        """Up to ``init_em_iter`` Baum-Welch iterations on the first steps."""
        family.anchor = start
        engine: HMMEngine = StepwiseEM(family, Constant(1.0), ConvergenceMonitor(1e-4, 1.0, 1))
        engine.initialize(start)
        anonymous = Sequences(
            batch.X, batch.lengths, (None,) * len(batch.lengths), (False,) * len(batch.lengths)
        )
        try:
            for _ in range(self.init_em_iter):
                engine.update(anonymous)
                if engine.monitor.converged:
                    break
        except DegenerateUpdateError:
            return start
        return engine.params

    def _stepwise_update(self, batch: Sequences) -> None:
        try:
            self.engine_.update(batch)
        except DegenerateUpdateError as error:
            self.n_refused_ += 1
            warnings.warn(
                f"partial_fit refused a degenerate block of {batch.n_steps} steps and kept the "
                f"previous parameters: {error}",
                RefusedUpdateWarning,
                stacklevel=4,
            )
            return
        self._publish()
        last = self.engine_.monitor.last
        self.converged_ = self.engine_.monitor.converged
        self.n_iter_ = self.engine_.step
        self.lower_bound_ = last.smoothed_log_likelihood if last else -np.inf

    # ---- engines -----------------------------------------------------------------------------

    def _covariance_type(self) -> cov.CovarianceType:
        return cov.check_covariance_type(self.covariance_type)

    def _family(self, prior_strength: float, n_restarts: int = 1) -> GaussianHMMFamily:
        fixed = tuple(name for letter, name in _FIXED_NAMES.items() if letter not in self.params)
        given = {
            name: _array(attribute, getattr(self, attribute))
            for letter, name, attribute in (
                ("s", "startprob", "startprob_"),
                ("t", "transmat", "transmat_"),
                ("m", "means", "means_"),
                ("c", "covariances", "covariances_"),
            )
            if letter not in self.init_params and hasattr(self, attribute)
        }
        start = HMMStart(
            self.n_components,
            init_params=self.init_params,
            min_covar=self.min_covar,
            n_restarts=n_restarts,
            **given,
        )
        return GaussianHMMFamily(
            self._covariance_type(),
            reg_covar=self.reg_covar,
            prior_strength=prior_strength,
            fixed=fixed,
            start=start,
        )

    def _streaming_engine(self, anchor: HMMParams | None) -> HMMEngine:
        prior = STREAMING_PRIOR if self.prior_strength is None else self.prior_strength
        family = self._family(prior)
        family.anchor = anchor
        return self._stream_engine(family, PowerDecay(alpha=STREAMING_ALPHA))

    @property
    def _hmm_family(self) -> GaussianHMMFamily:
        family = self.engine_.family
        assert isinstance(family, GaussianHMMFamily)
        return family

    # ---- checks ------------------------------------------------------------------------------

    def _rows(self, X: ArrayLike, reset: bool) -> NDArray[np.floating]:
        try:
            rows = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        except ValueError as error:
            raise ValidationError(str(error)) from error
        expected = getattr(self, "n_features_in_", None)
        if not reset and expected is not None and rows.shape[1] != expected:
            raise ValidationError(
                f"X has {rows.shape[1]} features, but {type(self).__name__} is expecting "
                f"{expected} features as input"
            )
        return np.asarray(rows)

    def _batch(self, X: ArrayLike, lengths: ArrayLike | None, reset: bool) -> Sequences:
        rows = self._rows(X, reset)
        if reset:
            self._check_parameters(rows.shape[1])
            self.n_features_in_ = rows.shape[1]
        return Sequences.of(rows, _lengths(lengths, len(rows)))

    def _check_parameters(self, d: int) -> None:
        """Validate the hyper-parameters and given starting values; errors name them."""
        k = self.n_components
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValidationError(f"n_components must be an integer >= 1, got {k!r}")
        covariance_type = self._covariance_type()
        for name, value, low in (
            ("min_covar", self.min_covar, 0.0),
            ("reg_covar", self.reg_covar, 0.0),
            ("n_iter", self.n_iter, 0),
            ("init_em_iter", self.init_em_iter, 0),
        ):
            if not isinstance(value, int | float | np.number) or not value >= low:
                raise ValidationError(f"{name} must be a number >= {low}, got {value!r}")
        for name in ("params", "init_params"):
            letters = getattr(self, name)
            if not isinstance(letters, str) or set(letters) - set(LETTERS):
                raise ValidationError(f"{name} must be letters among {LETTERS!r}, got {letters!r}")
        if self.init_size is not None and self.init_size < 1:
            raise ValidationError(f"init_size must be >= 1 or None, got {self.init_size!r}")
        shapes = {
            "startprob_": (k,),
            "transmat_": (k, k),
            "means_": (k, d),
            "covariances_": cov.expected_shape(covariance_type, k, d),
        }
        for letter, attribute in zip(LETTERS, shapes, strict=True):
            if letter in self.init_params:
                continue
            if not hasattr(self, attribute):
                shown = "covars_" if attribute == "covariances_" else attribute
                raise ValidationError(
                    f"init_params={self.init_params!r} does not initialise {shown}: set it "
                    "before fitting"
                )
            given = _array(attribute, getattr(self, attribute))
            if given.shape != shapes[attribute]:
                raise ValidationError(
                    f"{attribute} must have shape {shapes[attribute]}, got {given.shape}"
                )
        for letter, attribute in (("s", "startprob_"), ("t", "transmat_")):
            if letter in self.init_params or not hasattr(self, attribute):
                continue
            given = _array(attribute, getattr(self, attribute))
            if np.any(given < 0) or not np.allclose(given.sum(axis=-1), 1.0):
                raise ValidationError(f"{attribute} must be non-negative and sum to 1 (per row)")

    # ---- results -----------------------------------------------------------------------------

    def _refresh_fitted(self) -> None:
        self._publish()

    def _publish(self) -> None:
        params = self.engine_.output_params
        self.startprob_ = params.startprob
        self.transmat_ = params.transmat
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.n_features = params.means.shape[1]
        self.n_seen_ = self.engine_.n_seen

    def _inference(self, X: ArrayLike, lengths: ArrayLike | None) -> Sequences:
        self._check_fitted()
        return self._batch(X, lengths, reset=False)

    def score(self, X: ArrayLike, lengths: ArrayLike | None = None) -> float:
        """Log-likelihood of the sequences of X (hmmlearn's meaning: the total, not a mean)."""
        batch = self._inference(X, lengths)
        _, log_predictive = self._hmm_family.filter(self.engine_.output_params, batch, None)
        return float(log_predictive.sum())

    def score_samples(
        self, X: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[float, FloatArray]:
        """Log-likelihood of the sequences of X and the state posteriors (n_samples, K)."""
        batch = self._inference(X, lengths)
        smoothed = self._hmm_family.smooth(self.engine_.output_params, batch, None)
        return float(smoothed.log_predictive.sum()), smoothed.posteriors

    def predict_proba(self, X: ArrayLike, lengths: ArrayLike | None = None) -> FloatArray:
        """State posteriors (n_samples, K) given each whole sequence."""
        return self.score_samples(X, lengths)[1]

    def decode(
        self, X: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[float, NDArray[np.intp]]:
        """Viterbi: the log-probability of the most probable state path and the path."""
        batch = self._inference(X, lengths)
        params = self.engine_.output_params
        family = self._hmm_family
        path = family.decode(params, batch, None)
        log_b = family.log_emission(params, batch.X)
        with np.errstate(divide="ignore"):
            log_transmat = np.log(params.transmat)
            log_start = np.log(params.startprob)
        inner = np.ones(batch.n_steps, dtype=bool)
        inner[batch.starts] = False
        steps = np.flatnonzero(inner)
        log_prob = (
            log_b[np.arange(batch.n_steps), path].sum()
            + log_start[path[batch.starts]].sum()
            + log_transmat[path[steps - 1], path[steps]].sum()
        )
        return float(log_prob), path

    def predict(self, X: ArrayLike, lengths: ArrayLike | None = None) -> NDArray[np.intp]:
        """The most probable state path (Viterbi), (n_samples,)."""
        return self.decode(X, lengths)[1]

    def sample(
        self,
        n_samples: int = 1,
        random_state: int | None = None,
        currstate: int | None = None,
    ) -> tuple[FloatArray, NDArray[np.intp]]:
        """Draw one sequence of ``n_samples`` steps (n_samples, d) and its states, as
        hmmlearn (``random_state`` defaults to the model's; ``currstate`` the first state)."""
        if n_samples < 1:
            raise ValidationError(f"n_samples must be >= 1, got {n_samples!r}")
        if hasattr(self, "engine_") and self.engine_.initialized:
            self._publish()
        for attribute in ("startprob_", "transmat_", "means_", "covariances_"):
            if not hasattr(self, attribute):
                raise ModelNotFittedError(f"sample needs {attribute}: fit or set it first")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        k = self.n_components
        transmat = _array("transmat_", self.transmat_)
        cumulative = np.cumsum(transmat, axis=1)
        states = np.empty(n_samples, dtype=np.intp)
        states[0] = rng.choice(k, p=self.startprob_) if currstate is None else currstate
        uniforms = rng.random(n_samples)
        for t in range(1, n_samples):
            states[t] = min(int(np.searchsorted(cumulative[states[t - 1]], uniforms[t])), k - 1)
        full = self.covars_
        d = full.shape[1]
        noise = rng.standard_normal((n_samples, d))
        factors = np.linalg.cholesky(full)
        X = self.means_[states] + np.einsum("tab,tb->ta", factors[states], noise)
        return X, states

    # ---- the model protocol (streamem.models.protocol.StreamingModel) -------------------------

    def batch_from_rows(
        self, X: ArrayLike, keys: Sequence[str] | NDArray[Any] | None = None
    ) -> Sequences:
        """The batch of rows X (n, d) in arrival order (the model protocol): without ``keys``
        one block of the stream's current sequence (as :meth:`partial_fit`); with ``keys``
        (one per row) each key's rows, in their order, continue that key's filter (a new key
        starts from ``startprob``). Keys are grouped in order of first appearance; the batch
        remembers the arrival order, in which :meth:`log_density` answers.

        Examples
        --------
        >>> rows, keys = np.arange(5.0)[:, None], ["a", "b", "a", "b", "a"]
        >>> batch = GaussianHMM(2).batch_from_rows(rows, keys)
        >>> batch.keys, batch.lengths, batch.X.ravel().tolist()
        (('a', 'b'), (3, 2), [0.0, 2.0, 4.0, 1.0, 3.0])
        """
        rows = self._rows(X, reset=not hasattr(self, "n_features_in_"))
        if keys is None:
            return Sequences(rows, (len(rows),), (STREAM_KEY,), (self.has_filter(STREAM_KEY),))
        names = np.asarray([str(key) for key in keys])
        if names.shape != (len(rows),):
            raise ValidationError(
                f"keys needs one key per row ({len(rows)}), got {names.shape[0]} keys"
            )
        unique, first, inverse = np.unique(names, return_index=True, return_inverse=True)
        rank = np.empty(len(unique), dtype=np.intp)
        rank[np.argsort(first)] = np.arange(len(unique))
        order = np.argsort(rank[inverse.ravel()], kind="stable")
        appearance = unique[np.argsort(first)].tolist()
        sizes = np.bincount(rank[inverse.ravel()], minlength=len(unique))
        return Sequences(
            rows[order],
            tuple(int(size) for size in sizes),
            tuple(appearance),
            tuple(self.has_filter(key) for key in appearance),
            arrival=order,
        )

    def log_density(self, batch: Sequences) -> FloatArray:
        """``log p(x_t | x_1..x_{t-1})`` of each step of a validated batch, continuing the
        carried filters, in the batch's arrival order; the model does not change."""
        self._check_fitted()
        _, log_predictive = self._hmm_family.filter(
            self.engine_.output_params, batch, self.engine_.carry
        )
        return batch.in_arrival_order(log_predictive)

    def filtered(self, batch: Sequences) -> FloatArray:
        """``p(z_t | x_1..x_t)`` (T, K) of each step of a validated batch, continuing the
        carried filters; the model does not change.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-2, 1, (300, 1)), rng.normal(2, 1, (300, 1))])
        >>> model = GaussianHMM(2, init_size=200, random_state=0).partial_fit(X)
        >>> p = model.filtered(model.batch_from_rows(np.array([[-2.0], [2.1], [2.0]])))
        >>> p.shape, p.sum(axis=1).round(6).tolist()
        ((3, 2), [1.0, 1.0, 1.0])
        """
        self._check_fitted()
        return self._hmm_family.filter(self.engine_.output_params, batch, self.engine_.carry)[0]

    def _class_weights(self) -> FloatArray:
        """The states' occupancy in the running statistics (the status's weights)."""
        stats = self.engine_.stats
        if stats is None:
            return np.empty(0)
        return np.asarray(stats.resp / stats.resp.sum())

    def _n_warmup(self) -> int:
        return sum(batch.n_steps for batch in getattr(self, "warmup_", []))

    def parameters_document(self) -> dict[str, Any]:
        """The HMM's fields of a published snapshot: covariance type, number of states,
        startprob (K,), transmat (K, K), means (K, d), covariances (the type's shape)."""
        self._check_fitted()
        return {
            "covariance_type": str(self.covariance_type),
            "n_components": int(self.n_components),
            "startprob": np.asarray(self.startprob_, dtype=float).tolist(),
            "transmat": np.asarray(self.transmat_, dtype=float).tolist(),
            "means": np.asarray(self.means_, dtype=float).tolist(),
            "covariances": np.asarray(self.covariances_, dtype=float).tolist(),
        }

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, carried filters,
        counters) as JSON data; ``from_dict(model.to_dict())`` continues exactly."""
        hyper = self.get_params(deep=False)
        if hyper["schedule"] is not None:
            hyper["schedule"] = hyper["schedule"].to_dict()
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hyperparameters": hyper,
        }
        if hasattr(self, "engine_"):
            anchor = self._hmm_family.anchor
            document["state"] = {
                "n_features_in": int(self.n_features_in_),
                "engine": self.engine_.state_dict(),
                "anchor": None if anchor is None else anchor.to_dict(),
                "warmup": [sequences_to_dict(batch) for batch in self.warmup_],
                "given": {
                    name: np.asarray(getattr(self, name), dtype=float).tolist()
                    for name in _GIVEN
                    if hasattr(self, name) and not self.engine_.initialized
                },
                "n_refused": int(self.n_refused_),
                "converged": bool(getattr(self, "converged_", False)),
                "n_iter": int(getattr(self, "n_iter_", 0)),
                "lower_bound": _finite_or_none(getattr(self, "lower_bound_", None)),
            }
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> GaussianHMM:
        """Rebuild a model from :meth:`to_dict`'s output."""
        hyper = document_hyperparameters(document, FORMAT, FORMAT_VERSION)
        model = cls(**hyper)
        state = document.get("state")
        if state is None:
            return model
        model.n_features_in_ = int(state["n_features_in"])
        anchor = None if state["anchor"] is None else HMMParams.from_dict(state["anchor"])
        model.engine_ = model._streaming_engine(anchor)
        model.engine_.load_state_dict(state["engine"])
        model.warmup_ = [sequences_from_dict(item) for item in state["warmup"]]
        for name, value in state.get("given", {}).items():
            if name in _GIVEN:
                setattr(model, name, np.asarray(value, dtype=np.float64))
        model.n_refused_ = int(state["n_refused"])
        if model.engine_.initialized:
            model._publish()
            model.converged_ = bool(state["converged"])
            model.n_iter_ = int(state["n_iter"])
            bound = state["lower_bound"]
            model.lower_bound_ = -np.inf if bound is None else float(bound)
        return model

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (floats round-trip exactly)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> GaussianHMM:
        """Inverse of :meth:`to_json` (the document is validated as by :meth:`from_dict`)."""
        return cls.from_dict(parse_json_document(text))


def merge_sequences(batches: Sequence[Sequences]) -> Sequences:
    """One batch from consecutive batches: a keyed sequence that continues is appended to its
    key's sequence of an earlier batch (a key's earlier sequence that a fresh one replaces
    becomes anonymous); the first sequence of a key starts afresh.

    Examples
    --------
    >>> a = Sequences.of(np.zeros((2, 1)), keys=["x"])
    >>> b = Sequences.of(np.ones((3, 1)), keys=["x"], continues=[True])
    >>> merged = merge_sequences([a, b])
    >>> merged.lengths, merged.keys, merged.continues
    ((5,), ('x',), (False,))
    """
    pieces: list[list[NDArray[np.floating]]] = []
    keys: list[str | None] = []
    where: dict[str, int] = {}
    for batch in batches:
        for start, length, key, continues in zip(
            batch.starts.tolist(), batch.lengths, batch.keys, batch.continues, strict=True
        ):
            rows = batch.X[start : start + length]
            if key is not None and continues and key in where:
                pieces[where[key]].append(rows)
                continue
            if key is not None and key in where:
                keys[where[key]] = None
            if key is not None:
                where[key] = len(pieces)
            pieces.append([rows])
            keys.append(key)
    X = np.concatenate([np.concatenate(piece) for piece in pieces])
    lengths = tuple(sum(len(rows) for rows in piece) for piece in pieces)
    return Sequences(X, lengths, tuple(keys), (False,) * len(lengths))


def sequences_to_dict(batch: Sequences) -> dict[str, Any]:
    """A batch as JSON data (NaN cells as null)."""
    return {
        "X": [[None if v != v else float(v) for v in row] for row in batch.X.tolist()],
        "lengths": list(batch.lengths),
        "keys": list(batch.keys),
        "continues": list(batch.continues),
    }


def sequences_from_dict(data: dict[str, Any]) -> Sequences:
    """Inverse of :func:`sequences_to_dict`."""
    rows = np.array(
        [[np.nan if v is None else v for v in row] for row in data["X"]], dtype=np.float64
    )
    return Sequences(
        rows.reshape(len(data["X"]), -1),
        tuple(int(n) for n in data["lengths"]),
        tuple(data["keys"]),
        tuple(bool(c) for c in data["continues"]),
    )


def _lengths(lengths: ArrayLike | None, n: int) -> tuple[int, ...]:
    if lengths is None:
        return (n,)
    sizes = np.asarray(lengths)
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1):
        raise ValidationError(f"lengths must be positive integers, got {np.asarray(lengths)!r}")
    if int(sizes.sum()) != n:
        raise ValidationError(
            f"lengths must sum to the number of samples {n}, got sum(lengths) = {int(sizes.sum())}"
        )
    return tuple(int(size) for size in sizes)


def _array(name: str, value: ArrayLike) -> FloatArray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{name} must be an array of numbers, got {value!r}") from error
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{name} must be finite, got {array.tolist()}")
    return array
