"""The row guard: bounds, degenerate magnitudes, outliers of a warm model, and isolation of the
points that make the engine refuse an update."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.service.codecs import RejectReason
from streamem.service.config import DriftSettings, GuardSettings, ModelSettings
from streamem.service.guard import ModelScorer, RowGuard, bisect_refused, isolate_refused
from streamem.service.learner import Learner
from streamem.synthetic import FEATURES, SensorModes


@pytest.fixture
def warm(rng: np.random.Generator) -> tuple[Learner, np.ndarray]:
    learner = Learner(ModelSettings(init_size=1000), DriftSettings(), FEATURES)
    X, _ = SensorModes.default().sample(30_000, rng)
    for batch in np.split(X[:20_000], 20):
        learner.learn(batch)
    return learner, X[20_000:]


def test_a_clean_batch_of_a_warm_model_loses_nothing(warm: tuple[Learner, np.ndarray]) -> None:
    learner, X = warm
    guard = RowGuard(GuardSettings(), FEATURES, {})
    assert guard.screen(X, ModelScorer(learner.model)) == []


def test_absurd_points_are_refused_and_named(warm: tuple[Learner, np.ndarray]) -> None:
    learner, X = warm
    batch = X[:1000].copy()
    batch[10, 0], batch[20, 1], batch[30, 2] = 1e300, 1e15, 5e3
    guard = RowGuard(GuardSettings(), FEATURES, {"vib": [-100.0, 100.0]})
    refusals = guard.screen(batch, ModelScorer(learner.model))
    assert [(r.index, r.reason) for r in refusals] == [
        (10, RejectReason.DEGENERATE),
        (20, RejectReason.OUTLIER),
        (30, RejectReason.OUT_OF_BOUNDS),
    ]
    assert "'vib'" in refusals[2].detail
    assert "outside [-100, 100]" in refusals[2].detail


def test_a_change_of_regime_is_learned_not_refused(warm: tuple[Learner, np.ndarray]) -> None:
    learner, X = warm
    shifted = X[:1000] + np.array([80.0, 0.0, 0.0])  # every point far from the model
    guard = RowGuard(GuardSettings(), FEATURES, {})
    assert guard.screen(shifted, ModelScorer(learner.model)) == []


def test_outliers_off_keeps_the_library_behaviour(warm: tuple[Learner, np.ndarray]) -> None:
    learner, X = warm
    batch = X[:1000].copy()
    batch[5, 0] = 1e15
    guard = RowGuard(GuardSettings(outliers=False), FEATURES, {})
    assert guard.screen(batch, ModelScorer(learner.model)) == []


def test_a_cold_model_refuses_what_no_bulk_of_points_can_judge_only_by_magnitude() -> None:
    learner = Learner(ModelSettings(init_size=1000), DriftSettings(), FEATURES)
    batch = np.array([[21.0, 0.4, 1.0], [1e15, 0.4, 1.0], [1e200, 0.4, 1.0]])
    refusals = RowGuard(GuardSettings(), FEATURES, {}).screen(batch, ModelScorer(learner.model))
    assert [(r.index, r.reason) for r in refusals] == [(2, RejectReason.DEGENERATE)]


def test_a_cold_model_refuses_points_far_from_the_bulk_of_those_kept(
    rng: np.random.Generator,
) -> None:
    """Before the start, a sentinel is judged against this batch and the points kept before
    it: one in a batch of two, after 200 clean points, is refused."""
    learner = Learner(ModelSettings(init_size=1000), DriftSettings(), FEATURES)
    guard, scorer = RowGuard(GuardSettings(), FEATURES, {}), ModelScorer(learner.model)
    X, _ = SensorModes.default().sample(202, rng)
    assert guard.screen(X[:200], scorer) == []
    X[201, 0] = 65535.0
    refusals = guard.screen(X[200:], scorer)
    assert [(r.index, r.reason) for r in refusals] == [(1, RejectReason.OUTLIER)]
    guard.reset()  # forgotten: two points alone are no bulk
    assert guard.screen(X[200:], scorer) == []


@pytest.mark.parametrize("bad", [[], [0], [7], [3, 4], [0, 63], list(range(0, 64, 9))])
def test_bisection_finds_exactly_the_offending_points(bad: list[int]) -> None:
    calls = []

    def accepts(rows: np.ndarray) -> bool:
        calls.append(len(rows))
        return not set(rows.tolist()) & set(bad)

    assert bisect_refused(64, accepts) == sorted(bad)
    assert len(calls) <= 2 * max(1, len(bad)) * 6 + 2


def test_bisection_stops_at_its_budget() -> None:
    found = bisect_refused(64, lambda rows: False, max_trials=5)
    assert found == list(range(64))  # undecided points are refused rather than lost


def test_a_refused_update_is_retried_without_its_culprits(
    warm: tuple[Learner, np.ndarray],
) -> None:
    learner, X = warm
    batch = X[:1000].copy()
    batch[123, 0] = 1e160  # finite, under no guard here: its square overflows
    n_seen = learner.status.n_seen
    outcome = learner.learn(batch, isolate=lambda P, k: isolate_refused(learner.model, P, k))
    assert outcome.isolated == [123]
    assert outcome.learned
    assert learner.status.n_seen == n_seen + 999
    assert learner.status.n_dropped == 0


def test_a_step_far_below_its_filter_is_refused_and_the_steps_after_it_are_not(
    rng: np.random.Generator,
) -> None:
    """A sentinel in a random walk: refused by the one-step-ahead predictive density of its
    sequence's filter; the next steps are judged by a filter that read it as missing (a filter
    that had seen it would find them all far below)."""
    settings = ModelSettings(
        family="linear_gaussian_ssm", n_components=1, covariance_type="diag", init_size=200
    )
    learner = Learner(settings, DriftSettings(), ["level"])
    walk = 50.0 + np.cumsum(rng.normal(size=(1200, 1)), axis=0)
    for batch in np.split(walk[:1000], 5):
        learner.learn(batch, ("s1",) * 200)
    batch = walk[1000:].copy()
    batch[10, 0] = 65535.0
    guard = RowGuard(GuardSettings(), ["level"], {})
    refusals = guard.screen(batch, ModelScorer(learner.model), ("s1",) * 200)
    assert [(r.index, r.reason) for r in refusals] == [(10, RejectReason.OUTLIER)]
    assert "one-step-ahead" in refusals[0].detail
    assert ModelScorer(learner.model).score(batch) is None  # not scorable out of its sequence
