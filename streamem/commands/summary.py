"""One view of a learned mixture, whatever document it came from, and its printout.

A model reaches the commands in three forms: a :class:`~streamem.GaussianMixture` (``fit``), its
JSON file (``GaussianMixture.to_json``), or a snapshot that the daemon published (a JSON document
of :mod:`streamem.service.snapshot`, also one line of the demo's ``snapshots.ndjson``).
:class:`MixtureSummary` holds what ``inspect`` prints and ``plot`` draws, from any of them.

Examples
--------
>>> import numpy as np
>>> from streamem import GaussianMixture
>>> X = np.random.default_rng(0).normal(size=(200, 2))
>>> summary = MixtureSummary.from_model(GaussianMixture(2, random_state=0).fit(X))
>>> summary.features, summary.covariances.shape
(('x0', 'x1'), (2, 2, 2))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamem.engine.monitor import ConvergenceMonitor
from streamem.errors import ValidationError
from streamem.models.common import covariance as cov
from streamem.models.mixture.document import FORMAT, check_mixture_parameters
from streamem.models.mixture.gaussian_mixture import GaussianMixture
from streamem.models.registry import family_names

if TYPE_CHECKING:
    from streamem.commands.views import ModelView

MIXTURE = GaussianMixture.family

__all__ = [
    "CurvePoint",
    "MixtureSummary",
    "fact_text",
    "load_summary",
    "load_view",
    "monitor_curve",
    "plus_minus",
    "read_documents",
    "snapshot_curve",
    "snapshot_facts",
    "view_of_snapshots",
]


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve: the mean log-likelihood after ``n_seen`` points."""

    n_seen: int
    mean_log_likelihood: float
    smoothed_log_likelihood: float
    drift: bool = False


