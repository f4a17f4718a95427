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
)
"""The Gaussian HMM's declaration (see :class:`~streamem.models.protocol.FamilySpec`)."""
