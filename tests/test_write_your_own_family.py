"""The "write your own family" guide of docs/architecture.md, run: the toy family of
``tests/guide_family.py`` (shown whole in the guide) registered as a plug-in, then used by the
library, by the daemon's in-memory stages (config, decode, guard, learn, publish, checkpoint,
restart), by the snapshot schema and by river's ``FamilyDetector``, without a change anywhere
else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from streamem.models.registry import family_names, register, snapshot_schema, unregister
from streamem.service.config import Settings
from streamem.service.snapshot import snapshot_schema as published_schema
from tests.guide_family import EXPONENTIAL_MIXTURE, ExponentialMixture
from tests.service.fakes import FakeLog, SinkFactory
from tests.service.test_app import Harness, _snapshots

ROOT = Path(__file__).parent.parent
RATES = np.array([2.0, 0.1])  # waits of half a second and of ten seconds


@pytest.fixture
def registered() -> Iterator[None]:
    register(EXPONENTIAL_MIXTURE)
    try:
        yield
    finally:
        unregister(EXPONENTIAL_MIXTURE.name)


def _waits(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = rng.choice(2, size=n, p=[0.7, 0.3])
    return rng.exponential(1.0 / RATES[labels])[:, np.newaxis]


def test_the_guide_shows_the_guide_family_whole() -> None:
    code = (ROOT / "tests" / "guide_family.py").read_text()
    guide = (ROOT / "docs" / "architecture.md").read_text()
    assert f"```python\n# tests/guide_family.py\n{code}```" in guide


def test_the_library_face_learns_the_rates(rng: np.random.Generator) -> None:
    X = _waits(rng, 20_000)
    model = ExponentialMixture(2, random_state=0).fit(X)
    order = np.argsort(model.rates_[:, 0])[::-1]
    np.testing.assert_allclose(model.rates_[order, 0], RATES, rtol=0.1)  # measured: 0.4%
    stream = ExponentialMixture(2, random_state=0)
    for batch in np.array_split(X, 100):
        stream.partial_fit(batch)
    assert stream.n_seen_ == len(X)
    assert abs(stream.score(X) - model.score(X)) < 0.01 * abs(model.score(X))


def test_the_daemon_learns_it_across_a_crash(
    registered: None, tmp_path: Path, rng: np.random.Generator
) -> None:
    assert "exponential_mixture" in family_names()
    settings = Settings.model_validate(
        {
            "kafka": {"topics": ["waits"]},
            "input": {"format": "json", "features": ["wait"]},
            "batching": {"batch_size": 200, "max_wait_ms": 100},
            "model": {"family": "exponential_mixture", "n_components": 2, "init_size": 400},
            "state": {"dir": str(tmp_path / "state"), "checkpoint_every_batches": 2},
            "output": {"publish_every_batches": 1},
        }
    )
    log, sinks = FakeLog(), SinkFactory()
    waits = _waits(rng, 6000)
    for i, wait in enumerate(waits[:, 0].tolist()):
        log.append(("waits", i % 2), [json.dumps({"wait": wait}).encode()])
    harness = Harness(settings, log, sinks)
    harness.turns(15)
    harness = Harness(settings, log, sinks)  # a crash: a new daemon on the same state
    harness.drain()
    final = _snapshots(sinks)[-1]
    assert final["family"] == "exponential_mixture"
    assert final["n_seen"] == len(waits)
    schema = snapshot_schema(published_schema())  # the published schema with the plug-in
    jsonschema.Draft202012Validator(schema).validate(final)
    rates = np.sort(np.asarray(final["rates"])[:, 0])[::-1]
    print(f"rates {rates.tolist()} (true {RATES.tolist()})")
    np.testing.assert_allclose(rates, RATES, rtol=0.15)  # measured: 5.6% (6,000 waits)


def test_the_river_face_detects_an_absurd_wait(registered: None, rng: np.random.Generator) -> None:
    from streamem.river import FamilyDetector

    detector = FamilyDetector(ExponentialMixture(2, random_state=0, init_size=400))
    for wait in _waits(rng, 6000)[:, 0].tolist():
        detector.learn_one({"wait": wait})
    model = detector.model
    assert model.n_seen_ == 6000
    rates = np.sort(model.rates_[:, 0])[::-1]
    print(f"rates {rates.tolist()} (true {RATES.tolist()})")
    np.testing.assert_allclose(rates, RATES, rtol=0.15)  # measured: 5.1% (6,000 waits, one pass)
    usual, absurd = detector.score_one({"wait": 0.5}), detector.score_one({"wait": 500.0})
    assert usual == pytest.approx(-model.score_samples(np.array([[0.5]]))[0])
    assert absurd > usual + 40  # exp(-0.1 * 500): 50 nats less likely than a half-second wait
