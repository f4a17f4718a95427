"""The results stage's parts: the running quantile of the anomaly threshold."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.service.results import AnomalyThreshold


@pytest.mark.parametrize("chunk", [1, 7, 300, 999, 1000, 2500])
def test_the_threshold_is_the_quantile_of_the_last_window_of_finite_scores(
    chunk: int, rng: np.random.Generator
) -> None:
    threshold = AnomalyThreshold(0.9)
    assert (threshold.window, threshold.min_scores) == (1000, 100)
    scores = rng.normal(size=5_000)
    scores[::13] = np.nan  # not scored: never in the window
    finite = scores[np.isfinite(scores)]
    seen = 0
    for start in range(0, len(scores), chunk):
        part = scores[start : start + chunk]
        threshold.add(part)
        seen += int(np.isfinite(part).sum())
        if seen < threshold.min_scores:
            assert threshold.threshold is None
            assert not threshold.flags(np.array([1e9])).any()
            continue
        window = finite[max(0, seen - threshold.window) : seen]
        assert threshold.threshold == np.quantile(window, 0.9)
    above = threshold.flags(np.array([np.nan, -1e9, 1e9]))
    assert above.tolist() == [False, False, True]


def test_the_window_holds_a_hundred_scores_above_the_quantile() -> None:
    threshold = AnomalyThreshold(0.999)
    assert threshold.window == 100_000
    assert threshold.min_scores == 10_000


def test_a_reading_the_model_deems_impossible_is_encoded_and_flagged() -> None:
    import json

    import jsonschema

    from streamem.models.mixture.results import mixture_columns
    from streamem.service.config import OutputSettings
    from streamem.service.results import ResultStage, ScoredBatch, result_schema

    stage = ResultStage(OutputSettings(results_topic="r"), "poisson_mixture")
    stage.threshold.add(np.arange(stage.threshold.min_scores, dtype=float))
    columns = mixture_columns(
        np.array([0, 1]),
        np.array([[1.0, 0.0], [0.2, 0.8]]),
        np.array([-np.inf, -2.0]),
        None,
    )
    assert columns.scores is not None
    scored = ScoredBatch(columns, stage.threshold.flags(columns.scores), 4)
    values = stage.encode(scored, [0, 1], [("t", 0, 7, None), ("t", 0, 8, None)])
    first, second = (json.loads(value) for value in values)
    assert (first["log_density"], first["score"], first["anomaly"]) == (None, None, True)
    assert (second["log_density"], second["score"], second["anomaly"]) == (-2.0, 2.0, False)
    for result in (first, second):
        jsonschema.Draft202012Validator(result_schema()).validate(result)
