"""Checks of a stored learner state: each damaged field is named."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.state_check import (
    StateFieldError,
    check_learner_envelope,
    check_model_fits,
)
from streamem.synthetic import FEATURES, SensorModes


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    learner = Learner(ModelSettings(init_size=500), DriftSettings(), FEATURES)
    X, _ = SensorModes.default().sample(2000, np.random.default_rng(0))
    for batch in np.split(X, 4):
        learner.learn(batch)
    return learner.state_dict()


def test_a_good_state_passes(state: dict[str, Any]) -> None:
    check_learner_envelope(state)
    learner = Learner.from_state(state, ModelSettings(init_size=500), DriftSettings(), FEATURES)
    check_model_fits(learner.model, 3, "full", FEATURES)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("counters", None, "counters"),
        ("counters.n_dropped", "3", "counters.n_dropped"),
        ("counters.last_drift", 1, "counters.last_drift"),
        ("features", "temp", "features"),
        ("estimator", [], "estimator"),
        ("drift.history", [1.0, "x"], "drift.history"),
    ],
)
def test_a_damaged_envelope_names_the_field(
    state: dict[str, Any], path: str, value: Any, field: str
) -> None:
    damaged = copy.deepcopy(state)
    *parents, last = path.split(".")
    node = damaged
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(StateFieldError) as error:
        check_learner_envelope(damaged)
    assert error.value.field == field


def test_a_model_of_another_shape_is_named(state: dict[str, Any]) -> None:
    learner = Learner.from_state(state, ModelSettings(init_size=500), DriftSettings(), FEATURES)
    with pytest.raises(StateFieldError, match=r"estimator\.n_components"):
        check_model_fits(learner.model, 4, "full", FEATURES)
    with pytest.raises(StateFieldError, match=r"estimator\.means: expected shape \(3, 2\)"):
        check_model_fits(learner.model, 3, "full", FEATURES[:2])
