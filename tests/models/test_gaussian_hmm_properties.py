"""Properties of the HMM family and of GaussianHMM, checked with hypothesis."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem import GaussianHMM
from streamem.engine import Constant, ConvergenceMonitor, StepwiseEM
from streamem.models.hmm.family import GaussianHMMFamily, HMMParams, Sequences
from tests.models.hmm_helpers import sticky_hmm

COVARIANCE_TYPES = st.sampled_from(["full", "tied", "diag", "spherical"])
SETTINGS = settings(max_examples=20, deadline=None)


def family_and_params(
    seed: int, covariance_type: str = "full"
) -> tuple[GaussianHMMFamily, HMMParams]:
    truth = sticky_hmm(np.random.default_rng(seed), stay=0.8)
    family = GaussianHMMFamily(covariance_type)  # type: ignore[arg-type]
    covariances = {
        "full": truth.covariances_,
        "tied": truth.covariances_.mean(axis=0),
        "diag": np.diagonal(truth.covariances_, axis1=1, axis2=2),
        "spherical": np.diagonal(truth.covariances_, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    params = family.make_params(truth.startprob_, truth.transmat_, truth.means_, covariances)
    return family, params


def sample(seed: int, n: int) -> np.ndarray:
    truth = sticky_hmm(np.random.default_rng(seed), stay=0.8)
    return truth.sample(n, random_state=seed)[0]


def smoothed_terms(family: GaussianHMMFamily, params: HMMParams, X: np.ndarray):
    """Per-step posteriors (T, K) and pairwise posteriors (T - 1, K, K) of one sequence."""
    smoothed = family.smooth(params, Sequences.of(X), None)
    filtered, gamma, A = smoothed.filtered, smoothed.posteriors, params.transmat
    predicted = filtered[:-1] @ A
    pairs = filtered[:-1, :, None] * A[None] / predicted[:, None, :] * gamma[1:, None, :]
    return gamma, pairs


@SETTINGS
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 500), cut=st.integers(1, 79))
def test_a_carried_block_gives_the_whole_sequence_statistics_of_its_steps(
    covariance_type: str, seed: int, cut: int
) -> None:
    """Block-online EM: the last block, continuing the carried filter, has the statistics
    that smoothing the whole sequence gives its steps (boundary transition included), and
    the blocks' log-likelihoods add up to the whole sequence's."""
    family, params = family_and_params(seed, covariance_type)
    X = sample(seed, 80)
    first = family.expected_statistics(params, Sequences.of(X[:cut], keys=["s"]), None)
    second = family.expected_statistics(
        params, Sequences.of(X[cut:], keys=["s"], continues=[True]), first.carry
    )
    whole = family.expected_statistics(params, Sequences.of(X), None)
    assert abs(first.log_likelihood + second.log_likelihood - whole.log_likelihood) < 1e-9 * abs(
        whole.log_likelihood
    )
    assert first.n_units + second.n_units == whole.n_units == 80

    gamma, pairs = smoothed_terms(family, params, X)
    np.testing.assert_allclose(second.stats.transitions, pairs[cut - 1 :].sum(axis=0), atol=1e-9)
    np.testing.assert_allclose(second.stats.resp, gamma[cut:].sum(axis=0), atol=1e-9)
    np.testing.assert_allclose(second.stats.first, gamma[cut:].T @ X[cut:], atol=1e-8)
    np.testing.assert_array_equal(second.stats.start, np.zeros(3))
    assert abs(first.stats.start.sum() - 1.0) < 1e-12
    # the first block alone is the whole-sequence E-step of its own steps
    prefix_gamma, _ = smoothed_terms(family, params, X[:cut])
    np.testing.assert_allclose(first.stats.resp, prefix_gamma.sum(axis=0), atol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 500), lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5))
def test_posteriors_and_filters_sum_to_one(seed: int, lengths: list[int]) -> None:
    family, params = family_and_params(seed)
    X = sample(seed, sum(lengths))
    smoothed = family.smooth(params, Sequences.of(X, lengths), None)
    np.testing.assert_allclose(smoothed.posteriors.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(smoothed.filtered.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(smoothed.posteriors >= 0.0)
    assert abs(smoothed.transitions.sum() - (sum(lengths) - len(lengths))) < 1e-9


@SETTINGS
@given(seed=st.integers(0, 500), split=st.integers(1, 59))
def test_keys_in_one_batch_are_independent(seed: int, split: int) -> None:
    """Two keys sharing a batch (a daemon's sensors) give the sum of their own statistics
    and each its own carried filter."""
    family, params = family_and_params(seed)
    X = sample(seed, 60)
    start = family.expected_statistics(
        params, Sequences.of(X[:20], [10, 10], keys=["a", "b"]), None
    )
    both = family.expected_statistics(
        params,
        Sequences.of(
            X[20:],
            [split, 40 - split] if split < 40 else [20, 20],
            keys=["a", "b"],
            continues=[True, True],
        ),
        start.carry,
    )
    sizes = [split, 40 - split] if split < 40 else [20, 20]
    alone_a = family.expected_statistics(
        params, Sequences.of(X[20 : 20 + sizes[0]], keys=["a"], continues=[True]), start.carry
    )
    alone_b = family.expected_statistics(
        params, Sequences.of(X[20 + sizes[0] :], keys=["b"], continues=[True]), start.carry
    )
    summed = alone_a.stats + alone_b.stats
    for name, value in both.stats.arrays().items():
        np.testing.assert_allclose(value, summed.arrays()[name], rtol=1e-10, atol=1e-12)
    assert both.carry is not None
    assert alone_a.carry is not None
    assert alone_b.carry is not None
    np.testing.assert_allclose(both.carry["a"], alone_a.carry["a"], rtol=1e-12)
    np.testing.assert_allclose(both.carry["b"], alone_b.carry["b"], rtol=1e-12)


@settings(max_examples=8, deadline=None)
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 500))
def test_batch_em_never_decreases_the_log_likelihood(covariance_type: str, seed: int) -> None:
    """Baum-Welch iterations of GaussianHMM.fit's engine, two sequences."""
    X = sample(seed, 300)
    model = GaussianHMM(3, covariance_type, random_state=seed)
    family = model._family(0.0)
    batch = Sequences.of(X, [100, 200])
    start = family.initial_params(batch, np.random.default_rng(seed))
    family.anchor = start
    engine = StepwiseEM(family, Constant(1.0), ConvergenceMonitor(0.0, 1.0, 1))
    engine.initialize(start)
    for _ in range(15):
        engine.update(batch)
    lls = np.array([record.mean_log_likelihood for record in engine.monitor.history])
    assert np.all(np.diff(lls) >= -1e-10 * np.abs(lls[1:]))


def streamed(seed: int, covariance_type: str, blocks: int) -> tuple[GaussianHMM, np.ndarray]:
    X = sample(seed, 100 * (blocks + 2))
    model = GaussianHMM(3, covariance_type, init_size=None, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in np.array_split(X[: 100 * blocks], blocks):
            model.partial_fit(block)
    return model, X[100 * blocks :]


@settings(max_examples=8, deadline=None)
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 500), blocks=st.integers(1, 4))
def test_json_round_trip_is_exact(covariance_type: str, seed: int, blocks: int) -> None:
    model, _ = streamed(seed, covariance_type, blocks)
    text = model.to_json()
    restored = GaussianHMM.from_json(text)
    assert restored.to_json() == text
    for name in ("startprob_", "transmat_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(model, name))
    assert restored.engine_.carry is not None
    np.testing.assert_array_equal(restored.engine_.carry[""], model.engine_.carry[""])


@settings(max_examples=8, deadline=None)
@given(covariance_type=COVARIANCE_TYPES, seed=st.integers(0, 500), blocks=st.integers(1, 3))
def test_a_restored_model_continues_exactly(covariance_type: str, seed: int, blocks: int) -> None:
    model, rest = streamed(seed, covariance_type, blocks)
    restored = GaussianHMM.from_json(model.to_json())
    np.testing.assert_array_equal(
        restored.log_density(Sequences.of(rest, keys=[""], continues=[True])),
        model.log_density(Sequences.of(rest, keys=[""], continues=[True])),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in np.array_split(rest, 2):
            model.partial_fit(block)
            restored.partial_fit(block)
    assert restored.to_json() == model.to_json()
