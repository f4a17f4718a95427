"""``PoissonHMM``: a hidden Markov model of count readings, with hmmlearn's names."""

from __future__ import annotations

from typing import ClassVar

from sklearn.base import BaseEstimator

from streamem.engine import Schedule
from streamem.models.emissions.poisson import PoissonEmission
from streamem.models.hmm.table_hmm import WARMUP_STEPS, TableHMM


class PoissonHMM(TableHMM, BaseEstimator):  # type: ignore[misc]
    """Hidden Markov model with independent Poisson counts per feature: batch EM (``fit``),
    stepwise EM (``partial_fit``), with hmmlearn's names and semantics.

    ``fit(X, lengths)`` is Baum-Welch; from the same starting values it gives hmmlearn's
    ``PoissonHMM`` (``lambdas_prior = 0``). ``partial_fit`` makes one block-online update, as
    :class:`~streamem.models.hmm.gaussian_hmm.GaussianHMM`'s (same warm-up, carried filter,
    schedule and monitor).

    Parameters
    ----------
    n_components
        Number of states K.
    n_iter, tol
        ``fit``'s iterations and tolerance on the total log-likelihood (hmmlearn's meaning).
    params, init_params
        hmmlearn's letters: ``s`` startprob, ``t`` transmat, ``l`` lambdas.
    random_state
        Seed of the k-means start and of ``sample``.
    schedule, averaging_start, init_size, init_em_iter
        ``partial_fit``'s, as the Gaussian HMM's.
    parameter_tol, patience, smoothing, history_size
        ``partial_fit``'s convergence monitor.

    Attributes
    ----------
    startprob_, transmat_, lambdas_
        (K,), (K, K), (K, d): each state's rate per feature.
    n_seen_, converged_, n_iter_, lower_bound_
        As :class:`streamem.GaussianHMM`.

    Examples
    --------
    >>> import numpy as np
    >>> truth = PoissonHMM(2, random_state=0)
    >>> truth.startprob_ = np.array([0.5, 0.5])
    >>> truth.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
    >>> truth.lambdas_ = np.array([[1.0, 4.0], [6.0, 0.5]])
    >>> X, states = truth.sample(3000)
    >>> model = PoissonHMM(2, n_iter=50, random_state=0).fit(X)
    >>> print(model.lambdas_[np.argsort(model.lambdas_[:, 0])].round(1))
    [[1.  4. ]
     [6.  0.5]]
    """

    family = "poisson_hmm"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = "streamem.PoissonHMM"
    """The ``format`` of :meth:`to_dict`'s document."""
    _GIVEN = ("startprob_", "transmat_", "lambdas_")
    """Starting values a user sets before learning (saved while the model warms up)."""
    LETTERS: ClassVar[str] = "stl"

    def __init__(
        self,
        n_components: int = 1,
        n_iter: int = 10,
        tol: float = 1e-2,
        params: str = "stl",
        init_params: str = "stl",
        random_state: int | None = None,
        *,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        init_size: int | None = WARMUP_STEPS,
        init_em_iter: int = 10,
        parameter_tol: float = 0.01,
        patience: int = 5,
        smoothing: float = 0.1,
        history_size: int = 10_000,
    ) -> None:
        self.n_components = n_components
        self.n_iter = n_iter
        self.tol = tol
        self.params = params
        self.init_params = init_params
        self.random_state = random_state
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.init_size = init_size
        self.init_em_iter = init_em_iter
        self.parameter_tol = parameter_tol
        self.patience = patience
        self.smoothing = smoothing
        self.history_size = history_size

    def _emission(self) -> PoissonEmission:
        return PoissonEmission()
