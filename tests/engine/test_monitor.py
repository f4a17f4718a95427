"""The convergence monitor builds the record of its newest update only when it is read."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from streamem.engine import ConvergenceMonitor


def stream(rng: np.random.Generator, n: int) -> list[tuple[float, int, float, float]]:
    """(mean log-likelihood, points, parameter change, step size) of n updates that settle."""
    settle = np.exp(-np.arange(n) / 20.0)
    return [
        (-2.0 + 0.5 * s + 1e-4 * float(rng.normal()), 1, 0.1 * s, 1.0 / (k + 2))
        for k, s in enumerate(settle.tolist())
    ]


@pytest.mark.parametrize("criterion", ["log_likelihood", "parameters"])
def test_noted_updates_give_the_records_and_the_convergence_of_recorded_ones(
    rng: np.random.Generator, criterion: str
) -> None:
    updates = stream(rng, 300)
    recorded = ConvergenceMonitor(tol=1e-3, patience=3, history_size=50, criterion=criterion)
    noted = ConvergenceMonitor(tol=1e-3, patience=3, history_size=50, criterion=criterion)
    flags = []
    for k, update in enumerate(updates):
        record = recorded.record(*update)
        noted.note(*update)
        flags.append(record.converged)
        assert noted.converged == record.converged
        assert noted.smoothed_log_likelihood == record.smoothed_log_likelihood
        if k % 7 == 0:  # reading in between changes nothing
            assert noted.last == record
    assert set(flags) == {True, False}  # the stream crosses the tolerance
    assert list(noted.history) == list(recorded.history)
    assert noted.to_dict() == recorded.to_dict()


def test_a_restored_monitor_goes_on_noting_from_its_newest_record(
    rng: np.random.Generator,
) -> None:
    updates = stream(rng, 120)
    original = ConvergenceMonitor(tol=1e-3, patience=3)
    for update in updates[:60]:
        original.note(*update)
    restored = ConvergenceMonitor.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored.converged == original.converged
    for update in updates[60:]:
        original.note(*update)
        restored.note(*update)
        assert restored.converged == original.converged
    assert restored.to_dict() == original.to_dict()


def test_reset_forgets_a_noted_update() -> None:
    monitor = ConvergenceMonitor(tol=1.0, patience=1)
    monitor.note(-1.0, 1, 0.0, 1.0)
    monitor.note(-1.0, 1, 0.0, 1.0)
    assert monitor.converged
    monitor.reset()
    assert not monitor.converged
    assert monitor.last is None
    assert monitor.smoothed_log_likelihood is None
    monitor.note(-3.0, 1, 0.0, 1.0)
    assert monitor.last is not None
    assert monitor.last.batch == 1
    assert monitor.last.smoothed_log_likelihood == -3.0


def test_a_deep_copy_goes_on_noting_on_its_own(rng: np.random.Generator) -> None:
    updates = stream(rng, 90)
    original = ConvergenceMonitor(tol=1e-3, patience=3, history_size=40)
    for update in updates[:60]:
        original.note(*update)
    clone = copy.deepcopy(original)
    assert clone.to_dict() == original.to_dict()
    before = original.to_dict()
    for update in updates[60:]:
        clone.note(*update)
    assert original.to_dict() == before  # the copy's updates are its own
    assert len(clone.history) == 40  # its history keeps the bound
    assert clone.last is not None
    assert clone.last.batch == 90
