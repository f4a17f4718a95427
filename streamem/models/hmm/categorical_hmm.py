"""``CategoricalHMM``: a hidden Markov model of discrete status codes, with hmmlearn's names."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.base import BaseEstimator

from streamem.engine import Schedule
from streamem.models.emissions.categorical import CategoricalEmission
from streamem.models.hmm.table_hmm import WARMUP_STEPS, TableHMM
from streamem.models.protocol import StreamingOptions


class CategoricalHMM(TableHMM, BaseEstimator):  # type: ignore[misc]
    """Hidden Markov model with one categorical symbol per step (X of shape (n_samples, 1),
    symbols 0 .. n_features - 1): batch EM (``fit``), stepwise EM (``partial_fit``), with
    hmmlearn's names and semantics.

    ``fit(X, lengths)`` is Baum-Welch; from the same starting values it gives hmmlearn's
    ``CategoricalHMM`` (``emissionprob_prior = 1``). ``partial_fit`` makes one block-online
    update, as :class:`~streamem.models.hmm.gaussian_hmm.GaussianHMM`'s.

    Parameters
    ----------
    n_components
        Number of states K.
    n_features
        Number of symbols m (None: the largest symbol of the first data, plus one).
    n_iter, tol
        ``fit``'s iterations and tolerance on the total log-likelihood (hmmlearn's meaning).
    params, init_params
        hmmlearn's letters: ``s`` startprob, ``t`` transmat, ``e`` emissionprob.
    random_state
        Seed of the start and of ``sample``.
    schedule, averaging_start, init_size, init_em_iter
        ``partial_fit``'s, as the Gaussian HMM's.
    parameter_tol, patience, smoothing, history_size
        ``partial_fit``'s convergence monitor.

    Attributes
    ----------
    startprob_, transmat_, emissionprob_
        (K,), (K, K), (K, m): each state's symbol probabilities.
    n_seen_, converged_, n_iter_, lower_bound_
        As :class:`streamem.GaussianHMM`.

    Examples
    --------
    >>> import numpy as np
    >>> truth = CategoricalHMM(2, random_state=0)
    >>> truth.startprob_ = np.array([0.5, 0.5])
    >>> truth.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
    >>> truth.emissionprob_ = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    >>> X, states = truth.sample(4000)
    >>> model = CategoricalHMM(2, n_iter=100, random_state=0).fit(X)
    >>> print(model.emissionprob_[np.argsort(model.emissionprob_[:, 0])].round(1))
    [[0.1 0.1 0.8]
     [0.8 0.1 0.1]]
    """

    family = "categorical_hmm"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = "streamem.CategoricalHMM"
    """The ``format`` of :meth:`to_dict`'s document."""
    _GIVEN = ("startprob_", "transmat_", "emissionprob_")
    """Starting values a user sets before learning (saved while the model warms up)."""
    LETTERS: ClassVar[str] = "ste"

    def __init__(
        self,
        n_components: int = 1,
        n_features: int | None = None,
        n_iter: int = 10,
        tol: float = 1e-2,
        params: str = "ste",
        init_params: str = "ste",
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
        self.n_features = n_features
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

    @classmethod
    def _emission_options(cls, options: StreamingOptions) -> dict[str, Any]:
        """``n_symbols`` is the alphabet's size (None: the warm-up's largest code plus one)."""
        return {"n_features": options.n_symbols}

    def _emission(self) -> CategoricalEmission:
        return CategoricalEmission(self.n_features)
