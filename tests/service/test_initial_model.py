"""``model.initial``: the daemon's learner starts from a fitted model document and continues
with the mass of its statistics behind it (the first batch of m points gets the step
m / (n + m)); a checkpoint wins over it; a document that does not fit the configuration is an
error naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamem import GaussianHMM, GaussianMixture
from streamem.service.config import ConfigError, DriftSettings, ModelSettings, load_config
from streamem.service.learner import Learner, LearnerStateError
from streamem.synthetic import FEATURES, SensorModes

N_BACKFILL = 20_000


def _fitted(rng: np.random.Generator, path: Path, **options: object) -> GaussianMixture:
    X, _ = SensorModes.default().sample(N_BACKFILL, rng)
    model = GaussianMixture(3, random_state=0, **options).fit(X)  # type: ignore[arg-type]
    path.write_text(model.to_json())
    return model


def test_the_first_batch_takes_the_step_its_mass_implies(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    path = tmp_path / "backfill.json"
    backfill = _fitted(rng, path)
    settings = ModelSettings(n_components=3, initial=path)
    learner = Learner(settings, DriftSettings(enabled=False), FEATURES)
    assert learner.status.n_seen == N_BACKFILL
    # shifted readings: a cold model would jump to them; the warm one moves by its share
    X, _ = SensorModes.default().sample(500, rng)
    X = X + 2.0 * X.std(axis=0)
    assert learner.model.next_step_size(len(X)) == pytest.approx(500 / (N_BACKFILL + 500))
    learner.learn(X)
    assert learner.status.n_seen == N_BACKFILL + 500
    share = 500 / (N_BACKFILL + 500)
    weights = np.asarray(learner.model.weights_)  # type: ignore[attr-defined]
    # w' = (n w + sum of the new responsibilities) / (n + m): |w' - w| <= m / (n + m)
    assert np.abs(weights - backfill.weights_).max() <= share + 1e-12
    # mu' - mu = sum_i r_i (x_i - mu) / (N_j + sum_i r_i), N_j = n w_j
    means = np.asarray(learner.model.means_)  # type: ignore[attr-defined]
    for j in range(3):
        reach = np.abs(X - backfill.means_[j]).max(axis=0)
        bound = 500 * reach / (N_BACKFILL * backfill.weights_[j])
        assert (np.abs(means[j] - backfill.means_[j]) <= bound).all()
    # the configuration's schedule, not the document's
    assert learner.model.schedule == learner.model.engine_.schedule  # type: ignore[attr-defined]
    assert learner.model.engine_.schedule.alpha == settings.schedule.alpha  # type: ignore[attr-defined]


def test_a_checkpoint_wins_over_the_initial_model(rng: np.random.Generator, tmp_path: Path) -> None:
    path = tmp_path / "backfill.json"
    _fitted(rng, path)
    settings = ModelSettings(n_components=3, initial=path)
    learner = Learner(settings, DriftSettings(enabled=False), FEATURES)
    learner.learn(SensorModes.default().sample(300, rng)[0])
    state = learner.state_dict()
    path.unlink()  # the document is not read again once a checkpoint exists
    restored = Learner.from_state(state, settings, DriftSettings(enabled=False), FEATURES)
    assert restored.status.n_seen == N_BACKFILL + 300


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"n_components": 4}, "model.n_components"),
        ({"covariance_type": "diag"}, "model.covariance_type"),
        ({"family": "gaussian_hmm"}, r"model\.initial: expected a 'streamem\.GaussianHMM'"),
    ],
)
def test_a_document_that_does_not_fit_the_configuration_names_the_key(
    rng: np.random.Generator, tmp_path: Path, change: dict[str, object], key: str
) -> None:
    path = tmp_path / "backfill.json"
    _fitted(rng, path)
    settings = ModelSettings(**{"n_components": 3, "initial": path, **change})  # type: ignore[arg-type]
    with pytest.raises(LearnerStateError, match=key):
        Learner(settings, DriftSettings(enabled=False), FEATURES)


def test_the_features_and_the_fitted_state_are_checked(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    path = tmp_path / "backfill.json"
    _fitted(rng, path)
    settings = ModelSettings(n_components=3, initial=path)
    with pytest.raises(LearnerStateError, match="fitted model of the 2 features"):
        Learner(settings, DriftSettings(enabled=False), ("a", "b"))
    path.write_text(json.dumps(GaussianMixture(3).to_dict()))  # not fitted
    with pytest.raises(LearnerStateError, match="initialized=False"):
        Learner(settings, DriftSettings(enabled=False), FEATURES)
    path.write_text("{not json")
    with pytest.raises(LearnerStateError, match="cannot be read"):
        Learner(settings, DriftSettings(enabled=False), FEATURES)


def test_a_sequential_family_continues_too(rng: np.random.Generator, tmp_path: Path) -> None:
    X = rng.normal(size=(3000, 2)) + np.repeat(rng.normal(0, 4, (30, 2)), 100, axis=0)
    model = GaussianHMM(2, "full", n_iter=5, random_state=0).fit(X)
    path = tmp_path / "hmm.json"
    path.write_text(json.dumps(model.to_dict()))
    settings = ModelSettings(family="gaussian_hmm", n_components=2, initial=path)
    learner = Learner(settings, DriftSettings(enabled=False), ("a", "b"))
    assert learner.model.next_step_size(100) == pytest.approx(100 / 3100)
    learner.learn(rng.normal(size=(100, 2)), keys=("k",) * 100)
    assert learner.status.n_seen == 3100


def test_the_config_refuses_an_initial_model_in_scale_out(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}")
    config = tmp_path / "daemon.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
                "input": {"features": ["a"]},
                "output": {"statistics_topic": "t.stats"},
                "model": {"initial": str(path)},
            }
        )
    )
    with pytest.raises(ConfigError, match=r"model\.initial: expected null with output"):
        load_config(config)
    missing = ModelSettings(n_components=3, initial=tmp_path / "missing.json")
    with pytest.raises(LearnerStateError, match=r"model\.initial: .*missing\.json cannot be read"):
        Learner(missing, DriftSettings(enabled=False), FEATURES)