@dataclass(frozen=True)
class MixtureSummary:
    """A Gaussian mixture ready to print or draw.

    ``covariances`` are full matrices ``(n_components, n_features, n_features)`` whatever the
    model's covariance type; ``facts`` are the labelled values printed above the table (points
    seen, version, log-likelihood, ...); ``curve`` is the learning curve, oldest first.
    """

    name: str
    covariance_type: str
    features: tuple[str, ...]
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    facts: dict[str, Any] = field(default_factory=dict)
    curve: tuple[CurvePoint, ...] = ()
    n_updates: int | None = None
    """The number of updates the model made, when the curve may hold only the newest of them
    (a model file keeps its newest 100); None when the curve is complete (snapshots)."""

    @classmethod
    def from_model(cls, model: GaussianMixture, name: str = "model") -> MixtureSummary:
        """Summarise a fitted :class:`~streamem.GaussianMixture` (its monitor gives the curve)."""
        k, d = model.means_.shape
        covariance_type = cov.check_covariance_type(model.covariance_type)
        names = getattr(model, "feature_names_in_", None)
        features = tuple(names) if names is not None else tuple(f"x{i}" for i in range(d))
        n_seen = int(getattr(model, "n_seen_", 0))
        last = model.monitor_.last
        if last is not None:  # stepwise EM: the last mini-batch's
            facts: dict[str, Any] = {"updates": int(model.n_iter_)}
            log_likelihood = last.mean_log_likelihood
        else:  # batch EM: its iterations, and the mean log-likelihood of the data it fitted
            facts = {"EM iterations": int(model.n_iter_)}
            log_likelihood = float(model.lower_bound_)
        facts = {
            "points seen": n_seen,
            **facts,
            "mean log-likelihood": log_likelihood,
            "converged": bool(model.converged_),
        }
        return cls(
            name=name,
            covariance_type=covariance_type,
            features=features,
            weights=np.asarray(model.weights_, dtype=float),
            means=np.asarray(model.means_, dtype=float),
            covariances=cov.full_matrices(
                np.asarray(model.covariances_, dtype=float), covariance_type, k, d
            ),
            facts=facts,
            curve=monitor_curve(model.monitor_, n_seen),
            n_updates=int(model.n_iter_) if last is not None else None,
        )

    @classmethod
    def from_snapshots(cls, snapshots: Sequence[Mapping[str, Any]]) -> MixtureSummary:
        """Summarise the newest of published snapshots; all of them give the curve."""
        if not snapshots:
            raise ValidationError("no model snapshot to summarise")
        last = snapshots[-1]
        _check_mixture_family(last.get("family", MIXTURE))
        try:
            k, d = int(last["n_components"]), int(last["n_features"])
            covariance_type = cov.check_covariance_type(last["covariance_type"])
            check_mixture_parameters(last, covariance_type, k, d, "model snapshot", "")
            if len(last["features"]) != d:
                raise ValidationError(
                    f"model snapshot: features must hold n_features = {d} names, got "
                    f"{len(last['features'])}"
                )
            covariances = np.asarray(last["covariances"], dtype=float)
            summary = cls(
                name=str(last["model"]),
                covariance_type=covariance_type,
                features=tuple(last["features"]),
                weights=np.asarray(last["weights"], dtype=float),
                means=np.asarray(last["means"], dtype=float),
                covariances=cov.full_matrices(covariances, covariance_type, k, d),
                facts=snapshot_facts(last),
                curve=snapshot_curve(snapshots),
            )
        except ValidationError:
            raise
        except KeyError as error:
            raise ValidationError(f"model snapshot: {error.args[0]} is missing") from None
        except (TypeError, ValueError) as error:
            raise ValidationError(f"not a streamem model snapshot: {error}") from None
        return summary

    def table(self) -> Any:
        """A :class:`rich.table.Table`: one row per component, heaviest first."""
        from rich.table import Table

        facts = ", ".join(f"{key} {fact_text(value)}" for key, value in self.facts.items())
        table = Table(
            title=f"{self.name}: {len(self.weights)} {self.covariance_type}-covariance components",
            caption=facts,
        )
        table.add_column("component", justify="right")
        table.add_column("weight", justify="right")
        for feature in self.features:
            table.add_column(f"{feature} mean ± sd", justify="right")
        sds = np.sqrt(np.diagonal(self.covariances, axis1=1, axis2=2))
        for j in np.argsort(-self.weights):
            cells = [plus_minus(m, s) for m, s in zip(self.means[j], sds[j], strict=True)]
            table.add_row(str(j), f"{self.weights[j]:.3f}", *cells)
        return table


def plus_minus(mean: float, sd: float) -> str:
    """``mean ± sd`` with two significant digits of ``sd`` and the mean to the same decimal.

    >>> plus_minus(56.0123, 4.04), plus_minus(0.25123, 0.0634), plus_minus(1234.5, 210.0)
    ('56.0 ± 4.0', '0.251 ± 0.063', '1234 ± 210')
    """
    decimals = max(0, 1 - math.floor(math.log10(sd))) if sd > 0 and math.isfinite(sd) else 3
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def fact_text(value: Any) -> str:
    """A fact's value as printed: floats to 4 decimals, integers with thousands separators."""
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def monitor_curve(monitor: ConvergenceMonitor, n_seen: int) -> tuple[CurvePoint, ...]:
    """The learning curve of a model's monitor (its newest records), ending at ``n_seen``."""
    curve, seen = [], n_seen - sum(record.n_points for record in monitor.history)
    for record in monitor.history:
        seen += record.n_points
        curve.append(CurvePoint(seen, record.mean_log_likelihood, record.smoothed_log_likelihood))
    return tuple(curve)


