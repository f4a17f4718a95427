"""Statistics shares: what one shard of the data (a Kafka partition) adds to one global model.

A model backed by a stepwise engine keeps its statistics as a running average ``s`` over the
``n`` units it learned. A shard's :class:`Share` is that average with its unit count and its
effective count. Shares merge by the count-weighted average ``sum_p n_p s_p / sum_p n_p``, and
the global parameters are the M-step of that average scaled to the summed effective counts
(:func:`merged`). With the equal-weight step ``eta = m / (n + m)`` the merged average is the
average over every unit of every shard: what one model would hold for the same units (each
E-step with the parameters it was given). With a forgetting schedule each shard forgets on its
own count, which the merge weighs as it weighs equal-weight shards: an approximation.

Examples
--------
>>> import numpy as np
>>> from streamem.models.mixture.gaussian_mixture import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-3, 1, (600, 1)), rng.normal(3, 1, (600, 1))])
>>> rng.shuffle(X)
>>> first = GaussianMixture(2, init_size=200, random_state=0).partial_fit(X[:600])
>>> second = start_like(first)
>>> _ = second.partial_fit(X[600:])
>>> shares = [share_of(first), share_of(second)]
>>> [share.n_seen for share in shares]
[600, 600]
>>> model = merged(start_like(first), shares)
>>> model.status.n_seen, sorted(np.round(model.means_.ravel()).tolist())
(1200, [-3.0, 3.0])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from streamem.errors import ValidationError
from streamem.models.base import EngineBackedModel

__all__ = ["Share", "adopt_parameters", "merged", "share_of", "start_like"]

M = TypeVar("M")


@dataclass(frozen=True)
class Share:
    """One shard's running statistics as JSON data.

    Attributes
    ----------
    stats
        The running average of the statistics (the family's statistics record, ``to_dict``).
    n_seen
        Units behind it.
    effective_count
        Kish's effective count of those units (``n_seen`` under equal weights).
    n_updates
        Stepwise updates behind it.
    """

    stats: dict[str, Any]
    n_seen: int
    effective_count: float
    n_updates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON data that :meth:`from_dict` reads."""
        return {
            "stats": self.stats,
            "n_seen": self.n_seen,
            "effective_count": self.effective_count,
            "n_updates": self.n_updates,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Share:
        """Read :meth:`to_dict`'s output."""
        return cls(
            dict(data["stats"]),
            int(data["n_seen"]),
            float(data["effective_count"]),
            int(data["n_updates"]),
        )


def _engine_model(model: Any) -> EngineBackedModel:
    if not isinstance(model, EngineBackedModel) or not hasattr(model, "engine_"):
        raise ValidationError(
            f"statistics can be shared only by an engine-backed model that has learned; got "
            f"{type(model).__name__}"
        )
    return model


def share_of(model: Any) -> Share | None:
    """The model's share, or None while it has no statistics (warming up)."""
    if not isinstance(model, EngineBackedModel) or not hasattr(model, "engine_"):
        return None
    engine = model.engine_
    if engine.stats is None or engine.n_seen == 0:
        return None
    return Share(
        engine.stats.to_dict(), int(engine.n_seen), float(engine.effective_count), engine.step
    )


def start_like(model: M) -> M:
    """A copy of ``model`` that starts from its parameters with no statistics, no carry and no
    counts (its next update takes ``eta = 1``): a new shard of the same global model."""
    clone = copy.deepcopy(model)
    engine = _engine_model(clone).engine_
    engine.initialize(engine.params)
    engine.step = 0
    return clone


def adopt_parameters(model: Any, source: Any) -> None:
    """Make ``model``'s next E-step use ``source``'s parameters; its statistics stay."""
    target = _engine_model(model).engine_
    params = _engine_model(source).engine_.params
    if target.stats is None:
        target.initialize(params)
    else:
        target.replace(params, target.stats)


def merged(model: M, shares: Sequence[Share], latest: Any = None) -> M:
    """``model`` (its family and hyper-parameters) given the merged statistics of ``shares``
    and their M-step, in place; its fitted attributes follow.

    Its ``n_seen`` and ``n_updates`` are the shares' totals, its monitor a copy of the
    ``latest`` model's (the shard that learned last), if given. Of no shares, ``model`` itself.

    Raises
    ------
    ValidationError
        If the model is not engine-backed.
    """
    engine = _engine_model(model).engine_
    if not shares:
        return model
    family = engine.family
    total = sum(share.n_seen for share in shares)
    summed = None
    for share in shares:
        stats = family.stats_type.from_dict(share.stats).scaled(share.n_seen / total)
        summed = stats if summed is None else summed + stats
    assert summed is not None
    effective = sum(share.effective_count for share in shares)
    params = family.maximize(summed.scaled(effective))
    engine.initialize(params, summed, n_units=total)
    engine.step = sum(share.n_updates for share in shares)
    if latest is not None:
        engine.monitor = copy.deepcopy(_engine_model(latest).engine_.monitor)
    _engine_model(model)._refresh_fitted()
    return model
