"""Mixture family: the Gaussian mixture, its E-step/M-step, starts, one-row step and document."""

from streamem.models.protocol import FamilySpec

GAUSSIAN_MIXTURE = FamilySpec(
    name="gaussian_mixture",
    estimator="streamem.models.mixture.gaussian_mixture:GaussianMixture",
    options=(
        "n_components",
        "covariance_type",
        "reg_covar",
        "init_size",
        "n_init",
        "seed",
        "schedule",
        "averaging_start",
    ),
    snapshot="gaussian_mixture.snapshot.json",
    structural=("n_components", "covariance_type"),
    results="streamem.models.mixture.results:GAUSSIAN_MIXTURE_RESULTS",
)
"""The Gaussian mixture's declaration (see :class:`~streamem.models.protocol.FamilySpec`)."""

POISSON_MIXTURE = FamilySpec(
    name="poisson_mixture",
    estimator="streamem.models.mixture.poisson_mixture:PoissonMixture",
    options=("n_components", "init_size", "seed", "schedule", "averaging_start"),
    snapshot="poisson_mixture.snapshot.json",
    structural=("n_components",),
    results="streamem.models.mixture.results:POISSON_MIXTURE_RESULTS",
)
"""The Poisson mixture's declaration (counts per interval, independent rows)."""
