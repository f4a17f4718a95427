"""streamem: streaming (stepwise) EM for latent-variable models.

``import streamem`` needs numpy only; the models (``streamem.GaussianMixture``,
``streamem.GaussianHMM``, ``streamem.LinearGaussianSSM``, ``streamem.LatentDirichletAllocation``)
load scikit-learn's estimator base class the first time they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamem.engine import Constant, ConvergenceMonitor, HalfLife, PowerDecay, StepwiseEM
from streamem.errors import NotFittedError, StreamemError, ValidationError

if TYPE_CHECKING:
    from streamem.models.hmm.gaussian_hmm import GaussianHMM
    from streamem.models.mixture.gaussian_mixture import GaussianMixture
    from streamem.models.state_space.linear_gaussian_ssm import LinearGaussianSSM
    from streamem.models.topics.lda import LatentDirichletAllocation

__version__ = "0.1.0"
__all__ = [
    "Constant",
    "ConvergenceMonitor",
    "GaussianHMM",
    "GaussianMixture",
    "HalfLife",
    "LatentDirichletAllocation",
    "LinearGaussianSSM",
    "NotFittedError",
    "PowerDecay",
    "StepwiseEM",
    "StreamemError",
    "ValidationError",
]


def __getattr__(name: str) -> Any:
    if name == "GaussianMixture":
        from streamem.models.mixture.gaussian_mixture import GaussianMixture

        return GaussianMixture
    if name == "GaussianHMM":
        from streamem.models.hmm.gaussian_hmm import GaussianHMM

        return GaussianHMM
    if name == "LinearGaussianSSM":
        from streamem.models.state_space.linear_gaussian_ssm import LinearGaussianSSM

        return LinearGaussianSSM
    if name == "LatentDirichletAllocation":
        from streamem.models.topics.lda import LatentDirichletAllocation

        return LatentDirichletAllocation
    raise AttributeError(f"module 'streamem' has no attribute {name!r}")
