"""The compiled one-row step leaves the engine where the numpy path leaves it.

The numpy path (``gaussian_kernels.AVAILABLE`` False) is the reference: the same stream is
learned twice, row by row, and every number of the engine's state must agree to 1e-9 of the
largest magnitude of its array (counters and step sizes exactly).
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

from streamem import GaussianMixture
from streamem.errors import RefusedUpdateWarning
from streamem.models.mixture import gaussian_kernels
from streamem.models.mixture.gaussian_online import OneRowStep
from streamem.synthetic import random_mixture_sample

pytestmark = pytest.mark.skipif(
    not gaussian_kernels.AVAILABLE, reason="numba is not installed (the river extra)"
)
RTOL = 1e-9


def learned(
    X: np.ndarray, compiled: bool, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> GaussianMixture:
    """A mixture that learned the rows of X one at a time (``learn_row``)."""
    with monkeypatch.context() as patch:
        patch.setattr(gaussian_kernels, "AVAILABLE", compiled)
        options.setdefault("init_size", 10 * options.get("n_components", 1))
        model = GaussianMixture(random_state=0, **options)
        for row in X:
            model.learn_row(row)
    return model


def assert_same_state(actual: Any, expected: Any, where: str = "state") -> None:
    """Equal structure; floats (and arrays of them) within RTOL of the array's scale."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same_state(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_state(a, e, f"{where}[{i}]")
    elif isinstance(expected, list | float) and not isinstance(expected, bool):
        a = np.array(actual, dtype=float)
        e = np.array(expected, dtype=float)
        assert a.shape == e.shape, where
        scale = float(np.nanmax(np.abs(e))) if e.size and not np.isnan(e).all() else 0.0
        np.testing.assert_allclose(a, e, rtol=0, atol=RTOL * scale, err_msg=where)
    else:
        assert actual == expected, where


@pytest.mark.slow
@pytest.mark.parametrize(
    ("covariance_type", "n_features", "n_components"),
    [
        *[(c, d, k) for c in ("full", "diag") for d, k in ((2, 3), (9, 8))],
        # the tied and spherical types have no kernel: with numba the step stands aside
        ("tied", 2, 3),
        ("spherical", 2, 3),
    ],
)
def test_a_20000_point_stream_gives_the_numpy_paths_state(
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    covariance_type: str,
    n_features: int,
    n_components: int,
) -> None:
    X, _ = random_mixture_sample(rng, 20_000, n_features, n_components, spread=4.0)
    X[rng.random(len(X)) < 0.01, 0] = np.nan  # rows with a missing coordinate: numpy path
    options = {"n_components": n_components, "covariance_type": covariance_type}
    reference = learned(X, False, monkeypatch, **options)
    compiled = learned(X, True, monkeypatch, **options)
    fast = compiled._one_row
    assert fast.usable == (covariance_type in ("full", "diag"))
    # the compiled path made the last step (where it applies)
    assert (compiled.engine_.params is fast.params) == fast.usable
    assert compiled.engine_.step == reference.engine_.step == len(X) - 10 * n_components + 1
    assert_same_state(compiled.to_dict(), reference.to_dict())
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        expected = getattr(reference, name)
        np.testing.assert_allclose(
            getattr(compiled, name), expected, rtol=0, atol=RTOL * np.abs(expected).max()
        )
    rows = X[:500]
    rows = rows[~np.isnan(rows).any(axis=1)]
    joint = np.array([compiled.log_joint_row(row) for row in rows])
    expected_joint = reference.log_joint_rows(rows)
    np.testing.assert_allclose(joint, expected_joint, rtol=RTOL)


