"""river's own check suite on every river estimator that streamem exports.

This mirrors river's ``test_estimators.py``: every exported estimator class, instantiated with
each of its ``_unit_test_params``, plus pipelines, against every check of
``river.checks.yield_checks`` (which is what ``river.checks.check_estimator`` runs), minus the
``_unit_test_skips`` (each with its reason in its module's ``UNIT_TEST_SKIPS``).

Two departures from river's data, both because of what river feeds its checks:

* river feeds anomaly detectors ``datasets.CreditCard``, which is downloaded on first use; this
  machine is offline, so the checks get the bundled ``datasets.Shuttle`` (real sensor data, an
  ``anomaly`` label) instead, with the same number of rows;
* river feeds clusterers no data at all (only the data-free checks run), so the clusterer gets
  Shuttle rows too: the data checks (learn_one purity, shuffled / emerging / disappearing
  features, pickling, clone independence, state aliasing, memory growth...) then run on it.

The topic model's transformer gets what river gives a transformer (``datasets.TrumpApproval``,
bundled, its numbers read as counts) and documents of token counts.
"""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
from river import base, checks, datasets, preprocessing

import streamem.river
from streamem.synthetic_corpus import TopicCorpus


def _offline_datasets(model: base.Estimator, scale: int = 1) -> Iterator[Iterable[Any]]:
    """river's ``_yield_datasets`` for our estimators, with bundled data only.

    Anomaly detectors get as many rows as river gives them; clusterers, for which river has
    no budget, half as many.
    """
    if isinstance(model, streamem.river.PoissonHMMDetector | streamem.river.PoissonMixtureDetector):
        yield _count_readings(1000 * scale)
    elif isinstance(model, streamem.river.CategoricalHMMDetector):
        yield _status_codes(1000 * scale)
    elif isinstance(model, base.AnomalyDetector):
        yield datasets.Shuttle().take(1000 * scale)
    elif isinstance(model, base.Clusterer):
        yield datasets.Shuttle().take(500 * scale)
    elif isinstance(model, base.Transformer):
        yield datasets.TrumpApproval().take(200 * scale)  # what river gives a transformer
        yield _token_counts(200 * scale)


def _token_counts(n_documents: int) -> list[tuple[dict[str, float], None]]:
    """Documents as token counts, drawn from the LDA generative model (the topic model's
    own kind of input)."""
    rng = np.random.default_rng(0)
    counts, _ = TopicCorpus.random(n_topics=3, n_words=40, rng=rng).sample(
        n_documents, doc_length=30, rng=rng
    )
    return [
        ({f"w{j}": float(v) for j, v in zip(row.indices, row.data, strict=True)}, None)
        for row in counts
    ]


def _count_readings(n: int) -> list[tuple[dict[str, int], bool]]:
    """Events and errors per interval in two alternating regimes, 2% of them bursts (the
    anomalies): what a Poisson HMM detector reads (Shuttle has negative readings)."""
    rng = np.random.default_rng(0)
    busy = (np.arange(n) // 100) % 2 == 1
    counts = rng.poisson(np.where(busy[:, np.newaxis], [8.0, 3.0], [2.0, 0.5]))
    bursts = rng.random(n) < 0.02
    counts[bursts] += 25
    return [
        ({"events": int(a), "errors": int(b)}, bool(y))
        for (a, b), y in zip(counts.tolist(), bursts.tolist(), strict=True)
    ]


def _status_codes(n: int) -> list[tuple[dict[str, int], bool]]:
    """One status code per interval in two alternating regimes, 2% of them the rare fault
    code 3 (the anomalies)."""
    rng = np.random.default_rng(0)
    busy = (np.arange(n) // 100) % 2 == 1
    normal = np.where(
        busy, rng.choice(3, n, p=[0.1, 0.1, 0.8]), rng.choice(3, n, p=[0.8, 0.15, 0.05])
    )
    faults = rng.random(n) < 0.02
    codes = np.where(faults, 3, normal)
    codes[:4] = np.arange(4)  # the alphabet is the warm-up's
    return [
        ({"code": int(c)}, bool(y)) for c, y in zip(codes.tolist(), faults.tolist(), strict=True)
    ]


def exported_estimators() -> Iterator[base.Estimator]:
    for name in streamem.river.__all__:
        cls = getattr(streamem.river, name)
        if inspect.isclass(cls) and issubclass(cls, base.Estimator):
            for params in cls._unit_test_params():
                yield cls(**params)


def estimators_under_test() -> list[base.Estimator]:
    return [
        *exported_estimators(),
        preprocessing.StandardScaler() | streamem.river.GaussianMixtureClusterer(seed=42),
        preprocessing.StandardScaler() | streamem.river.GaussianMixtureDetector(seed=42),
    ]


def _checks(estimator: base.Estimator) -> list[Callable[..., None]]:
    with mock.patch.object(checks, "_yield_datasets", _offline_datasets):
        return [
            check
            for check in checks.yield_checks(estimator)
            if check.__name__ not in estimator._unit_test_skips()
        ]


CASES = [
    pytest.param(estimator, check, id=f"{estimator}:{check.__name__}")
    for estimator in estimators_under_test()
    for check in _checks(estimator)
]


def test_every_exported_estimator_is_checked() -> None:
    checked = {type(estimator).__name__ for estimator, _ in (case.values for case in CASES)}
    assert set(streamem.river.__all__) <= checked | {"Pipeline"}
    names = {check.__name__ for _, check in (case.values for case in CASES)}
    # the data checks run for both kinds, not only the data-free ones
    assert {"check_shuffle_features_no_impact", "check_bounded_memory_growth"} <= names
    assert "check_roc_auc" in names


def test_skips_have_reasons() -> None:
    for estimator in exported_estimators():
        for name in estimator._unit_test_skips():
            reasons = sys.modules[type(estimator).__module__].UNIT_TEST_SKIPS
            assert reasons[name].strip(), name


@pytest.mark.parametrize(("estimator", "check"), CASES)
def test_check_estimator(estimator: base.Estimator, check: Callable[..., None]) -> None:
    check(estimator.clone())


def test_check_estimator_as_a_whole() -> None:
    """The public entry point, on the default estimators, with the offline data."""
    for cls in (
        streamem.river.GaussianMixtureClusterer,
        streamem.river.GaussianMixtureDetector,
        streamem.river.LDATransformer,
    ):
        model = cls(seed=3, batch_size=20)
        with mock.patch.object(checks, "_yield_datasets", _small_datasets):
            checks.check_estimator(model)


def _small_datasets(model: base.Estimator, scale: int = 1) -> Iterator[Iterable[Any]]:
    if isinstance(model, base.Transformer):  # counts >= 0: Shuttle has negative readings
        yield _token_counts(300 * scale)
    else:
        yield itertools.islice(datasets.Shuttle(), 300 * scale)
