"""The stream's warm-up (one template in ``streamem.models.base``): any first batch is
accepted, no unit given is lost, and every family says what its warm-up holds and waits for,
in ``status.warmup``, in ``n_seen_`` and in its not-fitted error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streamem import GaussianHMM, GaussianMixture, LatentDirichletAllocation
from streamem.errors import RefusedUpdateWarning
from streamem.models.base import ModelNotFittedError
from streamem.models.protocol import FamilySpec, StreamingModel, StreamingOptions
from streamem.models.registry import family_specs
from tests.models.family_rows import rows_for

SPECS = family_specs()
INIT_SIZE = 40


def _streaming(spec: FamilySpec, init_size: int | None = INIT_SIZE) -> StreamingModel:
    vocabulary = [f"w{i}" for i in range(20)] if "vocabulary" in spec.options else None
    options = StreamingOptions(n_components=2, init_size=init_size, seed=0, vocabulary=vocabulary)
    return spec.load().from_options(options)


def _buffers(model: StreamingModel) -> bool:
    """Whether the family buffers a first batch (the state space starts on any block)."""
    return type(model).__name__ != "LinearGaussianSSM"


# ---- issue 32, item 4: constant rows are kept, counted and explained ------------------------


def test_identical_rows_are_kept_counted_and_explained(rng: np.random.Generator) -> None:
    model = GaussianMixture(2, random_state=0)
    with pytest.warns(RefusedUpdateWarning, match="all 1,000 buffered rows are identical"):
        model.partial_fit(np.ones((1000, 3)))
    for _ in range(4):
        model.partial_fit(np.ones((1000, 3)))
    assert not model.status.initialized
    assert model.n_seen_ == model.status.n_warmup == 5000
    assert "all 5,000 buffered rows are identical" in model.status.warmup
    assert len(model.warmup_) == 1  # the stuck sensor's rows are held as one row and a count
    with pytest.raises(ModelNotFittedError, match=r"5,000 rows buffered.*identical"):
        model.predict(np.ones((1, 3)))

    reloaded = GaussianMixture.from_json(model.to_json())
    assert reloaded.n_seen_ == 5000

    X = rng.normal(size=(1000, 3))
    for stream in (model, reloaded):
        stream.partial_fit(X)
        assert stream.status.initialized
        assert stream.n_seen_ == stream.status.n_seen == 6000  # no row lost
        assert stream.status.warmup == ""
    np.testing.assert_array_equal(model.means_, reloaded.means_)
    # the 5,000 identical rows are learned: a component sits on them with their share
    on_ones = np.argmin(np.abs(model.means_ - 1.0).sum(axis=1))
    assert model.weights_[on_ones] == pytest.approx(5 / 6, abs=1e-6)


def test_few_distinct_rows_name_their_count() -> None:
    model = GaussianMixture(3, init_size=10, random_state=0)
    rows = np.repeat([[0.0, 1.0], [2.0, 3.0]], 10, axis=0)
    with pytest.warns(RefusedUpdateWarning, match="hold only 2 distinct rows; 3 components"):
        model.partial_fit(rows)
    assert model.n_seen_ == 20
    assert len(model.warmup_) == 2


# ---- issue 32, item 5: a stream of one- and two-row batches starts --------------------------


def test_a_mixture_starts_from_one_row_batches(rng: np.random.Generator) -> None:
    X = rows_for("gaussian_mixture", rng, 60)
    model = GaussianMixture(3, random_state=0).partial_fit(X[:1])
    assert model.status.warmup.startswith("warming up, 1 of 27 rows buffered")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: the rows simply wait
        for begin in range(1, 60, 2):
            model.partial_fit(X[begin : begin + 2])
    assert model.status.initialized
    assert model.n_seen_ == 60


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_family_starts_from_one_row_batches(
    spec: FamilySpec, rng: np.random.Generator
) -> None:
    model = _streaming(spec)
    X = rows_for(spec.name, rng, 60, n_features=20 if spec.input_kind == "documents" else 2)
    for begin in range(0, 60, 2):
        size = 1 if begin % 4 == 0 else 2
        for part in (X[begin : begin + size], X[begin + size : begin + 2]):
            if len(part):
                model.learn(model.batch_from_rows(part))
    assert model.status.initialized
    assert model.status.n_seen == model.n_seen_ == 60  # type: ignore[attr-defined]


# ---- issue 32, item 6: empty documents are documents -----------------------------------------


def test_empty_documents_are_accepted_and_counted() -> None:
    model = LatentDirichletAllocation(2, random_state=0).partial_fit(np.zeros((5, 50)))
    assert model.status.initialized
    assert model.n_seen_ == 5
    assert np.isfinite(model.components_).all()


def test_empty_documents_in_a_batch_are_learned_and_counted(rng: np.random.Generator) -> None:
    counts = rng.poisson(1.0, size=(30, 50)).astype(np.float64)
    counts[::3] = 0.0
    model = LatentDirichletAllocation(2, random_state=0).partial_fit(counts[:20])
    model.partial_fit(counts)
    assert model.n_seen_ == 50
    # an empty document has the prior's topic mixture: even, as the prior is symmetric
    np.testing.assert_allclose(model.transform(counts[::3]), 0.5, rtol=0, atol=1e-12)


# ---- issue 32, item 7: every family reports its warm-up --------------------------------------


def test_a_warming_hmm_says_so(rng: np.random.Generator) -> None:
    Y = rng.normal(size=(10, 1))
    model = GaussianHMM(2).partial_fit(Y)
    assert model.n_seen_ == 10
    assert model.status.warmup.startswith("warming up, 10 of 5,000 steps buffered")
    with pytest.raises(ModelNotFittedError, match="not fitted yet: warming up, 10 of 5,000 steps"):
        model.predict(Y)


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_family_reports_its_warm_up(spec: FamilySpec, rng: np.random.Generator) -> None:
    model = _streaming(spec)
    X = rows_for(spec.name, rng, 100, n_features=20 if spec.input_kind == "documents" else 2)
    units = {"rows": "rows", "documents": "documents"}[spec.input_kind]
    units = "steps" if spec.sequential else units
    model.learn(model.batch_from_rows(X[:10]))
    assert model.n_seen_ == 10  # type: ignore[attr-defined]
    if not _buffers(model):
        assert model.status.initialized
        assert model.status.warmup == ""
        return
    status = model.status
    assert (status.initialized, status.n_seen, status.n_warmup) == (False, 0, 10)
    expected = f"warming up, 10 of {INIT_SIZE} {units} buffered"
    assert status.warmup.startswith(expected)
    with pytest.raises(ModelNotFittedError, match=f"not fitted yet: {expected}"):
        model.log_density(model.batch_from_rows(X[:3]))
    model.learn(model.batch_from_rows(X[10:]))
    assert model.status.initialized
    assert model.status.warmup == ""
    assert model.n_seen_ == model.status.n_seen == 100  # type: ignore[attr-defined]


def test_a_fresh_model_still_asks_for_fit() -> None:
    with pytest.raises(ModelNotFittedError, match=r"not fitted yet\. Call 'fit' or 'partial_fit'"):
        GaussianMixture(2).predict(np.ones((1, 2)))


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_fit_after_a_warm_up_counts_its_own_rows(
    spec: FamilySpec, rng: np.random.Generator
) -> None:
    """``fit`` starts afresh: the rows that waited in a warm-up are not in its ``n_seen_``."""
    model = _streaming(spec)
    X = rows_for(spec.name, rng, 100, n_features=20 if spec.input_kind == "documents" else 2)
    model.learn(model.batch_from_rows(X[:10]))
    fitted = model.fit(X)  # type: ignore[attr-defined]
    assert fitted.status.n_warmup == 0
    assert fitted.n_seen_ == 100
