"""river adapters: streamem's models as river online learners.

``import streamem`` does not import river; ``import streamem.river`` does. Each family has its
module (:mod:`streamem.river.mixture` for the Gaussian mixture, :mod:`streamem.river.hmm` for
the Gaussian hidden Markov model, :mod:`streamem.river.counts` for the Poisson and categorical
ones, :mod:`streamem.river.state_space` for the linear-Gaussian
state space model, :mod:`streamem.river.topics` for the topic model), and
:mod:`streamem.river.family` gives any family whose rows can be scored alone (a family of your
own too) an anomaly detector from the model protocol; this package exports their estimators.
"""

from streamem.river.counts import (
    CategoricalHMMDetector,
    PoissonHMMDetector,
    PoissonMixtureDetector,
)
from streamem.river.family import FamilyDetector
from streamem.river.hmm import GaussianHMMClusterer, GaussianHMMDetector
from streamem.river.mixture import GaussianMixtureClusterer, GaussianMixtureDetector
from streamem.river.state_space import KalmanDetector
from streamem.river.topics import LDATransformer

__all__ = [
    "CategoricalHMMDetector",
    "FamilyDetector",
    "GaussianHMMClusterer",
    "GaussianHMMDetector",
    "GaussianMixtureClusterer",
    "GaussianMixtureDetector",
    "KalmanDetector",
    "LDATransformer",
    "PoissonHMMDetector",
    "PoissonMixtureDetector",
]
