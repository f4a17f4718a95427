"""GaussianHMM as a stream: partial_fit's carry, missing values, float32, the model protocol,
the registry and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import streamem
from streamem import GaussianHMM, ValidationError
from streamem.models.hmm.family import Sequences
from streamem.models.protocol import StreamingModel, StreamingOptions
from streamem.models.registry import model_class, model_from_dict
from tests.models.hmm_helpers import sample_sequences, sticky_hmm


def streamed_model(rng: np.random.Generator, n: int = 4000) -> tuple[GaussianHMM, GaussianHMM]:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(n)
    model = GaussianHMM(3, "full", init_size=None, random_state=0)
    for block in np.array_split(X, n // 500):
        model.partial_fit(block)
    return model, truth


def test_partial_fit_carries_the_stream_filter(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(1500)
    model = GaussianHMM(3, "full", init_size=None, random_state=0).partial_fit(X[:1000])
    carry = model.engine_.carry
    assert carry is not None
    assert set(carry) == {""}
    filtered = model.filtered(Sequences.of(X[1000:], keys=[""], continues=[True]))
    expected = model.log_density(Sequences.of(X[1000:], keys=[""], continues=[True]))
    # log_density and filtered are pure: the carry is unchanged
    np.testing.assert_array_equal(model.engine_.carry[""], carry[""])
    model.partial_fit(X[1000:])
    record = model.monitor_.last
    assert record is not None
    assert record.mean_log_likelihood == pytest.approx(expected.mean(), rel=1e-12)
    np.testing.assert_allclose(model.engine_.carry[""], filtered[-1], rtol=1e-12)
    assert model.n_seen_ == 1500
    assert model.status.n_seen == 1500


def test_partial_fit_with_lengths_starts_new_sequences(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, lengths = sample_sequences(truth, [300, 200], seed=1)
    model = GaussianHMM(3, "full", init_size=None, random_state=0).partial_fit(X, lengths)
    carried = model.engine_.carry[""].copy()
    # the carried filter is the last segment's, as if it had been alone
    alone = model.filtered(Sequences.of(X[300:]))
    model2 = GaussianHMM.from_dict(model.to_dict())
    model2.engine_.carry = None
    np.testing.assert_allclose(carried.sum(), 1.0)
    assert alone.shape == (200, 3)
    # with lengths again, the first segment does not continue the stream
    Y, more = sample_sequences(truth, [100, 100], seed=2)
    fresh = model.log_density(Sequences.of(Y, more))
    continued = model.log_density(Sequences.of(Y, more, keys=["", None], continues=[True, False]))
    assert fresh[0] != continued[0]
    np.testing.assert_allclose(fresh[100:], continued[100:])


def test_stream_recovers_a_sticky_hmm(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    truth.means_ = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    X, _ = truth.sample(20_000)
    model = GaussianHMM(3, "full", init_size=None, random_state=0)
    for block in np.array_split(X, 40):
        model.partial_fit(block)
    order = [int(np.argmin(((model.means_ - mean) ** 2).sum(axis=1))) for mean in truth.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(model.means_[order], truth.means_, atol=0.15)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], truth.transmat_, atol=0.03)
    assert model.n_iter_ == 40


def test_missing_coordinates_are_marginalised(rng: np.random.Generator) -> None:
    model, _ = streamed_model(rng)
    X, _ = model.sample(50, random_state=3)
    X[5, 1] = np.nan
    X[9] = np.nan  # a step without observation
    family, params = model._hmm_family, model.engine_.params
    log_b = family.log_emission(params, X)
    for j in range(3):
        marginal = multivariate_normal(params.means[j, 0], params.covariances[j, 0, 0])
        assert log_b[5, j] == pytest.approx(marginal.logpdf(X[5, 0]), rel=1e-10)
    np.testing.assert_array_equal(log_b[9], np.zeros(3))
    # the missing step only propagates the filter: its predictive density is 1
    assert model.log_density(Sequences.of(X))[9] == pytest.approx(0.0, abs=1e-12)
    fitted = GaussianHMM(3, "full", n_iter=5, random_state=0).fit(X)
    assert np.all(np.isfinite(fitted.means_))


def test_float32_is_accepted(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(2000)
    wide = GaussianHMM(3, "diag", n_iter=10, random_state=0).fit(X)
    narrow = GaussianHMM(3, "diag", n_iter=10, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_allclose(narrow.means_, wide.means_, rtol=1e-3, atol=1e-3)
    assert narrow.means_.dtype == np.float64


def test_fit_then_partial_fit_continues_from_the_fit(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(3000)
    model = GaussianHMM(3, "full", n_iter=30, random_state=0).fit(X[:2000])
    assert model.n_seen_ == 2000
    assert model.next_step_size(1000) == pytest.approx(1000 / 3000)
    model.partial_fit(X[2000:])
    assert model.n_seen_ == 3000


def test_the_model_protocol_and_the_registry(rng: np.random.Generator) -> None:
    model, _ = streamed_model(rng)
    assert isinstance(model, StreamingModel)
    assert model_class("gaussian_hmm") is GaussianHMM
    assert streamem.GaussianHMM is GaussianHMM
    document = model.parameters_document()
    assert set(document) == {
        "covariance_type",
        "n_components",
        "startprob",
        "transmat",
        "means",
        "covariances",
    }
    assert np.shape(document["covariances"]) == (3, 2, 2)
    status = model.status
    assert status.initialized
    assert status.n_updates == 8
    assert sum(status.weights) == pytest.approx(1.0)
    restored = model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert isinstance(restored, GaussianHMM)
    assert restored.to_dict() == model.to_dict()
    rows, _ = model.sample(6, random_state=1)
    batch = model.batch_from_rows(rows, ["b", "", "b", "", "c", ""])
    assert batch.keys == ("b", "", "c")
    assert batch.continues == (False, True, False)
    grouped = model.log_density(batch)
    alone = model.log_density(model.batch_from_rows(rows[[1, 3, 5]]))
    np.testing.assert_allclose(grouped[[1, 3, 5]], alone, rtol=1e-12)
    built = GaussianHMM.from_options(StreamingOptions(n_components=2, seed=3))
    assert (built.n_components, built.init_size, built.random_state) == (2, 5000, 3)
    model.restart_schedule(0.1)
    assert model.next_step_size(500) == pytest.approx(0.1, rel=0.05)


def test_warm_up_buffers_until_init_size(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(1000)
    model = GaussianHMM(3, "full", init_size=600, random_state=0)
    model.partial_fit(X[:300])
    assert not model.status.initialized
    assert model.status.n_warmup == 300
    restored = GaussianHMM.from_json(model.to_json())
    for m in (model, restored):
        m.partial_fit(X[300:700])
    assert model.status.initialized
    assert model.n_seen_ == restored.n_seen_ == 700
    np.testing.assert_array_equal(model.means_, restored.means_)
    assert set(model.engine_.carry) == {""}


def test_covars_follow_hmmlearn_conventions(rng: np.random.Generator) -> None:
    model = GaussianHMM(3, "diag", n_iter=3, random_state=0).fit(rng.normal(size=(300, 2)))
    assert model.covariances_.shape == (3, 2)
    assert model.covars_.shape == (3, 2, 2)
    np.testing.assert_array_equal(np.diagonal(model.covars_, axis1=1, axis2=2), model.covariances_)


def test_sample_is_reproducible(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    a, states = truth.sample(100, random_state=4)
    b, _ = truth.sample(100, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 2)
    assert set(states.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"covariance_type": "banded"}, "covariance_type"),
        ({"params": "stmx"}, "params"),
        ({"init_params": "q"}, "init_params"),
        ({"reg_covar": -1.0}, "reg_covar"),
        ({"init_params": "stc"}, "means_"),
    ],
)
def test_bad_hyperparameters_name_themselves(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GaussianHMM(**{"n_components": 2, **change}).fit(np.zeros((10, 2)) + np.arange(10)[:, None])


def test_bad_input_is_refused(rng: np.random.Generator) -> None:
    X = rng.normal(size=(20, 2))
    with pytest.raises(ValidationError, match="lengths"):
        GaussianHMM(2).fit(X, [5, 5])
    with pytest.raises(ValidationError, match=r"infinity|inf"):
        GaussianHMM(2).fit(np.full((5, 2), np.inf))
    model = GaussianHMM(2, random_state=0).fit(X)
    with pytest.raises(ValidationError, match="features"):
        model.score(rng.normal(size=(5, 3)))
    with pytest.raises(ValidationError, match="carry holds no filter"):
        model.log_density(Sequences.of(X, keys=["never-seen"], continues=[True]))
    with pytest.raises(ValidationError, match="at most once"):
        Sequences.of(X, [10, 10], keys=["a", "a"])
    unset = GaussianHMM(2, init_params="")
    unset.startprob_ = np.array([0.7, 0.7])
    unset.transmat_ = np.eye(2)
    unset.means_ = np.zeros((2, 2))
    unset.covars_ = np.ones((2, 2))
    with pytest.raises(ValidationError, match="startprob_"):
        unset.fit(X)


def test_keys_continue_their_filters_through_the_warm_up(rng: np.random.Generator) -> None:
    """A daemon's use: many keys in each batch, ``continues`` from ``has_filter``."""
    truth = sticky_hmm(rng)
    X, _ = truth.sample(3000)
    model = GaussianHMM(3, "full", init_size=1000, random_state=0)
    assert not model.has_filter("a")
    for start in range(0, 3000, 300):
        keys = ["a", "b"] if start % 600 == 0 else ["b", "a"]
        continues = [model.has_filter(key) for key in keys]
        assert continues == [start > 0, start > 0]
        model.learn(Sequences.of(X[start : start + 300], [150, 150], keys, continues))
        if start == 600:
            model = GaussianHMM.from_json(model.to_json())  # a checkpoint in the warm-up
    assert model.n_seen_ == 3000
    assert set(model.engine_.carry) == {"a", "b"}
    assert model.status.n_updates == 3000 // 300 - 3  # the warm-up's four batches: one update


def test_given_starting_values_survive_a_checkpoint_in_the_warm_up(
    rng: np.random.Generator,
) -> None:
    truth = sticky_hmm(rng)
    X, _ = truth.sample(1000)
    model = GaussianHMM(3, "full", init_params="", init_size=800, init_em_iter=0)
    for name in ("startprob_", "transmat_", "means_", "covariances_"):
        setattr(model, name, getattr(truth, name))
    model.partial_fit(X[:500])
    restored = GaussianHMM.from_json(model.to_json())
    for m in (model, restored):
        m.partial_fit(X[500:])
    np.testing.assert_array_equal(restored.means_, model.means_)
    assert restored.to_json() == model.to_json()
