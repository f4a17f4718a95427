"""A known sticky Gaussian HMM and its samples, shared by the HMM tests."""

from __future__ import annotations

import numpy as np

from streamem import GaussianHMM


def sticky_hmm(
    rng: np.random.Generator, n_components: int = 3, n_features: int = 2, stay: float = 0.9
) -> GaussianHMM:
    """A full-covariance HMM with well-separated means and transmat ``stay`` on the diagonal."""
    k, d = n_components, n_features
    model = GaussianHMM(k, covariance_type="full", random_state=int(rng.integers(1 << 30)))
    model.startprob_ = np.full(k, 1.0 / k)
    transmat = np.full((k, k), (1.0 - stay) / (k - 1))
    np.fill_diagonal(transmat, stay)
    model.transmat_ = transmat
    model.means_ = rng.normal(0.0, 3.0, (k, d))
    factors = rng.normal(size=(k, d, d))
    model.covars_ = factors @ factors.swapaxes(1, 2) / d + 0.5 * np.eye(d)
    return model


def sample_sequences(
    model: GaussianHMM, lengths: list[int], seed: int
) -> tuple[np.ndarray, list[int]]:
    """Independent sequences of the given lengths, concatenated."""
    parts = [model.sample(n, random_state=seed + i)[0] for i, n in enumerate(lengths)]
    return np.concatenate(parts), lengths


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference relative to the array's scale."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
