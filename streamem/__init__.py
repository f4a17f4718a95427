"""streamem: streaming (stepwise) EM for latent-variable models.

``import streamem`` needs numpy only; the models (one per family of
:mod:`streamem.models.registry`: ``streamem.GaussianMixture``, ``streamem.GaussianHMM``, ...)
load scikit-learn's estimator base class the first time they are used.
"""

from __future__ import annotations

from typing import Any

from streamem.engine import Constant, ConvergenceMonitor, HalfLife, PowerDecay, StepwiseEM
from streamem.errors import NotFittedError, StreamemError, ValidationError
from streamem.models.registry import estimator_specs

__version__ = "0.1.0"
__all__ = [
    "Constant",
    "ConvergenceMonitor",
    "HalfLife",
    "NotFittedError",
    "PowerDecay",
    "StepwiseEM",
    "StreamemError",
    "ValidationError",
    *estimator_specs(),
]


def __getattr__(name: str) -> Any:
    spec = estimator_specs().get(name)
    if spec is None:
        raise AttributeError(f"module 'streamem' has no attribute {name!r}")
    return spec.load()
