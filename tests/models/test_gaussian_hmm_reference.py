"""Batch EM, inference and the forward-backward against hmmlearn (the reference)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hmmlearn import hmm

from streamem import GaussianHMM
from streamem.models.hmm.scan import forward_backward, viterbi
from tests.models.hmm_helpers import relative_error, sample_sequences, sticky_hmm

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _starting_values(covariance_type: str, X: np.ndarray, lengths: list[int]) -> dict:
    """hmmlearn's own starting values after one iteration (a start that is not the truth)."""
    ref = hmm.GaussianHMM(3, covariance_type=covariance_type, n_iter=1, random_state=0)
    ref.fit(X, lengths)
    covars = ref._covars_
    if covariance_type == "spherical" and covars.ndim == 2:  # hmmlearn keeps them tiled
        covars = covars[:, 0]
    return {
        "startprob_": ref.startprob_.copy(),
        "transmat_": ref.transmat_.copy(),
        "means_": ref.means_.copy(),
        "covars_": np.array(covars, copy=True),
    }


def _hmmlearn_covariances(model: hmm.GaussianHMM, covariance_type: str) -> np.ndarray:
    covars = model._covars_
    return covars[:, 0] if covariance_type == "spherical" and covars.ndim == 2 else covars


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_twenty_iterations_match_hmmlearn(rng: np.random.Generator, covariance_type: str) -> None:
    X, lengths = sample_sequences(sticky_hmm(rng), [300, 150, 450, 100], seed=3)
    start = _starting_values(covariance_type, X, lengths)
    theirs = hmm.GaussianHMM(
        3, covariance_type, n_iter=20, tol=-np.inf, covars_prior=0.0, init_params=""
    )
    ours = GaussianHMM(3, covariance_type, n_iter=20, tol=0.0, reg_covar=0.0, init_params="")
    for model in (theirs, ours):
        for name, value in start.items():
            setattr(model, name, value.copy())
    theirs.fit(X, lengths)
    ours.fit(X, lengths)

    assert ours.n_iter_ == 20 == len(theirs.monitor_.history)
    assert relative_error(ours.startprob_, theirs.startprob_) < 1e-6
    assert relative_error(ours.transmat_, theirs.transmat_) < 1e-6
    assert relative_error(ours.means_, theirs.means_) < 1e-6
    assert relative_error(ours.covariances_, _hmmlearn_covariances(theirs, covariance_type)) < 1e-6
    assert (
        relative_error(
            ours.covars_,
            theirs.covars_
            if covariance_type != "spherical"
            else np.eye(2) * ours.covariances_[:, None, None],
        )
        < 1e-6
    )
    ll_ours, ll_theirs = ours.score(X, lengths), theirs.score(X, lengths)
    assert abs(ll_ours - ll_theirs) < 1e-6 * abs(ll_theirs)
    # the monitor saw hmmlearn's log-likelihoods, iteration by iteration (per step here)
    history = np.array(theirs.monitor_.history)
    assert abs(ours.lower_bound_ - history[-1]) < 1e-6 * abs(history[-1])


def test_held_fixed_parameters_match_hmmlearn(rng: np.random.Generator) -> None:
    X, lengths = sample_sequences(sticky_hmm(rng), [400, 200], seed=5)
    start = _starting_values("diag", X, lengths)
    theirs = hmm.GaussianHMM(
        3, "diag", n_iter=10, tol=-np.inf, covars_prior=0.0, init_params="", params="tm"
    )
    ours = GaussianHMM(3, "diag", n_iter=10, tol=0.0, reg_covar=0.0, init_params="", params="tm")
    for model in (theirs, ours):
        for name, value in start.items():
            setattr(model, name, value.copy())
    theirs.fit(X, lengths)
    ours.fit(X, lengths)
    np.testing.assert_array_equal(ours.startprob_, start["startprob_"])
    np.testing.assert_array_equal(ours.covariances_, start["covars_"])
    assert relative_error(ours.transmat_, theirs.transmat_) < 1e-6
    assert relative_error(ours.means_, theirs.means_) < 1e-6


def test_inference_matches_hmmlearn(rng: np.random.Generator) -> None:
    truth = sticky_hmm(rng)
    X, lengths = sample_sequences(truth, [500, 70, 300], seed=11)
    theirs = hmm.GaussianHMM(3, "full", init_params="")
    theirs.startprob_, theirs.transmat_ = truth.startprob_, truth.transmat_
    theirs.means_, theirs.covars_ = truth.means_, truth.covariances_
    ours = GaussianHMM(3, "full", n_iter=0, init_params="")
    ours.startprob_, ours.transmat_ = truth.startprob_, truth.transmat_
    ours.means_, ours.covars_ = truth.means_, truth.covariances_
    ours.fit(X, lengths)  # n_iter=0: the given parameters, unchanged

    assert abs(ours.score(X, lengths) - theirs.score(X, lengths)) < 1e-8 * len(X)
    log_prob, posteriors = ours.score_samples(X, lengths)
    their_log_prob, their_posteriors = theirs.score_samples(X, lengths)
    assert abs(log_prob - their_log_prob) < 1e-8 * len(X)
    np.testing.assert_allclose(posteriors, their_posteriors, atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X, lengths), their_posteriors, atol=1e-8)
    path_log_prob, path = ours.decode(X, lengths)
    their_path_log_prob, their_path = theirs.decode(X, lengths)
    np.testing.assert_array_equal(path, their_path)
    np.testing.assert_array_equal(ours.predict(X, lengths), their_path)
    assert abs(path_log_prob - their_path_log_prob) < 1e-8 * len(X)


def test_forward_backward_of_a_long_sequence_matches_hmmlearn(rng: np.random.Generator) -> None:
    """Many chunks, sequence starts inside and at the edges of chunks."""
    from hmmlearn import _hmmc

    k, n = 4, 20_000
    transmat = rng.dirichlet(np.ones(k) * 0.5, size=k) * 0.3 + 0.7 * np.eye(k)
    startprob = rng.dirichlet(np.ones(k))
    log_b = rng.normal(0.0, 4.0, (n, k))
    starts = np.array([0, 1, 141, 142, 9_000, 19_999])
    out = forward_backward(
        log_b,
        transmat,
        starts,
        np.tile(startprob, (len(starts), 1)),
        np.zeros((len(starts), k)),
        np.zeros(len(starts), dtype=bool),
    )
    bounds = [*starts.tolist(), n]
    transitions = np.zeros((k, k))
    path = viterbi(log_b, np.log(transmat), starts, np.log(np.tile(startprob, (len(starts), 1))))
    for a, b in itertools.pairwise(bounds):
        part = np.ascontiguousarray(log_b[a:b])
        log_prob, fwd = _hmmc.forward_log(startprob, transmat, part)
        bwd = _hmmc.backward_log(startprob, transmat, part)
        np.testing.assert_allclose(out.posteriors[a:b], np.exp(fwd + bwd - log_prob), atol=1e-7)
        np.testing.assert_allclose(
            out.filtered[a:b],
            np.exp(fwd - np.logaddexp.reduce(fwd, axis=1, keepdims=True)),
            atol=1e-7,
        )
        assert abs(out.log_predictive[a:b].sum() - log_prob) < 1e-9 * max(1.0, abs(log_prob))
        if b - a > 1:
            transitions += np.exp(_hmmc.compute_log_xi_sum(fwd, transmat, bwd, part))
        _, their_path = _hmmc.viterbi(startprob, transmat, part)
        np.testing.assert_array_equal(path[a:b], their_path)
    np.testing.assert_allclose(out.transitions, transitions, rtol=1e-7)
