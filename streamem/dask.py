"""Batch EM over a Dask cluster: history larger than one machine, fitted as ``fit`` fits it.

:func:`fit` runs the family's own batch EM (its engine, M-step, starting values and
convergence rule) with the E-step moved to the cluster:

- the data are cut into blocks of whole units (rows, documents, whole sequences), turned into
  the family's batches on the workers and **persisted there once** (each block is read once;
  a worker whose blocks exceed its ``memory_limit`` spills them to its local disk, which
  ``distributed`` does by itself, and reads them back at each iteration);
- each iteration scatters the parameters to the workers, runs the family's E-step on every
  block where it lives, and sums the blocks' statistics (additive, typed records) by a tree
  reduction on the workers (fan-in :data:`SPLIT_EVERY`): one statistics record reaches the
  client, which makes the M-step;
- the starting values come from a uniform sample of :data:`SAMPLE_SIZE` units drawn on the
  workers (all units, in order, when there are fewer: then the start is the one the in-memory
  ``fit`` takes), through the family's own starting method on the client;
- the workers load the families' batch types and E-steps, not the estimators (nor
  scikit-learn, most of a worker's memory otherwise).

:func:`connect` gives a client of a scheduler's cluster or of local worker processes (what
``streamem fit --scheduler/--workers`` uses); without a ``client``, :func:`fit` takes the
current one, else starts a local cluster for the call.

Sequences (the hidden Markov model, the state-space model) are never split: ``lengths`` cuts
the rows into consecutive sequences (hmmlearn's convention) and the blocks are re-cut at
sequence ends; a ``key`` column of a data frame names each row's sequence (the rows of a key in
their order), and the frame is shuffled so that a key's rows share one block. Without either,
the data are one sequence: one block (correct, not parallel).

The result is the estimator as its ``fit`` leaves it (its streaming engine warm with the
statistics of every unit behind it), so that ``partial_fit``, the daemon's ``model.initial``
and the model document continue from it.

Needs the ``dask`` extra (``pip install "streamem[dask]"``); ``import streamem`` never imports
Dask.

Examples
--------
>>> import numpy as np, dask.array as da
>>> from distributed import Client, LocalCluster
>>> from streamem import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
>>> with LocalCluster(n_workers=1, processes=False) as cluster, Client(cluster):
...     model = fit(GaussianMixture(2, random_state=0), da.from_array(X, chunks=250))
>>> model.n_seen_, np.sort(model.means_[:, 0]).round(1).tolist()
(1000, [-3.1, 3.0])
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from streamem.engine import Constant, ConvergenceMonitor, StepwiseEM
from streamem.engine.family import Expectation
from streamem.errors import ValidationError
from streamem.extras import missing_extra

try:
    import dask.array as da
    from dask.delayed import delayed
    from distributed import Client, Future, LocalCluster
except ModuleNotFoundError as error:  # pragma: no cover - the base install
    raise (missing_extra(error, "streamem.dask") or error) from None
from streamem.models.state_space.records import DEFAULT_KEY

__all__ = ["SAMPLE_SIZE", "SPLIT_EVERY", "EStep", "connect", "fit"]

SAMPLE_SIZE = 100_000
"""Units of the uniform sample that the starting values are computed from."""
SPLIT_EVERY = 8
"""Fan-in of the tree reduction of the blocks' statistics."""
ORDER = "__streamem_order__"
"""The column that keeps a data frame's row order through the shuffle by key."""


@dataclass(frozen=True)
class EStep:
    """What :func:`fit` reports after each E-step on the cluster (its ``progress``).

    Attributes
    ----------
    number
        E-steps made so far in this run (one per EM iteration; SQUAREM cycles make 2 or 3).
    log_likelihood
        Total log-likelihood of the data under the parameters of this E-step.
    n_units
        Units (rows, time steps, documents) the E-step covered.
    seconds
        Wall time of the E-step and the reduction.
    run
        The EM run (a mixture's ``n_init`` starts are runs 1, 2, ...).
    """

    number: int
    log_likelihood: float
    n_units: int
    seconds: float
    run: int = 1


Progress = Callable[[EStep], None]