def snapshot_facts(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a published snapshot printed above its tables (any family)."""
    return {
        "version": snapshot["version"],
        "points seen": snapshot["n_seen"],
        "batches": snapshot["n_batches"],
        "mean log-likelihood": snapshot["mean_log_likelihood"],
        "smoothed": snapshot["smoothed_log_likelihood"],
        "step size": snapshot["step_size"],
        "converged": snapshot["converged"],
        "drift events": snapshot["drift_events"],
    }


def snapshot_curve(snapshots: Sequence[Mapping[str, Any]]) -> tuple[CurvePoint, ...]:
    """The learning curve of published snapshots, one point per version."""
    return tuple(
        CurvePoint(
            int(s["n_seen"]),
            float(s["mean_log_likelihood"]),
            float(s["smoothed_log_likelihood"]),
            bool(s["drift"]),
        )
        for s in snapshots
    )


def read_documents(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a model file, a snapshot file or an NDJSON file of snapshots.

    Raises
    ------
    ValidationError
        If the file is missing, holds no JSON object, or its last object is neither a
        streamem model document (a ``format`` key) nor a snapshot (a ``schema_version`` key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"cannot read {str(path)!r}: {error.strerror}") from None
    try:
        documents = [json.loads(text)]
    except ValueError:  # NDJSON: one snapshot per line
        try:
            documents = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise ValidationError(f"{str(path)!r} is neither JSON nor NDJSON: {error}") from None
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise ValidationError(f"{str(path)!r} holds no JSON object")
    last = documents[-1]
    if "format" not in last and "schema_version" not in last:
        raise ValidationError(
            f"{str(path)!r} holds neither a {FORMAT} model (no 'format' key) nor a model "
            "snapshot (no 'schema_version' key)"
        )
    return documents


def load_summary(path: str | Path) -> MixtureSummary:
    """Read a Gaussian mixture's model JSON file, snapshot JSON file, or NDJSON of snapshots.

    Raises
    ------
    ValidationError
        If the file is missing or is none of these (another family's: :func:`load_view`).
    """
    path = Path(path)
    documents = read_documents(path)
    last = documents[-1]
    if "format" in last:
        if last["format"] != FORMAT:
            _check_mixture_family(str(last["format"]))
        model = GaussianMixture.from_dict(last)
        if not hasattr(model, "weights_"):
            raise ValidationError(f"{str(path)!r} holds a model that was never fitted")
        return MixtureSummary.from_model(model, name=path.stem)
    return MixtureSummary.from_snapshots(documents)


def load_view(path: str | Path) -> MixtureSummary | ModelView:
    """Read any family's model file, snapshot file or NDJSON of snapshots: a Gaussian
    mixture's :class:`MixtureSummary`, another family's :class:`~streamem.commands.views.ModelView`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from streamem import LinearGaussianSSM
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "level.json"
    >>> model = LinearGaussianSSM(n_dim_state=1).partial_fit(np.cumsum(np.ones(50)))
    >>> _ = path.write_text(model.to_json())
    >>> load_view(path).family
    'linear_gaussian_ssm'
    """
    from streamem.commands.views import ModelView
    from streamem.models.registry import model_from_dict

    path = Path(path)
    documents = read_documents(path)
    last = documents[-1]
    if last.get("format", FORMAT) == FORMAT and last.get("family", MIXTURE) == MIXTURE:
        return load_summary(path)
    if "format" in last:
        return ModelView.from_model(model_from_dict(last), name=path.stem)
    return view_of_snapshots(documents)


def view_of_snapshots(snapshots: Sequence[Mapping[str, Any]]) -> MixtureSummary | ModelView:
    """The view of published snapshots of any family, as :func:`load_view`."""
    from streamem.commands.views import ModelView

    if snapshots and snapshots[-1].get("family", MIXTURE) != MIXTURE:
        return ModelView.from_snapshots(snapshots)
    return MixtureSummary.from_snapshots(snapshots)


def _check_mixture_family(family: str) -> None:
    """The summary is a mixture's table; another streamem family's document (a snapshot's
    ``family``, a model's ``format``) is named, not misread."""
    other_family = family in family_names() or family.startswith("streamem.")
    if other_family and family not in (MIXTURE, FORMAT):
        raise ValidationError(
            f"this is a {family!r} model, not a Gaussian mixture: load_view reads every family"
        )
