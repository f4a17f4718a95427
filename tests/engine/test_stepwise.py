"""The stepwise EM engine on toy families of its own (no model of streamem.models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem.engine import Constant, HalfLife, PowerDecay, StepwiseEM
from streamem.errors import DegenerateUpdateError, NotFittedError, ValidationError
from tests.engine.toy_families import Mean, RandomWalk, Sums, UnitGaussian


def running_mean_engine(schedule: object = None) -> StepwiseEM:  # type: ignore[type-arg]
    engine = StepwiseEM(UnitGaussian(), schedule)  # type: ignore[arg-type]
    engine.initialize(Mean(np.zeros(1)))
    return engine


def test_the_first_update_takes_the_whole_batch_and_the_next_the_exact_running_mean(
    rng: np.random.Generator,
) -> None:
    engine = running_mean_engine()
    first, second = rng.normal(size=(300, 1)), rng.normal(3.0, 1.0, size=(100, 1))
    assert engine.next_step_size(300) == 1.0
    engine.update(first)
    assert engine.next_step_size(100) == pytest.approx(100 / 400)
    report = engine.update(second)
    assert report.record.step_size == pytest.approx(0.25)
    np.testing.assert_allclose(engine.params.mean, np.vstack([first, second]).mean(axis=0))
    assert engine.n_seen == 400
    assert engine.step == 2


def test_a_decreasing_schedule_continues_from_the_index_of_that_step(
    rng: np.random.Generator,
) -> None:
    schedule = PowerDecay(alpha=0.7, t0=2.0)
    engine = running_mean_engine(schedule)
    engine.update(rng.normal(size=(900, 1)))
    engine.update(rng.normal(size=(100, 1)))  # eta = 0.1, index k0 with (k0 + t0)^-0.7 = 0.1
    k0 = schedule.index_for(0.1)
    for k in range(1, 4):
        expected = schedule.step_size(k0 + k, 100)
        assert engine.next_step_size(100) == pytest.approx(expected)
        assert engine.update(rng.normal(size=(100, 1))).record.step_size == pytest.approx(expected)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), m=st.integers(1, 5000), seed=st.integers(0, 2**16))
def test_a_warm_start_weighs_the_next_batch_by_the_mass_behind_the_statistics(
    n: int, m: int, seed: int
) -> None:
    """After initialize(params, stats, n_units=n), the next batch of m units moves the
    statistics by exactly m / (n + m) of the way to its own: the running mean of n + m units."""
    rng = np.random.default_rng(seed)
    old, new = rng.normal(size=(n, 2)), rng.normal(1.0, 2.0, size=(m, 2))
    engine = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    stats = Sums(np.array(1.0), old.mean(axis=0))
    engine.initialize(Mean(old.mean(axis=0)), stats, n_units=n)
    assert engine.n_seen == n
    assert engine.effective_count == pytest.approx(n)
    engine.update(new)
    np.testing.assert_allclose(engine.params.mean, np.vstack([old, new]).mean(axis=0), rtol=1e-9)
    assert engine.n_seen == n + m
    assert engine.effective_count == pytest.approx(n + m)


def test_a_warm_start_needs_units_behind_its_statistics() -> None:
    engine = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    with pytest.raises(ValidationError, match="n_units > 0"):
        engine.initialize(Mean(np.zeros(1)), Sums(np.array(1.0), np.zeros(1)), n_units=0)


def test_forgetting_schedules_keep_their_own_step_after_a_warm_start() -> None:
    for schedule, expected in ((Constant(0.05), 0.05), (HalfLife(100.0), 0.5)):
        engine = StepwiseEM(UnitGaussian(), schedule)  # type: ignore[arg-type,var-annotated]
        engine.initialize(Mean(np.zeros(1)), Sums(np.array(1.0), np.zeros(1)), n_units=10_000)
        assert engine.next_step_size(100) == pytest.approx(expected)


def test_with_step_one_and_the_whole_data_each_update_is_batch_em(
    rng: np.random.Generator,
) -> None:
    X = rng.normal(2.0, 1.0, size=(500, 3))
    engine = running_mean_engine(Constant(1.0))
    for _ in range(3):
        report = engine.update(X)
        assert report.record.step_size == 1.0
    np.testing.assert_allclose(engine.params.mean, X.mean(axis=0))
    assert engine.n_seen == 1500


def test_a_degenerate_update_leaves_the_engine_as_it_was(rng: np.random.Generator) -> None:
    engine = running_mean_engine()
    engine.update(rng.normal(size=(50, 1)))
    before = json.dumps(engine.state_dict())
    bad = rng.normal(size=(50, 1))
    bad[3] = np.inf
    with pytest.raises(DegenerateUpdateError):
        engine.update(bad)
    assert json.dumps(engine.state_dict()) == before


def test_an_engine_without_parameters_says_so() -> None:
    engine = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    assert not engine.initialized
    with pytest.raises(NotFittedError, match="initialize"):
        engine.update(np.zeros((3, 1)))


def test_start_takes_the_family_starting_values(rng: np.random.Generator) -> None:
    engine = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    X = rng.normal(size=(10, 2))
    engine.start(X, np.random.default_rng(0))
    assert any(np.array_equal(engine.params.mean, row) for row in X)


def test_the_engine_counts_the_family_units_and_carries_the_sequence_state(
    rng: np.random.Generator,
) -> None:
    """Blocks of one random walk, learned with Constant(1) from the same start: the carried
    last value makes the blocks' statistics those of the whole walk (no step lost at a
    boundary), and n_seen counts time steps."""
    walk = np.cumsum(rng.normal(0.5, 1.0, size=1000))
    family = RandomWalk()
    whole = family.expected_statistics(Mean(np.array(0.0)), walk, None)
    carry = None
    total = Sums(np.array(0.0), np.array(0.0))
    for block in np.array_split(walk, 7):
        expectation = family.expected_statistics(Mean(np.array(0.0)), block, carry)
        total, carry = total + expectation.stats, expectation.carry
    assert total.count == whole.stats.count == 999
    assert total.total == pytest.approx(float(whole.stats.total), rel=1e-12)

    engine = StepwiseEM(family, PowerDecay())  # type: ignore[arg-type,var-annotated]
    engine.initialize(Mean(np.array(0.0)))
    for block in np.array_split(walk, 10):
        engine.update(block)
    assert engine.n_seen == 1000
    assert engine.carry == walk[-1]
    assert float(engine.params.mean) == pytest.approx(0.5, abs=0.15)


def test_a_restored_engine_continues_exactly_with_the_step_size_and_carry_it_had(
    rng: np.random.Generator,
) -> None:
    walk = np.cumsum(rng.normal(0.2, 1.0, size=3000))
    blocks = np.array_split(walk, 30)
    original = StepwiseEM(RandomWalk(), PowerDecay(0.8), averaging_start=5)  # type: ignore[arg-type,var-annotated]
    original.initialize(Mean(np.array(0.0)))
    for block in blocks[:20]:
        original.update(block)
    restored = StepwiseEM(RandomWalk(), PowerDecay(0.8))  # type: ignore[arg-type,var-annotated]
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert restored.carry == original.carry
    for block in blocks[20:]:
        assert restored.next_step_size(len(block)) == original.next_step_size(len(block))
        a, b = original.update(block), restored.update(block)
        assert a == b
    assert restored.state_dict() == original.state_dict()


def test_a_warm_start_survives_a_restore_before_the_next_update(
    rng: np.random.Generator,
) -> None:
    engine = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    engine.initialize(Mean(np.zeros(1)), Sums(np.array(1.0), np.zeros(1)), n_units=900)
    restored = StepwiseEM(UnitGaussian())  # type: ignore[arg-type,var-annotated]
    restored.load_state_dict(json.loads(json.dumps(engine.state_dict())))
    assert restored.next_step_size(100) == pytest.approx(0.1)


def test_a_step_computed_outside_update_and_committed_leaves_the_state_update_leaves(
    rng: np.random.Generator,
) -> None:
    """A fused step (the family's E-step, blend and M-step in one place) that asks the engine
    for its step size and Kish's count and commits the result ends where update() ends."""
    rows = rng.normal(1.0, 2.0, size=(200, 1))
    by_update, by_commit = running_mean_engine(), running_mean_engine()
    for engine in (by_update, by_commit):  # the second update restarts the schedule
        engine.update(rows[:40])
        engine.update(rows[40:50])
    family = UnitGaussian()
    for row in rows[50:]:
        by_update.update(row[np.newaxis])
        assert by_commit.schedule_known
        eta = by_commit.next_step_size(1)
        squared_weights = by_commit.next_squared_weights(eta, 1)
        expectation = family.expected_statistics(by_commit.params, row[np.newaxis], None)
        assert by_commit.stats is not None
        stats = by_commit.stats.blended(expectation.stats, eta)
        params = family.maximize(stats.scaled(1.0 / squared_weights))
        change = family.parameter_change(by_commit.params, params)
        by_commit.commit(
            params, stats, None, squared_weights, 1, expectation.log_likelihood, change, eta
        )
    assert by_commit.state_dict() == by_update.state_dict()
    assert list(by_commit.monitor.history) == list(by_update.monitor.history)


def test_only_statistics_with_a_schedule_history_make_the_schedule_known(
    rng: np.random.Generator,
) -> None:
    engine = running_mean_engine()
    assert not engine.schedule_known  # no statistics: the first update takes eta = 1
    engine.update(rng.normal(size=(10, 1)))
    assert not engine.schedule_known  # the next update restarts the schedule
    engine.update(rng.normal(size=(10, 1)))
    assert engine.schedule_known
