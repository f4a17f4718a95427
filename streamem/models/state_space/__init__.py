"""Linear-Gaussian state space family: the Kalman filter, RTS smoother and its EM."""

from streamem.models.protocol import FamilySpec

LINEAR_GAUSSIAN_SSM = FamilySpec(
    name="linear_gaussian_ssm",
    estimator="streamem.models.state_space.linear_gaussian_ssm:LinearGaussianSSM",
    options=("covariance_type", "schedule", "averaging_start"),
    snapshot="linear_gaussian_ssm.snapshot.json",
    sequential=True,
    scorable_alone=False,
    results="streamem.models.state_space.results:SSM_RESULTS",
)
"""The linear-Gaussian state space model's declaration (see
:class:`~streamem.models.protocol.FamilySpec`)."""
