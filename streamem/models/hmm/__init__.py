"""Hidden Markov model family: the Gaussian HMM, forward-backward scans and starts."""

from streamem.models.protocol import FamilySpec

GAUSSIAN_HMM = FamilySpec(
    name="gaussian_hmm",
    estimator="streamem.models.hmm.gaussian_hmm:GaussianHMM",
    options=(
        "n_components",
        "covariance_type",
        "reg_covar",
        "init_size",
        "seed",
        "schedule",
        "averaging_start",
    ),
    snapshot="gaussian_hmm.snapshot.json",
    sequential=True,
    scorable_alone=False,
    structural=("n_components", "covariance_type"),
    results="streamem.models.hmm.results:HMM_RESULTS",
)
"""The Gaussian HMM's declaration (see :class:`~streamem.models.protocol.FamilySpec`)."""


_TABLE_HMM_OPTIONS = ("n_components", "init_size", "seed", "schedule", "averaging_start")


def _table_hmm(name: str, estimator: str, *emission_options: str) -> FamilySpec:
    """An HMM over a table emission: sequential, its number of states structural."""
    return FamilySpec(
        name=name,
        estimator=f"streamem.models.hmm.{estimator}",
        options=(
            "n_components",
            "init_size",
            "seed",
            "schedule",
            "averaging_start",
            *emission_options,
        ),
        snapshot=f"{name}.snapshot.json",
        sequential=True,
        scorable_alone=False,
        structural=("n_components",),
        results="streamem.models.hmm.results:HMM_RESULTS",
    )


POISSON_HMM = _table_hmm("poisson_hmm", "poisson_hmm:PoissonHMM")
"""The Poisson HMM's declaration (counts per interval, one rate per state and feature)."""

CATEGORICAL_HMM = _table_hmm("categorical_hmm", "categorical_hmm:CategoricalHMM", "n_symbols")
"""The categorical HMM's declaration (one status code per step)."""
