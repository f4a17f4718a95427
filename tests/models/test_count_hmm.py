"""PoissonHMM and CategoricalHMM against hmmlearn's: Baum-Welch from the same start, on several
sequences, and one stepwise pass over a long stream against hmmlearn's converged fit."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn

from streamem.models.hmm.categorical_hmm import CategoricalHMM
from streamem.models.hmm.poisson_hmm import PoissonHMM

STARTPROB = np.array([0.6, 0.3, 0.1])
TRANSMAT = np.array([[0.96, 0.03, 0.01], [0.02, 0.95, 0.03], [0.04, 0.01, 0.95]])
LAMBDAS = np.array([[1.0, 6.0], [4.0, 0.5], [9.0, 3.0]])
EMISSIONPROB = np.array([[0.7, 0.2, 0.05, 0.05], [0.1, 0.1, 0.7, 0.1], [0.25, 0.25, 0.25, 0.25]])
LENGTHS = [400, 250, 650, 300]
RTOL = 1e-6  # the acceptance bound; measured agreement is about 1e-12 (see the note)


def _truth(kind: type[Any], table: str, value: np.ndarray) -> Any:
    truth = kind(3, random_state=0)
    truth.startprob_, truth.transmat_ = STARTPROB, TRANSMAT
    setattr(truth, table, value)
    return truth


def _sequences(truth: Any, rng: np.random.Generator) -> np.ndarray:
    pieces = [truth.sample(n, random_state=int(rng.integers(2**31)))[0] for n in LENGTHS]
    return np.concatenate(pieces)


def _start(rng: np.random.Generator, table: np.ndarray) -> dict[str, np.ndarray]:
    """A start away from the truth: Dirichlet-perturbed chain, scaled table."""
    startprob = rng.dirichlet(np.full(3, 5.0))
    transmat = 0.7 * TRANSMAT + 0.3 * rng.dirichlet(np.full(3, 2.0), size=3)
    return {"startprob_": startprob, "transmat_": transmat, "table": table}


def _equal_fits(ours: Any, theirs: Any, table: str) -> None:
    assert ours.n_iter_ == theirs.monitor_.iter == 20
    for name in ("startprob_", "transmat_", table):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=RTOL, atol=0)
    np.testing.assert_allclose(ours.lower_bound_, theirs.monitor_.history[-1], rtol=RTOL)


@pytest.mark.parametrize("seed_offset", [0, 1, 2])
def test_poisson_fit_equals_hmmlearns_from_the_same_start(
    rng: np.random.Generator, seed_offset: int
) -> None:
    rng = np.random.default_rng(rng.integers(2**31) + seed_offset)
    X = _sequences(_truth(PoissonHMM, "lambdas_", LAMBDAS), rng)
    start = _start(rng, LAMBDAS * rng.uniform(0.5, 1.5, LAMBDAS.shape))
    theirs = hmmlearn.PoissonHMM(3, n_iter=20, tol=-np.inf, init_params="", random_state=0)
    ours = PoissonHMM(3, n_iter=20, tol=-1.0, init_params="", random_state=0)
    for model in (theirs, ours):
        model.startprob_, model.transmat_ = start["startprob_"], start["transmat_"]
        model.lambdas_ = start["table"]
    theirs.fit(X.astype(np.int64), LENGTHS)
    ours.fit(X, LENGTHS)
    _equal_fits(ours, theirs, "lambdas_")


@pytest.mark.parametrize("seed_offset", [0, 1, 2])
def test_categorical_fit_equals_hmmlearns_from_the_same_start(
    rng: np.random.Generator, seed_offset: int
) -> None:
    rng = np.random.default_rng(rng.integers(2**31) + seed_offset)
    X = _sequences(_truth(CategoricalHMM, "emissionprob_", EMISSIONPROB), rng)
    start = _start(rng, rng.dirichlet(np.full(4, 3.0), size=3))
    theirs = hmmlearn.CategoricalHMM(
        3, n_features=4, n_iter=20, tol=-np.inf, init_params="", random_state=0
    )
    ours = CategoricalHMM(3, n_iter=20, tol=-1.0, init_params="", random_state=0)
    for model in (theirs, ours):
        model.startprob_, model.transmat_ = start["startprob_"], start["transmat_"]
        model.emissionprob_ = start["table"]
    theirs.fit(X.astype(np.int64), LENGTHS)
    ours.fit(X, LENGTHS)
    _equal_fits(ours, theirs, "emissionprob_")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["poisson", "categorical"])
def test_one_default_pass_over_a_long_stream_matches_hmmlearns_converged_fit(kind: str) -> None:
    """300,000 steps in blocks of 1,000, one default ``partial_fit`` each: held out (50,000
    steps), within 2e-3 nats/step of hmmlearn's ``fit`` to convergence (its default tol,
    n_iter 200), in at most half its time. Measured (seed 0, 2 shared cores): Poisson 1e-5
    nats/step below hmmlearn in 0.10 of its time; categorical 0.13 nats/step ABOVE it
    (hmmlearn's random start ends in a poorer optimum) in 0.04 of its time."""
    n, held_out = 300_000, 50_000
    if kind == "poisson":
        truth: Any = _truth(PoissonHMM, "lambdas_", LAMBDAS)
        theirs: Any = hmmlearn.PoissonHMM(3, n_iter=200, random_state=0)
        ours: Any = PoissonHMM(3, random_state=0)
    else:
        truth = _truth(CategoricalHMM, "emissionprob_", EMISSIONPROB)
        theirs = hmmlearn.CategoricalHMM(3, n_iter=200, random_state=0)
        ours = CategoricalHMM(3, random_state=0)
    X, _ = truth.sample(n + held_out, random_state=2)
    train, held = X[:n], X[n:]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hmmlearn's notes on its convergence
        theirs.fit(train.astype(np.int64))
    their_time = time.perf_counter() - started
    started = time.perf_counter()
    for block in np.array_split(train, n // 1000):
        ours.partial_fit(block)
    our_time = time.perf_counter() - started
    their_score = theirs.score(held.astype(np.int64)) / held_out
    our_score = ours.score(held) / held_out
    print(
        f"{kind}: ours {our_score:.5f} in {our_time:.1f} s, hmmlearn {their_score:.5f} in "
        f"{their_time:.1f} s"
    )
    assert our_score >= their_score - 2e-3
    assert our_time <= 0.5 * their_time


def test_hyper_parameters_and_starting_values_are_named() -> None:
    from streamem.errors import ValidationError

    counts = np.ones((10, 1))
    with pytest.raises(ValidationError, match="params must be letters among 'stl', got 'stx'"):
        PoissonHMM(2, params="stx").fit(counts)
    with pytest.raises(ValidationError, match="n_iter must be an integer >= 0, got -1"):
        PoissonHMM(2, n_iter=-1).fit(counts)
    with pytest.raises(ValidationError, match="does not initialise lambdas_"):
        PoissonHMM(2, init_params="st").fit(counts)
    model = PoissonHMM(2, init_params="")
    model.startprob_, model.transmat_ = np.array([0.5, 0.6]), np.eye(2)
    model.lambdas_ = np.ones((2, 1))
    with pytest.raises(ValidationError, match="startprob_ must be non-negative and sum to 1"):
        model.fit(counts)
    model.startprob_, model.lambdas_ = np.array([0.5, 0.5]), np.ones((3, 1))
    with pytest.raises(ValidationError, match=r"lambdas_ must have shape \(n_components=2"):
        model.fit(counts)
    with pytest.raises(ValidationError, match="symbols"):
        CategoricalHMM(2).fit(np.array([[0.0], [1.5]]))
