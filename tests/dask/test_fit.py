"""``streamem.dask.fit`` on a real two-process cluster equals each family's in-memory ``fit``
from the same start: 10 iterations (convergence switched off), parameters and log-likelihood
to 1e-10 relative. The two differ only in the order of the floating-point sums (per block,
then a tree): the differences measured here are 1e-15..1e-13 relative.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from streamem import GaussianHMM, GaussianMixture, LatentDirichletAllocation, LinearGaussianSSM
from streamem.errors import ValidationError
from tests.models.hmm_helpers import relative_error, sample_sequences, sticky_hmm

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
delayed = pytest.importorskip("dask.delayed").delayed
streamem_dask = pytest.importorskip("streamem.dask")
fit = streamem_dask.fit

TOLERANCE = 1e-10
ITERATIONS = 10


def _both(model_factory, X, data, **options):  # type: ignore[no-untyped-def]
    """The in-memory fit of X and the cluster's fit of ``data``, 10 iterations each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ConvergenceWarning of stopping at 10 iterations
        here = model_factory().fit(X, **options)
        steps: list[Any] = []
        there = fit(model_factory(), data, progress=steps.append, **options)
    return here, there, steps


def _close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert relative_error(np.asarray(ours), np.asarray(theirs)) < TOLERANCE


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_mixture_equals_the_in_memory_fit(client, rng, covariance_type) -> None:  # type: ignore[no-untyped-def]
    centres = rng.normal(0.0, 4.0, (4, 3))
    X = np.concatenate([rng.normal(c, 1.0, (1500, 3)) for c in centres])
    X = rng.permutation(X)
    X[rng.random(X.shape) < 0.01] = np.nan  # missing values are marginalised on both sides

    def model() -> GaussianMixture:
        return GaussianMixture(
            4, covariance_type=covariance_type, max_iter=ITERATIONS, tol=0.0, random_state=3
        )

    here, there, steps = _both(model, X, da.from_array(X, chunks=700))
    assert there.n_iter_ == here.n_iter_ == ITERATIONS
    assert len(steps) == ITERATIONS
    assert there.n_seen_ == here.n_seen_ == len(X) == steps[-1].n_units
    for name in ("weights_", "means_", "covariances_"):
        _close(getattr(there, name), getattr(here, name))
    assert abs(there.lower_bound_ - here.lower_bound_) < TOLERANCE * abs(here.lower_bound_)
    _close(there.engine_.stats.first, here.engine_.stats.first)
    # the model continues as the in-memory one does
    batch = X[:100]
    _close(there.partial_fit(batch).means_, here.partial_fit(batch).means_)


def test_hmm_equals_the_in_memory_fit_and_never_splits_a_sequence(client, rng) -> None:  # type: ignore[no-untyped-def]
    truth = sticky_hmm(rng, n_components=3, n_features=2)
    lengths = [int(n) for n in rng.integers(200, 900, 12)]
    X, _ = sample_sequences(truth, lengths, seed=int(rng.integers(1 << 20)))

    def model() -> GaussianHMM:
        return GaussianHMM(3, "full", n_iter=ITERATIONS, tol=-1.0, random_state=5)

    # chunks of 1,000 rows cut through sequences: the blocks are re-cut at sequence ends
    here, there, steps = _both(model, X, da.from_array(X, chunks=1000), lengths=lengths)
    assert there.n_iter_ == ITERATIONS
    assert there.n_seen_ == len(X) == steps[0].n_units
    for name in ("startprob_", "transmat_", "means_", "covariances_"):
        _close(getattr(there, name), getattr(here, name))
    assert abs(there.lower_bound_ - here.lower_bound_) < TOLERANCE * abs(here.lower_bound_)


