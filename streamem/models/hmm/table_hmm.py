"""Hidden Markov models whose emission parameters are one table per state (Poisson rates,
symbol probabilities): the hooks of :class:`~streamem.models.hmm.estimator.HMMEstimator` once,
over the emission distribution a subclass names."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError
from streamem.models.base import Bound, Constraint, Letters, given_array
from streamem.models.hmm.estimator import HMMEstimator
from streamem.models.hmm.family import TableHMMFamily, TableHMMParams
from streamem.models.hmm.start import TableHMMStart
from streamem.models.protocol import StreamingOptions

WARMUP_STEPS = 5000
"""``partial_fit`` starts once this many steps are there (the default ``init_size``), as the
Gaussian HMM's."""


class TableHMM(HMMEstimator):
    """The parts of an HMM estimator with a table emission (see the module docstring).

    A subclass names ``LETTERS`` (hmmlearn's letters, the emission's last), ``_GIVEN``
    (``startprob_``, ``transmat_`` and its table's attribute), ``FORMAT``, ``family`` and makes
    its emission in ``_emission``.
    """

    LETTERS: ClassVar[str]
    _params_type = TableHMMParams
    params: str
    init_params: str

    @classmethod
    def from_options(cls, options: StreamingOptions) -> Self:
        """An HMM for streaming from the model protocol's common options (``seed`` is
        ``random_state``; ``init_size`` None is :data:`WARMUP_STEPS`) and its emission's
        (:meth:`_emission_options`)."""
        return cls._from_common_options(
            options,
            WARMUP_STEPS if options.init_size is None else options.init_size,
            **cls._emission_options(options),
        )

    @classmethod
    def _emission_options(cls, options: StreamingOptions) -> dict[str, Any]:
        """The emission's constructor arguments taken from ``options`` (none by default)."""
        return {}

    def _emission(self) -> Any:
        raise NotImplementedError

    @property
    def _table_attribute(self) -> str:
        """The fitted attribute of the emission table (the last of ``_GIVEN``)."""
        return self._GIVEN[-1]

    def _family(self, prior_strength: float, n_restarts: int = 1) -> TableHMMFamily:
        letters = dict(zip(self.LETTERS, ("startprob", "transmat", "table"), strict=True))
        fixed = tuple(name for letter, name in letters.items() if letter not in self.params)
        attributes = ("startprob_", "transmat_", self._table_attribute)
        given = {
            name: given_array(attribute, getattr(self, attribute))
            for (letter, name), attribute in zip(letters.items(), attributes, strict=True)
            if letter not in self.init_params and hasattr(self, attribute)
        }
        start = TableHMMStart(
            self.n_components,
            init_params=self.init_params,
            letter=self.LETTERS[-1],
            n_restarts=n_restarts,
            **given,
        )
        return TableHMMFamily(self._emission(), fixed=fixed, start=start)

    def _width(self) -> int | None:
        """The emission table's columns once known (learned or given)."""
        if hasattr(self, "engine_") and self.engine_.initialized:
            return int(self.engine_.output_params.table.shape[1])
        return None

    def _rows(self, X: ArrayLike, reset: bool) -> NDArray[Any]:
        checked: NDArray[Any] = self._emission().check_rows(super()._rows(X, reset), self._width())
        return checked

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "n_components": Bound(1, integer=True),
            "n_iter": Bound(0, integer=True),
            "init_em_iter": Bound(0, integer=True),
            "params": Letters(self.LETTERS),
            "init_params": Letters(self.LETTERS),
            "init_size": Bound(1, optional=True),
        }

    def _check_parameters(self, d: int) -> None:
        """Validate the hyper-parameters and given starting values; errors name them."""
        k = self.n_components
        self._validate_parameters()
        table = self._table_attribute
        self._check_given({"startprob_": (k,), "transmat_": (k, k), table: None})
        if self.LETTERS[-1] not in self.init_params:
            given = given_array(table, getattr(self, table))
            self._emission().check_table(table, given)
            if given.ndim != 2 or given.shape[0] != k:
                raise ValidationError(
                    f"{table} must have shape (n_components={k}, n_columns), got {given.shape}"
                )

    def _publish(self) -> None:
        params = self.engine_.output_params
        self.startprob_ = params.startprob
        self.transmat_ = params.transmat
        setattr(self, self._table_attribute, params.table)

    def _draw(self, states: NDArray[np.intp], rng: np.random.Generator) -> NDArray[Any]:
        table = given_array(self._table_attribute, getattr(self, self._table_attribute))
        drawn: NDArray[Any] = self._emission().draw(table, states, rng)
        return drawn

    def parameters_document(self) -> dict[str, Any]:
        """The HMM's fields of a published snapshot: the number of states, startprob (K,),
        transmat (K, K) and the emission table (K, m) under its attribute's name."""
        self._check_fitted()
        table: FloatArray = getattr(self, self._table_attribute)
        return {
            "n_components": int(self.n_components),
            "startprob": np.asarray(self.startprob_, dtype=float).tolist(),
            "transmat": np.asarray(self.transmat_, dtype=float).tolist(),
            self._table_attribute.rstrip("_"): np.asarray(table, dtype=float).tolist(),
        }