def fit(
    model: Any,
    data: Any,
    *,
    lengths: Sequence[int] | np.ndarray | None = None,
    key: str | None = None,
    columns: Sequence[str] | None = None,
    client: Client | None = None,
    sample_size: int = SAMPLE_SIZE,
    progress: Progress | None = None,
) -> Any:
    """Batch EM of ``model``'s family on ``data`` over a Dask cluster; ``model`` fitted.

    Parameters
    ----------
    model
        A streamem estimator (any family); its hyper-parameters are ``fit``'s (for a topic
        model ``learning_method="batch"``).
    data
        A ``dask.array`` (n_units, d) of rows, a ``dask.dataframe`` (its numeric ``columns``),
        or, for a topic model, a ``dask.array`` whose chunks are rows of counts (dense or
        ``scipy.sparse``) or a list of ``dask.delayed`` sparse document blocks.
    lengths
        Sequential families: consecutive sequences of these lengths (sum = rows).
    key
        Sequential families, data frame: the column that names each row's sequence.
    columns
        Data frame: the feature columns (default: the numeric columns but ``key``).
    client
        The ``distributed`` client (default: the current one, else a local cluster of
        :func:`connect`, closed afterwards).
    sample_size
        Units of the sample that the starting values come from.
    progress
        Called after each E-step with an :class:`EStep`.

    Raises
    ------
    ValidationError
        If the data or the options do not fit the family (naming the parameter).
    """
    recipe = _recipe(model)
    with contextlib.ExitStack() as stack:
        client = client or _current_client() or stack.enter_context(connect())
        blocks = Blocks.persist(client, model, _pieces(model, data, lengths, key, columns))
        blocks.progress = progress
        sample = blocks.sample(model, sample_size, getattr(model, "random_state", None))
        return recipe(model, blocks, sample)


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, else of a local cluster of ``workers``
    processes of one thread each (Dask's default count if None), closed on exit with the
    cluster it started."""
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


# ---- blocks on the workers ------------------------------------------------------------------


class Blocks:
    """The family's batches, persisted on the workers, and the E-step over them.

    Also stands for the whole data set where a family's batch loop asks for its size
    (``len(blocks)``, ``blocks.observations``)."""

    def __init__(self, client: Client, futures: list[Future[Any]], n_units: int) -> None:
        self.client = client
        self.futures = futures
        self.n_units = n_units
        self.progress: Progress | None = None
        self.n_estep = 0
        self.run = 1

    @classmethod
    def persist(cls, client: Client, model: Any, pieces: list[Any]) -> Blocks:
        """The batches of ``pieces`` (delayed ``(rows, lengths)``) made once on the workers."""
        if not pieces:
            raise ValidationError("data: expected at least one block of rows, got none")
        batches = [delayed(_batch)(model.family, piece) for piece in pieces]
        futures = client.compute(batches)
        units = client.gather([client.submit(_units, future) for future in futures])
        if sum(units) == 0:
            raise ValidationError("data: expected at least one row, got none")
        return cls(client, [f for f, n in zip(futures, units, strict=True) if n], sum(units))

    def __len__(self) -> int:
        return self.n_units

    @property
    def observations(self) -> Blocks:
        return self

    def reduce(self, function: Callable[..., Any], *arguments: Any) -> Any:
        """``function(*arguments, batch)`` of every block, summed by a tree on the workers."""
        shared = [self.client.scatter(value, broadcast=True, hash=False) for value in arguments]
        parts = [self.client.submit(function, *shared, block, pure=False) for block in self.futures]
        while len(parts) > 1:
            parts = [
                self.client.submit(_total, *parts[i : i + SPLIT_EVERY], pure=False)
                for i in range(0, len(parts), SPLIT_EVERY)
            ]
        return parts[0].result()

    def expectation(self, family: Any, params: Any) -> Expectation[Any, Any]:
        """The family's E-step of the whole data under ``params``."""
        began = time.perf_counter()
        result: Expectation[Any, Any] = self.reduce(_estep, family, params)
        self.n_estep += 1
        if self.progress is not None:
            seconds = time.perf_counter() - began
            self.progress(
                EStep(self.n_estep, result.log_likelihood, result.n_units, seconds, self.run)
            )
        return result

    def sample(self, model: Any, size: int, seed: Any) -> Any:
        """The family's batch of a uniform sample of ``size`` units (all, in order, if fewer),
        drawn on the workers."""
        fraction = min(1.0, size / self.n_units)
        seed = 0 if not isinstance(seed, int | np.integer) else int(seed)
        parts = self.client.gather(
            [
                self.client.submit(_sample, block, fraction, (seed, i), pure=False)
                for i, block in enumerate(self.futures)
            ]
        )
        rows = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        return type(model)(**model.get_params(deep=False)).batch_from_rows(rows)


class ClusterFamily:
    """A family whose E-step runs on :class:`Blocks`; everything else is the family's own."""

    def __init__(self, family: Any, blocks: Blocks) -> None:
        self.family = family
        self.blocks = blocks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.family, name)

    def expected_statistics(self, params: Any, batch: Any, carry: Any) -> Expectation[Any, Any]:
        return self.blocks.expectation(self.family, params)


