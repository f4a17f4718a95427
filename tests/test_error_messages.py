"""Error texts that name the problem (issue 32, item 12): no array dumped, no advice about
other estimators, a file name or a snapshot named as such."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamem import GaussianHMM, GaussianMixture, LinearGaussianSSM, ValidationError
from streamem.models.registry import model_from_dict
from streamem.models.topics.lda import LatentDirichletAllocation
from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.snapshot import build_snapshot


@pytest.mark.parametrize("model", [GaussianMixture(2), GaussianHMM(2)])
def test_a_1d_batch_is_refused_without_printing_it(model: object) -> None:
    with pytest.raises(ValidationError) as raised:
        model.partial_fit(np.arange(5_000.0) + 0.123)  # type: ignore[attr-defined]
    message = str(raised.value)
    assert message.startswith("Expected 2D array, got 1D array instead")
    assert "0.123" not in message
    assert "\n" not in message
    assert len(message) < 300


def test_nan_in_documents_is_refused_without_advice_about_other_estimators() -> None:
    with pytest.raises(ValidationError) as raised:
        LatentDirichletAllocation(2).partial_fit(np.full((5, 4), np.nan))
    message = str(raised.value)
    assert message.startswith("Input X contains NaN.")
    assert "HistGradientBoosting" not in message


@pytest.mark.parametrize(
    "kind", [GaussianMixture, GaussianHMM, LinearGaussianSSM, LatentDirichletAllocation]
)
def test_from_json_of_a_file_name_says_to_read_the_file(kind: type) -> None:
    with pytest.raises(ValidationError, match=r"'model.json' looks like a file name; from_json"):
        kind.from_json("model.json")


@pytest.fixture(scope="module")
def snapshot() -> dict[str, object]:
    learner = Learner(ModelSettings(n_components=2, init_size=100), DriftSettings(), ["a", "b"])
    learner.learn(np.random.default_rng(0).normal(size=(200, 2)))
    return build_snapshot(learner, name="plant", version=3, offsets={}, drift=False)


@pytest.mark.parametrize("kind", [GaussianMixture, GaussianHMM, LinearGaussianSSM])
def test_a_snapshot_given_as_a_model_document_is_named(
    kind: type, snapshot: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match="this is a model snapshot that a daemon published"):
        kind.from_json(json.dumps(snapshot))


def test_model_from_dict_names_a_snapshot(snapshot: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"not a \['streamem.GaussianMixture', .*model doc"):
        model_from_dict(snapshot)
