"""The compiled one-row online-EM step of a Gaussian mixture, applied to its engine.

:class:`OneRowStep` makes :meth:`StepwiseEM.update <streamem.engine.StepwiseEM.update>` of
one complete row by one call of :func:`~streamem.models.mixture.gaussian_kernels.one_row_step` and
leaves the engine in the state that the numpy path leaves (statistics, parameters, Kish's
sum of squared weights, step counter, points seen, monitor record), so that everything that
reads the engine (``to_dict``, the daemon, the numpy path itself on the next mini-batch)
sees no difference. It applies where that step is the whole update: full or diagonal
covariances, nothing held fixed, no Polyak-Ruppert averaging, running statistics whose
schedule history is known (not the first update after a warm start, which restarts the
schedule), a complete float64 row. Elsewhere, and when the kernel reports a row with a NaN
or a degenerate M-step, :meth:`OneRowStep.step` returns False and the caller takes the numpy
path, which marginalises, refuses or re-seeds as it always did.

A step makes no array and no record: the engine's statistics and parameters are views of one
of two buffers, made once, and the kernel writes the next state into the other one, which
the engine then holds (:meth:`StepwiseEM.commit <streamem.engine.StepwiseEM.commit>`). The
records of a step are therefore overwritten two compiled steps later: whoever keeps
parameters across updates copies them (the mixture's readers do: snapshots, documents and
status are made of lists; the re-seeding copies the statistics it changes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamem.engine import StepwiseEM
from streamem.models.mixture import gaussian_kernels as kernels
from streamem.models.mixture.gaussian_family import GaussianFamily, GaussianParams, GaussianStats

FloatArray = NDArray[np.float64]
FLOAT64 = np.dtype(np.float64)
OK = kernels.OK
Engine = StepwiseEM[NDArray[np.floating], GaussianParams, GaussianStats, None]


class OneRowStep:
    """The compiled one-row step bound to one engine (see the module documentation).

    Attributes
    ----------
    params, stats
        What the last compiled step left in the engine (views of one of the two buffers);
        None before the first step.
    smallest_weight
        The smallest weight after the last compiled step (the re-seeding check).

    Examples
    --------
    >>> from streamem import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> model = GaussianMixture(2, random_state=0).partial_fit(rng.normal(size=(40, 2)))
    >>> model = model.partial_fit(rng.normal(size=(1, 2)))  # after the warm start: numpy
    >>> fast = OneRowStep(model.engine_)
    >>> fast.usable == kernels.AVAILABLE
    True
    >>> fast.step(rng.normal(size=2)) == kernels.AVAILABLE
    True
    >>> model.engine_.step == (3 if kernels.AVAILABLE else 2)
    True
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        family = engine.family
        assert isinstance(family, GaussianFamily)
        self.family = family
        self.usable = (
            kernels.AVAILABLE
            and family.covariance_type in ("full", "diag")
            and not family.fixed
            and engine.averaging_start is None
            and engine.initialized
        )
        k, d = engine.params.means.shape if engine.initialized else (0, 0)
        self.layout = kernels.Layout(k, d, family.covariance_type == "full")
        # The family's settings are fixed when its engine is made (GaussianMixture._family).
        self._settings = (family.reg_covar, family.prior_strength, family.prior_fade)
        self._buffers: list[FloatArray] = []
        self._records: list[tuple[GaussianStats, GaussianParams]] = []
        self._current = 0  # the buffer the engine's state is in (when params is self.params)
        self.params: GaussianParams | None = None
        self.stats: GaussianStats | None = None
        self.smallest_weight = 0.0

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (and deep-copied) without the buffers: the copies of their views would
        not be views of the copied buffers; the next step loads the engine's state anew."""
        state = self.__dict__.copy()
        state.update(_buffers=[], _records=[], _current=0, params=None, stats=None)
        return state

    def step(self, x: NDArray[np.floating]) -> bool:
        """One online-EM step with the row ``x`` (d,) if the compiled step applies; whether
        it was made (False: nothing changed, take the numpy path)."""
        engine = self.engine
        if not self.usable or not engine.schedule_known or x.dtype is not FLOAT64 or x.ndim != 1:
            return False
        current = self._current
        if engine.params is not self.params or engine.stats is not self.stats:
            self._load()  # the numpy path, a re-seeding or a new engine made the state
            current = self._current
        following = 1 - current
        eta = engine.next_step_size(1)
        squared_weights = engine.next_squared_weights(eta, 1)
        layout = self.layout
        outcome, log_likelihood, change, smallest = kernels.one_row_step(
            self._buffers[current],
            x,
            layout.k,
            layout.full,
            eta,
            squared_weights,
            *self._settings,
            self._buffers[following],
        )
        if outcome != OK:
            return False
        stats, params = self._records[following]
        engine.commit(params, stats, None, squared_weights, 1, log_likelihood, change, eta)
        self._current, self.params, self.stats = following, params, stats
        self.smallest_weight = smallest
        return True

    def log_joint(self, params: GaussianParams, x: NDArray[np.floating]) -> FloatArray | None:
        """``log w_j + log N(x | mu_j, Sigma_j)`` (K,) of the row ``x`` (d,) if ``params``
        are those of the last compiled step and ``x`` is complete; else None."""
        if params is not self.params or x.dtype is not FLOAT64:
            return None
        joint: FloatArray = kernels.one_row_log_joint(
            self._buffers[self._current], x, self.layout.k, self.layout.full
        )
        return joint if joint[0] == joint[0] else None

    def _load(self) -> None:
        """Copy the engine's statistics and parameters (made by the numpy path, a re-seeding
        or a load: the engine holds neither buffer's records) into the current buffer."""
        engine = self.engine
        stats, params = engine.stats, engine.params
        assert stats is not None
        arrays: tuple[Any, ...] = (
            stats.resp,
            stats.first,
            stats.second,
            params.weights,
            params.means,
            params.covariances,
            params.precisions_cholesky,
        )
        if not self._buffers:
            layout = self.layout
            self._buffers = [np.empty(layout.size), np.empty(layout.size)]
            for buffer in self._buffers:
                views = layout.views(buffer)
                self._records.append((GaussianStats(*views[:3]), GaussianParams(*views[3:])))
        self.layout.pack(self._buffers[self._current], arrays)