def _current_client() -> Client | None:
    try:
        return Client.current()
    except ValueError:
        return None


def _batch(family: str, piece: tuple[Any, tuple[int, ...] | None]) -> Any:
    """The family's batch of a block: rows (a mixture), sequences of ``lengths`` (as ``fit``
    cuts them), documents (canonical CSR counts). Made on a worker, which so needs the
    family's batch type only, not the estimator (nor scikit-learn)."""
    rows, lengths = piece
    if rows.shape[0] == 0:
        return None
    if family == "lda":
        counts = sp.csr_matrix(rows, dtype=np.float64)
        if not np.isfinite(counts.data).all() or (counts.data < 0.0).any():
            raise ValidationError("data: documents must hold finite counts >= 0")
        counts.sum_duplicates()
        counts.eliminate_zeros()
        return counts
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise ValidationError(f"data: expected rows (n, d), got a block of shape {rows.shape}")
    if np.isinf(rows).any():
        raise ValidationError("data: expected finite numbers (or NaN), got an infinite value")
    sizes = (len(rows),) if lengths is None else lengths
    if family == "gaussian_hmm":
        from streamem.models.hmm.family import Sequences

        return Sequences.of(rows, sizes)
    if family == "linear_gaussian_ssm":
        from streamem.models.state_space.records import SequenceBatch

        return SequenceBatch(rows, sizes)
    return rows


def _units(batch: Any) -> int:
    return 0 if batch is None else int(_rows_of(batch).shape[0])


def _rows_of(batch: Any) -> Any:
    """The rows of a family's batch: a mixture's rows, a topic model's documents, the rows of
    sequences (in the batch's order)."""
    for name in ("X", "observations"):
        if hasattr(batch, name):
            return getattr(batch, name)
    return batch


def _estep(family: Any, params: Any, batch: Any) -> Expectation[Any, Any]:
    expectation: Expectation[Any, Any] = family.expected_statistics(params, batch, None)
    return Expectation(expectation.stats, expectation.log_likelihood, expectation.n_units)


def _total(*parts: Any) -> Any:
    if isinstance(parts[0], Expectation):
        return Expectation(
            sum((part.stats for part in parts[1:]), parts[0].stats),
            sum(part.log_likelihood for part in parts),
            sum(part.n_units for part in parts),
        )
    return tuple(sum(values) for values in zip(*parts, strict=True))


def _sample(batch: Any, fraction: float, seed: tuple[int, int]) -> Any:
    rows = _rows_of(batch)
    if fraction >= 1.0:
        return rows
    keep = np.random.default_rng(seed).random(rows.shape[0]) < fraction
    return rows[keep]


# ---- cutting the data into blocks -----------------------------------------------------------


def _pieces(
    model: Any,
    data: Any,
    lengths: Sequence[int] | np.ndarray | None,
    key: str | None,
    columns: Sequence[str] | None,
) -> list[Any]:
    """Delayed ``(rows, lengths)`` per block: whole units, whole sequences."""
    sequential = bool(getattr(model, "sequential", False))
    if (lengths is not None or key is not None) and not sequential:
        raise ValidationError(
            f"lengths and key are for sequential families; {type(model).__name__} has "
            "independent units"
        )
    if lengths is not None and key is not None:
        raise ValidationError("give lengths or key, not both")
    if _is_frame(data):
        if key is not None:
            return _keyed_frame(data, key, columns)
        data = data[_features(data, None, columns)].to_dask_array(lengths=True)
    elif key is not None:
        raise ValidationError(f"key names a data frame's column; data is {type(data).__name__}")
    if isinstance(data, list | tuple):
        return [delayed(_piece)(block, None) for block in data]
    if not isinstance(data, da.Array):
        raise ValidationError(
            f"data must be a dask.array or a dask.dataframe, got {type(data).__name__}"
        )
    if data.ndim == 1:
        data = data[:, np.newaxis]
    data = data.rechunk({1: -1})
    n = int(data.shape[0])
    if not sequential:
        return [delayed(_piece)(block, None) for block in data.to_delayed().ravel()]
    sizes = np.array([n] if lengths is None else lengths, dtype=np.int64).ravel()
    if sizes.sum() != n or (sizes < 1).any():
        raise ValidationError(
            f"lengths must be positive and sum to the {n} rows, got {sizes.size} lengths "
            f"summing to {int(sizes.sum())}"
        )
    ends = np.cumsum(sizes)
    cuts = np.unique(ends[np.searchsorted(ends, np.cumsum(data.chunks[0]))])
    data = data.rechunk({0: tuple(np.diff(np.concatenate([[0], cuts])).tolist())})
    pieces, first = [], 0
    for block, end in zip(data.to_delayed().ravel(), cuts, strict=True):
        inside = (ends > first) & (ends <= end)
        pieces.append(delayed(_piece)(block, tuple(sizes[inside].tolist())))
        first = int(end)
    return pieces


