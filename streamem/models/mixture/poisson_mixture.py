"""``PoissonMixture``: a mixture of independent Poisson counts per feature."""

from __future__ import annotations

from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, DensityMixin

from streamem.engine import Schedule
from streamem.models.emissions.poisson import PoissonEmission
from streamem.models.mixture.table_mixture import TableMixture


class PoissonMixture(TableMixture, DensityMixin, BaseEstimator):  # type: ignore[misc]
    """Mixture of K components, each a product of independent Poisson counts, one rate per
    feature: ``p(x) = sum_j w_j prod_d Poisson(x_d | lambda_jd)``. Batch EM (``fit``) and
    stepwise EM (``partial_fit``) with a scikit-learn estimator's API.

    Parameters
    ----------
    n_components
        Number of components K.
    tol, max_iter
        ``fit`` stops when the mean log-likelihood per row changes by less than ``tol``, or
        after ``max_iter`` iterations.
    n_init
        k-means restarts of ``fit``'s start (the one of least inertia is kept).
    random_state
        Seed of the start and of ``sample``.
    weights_init, lambdas_init
        Starting weights (K,) and rates (K, d) (None: from the k-means partition).
    schedule, averaging_start
        ``partial_fit``'s step sizes (None: ``PowerDecay(alpha=0.8)``) and Polyak-Ruppert
        averaging.
    init_size, init_em_iter
        ``partial_fit`` buffers ``init_size`` rows (None: its first call's), starts on them,
        refines with ``init_em_iter`` EM iterations and makes its first update with them.
    parameter_tol, patience, smoothing, history_size
        ``partial_fit``'s convergence monitor, as :class:`streamem.GaussianMixture`'s.

    Attributes
    ----------
    weights_, lambdas_
        (K,), (K, d).
    n_seen_, converged_, n_iter_, lower_bound_
        As :class:`streamem.GaussianMixture`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.poisson([1.0, 6.0], (600, 2)), rng.poisson([7.0, 0.5], (400, 2))])
    >>> model = PoissonMixture(2, random_state=0).fit(X)
    >>> order = np.argsort(model.lambdas_[:, 0])
    >>> print(model.weights_[order].round(2), model.lambdas_[order].round(1))
    [0.6 0.4] [[1.  6. ]
     [7.  0.5]]
    """

    family = "poisson_mixture"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = "streamem.PoissonMixture"
    """The ``format`` of :meth:`to_dict`'s document."""
    _TABLE = "lambdas_"

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: int | None = None,
        weights_init: ArrayLike | None = None,
        lambdas_init: ArrayLike | None = None,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        init_size: int | None = None,
        init_em_iter: int = 10,
        parameter_tol: float = 0.01,
        patience: int = 5,
        smoothing: float = 0.1,
        history_size: int = 10_000,
    ) -> None:
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.weights_init = weights_init
        self.lambdas_init = lambdas_init
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