def test_hmm_sequences_by_a_key_column(client, rng) -> None:  # type: ignore[no-untyped-def]
    truth = sticky_hmm(rng, n_components=2, n_features=2)
    lengths = [400, 300, 500, 350]
    X, _ = sample_sequences(truth, lengths, seed=int(rng.integers(1 << 20)))
    names = np.repeat([f"unit-{i}" for i in range(len(lengths))], lengths)
    # the rows of the sequences interleaved, as they would arrive from several sensors
    arrival = np.argsort(rng.random(len(X)) + np.arange(len(X)) / len(X) * 3, kind="stable")
    order = np.concatenate([np.flatnonzero(names[arrival] == name) for name in np.unique(names)])
    frame = pd.DataFrame({"a": X[arrival, 0], "b": X[arrival, 1], "unit": names[arrival]})
    data = dd.from_pandas(frame, npartitions=5)
    keyed_X = X[arrival][order]
    keyed_lengths = [int((names == name).sum()) for name in np.unique(names)]

    def model() -> GaussianHMM:
        return GaussianHMM(2, "full", n_iter=ITERATIONS, tol=-1.0, random_state=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = model().set_params(n_iter=1).fit(keyed_X, keyed_lengths)
    # the start from all rows there, from a shuffled sample here: both given one start
    given = model().set_params(init_params="")
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        setattr(given, name, getattr(start, name) if name != "covars_" else start.covariances_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        here = _copy(given).fit(keyed_X, keyed_lengths)
        there = fit(_copy(given), data, key="unit")
    assert there.n_seen_ == len(X)
    for name in ("transmat_", "means_", "covariances_"):
        _close(getattr(there, name), getattr(here, name))


def _copy(model: GaussianHMM) -> GaussianHMM:
    clone = GaussianHMM(**model.get_params())
    for name in ("startprob_", "transmat_", "means_", "covariances_"):
        setattr(clone, name, getattr(model, name).copy())
    return clone


@pytest.mark.parametrize("acceleration", [None, "squarem"])
def test_state_space_equals_the_in_memory_fit(client, rng, acceleration) -> None:  # type: ignore[no-untyped-def]
    lengths = [300, 450, 250, 500, 400]
    series = []
    for n in lengths:
        level = np.cumsum(rng.normal(0.0, 0.5, (n, 2)), axis=0)
        series.append(level + rng.normal(0.0, 1.5, (n, 2)))
    Y = np.concatenate(series)

    def model() -> LinearGaussianSSM:
        return LinearGaussianSSM(
            n_dim_state=2, max_iter=ITERATIONS, tol=0.0, acceleration=acceleration
        )

    here, there, steps = _both(model, Y, da.from_array(Y, chunks=600), lengths=lengths)
    assert there.n_iter_ == here.n_iter_
    assert there.n_seen_ == len(Y)
    assert len(steps) == there.n_iter_
    for name in ("transition_covariance_", "observation_covariance_"):
        _close(getattr(there, name), getattr(here, name))
    _close(there.log_likelihood_trace_, here.log_likelihood_trace_)
    _close(there.filter_state_.mean, here.filter_state_.mean)


def test_topics_on_sparse_document_blocks_equal_the_in_memory_fit(client, rng) -> None:  # type: ignore[no-untyped-def]
    topics = rng.dirichlet(np.full(60, 0.1), 4)
    mixes = rng.dirichlet(np.full(4, 0.3), 900)
    counts = np.stack(
        [
            rng.multinomial(int(n), mix @ topics)
            for n, mix in zip(rng.integers(20, 80, 900), mixes, strict=True)
        ]
    )
    X = sp.csr_matrix(counts.astype(float))
    blocks = [delayed(X[i : i + 200]) for i in range(0, 900, 200)]

    def model() -> LatentDirichletAllocation:
        return LatentDirichletAllocation(
            4, learning_method="batch", max_iter=ITERATIONS, random_state=2
        )

    here, there, steps = _both(model, X, blocks)
    assert there.n_seen_ == here.n_seen_ == 900
    assert len(steps) == ITERATIONS
    _close(there.components_, here.components_)
    assert abs(there.bound_ - here.bound_) < TOLERANCE * here.bound_
    # a dense dask array of counts gives the same
    dense = fit(model(), da.from_array(counts, chunks=(250, 60)))
    _close(dense.components_, here.components_)


def test_a_data_frame_of_rows(client, rng) -> None:  # type: ignore[no-untyped-def]
    X = np.concatenate([rng.normal(-2, 1, (800, 2)), rng.normal(2, 1, (800, 2))])
    frame = pd.DataFrame({"x": X[:, 0], "y": X[:, 1], "label": "s"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        here = GaussianMixture(2, max_iter=ITERATIONS, tol=0.0, random_state=0).fit(X)
        there = fit(
            GaussianMixture(2, max_iter=ITERATIONS, tol=0.0, random_state=0),
            dd.from_pandas(frame, npartitions=3),
        )
    _close(there.means_, here.means_)


def test_errors_name_the_parameter(client) -> None:  # type: ignore[no-untyped-def]
    X = da.zeros((100, 2), chunks=50)
    with pytest.raises(ValidationError, match="lengths"):
        fit(GaussianMixture(2), X, lengths=[100])
    with pytest.raises(ValidationError, match="lengths must be positive and sum to the 100"):
        fit(GaussianHMM(2), X, lengths=[60, 30])
    with pytest.raises(ValidationError, match=r"data must be a dask\.array"):
        fit(GaussianMixture(2), np.zeros((10, 2)))
    with pytest.raises(ValidationError, match="learning_method must be 'batch'"):
        fit(LatentDirichletAllocation(2, learning_method="online"), X)


def _made_once(folder: str, index: int, X: np.ndarray) -> np.ndarray:
    """Block ``index`` of X, leaving a file behind each time it is made."""
    Path(folder, f"block-{index}-{uuid.uuid4().hex}").touch()
    return X


def test_each_block_is_read_once_whatever_the_iterations(client, rng, tmp_path) -> None:  # type: ignore[no-untyped-def]
    X = np.concatenate([rng.normal(-3, 1, (900, 2)), rng.normal(3, 1, (900, 2))])
    parts = [
        da.from_delayed(delayed(_made_once)(str(tmp_path), i, part), shape=part.shape, dtype=float)
        for i, part in enumerate(np.array_split(rng.permutation(X), 6))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = fit(
            GaussianMixture(2, max_iter=ITERATIONS, tol=0.0, random_state=0), da.concatenate(parts)
        )
    assert fitted.n_iter_ == ITERATIONS
    made = sorted(path.name.split("-")[1] for path in tmp_path.iterdir())
    assert made == [str(i) for i in range(6)]