def _piece(rows: Any, lengths: tuple[int, ...] | None) -> tuple[Any, Any]:
    return rows if sp.issparse(rows) or np.ndim(rows) == 2 else np.reshape(rows, (-1, 1)), lengths


def _is_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask data frame (whose module is loaded if it is one)."""
    frames = sys.modules.get("dask.dataframe")
    return frames is not None and isinstance(data, frames.DataFrame)


def _features(frame: Any, key: str | None, columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise ValidationError(
                f"columns must be columns of the data, got {missing} (it has {list(frame.columns)})"
            )
        return list(columns)
    numeric = frame.select_dtypes("number").columns
    chosen = [name for name in numeric if name not in (key, ORDER)]
    if not chosen:
        raise ValidationError(f"data: expected numeric columns, got {list(frame.columns)}")
    return chosen


def _keyed_frame(frame: Any, key: str, columns: Sequence[str] | None) -> list[Any]:
    """A frame's rows with their sequence keys, every key's rows in one block, in order."""
    if key not in frame.columns:
        raise ValidationError(f"key must be a column of the data, got {key!r}")
    features = _features(frame, key, columns)
    ordered = frame[[*features, key]].assign(**{ORDER: 1})
    ordered[ORDER] = ordered[ORDER].cumsum()
    shuffled = ordered.shuffle(on=key)
    return [delayed(_keyed_rows)(part, features, key) for part in shuffled.to_delayed()]


def _keyed_rows(part: Any, features: list[str], key: str) -> tuple[Any, Any]:
    """A partition's rows grouped by key (keys in order of first appearance), each key's rows
    in their order, and the group sizes."""
    part = part.sort_values(ORDER, kind="stable")
    codes = part[key].factorize()[0]
    order = np.argsort(codes, kind="stable")
    rows = part[features].to_numpy(dtype=np.float64)[order]
    return rows, tuple(np.bincount(codes).tolist()) if len(codes) else None


# ---- the families' batch loops --------------------------------------------------------------


Recipe = Callable[[Any, Blocks, Any], Any]


def _recipe(model: Any) -> Recipe:
    recipes: dict[str, Recipe] = {
        "gaussian_mixture": _mixture,
        "gaussian_hmm": _hmm,
        "linear_gaussian_ssm": _state_space,
        "lda": _topics,
    }
    family = getattr(model, "family", None)
    if family not in recipes:
        raise ValidationError(
            f"model must be a streamem estimator of {list(recipes)}, got {type(model).__name__}"
        )
    return recipes[family]


def _iterate(engine: StepwiseEM[Any, Any, Any, Any], blocks: Blocks, n: int) -> None:
    """Up to ``n`` batch EM iterations, until the engine's monitor says converged."""
    for _ in range(n):
        engine.update(blocks)
        if engine.monitor.converged:
            break


def _mixture(model: Any, blocks: Blocks, sample: Any) -> Any:
    """``GaussianMixture.fit``: ``n_init`` runs from starts on the sample, the best kept."""
    model._check_parameters(sample.shape[1])
    model._check_enough_rows(blocks.n_units)
    model.n_features_in_ = sample.shape[1]
    rng = np.random.default_rng(model.random_state)
    best: tuple[float, StepwiseEM[Any, Any, Any, Any]] | None = None
    for run in range(1, 2 if model.n_init is None else model.n_init + 1):
        blocks.run, blocks.n_estep = run, 0
        engine = model._batch_engine(model._family(0.0).initial_params(sample, rng))
        engine.family = ClusterFamily(engine.family, blocks)
        _iterate(engine, blocks, model.max_iter)
        last = engine.monitor.last
        bound = last.mean_log_likelihood if last else -np.inf
        if best is None or bound > best[0]:
            best = (bound, engine)
    assert best is not None
    bound, engine = best
    _warn_unconverged(engine.monitor.converged, model.max_iter)
    model.converged_, model.n_iter_, model.lower_bound_ = (
        engine.monitor.converged,
        engine.step,
        bound,
    )
    model.engine_ = model._streaming_engine(engine.params)
    if engine.stats is not None:
        model.engine_.initialize(engine.params, engine.stats, n_units=blocks.n_units)
    model._reset_counters()
    model._publish(from_fit=True)
    return model


