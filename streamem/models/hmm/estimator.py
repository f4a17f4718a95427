"""What every hidden Markov model estimator shares, whatever its emissions: hmmlearn's
``fit`` / ``score`` / ``predict`` / ``decode`` / ``sample`` over sequences, the stream's
``partial_fit`` with its warm-up (buffer -> starting values -> Baum-Welch refinement -> first
update), refused updates, the model protocol (keyed sequences, filtered states, predictive
densities) and the JSON document.

An estimator fills the hooks: ``_family`` (its :class:`~streamem.models.hmm.family.ChainFamily`
with a start), ``_prior``, ``_rows`` (validated rows), ``_check_parameters``, ``_publish``
(fitted attributes), ``_draw`` (one emission per state of a sampled path) and
``parameters_document``; it names ``FORMAT``, ``_GIVEN`` (starting values a user may set) and
``_params_type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import check_array

from streamem.engine import (
    Constant,
    ConvergenceMonitor,
    StepwiseEM,
)
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import (
    ValidationError,
    input_error,
)
from streamem.models.base import (
    EngineBackedModel,
    ModelNotFittedError,
    given_array,
)
from streamem.models.hmm.family import Carry, ChainFamily, Sequences
from streamem.models.mixture.gaussian_mixture import STREAMING_ALPHA

FORMAT_VERSION = 1
STREAM_KEY = ""
"""The key under which ``partial_fit`` carries the filter of the stream's current sequence."""
WARMUP_RESTARTS = 3
"""Restarts of the starting values on the first steps of ``partial_fit``."""
HMMEngine = StepwiseEM[Sequences, Any, Any, Carry]


