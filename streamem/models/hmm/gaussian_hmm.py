"""``GaussianHMM``: a hidden Markov model with Gaussian emissions, batch and stepwise EM, with
hmmlearn's names and semantics and a stream's ``partial_fit``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator

from streamem.engine import Schedule
from streamem.engine.records import FloatArray
from streamem.models.base import Bound, Constraint, Letters, given_array
from streamem.models.common import covariance as cov
from streamem.models.hmm.estimator import STREAM_KEY, HMMEstimator
from streamem.models.hmm.family import GaussianHMMFamily, HMMParams
from streamem.models.hmm.start import LETTERS, HMMStart
from streamem.models.mixture.gaussian_mixture import STREAMING_PRIOR
from streamem.models.protocol import StreamingOptions

__all__ = ["STREAM_KEY", "WARMUP_STEPS", "GaussianHMM"]

FORMAT = "streamem.GaussianHMM"
WARMUP_STEPS = 5000
"""``partial_fit`` starts once this many steps are there (the default ``init_size``). Measured
on the 3-state, 4-d sticky HMM of ``benchmarks/hmm.py`` (stay probability 0.98, 100,000 steps,
blocks of 500, 5 data seeds): starting on the first block alone ends in a poor optimum on two
seeds of five (held-out log-likelihood 0.37 and 1.2 nats per step below the true model's);
starting on 5,000 steps ends within 0.0013 nats of it on all five."""
_FIXED_NAMES = {"s": "startprob", "t": "transmat", "m": "means", "c": "covariances"}


class GaussianHMM(HMMEstimator, BaseEstimator):  # type: ignore[misc]
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
    _GIVEN = ("startprob_", "transmat_", "means_", "covariances_")
    """Starting values a user sets before learning (saved while the model warms up)."""
    _params_type = HMMParams
    LETTERS = LETTERS

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
        init_size = WARMUP_STEPS if options.init_size is None else options.init_size
        return cls._from_common_options(
            options,
            init_size,
            covariance_type=options.covariance_type,
            reg_covar=options.reg_covar,
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
        self.covariances_ = given_array("covars_", value)

    # ---- learning ----------------------------------------------------------------------------

    # ---- engines -----------------------------------------------------------------------------

    def _prior(self, streaming: bool) -> float:
        if self.prior_strength is not None:
            return self.prior_strength
        return STREAMING_PRIOR if streaming else 0.0

    def _covariance_type(self) -> cov.CovarianceType:
        return cov.check_covariance_type(self.covariance_type)

    def _family(self, prior_strength: float, n_restarts: int = 1) -> GaussianHMMFamily:
        fixed = tuple(name for letter, name in _FIXED_NAMES.items() if letter not in self.params)
        given = {
            name: given_array(attribute, getattr(self, attribute))
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

    # ---- checks ------------------------------------------------------------------------------

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "n_components": Bound(1, integer=True),
            "min_covar": Bound(0.0),
            "reg_covar": Bound(0.0),
            "n_iter": Bound(0),
            "init_em_iter": Bound(0),
            "params": Letters(LETTERS),
            "init_params": Letters(LETTERS),
            "init_size": Bound(1, optional=True),
        }

    def _check_parameters(self, d: int) -> None:
        """Validate the hyper-parameters and given starting values; errors name them."""
        k = self.n_components
        self._validate_parameters(("n_components",))
        covariance_type = self._covariance_type()
        self._validate_parameters()
        shapes = {
            "startprob_": (k,),
            "transmat_": (k, k),
            "means_": (k, d),
            "covariances_": cov.expected_shape(covariance_type, k, d),
        }
        self._check_given(shapes)

    # ---- results -----------------------------------------------------------------------------

    def _publish(self) -> None:
        params = self.engine_.output_params
        self.startprob_ = params.startprob
        self.transmat_ = params.transmat
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.n_features = params.means.shape[1]

    def _draw(self, states: NDArray[np.intp], rng: np.random.Generator) -> FloatArray:
        full = self.covars_
        d = full.shape[1]
        noise = rng.standard_normal((len(states), d))
        factors = np.linalg.cholesky(full)
        X: FloatArray = self.means_[states] + np.einsum("tab,tb->ta", factors[states], noise)
        return X

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
