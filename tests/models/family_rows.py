"""Rows of the kind each family reads, for the tests that run over every registered family
(a new family whose rows are not real-valued readings adds its case here)."""

from __future__ import annotations

import numpy as np

from streamem.synthetic import random_mixture_sample
from streamem.synthetic_corpus import TopicCorpus


def rows_for(family: str, rng: np.random.Generator, n: int, n_features: int = 2) -> np.ndarray:
    """``n`` rows for ``family``: documents' counts (lda), counts in two regimes (Poisson),
    one column of symbols 0..5 in two regimes that alternate every 20 steps, so that every
    symbol shows early (categorical), else readings of a two-component Gaussian mixture."""
    regimes = np.repeat([0.5, 4.0], [n // 2, n - n // 2])
    if family == "lda":
        counts, _ = TopicCorpus.random(2, 20, rng).sample(n, doc_length=30, rng=rng)
        return np.asarray(counts.toarray(), dtype=np.float64)
    if family in ("poisson_hmm", "poisson_mixture"):
        rates = regimes[:, np.newaxis] * np.ones(n_features)
        return rng.poisson(rates).astype(np.float64)
    if family == "categorical_hmm":
        alternating = np.where(np.arange(n) // 20 % 2 == 0, 0.5, 4.0)
        symbols = np.minimum(rng.poisson(alternating), 5)
        symbols[:6] = np.arange(6)  # the alphabet is the warm-up's
        return symbols.astype(np.float64)[:, np.newaxis]
    X, _ = random_mixture_sample(rng, n, n_features=n_features, n_components=2, spread=4.0)
    return np.asarray(X, dtype=np.float64)