class HMMEstimator(EngineBackedModel):
    """The lifecycle of a hidden Markov model estimator (see the module docstring)."""

    FORMAT: ClassVar[str]
    LETTERS: ClassVar[str]
    """hmmlearn's letters of the parameters, in the order of ``_GIVEN``."""
    _GIVEN: ClassVar[tuple[str, ...]]
    _params_type: ClassVar[type[ArrayRecord]]
    sequential = True
    """Time steps form sequences: a batch's rows continue their keys' filters."""

    n_components: int
    init_params: str
    n_iter: int
    tol: float
    random_state: int | None
    init_size: int | None
    init_em_iter: int
    n_features_in_: int
    startprob_: FloatArray
    transmat_: FloatArray

    if TYPE_CHECKING:

        def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    # ---- hooks -------------------------------------------------------------------------------

    def _family(self, prior_strength: float, n_restarts: int = 1) -> Any:
        """The family (a :class:`~streamem.models.hmm.family.ChainFamily` and an engine
        :class:`~streamem.engine.family.Family`) with its start."""
        raise NotImplementedError

    def _prior(self, streaming: bool) -> float:
        """Pseudo-steps of the emissions' prior in ``fit`` or ``partial_fit`` (none here)."""
        return 0.0

    def _rows(self, X: ArrayLike, reset: bool) -> NDArray[Any]:
        """Validated rows: a 2-D float array, NaN allowed, of the learned width."""
        try:
            rows = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        except ValueError as error:
            raise input_error(error) from error
        expected = getattr(self, "n_features_in_", None)
        if not reset and expected is not None and rows.shape[1] != expected:
            raise ValidationError(
                f"X has {rows.shape[1]} features, but {type(self).__name__} is expecting "
                f"{expected} features as input"
            )
        return np.asarray(rows)

    def _check_parameters(self, d: int) -> None:
        raise NotImplementedError

    def _publish(self) -> None:
        raise NotImplementedError

    def _check_given(self, shapes: Mapping[str, tuple[int, ...] | None]) -> None:
        """The starting values whose letter is not in ``init_params``: set before fitting,
        of their shape (``shapes``: attribute -> shape, None: checked by the caller), and
        ``startprob_`` and the rows of ``transmat_`` probabilities; errors name them."""
        for letter, attribute in zip(self.LETTERS, shapes, strict=True):
            if letter in self.init_params:
                continue
            if not hasattr(self, attribute):
                shown = "covars_" if attribute == "covariances_" else attribute
                raise ValidationError(
                    f"init_params={self.init_params!r} does not initialise {shown}: set it "
                    "before fitting"
                )
            given = given_array(attribute, getattr(self, attribute))
            expected = shapes[attribute]
            if expected is not None and given.shape != expected:
                raise ValidationError(f"{attribute} must have shape {expected}, got {given.shape}")
        for letter, attribute in (("s", "startprob_"), ("t", "transmat_")):
            if letter in self.init_params or not hasattr(self, attribute):
                continue
            given = given_array(attribute, getattr(self, attribute))
            if np.any(given < 0) or not np.allclose(given.sum(axis=-1), 1.0):
                raise ValidationError(f"{attribute} must be non-negative and sum to 1 (per row)")

    def _draw(self, states: NDArray[np.intp], rng: np.random.Generator) -> NDArray[Any]:
        """One emission per state of a sampled path (n_samples, d)."""
        raise NotImplementedError

    def parameters_document(self) -> dict[str, Any]:
        """The family's fields of a published snapshot."""
        raise NotImplementedError

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, lengths: ArrayLike | None = None) -> Self:
        """Baum-Welch (batch EM) on the sequences of X (n_samples, d) split by ``lengths``."""
        batch = self._batch(X, lengths, reset=True)
        family = self._family(self._prior(streaming=False))
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
        return self._step(batch)

    _UNITS = "steps"

    def _warmup_size(self) -> int:
        return max(self.init_size or 0, self.n_components)

    def _buffer(self, batch: Sequences) -> Sequences:
        self.warmup_.append(batch)
        return merge_sequences(self.warmup_)

    def _clear_warmup(self) -> None:
        self.warmup_ = []

    def _start(self, buffered: Sequences) -> Any:
        """Starting values (``WARMUP_RESTARTS`` restarts) refined by up to ``init_em_iter``
        Baum-Welch iterations on the buffered sequences, each from its start."""
        rng = np.random.default_rng(self.random_state)
        family = self._family(0.0, n_restarts=WARMUP_RESTARTS)
        start = family.initial_params(buffered, rng)
        self._hmm_family.anchor = start
        anonymous = Sequences(
            buffered.X,
            buffered.lengths,
            (None,) * len(buffered.lengths),
            (False,) * len(buffered.lengths),
        )
        return self._refined(family, start, anonymous, self.init_em_iter)

    def _stepwise_update(self, batch: Sequences) -> None:
        if self._update_or_refuse(batch, f"block of {batch.n_steps} steps"):
            self._publish()
            self._record_update()

    # ---- engines -----------------------------------------------------------------------------

    def _streaming_engine(self, anchor: Any) -> HMMEngine:
        family = self._family(self._prior(streaming=True))
        return self._anchored_engine(family, anchor, STREAMING_ALPHA)

    @property
    def _hmm_family(self) -> ChainFamily:
        return self._engine_family(ChainFamily)

    # ---- results -----------------------------------------------------------------------------

    def _batch(self, X: ArrayLike, lengths: ArrayLike | None, reset: bool) -> Sequences:
        rows = self._rows(X, reset)
        if reset:
            self._check_parameters(rows.shape[1])
            self.n_features_in_ = rows.shape[1]
        return Sequences.of(rows, _lengths(lengths, len(rows)))

    def _refresh_fitted(self) -> None:
        self._publish()

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
    ) -> tuple[NDArray[Any], NDArray[np.intp]]:
        """Draw one sequence of ``n_samples`` steps (n_samples, d) and its states, as
        hmmlearn (``random_state`` defaults to the model's; ``currstate`` the first state)."""
        if n_samples < 1:
            raise ValidationError(f"n_samples must be >= 1, got {n_samples!r}")
        if hasattr(self, "engine_") and self.engine_.initialized:
            self._publish()
        for attribute in self._GIVEN:
            if not hasattr(self, attribute):
                raise ModelNotFittedError(f"sample needs {attribute}: fit or set it first")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        k = self.n_components
        startprob = given_array("startprob_", self.startprob_)
        cumulative = np.cumsum(given_array("transmat_", self.transmat_), axis=1)
        states = np.empty(n_samples, dtype=np.intp)
        states[0] = rng.choice(k, p=startprob) if currstate is None else currstate
        uniforms = rng.random(n_samples)
        for t in range(1, n_samples):
            states[t] = min(int(np.searchsorted(cumulative[states[t - 1]], uniforms[t])), k - 1)
        return self._draw(states, rng), states

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
        >>> from streamem import GaussianHMM
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
        >>> from streamem import GaussianHMM
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-2, 1, (300, 1)), rng.normal(2, 1, (300, 1))])
        >>> model = GaussianHMM(2, init_size=200, random_state=0).partial_fit(X)
        >>> p = model.filtered(model.batch_from_rows(np.array([[-2.0], [2.1], [2.0]])))
        >>> p.shape, p.sum(axis=1).round(6).tolist()
        ((3, 2), [1.0, 1.0, 1.0])
        """
        self._check_fitted()
        return self._hmm_family.filter(self.engine_.output_params, batch, self.engine_.carry)[0]

    def stream_filter(self, key: str = STREAM_KEY) -> FloatArray | None:
        """The filter ``p(z_T | x_1..x_T)`` (K,) carried for ``key`` after the newest update
        (None: no sequence of that key learned yet); the stream of :meth:`partial_fit`
        without ``lengths`` by default."""
        carry = self.engine_.carry if hasattr(self, "engine_") else None
        return None if carry is None or key not in carry else np.asarray(carry[key])

    def next_step_terms(self, state: FloatArray, X: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """For rows X (n, d) each read as the step after a filter ``state`` (K,):
        ``log p(z = j | past)`` (K,) and ``log p(x_i | z = j)`` (n, K), under the current
        parameters; the model does not change."""
        self._check_fitted()
        params = self.engine_.output_params
        with np.errstate(divide="ignore"):
            log_prior = np.log(state @ params.transmat)
        rows = np.asarray(X, dtype=np.float64)
        return np.asarray(log_prior), self._hmm_family.log_emission(params, rows)

    def _class_weights(self) -> FloatArray:
        """The states' occupancy in the running statistics (the status's weights)."""
        return self._occupancy_weights()

    def _n_warmup(self) -> int:
        return sum(batch.n_steps for batch in getattr(self, "warmup_", []))

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, parameters, statistics, carried filters,
        counters) as JSON data; ``from_dict(model.to_dict())`` continues exactly."""
        document = self._document_head(self.FORMAT, FORMAT_VERSION)
        if hasattr(self, "engine_"):
            anchor = self._hmm_family.anchor
            document["state"] = {
                **self._state_head(anchor),
                "warmup": [sequences_to_dict(batch) for batch in self.warmup_],
                "given": {
                    name: np.asarray(getattr(self, name), dtype=float).tolist()
                    for name in self._GIVEN
                    if hasattr(self, name) and not self.engine_.initialized
                },
                **self._counters_document(),
            }
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_dict`'s output."""
        model, state = cls._from_document(document, FORMAT_VERSION, cls._params_type)
        if state is None:
            return model
        model.warmup_ = [sequences_from_dict(item) for item in state["warmup"]]
        for name, value in state.get("given", {}).items():
            if name in cls._GIVEN:
                setattr(model, name, np.asarray(value, dtype=np.float64))
        model._load_counters(state)
        return model


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