def test_reseeding_after_a_compiled_step_matches(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two clusters, three components: with reseed_weight 0.2 one of them is re-seeded often.
    X, _ = random_mixture_sample(rng, 2_000, 2, 2, spread=6.0)
    options = {"n_components": 3, "reseed_weight": 0.2}
    reference = learned(X, False, monkeypatch, **options)
    compiled = learned(X, True, monkeypatch, **options)
    assert reference.n_reseeded_ > 0
    assert compiled.n_reseeded_ == reference.n_reseeded_
    assert_same_state(compiled.to_dict(), reference.to_dict())


def test_a_degenerate_row_is_refused_as_by_the_numpy_path(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = random_mixture_sample(rng, 300, 2, 2, spread=6.0)
    models = [learned(X, compiled, monkeypatch, n_components=2) for compiled in (False, True)]
    huge = np.array([1e200, 1e200])  # its second moments overflow: non-finite parameters
    for model, compiled in zip(models, (False, True), strict=True):
        before = model.to_dict()
        with monkeypatch.context() as patch:
            patch.setattr(gaussian_kernels, "AVAILABLE", compiled)
            with (
                np.errstate(over="ignore", invalid="ignore"),
                pytest.warns(RefusedUpdateWarning, match="refused a degenerate"),
            ):
                model.learn_row(huge)
        assert model.n_refused_ == 1
        after = model.to_dict()
        after["state"]["n_refused"] = 0
        assert after == before
    assert_same_state(models[1].to_dict(), models[0].to_dict())


def test_from_dict_continues_on_the_compiled_path_as_on_the_numpy_path(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = random_mixture_sample(rng, 1_500, 3, 3, spread=4.0)
    first = learned(X[:1_000], True, monkeypatch, n_components=3)
    results = []
    for compiled in (False, True):
        model = GaussianMixture.from_dict(first.to_dict())
        with monkeypatch.context() as patch:
            patch.setattr(gaussian_kernels, "AVAILABLE", compiled)
            for row in X[1_000:]:
                model.learn_row(row)
        # the loaded model's last step was compiled exactly when the kernels were on
        assert (model._one_row.params is model.engine_.params) == compiled
        results.append(model.to_dict())
    assert_same_state(results[1], results[0])


def test_the_records_of_a_compiled_step_hold_until_the_next_but_one(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two buffers alternate: what the engine held one step ago is intact (the old
    parameters of a parameter change), the newest state is what the fitted arrays show."""
    X, _ = random_mixture_sample(rng, 400, 2, 3, spread=4.0)
    model = learned(X[:-2], True, monkeypatch, n_components=3)
    old = model.engine_.params
    old_means = old.means.copy()
    model.learn_row(X[-2])
    new = model.engine_.params
    assert new is model._one_row.params
    assert new is not old
    np.testing.assert_array_equal(old.means, old_means)
    assert not np.shares_memory(new.means, old.means)
    assert model.means_ is new.means
    model.learn_row(X[-1])
    assert model.engine_.params is old  # the next but one writes the first buffer again
    assert model.means_ is old.means


@pytest.mark.parametrize(
    "options",
    [
        {"covariance_type": "tied"},
        {"covariance_type": "spherical"},
        {"averaging_start": 5},
        {"fixed": ("weights",), "weights_init": [0.5, 0.5]},
    ],
)
def test_the_compiled_step_stands_aside_where_it_is_not_the_same_step(
    rng: np.random.Generator, options: dict[str, Any]
) -> None:
    X, _ = random_mixture_sample(rng, 200, 2, 2, spread=6.0)
    model = GaussianMixture(2, random_state=0, init_size=20, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefusedUpdateWarning)
        for row in X:
            model.learn_row(row)
    assert not model._one_row.usable
    assert model._one_row.params is None
    assert math.isfinite(model.lower_bound_)


def test_float32_rows_and_the_step_after_a_warm_start_take_the_numpy_path(
    rng: np.random.Generator,
) -> None:
    X, _ = random_mixture_sample(rng, 400, 2, 2, spread=6.0)
    model = GaussianMixture(2, random_state=0).fit(X)
    fast = OneRowStep(model.engine_)
    assert not fast.step(X[0])  # statistics of a fit, no schedule history yet
    model.partial_fit(X[:1])
    fast = OneRowStep(model.engine_)
    assert not fast.step(X[1].astype(np.float32))
    assert fast.step(X[1])


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copied_model_steps_on_its_own_buffers(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, duplicate: Any
) -> None:
    X, _ = random_mixture_sample(rng, 400, 2, 3, spread=4.0)
    model = learned(X[:300], True, monkeypatch, n_components=3)
    twin = duplicate(model)
    for row in X[300:]:
        model.learn_row(row)
        twin.learn_row(row)
    assert twin._one_row.params is twin.engine_.params
    assert not np.shares_memory(twin.means_, model.means_)
    np.testing.assert_array_equal(twin.means_, model.means_)
    assert twin.to_dict() == model.to_dict()
