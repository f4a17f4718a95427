"""A view of any family's model for ``inspect`` and ``plot``, through the model protocol.

A model reaches the commands as a model document (a family's ``to_dict``, loaded with
:func:`~streamem.models.registry.model_from_dict`) or as snapshots that the daemon published.
Either way the family's parameters are its branch of the snapshot schema
(:meth:`~streamem.models.protocol.StreamingModel.parameters_document`), and the schema describes
each field; :class:`ModelView` prints them by their shape, with no knowledge of the family:
scalars above the tables, vectors and matrices as tables titled by their schema description,
state or component means with their standard deviations, and a topic model's topics as their
top words. Gaussian mixtures keep their own richer table (:mod:`streamem.commands.summary`).

Examples
--------
>>> import numpy as np
>>> from streamem import GaussianHMM
>>> Y = np.random.default_rng(0).normal(size=(300, 2))
>>> view = ModelView.from_model(GaussianHMM(2, random_state=0).fit(Y), name="hmm")
>>> view.family, view.features, np.shape(view.parameters["transmat"])
('gaussian_hmm', ('x0', 'x1'), (2, 2))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamem.commands.summary import (
    CurvePoint,
    fact_text,
    monitor_curve,
    plus_minus,
    snapshot_curve,
    snapshot_facts,
)
from streamem.errors import ValidationError
from streamem.models.common import covariance as cov
from streamem.models.protocol import StreamingModel
from streamem.service.snapshot import snapshot_fields, snapshot_schema

__all__ = ["ModelView"]

_FACT_FIELDS = ("covariance_type", "n_components", "n_dim_state", "n_dim_obs", "em_vars")
"""Parameters printed with the facts above the tables rather than as a table."""


@dataclass(frozen=True)
class ModelView:
    """Any family's model, ready to print or draw.

    ``parameters`` are the family's fields of the snapshot document; ``model`` is the estimator
    when the view comes from a model document (it can then run over data: a state sequence, a
    filtered track), None for published snapshots.
    """

    name: str
    family: str
    features: tuple[str, ...]
    parameters: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    curve: tuple[CurvePoint, ...] = ()
    n_updates: int | None = None
    model: StreamingModel | None = None

    @classmethod
    def from_model(cls, model: StreamingModel, name: str = "model") -> ModelView:
        """The view of a fitted estimator of any family (its monitor gives the curve)."""
        status = model.status
        if not status.initialized:
            raise ValidationError(
                f"model {name!r} ({model.family}) is still warming up: {status.n_warmup:,} "
                "units buffered, no parameters yet"
            )
        parameters = model.parameters_document()
        names = getattr(model, "feature_names_in_", None)
        n_features = int(getattr(model, "n_features_in_", 0))
        features = tuple(names) if names is not None else tuple(f"x{i}" for i in range(n_features))
        last = model.monitor_.last
        facts: dict[str, Any] = {"points seen": status.n_seen, "updates": status.n_updates}
        if last is not None:
            facts["mean log-likelihood"] = last.mean_log_likelihood
        facts["converged"] = status.converged
        return cls(
            name=name,
            family=model.family,
            features=features,
            parameters=parameters,
            facts=facts,
            curve=monitor_curve(model.monitor_, status.n_seen),
            n_updates=status.n_updates,
            model=model,
        )

    @classmethod
    def from_snapshots(cls, snapshots: Sequence[Mapping[str, Any]]) -> ModelView:
        """The view of the newest of published snapshots; all of them give the curve."""
        if not snapshots:
            raise ValidationError("no model snapshot to show")
        last = snapshots[-1]
        family = str(last.get("family"))
        try:
            names = snapshot_fields(family)
        except ValueError as error:
            raise ValidationError(f"model snapshot: {error}") from None
        common = set(snapshot_schema()["required"])
        try:
            parameters = {name: last[name] for name in names if name not in common}
            return cls(
                name=str(last["model"]),
                family=family,
                features=tuple(last["features"]),
                parameters=parameters,
                facts=snapshot_facts(last),
                curve=snapshot_curve(snapshots),
            )
        except KeyError as error:
            raise ValidationError(f"model snapshot: {error.args[0]} is missing") from None

    def renderables(self) -> list[Any]:
        """What ``inspect`` prints, as rich renderables: a title line, each vector or matrix
        parameter as a table under its description in the snapshot schema (the state or
        component means with their standard deviations, a topic model's top words), then the
        scalar parameters and the facts."""
        from rich.text import Text

        described = snapshot_schema()["properties"]
        shown: list[Any] = [Text(f"{self.name}: a {self.family} model", style="bold")]
        facts = {key: self.parameters[key] for key in _FACT_FIELDS if key in self.parameters}
        for key, value in self.parameters.items():
            if key in _FACT_FIELDS or key == "covariances":
                continue
            if _is_scalar(value) or (not _is_topic_list(value) and np.size(value) == 1):
                facts[key] = value if _is_scalar(value) else float(np.ravel(value)[0])
                continue
            description = described.get(key, {}).get("description", "")
            shown.append(Text.assemble((key, "bold"), f": {description}"))
            if key == "means" and "covariances" in self.parameters:
                shown.append(self._means_table())
            elif _is_topic_list(value):
                shown.append(_topics_table(value, self.parameters.get("topic_weights")))
            else:
                shown.append(_array_table(key, np.asarray(value, dtype=float)))
        facts.update(self.facts)
        shown.append(
            Text(
                ", ".join(
                    f"{key.replace('_', ' ')} {fact_text(value)}" for key, value in facts.items()
                )
            )
        )
        return shown

    def _means_table(self) -> Any:
        from rich.table import Table

        means = np.asarray(self.parameters["means"], dtype=float)
        k, d = means.shape
        kind = cov.check_covariance_type(str(self.parameters.get("covariance_type", "full")))
        covariances = np.asarray(self.parameters["covariances"], dtype=float)
        sds = np.sqrt(np.diagonal(cov.full_matrices(covariances, kind, k, d), axis1=1, axis2=2))
        names = self.features if len(self.features) == d else [f"x{i}" for i in range(d)]
        table = Table()
        table.add_column("state", justify="right")
        for name in names:
            table.add_column(f"{name} mean ± sd", justify="right")
        for j in range(k):
            cells = [plus_minus(m, s) for m, s in zip(means[j], sds[j], strict=True)]
            table.add_row(str(j), *cells)
        return table


def _array_table(key: str, array: np.ndarray) -> Any:
    """A vector as one row, a matrix as its rows, labelled by position."""
    from rich.table import Table

    rows = array.reshape(1, -1) if array.ndim == 1 else array.reshape(len(array), -1)
    table = Table()
    table.add_column("", justify="right")
    for j in range(rows.shape[1]):
        table.add_column(str(j), justify="right")
    labels = [key] if array.ndim == 1 else [str(i) for i in range(len(rows))]
    for label, row in zip(labels, rows, strict=True):
        table.add_row(label, *(f"{v:.4g}" for v in row))
    return table


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, list | tuple | dict)


def _is_topic_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _topics_table(topics: list[dict[str, Any]], weights: Any) -> Any:
    from rich.table import Table

    table = Table()
    table.add_column("topic", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("top words (weight in the topic)")
    for k, topic in enumerate(topics):
        words = topic.get("words") or [str(c) for c in topic.get("columns", [])]
        pairs = zip(words, topic.get("weights", [math.nan] * len(words)), strict=False)
        share = f"{float(weights[k]):.3f}" if weights is not None else ""
        table.add_row(str(k), share, ", ".join(f"{w} ({p:.3f})" for w, p in pairs))
    return table