def _hmm(model: Any, blocks: Blocks, sample: Any) -> Any:
    """``GaussianHMM.fit``: Baum-Welch from a start on the sample."""
    model._check_parameters(sample.X.shape[1])
    model.n_features_in_ = sample.X.shape[1]
    family = model._family(0.0 if model.prior_strength is None else model.prior_strength)
    start = family.initial_params(sample, np.random.default_rng(model.random_state))
    family.anchor = start
    monitor = ConvergenceMonitor(max(model.tol, 0.0) / blocks.n_units, 1.0, 1)
    engine: StepwiseEM[Any, Any, Any, Any] = StepwiseEM(
        ClusterFamily(family, blocks), Constant(1.0), monitor
    )
    engine.initialize(start)
    _iterate(engine, blocks, model.n_iter)
    model.engine_ = model._streaming_engine(start)
    _warm(model.engine_, engine.params, engine.stats, blocks.n_units)
    model.warmup_, model.n_refused_ = [], 0
    model._publish()
    last = engine.monitor.last
    model.converged_, model.n_iter_ = engine.monitor.converged, engine.step
    model.lower_bound_ = last.mean_log_likelihood * blocks.n_units if last else -np.inf
    return model


def _state_space(model: Any, blocks: Blocks, sample: Any) -> Any:
    """``LinearGaussianSSM.fit``: its EM loop (SQUAREM if asked), E-steps on the cluster."""
    d = sample.observations.shape[1]
    model.n_features_in_ = d
    family = model._family(d)
    began = time.perf_counter()
    params, stats, trace, converged = model._batch_em(
        ClusterFamily(family, blocks), family.start, blocks
    )
    model.fit_seconds_ = time.perf_counter() - began
    _warn_unconverged(converged, model.max_iter)
    model.engine_ = model._streaming_engine(d)
    scaled = None if stats is None else stats.scaled(1.0 / blocks.n_units)
    _warm(model.engine_, params, scaled, blocks.n_units)
    last = blocks.client.submit(_last_filter, family, params, blocks.futures[-1])
    model.engine_.carry = {DEFAULT_KEY: last.result()}
    model.converged_, model.n_iter_ = converged, len(trace)
    model.log_likelihood_trace_ = np.asarray(trace)
    model.log_likelihood_ = trace[-1] if trace else -np.inf
    model.n_refused_ = 0
    model._publish(from_fit=True)
    return model


def _topics(model: Any, blocks: Blocks, sample: Any) -> Any:
    """``LatentDirichletAllocation.fit`` (batch variational Bayes): ``max_iter`` iterations."""
    if model.learning_method != "batch":
        raise ValidationError(
            f"learning_method must be 'batch' on a cluster, got {model.learning_method!r}"
        )
    model._check_parameters(sample.shape[1])
    model.n_features_in_ = sample.shape[1]
    family = model._family()
    start = family.initial_params(sample, np.random.default_rng(model.random_state))
    engine: StepwiseEM[Any, Any, Any, Any] = StepwiseEM(
        ClusterFamily(family, blocks), Constant(1.0), ConvergenceMonitor(0.0, 1.0, 1)
    )
    engine.initialize(start)
    _iterate(engine, blocks, int(model.max_iter))
    model.engine_ = model._streaming_engine()
    _warm(model.engine_, engine.params, engine.stats, blocks.n_units)
    model._clear_warmup()
    model._publish()
    model.n_iter_ = int(model.max_iter)
    bound, words = blocks.reduce(_document_bound, model._lda_family, model.engine_.output_params)
    model.bound_ = float(np.exp(-(bound + model._topic_bound()) / words))
    return model


def _warm(engine: Any, params: Any, stats: Any, n_units: int) -> None:
    if stats is None:  # no iteration: the starting values
        engine.initialize(params)
    else:
        engine.initialize(params, stats, n_units=n_units)


def _warn_unconverged(converged: bool, max_iter: int) -> None:
    from streamem.models.base import ConvergenceWarning

    if not converged and max_iter > 0:
        warnings.warn(
            f"fit did not converge in max_iter={max_iter} iterations; increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=4,
        )


def _last_filter(family: Any, params: Any, batch: Any) -> Any:
    """The filter state at the end of the data's last sequence (what ``fit`` carries)."""
    return family.smooth_segment(params, batch.segments()[-1][1], None)[2]


def _document_bound(family: Any, params: Any, batch: Any) -> tuple[float, float]:
    return float(family.infer(params, batch, False).bound.sum()), float(batch.sum())
