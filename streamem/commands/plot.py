"""``streamem plot``: a mixture over its data, and its learning curve, in one PNG.

The left panel shows two features: a sample of the data as grey dots and every component as
ellipses at one and two standard deviations around its mean, labelled with its weight. The
right panel shows the mean log-likelihood per point of each update (the learning curve) against
the points learned, its smoothed value, and the drifts the daemon detected.

Examples
--------
>>> import tempfile, pathlib
>>> from streamem import GaussianMixture
>>> from streamem.commands.summary import MixtureSummary
>>> X = np.random.default_rng(0).normal(size=(500, 3))
>>> model = GaussianMixture(2, init_size=100, random_state=0)
>>> for batch in np.split(X, 5):
...     _ = model.partial_fit(batch)
>>> out = pathlib.Path(tempfile.mkdtemp()) / "model.png"
>>> plot_summary(MixtureSummary.from_model(model), out, data=X).name
'model.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamem.commands.summary import MixtureSummary
from streamem.errors import ValidationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_summary", "separating_features"]

_SIGMAS = (1.0, 2.0)


def separating_features(summary: MixtureSummary) -> tuple[str, str]:
    """The two features whose component means stand furthest apart, in units of their spread.

    Examples
    --------
    >>> from streamem.commands.summary import MixtureSummary
    >>> summary = MixtureSummary("m", "full", ("a", "b", "c"), np.array([0.5, 0.5]),
    ...                          np.array([[0.0, 0.0, 0.0], [5.0, 0.1, 3.0]]),
    ...                          np.stack([np.eye(3), np.eye(3)]))
    >>> separating_features(summary)
    ('a', 'c')
    """
    if len(summary.features) < 2:
        raise ValidationError("a plot needs a model of at least two features")
    spread = np.sqrt(
        np.average(
            np.diagonal(summary.covariances, axis1=1, axis2=2), axis=0, weights=summary.weights
        )
    )
    separation = np.std(summary.means, axis=0) / spread
    first, second = sorted(np.argsort(-separation, kind="stable")[:2])
    return summary.features[first], summary.features[second]


def plot_summary(
    summary: MixtureSummary,
    out: str | Path,
    *,
    data: np.ndarray | None = None,
    features: Sequence[str] | None = None,
    marks: Sequence[tuple[int, str]] = (),
) -> Path:
    """Draw the mixture (over ``data``, rows in ``summary.features`` order) and its curve.

    Parameters
    ----------
    summary
        The model.
    out
        The PNG file to write.
    data
        Rows to draw behind the ellipses (a sample: a few thousand is plenty).
    features
        The two features to draw; :func:`separating_features` by default.
    marks
        Events to mark on the learning curve: (points learned, label).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name, y_name = features if features is not None else separating_features(summary)
    for name in (x_name, y_name):
        if name not in summary.features:
            raise ValidationError(f"the model has no feature {name!r}; it has {summary.features}")
    i, j = summary.features.index(x_name), summary.features.index(y_name)
    figure, (mixture_axes, curve_axes) = plt.subplots(1, 2, figsize=(13, 5.5))
    _draw_mixture(mixture_axes, summary, data, i, j)
    _draw_curve(curve_axes, summary, marks)
    seen = summary.facts.get("points seen")
    figure.suptitle(
        f"{summary.name}: {len(summary.weights)} components ({summary.covariance_type} "
        f"covariance)" + (f", learned from {seen:,} points" if seen else ""),
        fontsize=13,
    )
    figure.tight_layout()
    out = Path(out)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _draw_mixture(
    axes: Axes, summary: MixtureSummary, data: np.ndarray | None, i: int, j: int
) -> None:
    from matplotlib.patches import Ellipse

    colours = [f"C{c}" for c in range(10)]
    if data is not None and len(data):
        axes.scatter(data[:, i], data[:, j], s=3, c="0.6", alpha=0.35, label="data (sample)")
    for component in np.argsort(-summary.weights):
        colour = colours[component % len(colours)]
        mean = (float(summary.means[component, i]), float(summary.means[component, j]))
        covariance = summary.covariances[component][np.ix_([i, j], [i, j])]
        variances, axes_vectors = np.linalg.eigh(covariance)
        angle = float(np.degrees(np.arctan2(axes_vectors[1, 1], axes_vectors[0, 1])))
        for sigmas in _SIGMAS:
            width, height = 2 * sigmas * np.sqrt(np.maximum(variances[::-1], 0.0))
            axes.add_patch(
                Ellipse(mean, width, height, angle=angle, fill=False, lw=2.2 / sigmas, color=colour)
            )
        axes.plot(*mean, marker="x", color=colour, ms=9, mew=2.5)
        axes.annotate(
            f"component {component}\nweight {summary.weights[component]:.2f}",
            mean,
            xytext=(8, 8),
            textcoords="offset points",
            color=colour,
            fontsize=9,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "ec": "none"},
        )
    axes.set_xlabel(summary.features[i])
    axes.set_ylabel(summary.features[j])
    axes.set_title("The mixture: ellipses at 1 and 2 standard deviations")
    axes.autoscale_view()
    if data is not None and len(data):
        axes.legend(loc="lower right", markerscale=4)


def _draw_curve(axes: Axes, summary: MixtureSummary, marks: Sequence[tuple[int, str]]) -> None:
    curve = summary.curve
    partial = summary.n_updates is not None and len(curve) < summary.n_updates
    axes.set_title(
        f"Learning curve of the last {len(curve):,} of {summary.n_updates:,} updates"
        if partial
        else "Learning curve (higher is better)"
    )
    axes.set_xlabel("points learned")
    axes.set_ylabel("mean log-likelihood per point")
    if not curve:
        axes.text(
            0.5, 0.5, "no learning curve in this model file", ha="center", transform=axes.transAxes
        )
        return
    seen = [point.n_seen for point in curve]
    axes.plot(seen, [p.mean_log_likelihood for p in curve], color="0.65", lw=1, label="each update")
    axes.plot(
        seen, [p.smoothed_log_likelihood for p in curve], color="C0", lw=2.5, label="smoothed"
    )
    drifts = [point.n_seen for point in curve if point.drift]
    for n, at in enumerate(drifts):
        axes.axvline(at, color="C3", ls="--", lw=1.5, label="drift detected" if n == 0 else None)
    for at, label in marks:
        axes.axvline(at, color="0.3", ls=":", lw=2, label=label)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
