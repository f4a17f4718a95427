"""``streamem plot``: a model over its data, and its learning curve, in one PNG.

For a mixture (:func:`plot_summary`) the left panel shows two features: a sample of the data
as grey dots and every component as ellipses at one and two standard deviations around its
mean, labelled with its weight. For any other family (:func:`plot_view`) it shows what the
model does with data in file order when the model can run over it (a hidden Markov model's
most likely state at each step, a state space model's filtered track), a topic model's top
words, or else the estimated square matrices (transition probabilities; Q and R) as heat maps.
The right panel shows the mean log-likelihood per unit of each update (the learning curve)
against the units learned, its smoothed value, and the drifts the daemon detected.

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
from typing import TYPE_CHECKING, Any

import numpy as np

from streamem.commands.summary import MixtureSummary
from streamem.commands.views import ModelView
from streamem.errors import ValidationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_summary", "plot_view", "separating_features"]

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
    x_name, y_name = features if features is not None else separating_features(summary)
    for name in (x_name, y_name):
        if name not in summary.features:
            raise ValidationError(f"the model has no feature {name!r}; it has {summary.features}")
    i, j = summary.features.index(x_name), summary.features.index(y_name)
    figure, (mixture_axes, curve_axes) = _figure()
    _draw_mixture(mixture_axes, summary, data, i, j)
    _draw_curve(curve_axes, summary, marks)
    seen = summary.facts.get("points seen")
    figure.suptitle(
        f"{summary.name}: {len(summary.weights)} components ({summary.covariance_type} "
        f"covariance)" + (f", learned from {seen:,} points" if seen else ""),
        fontsize=13,
    )
    return _save(figure, out)


def plot_view(
    view: ModelView,
    out: str | Path,
    *,
    data: np.ndarray | None = None,
    feature: str | None = None,
) -> Path:
    """Draw any family's model (over ``data`` in file order, rows in ``view.features`` order,
    if the model can run over it) and its learning curve.

    Parameters
    ----------
    view
        The model.
    out
        The PNG file to write.
    data
        Consecutive rows (a sequence) for a model loaded from its document.
    feature
        The feature drawn over time; the first by default.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from streamem import GaussianHMM
    >>> Y = np.random.default_rng(0).normal(size=(200, 2))
    >>> view = ModelView.from_model(GaussianHMM(2, random_state=0).fit(Y))
    >>> plot_view(view, pathlib.Path(tempfile.mkdtemp()) / "hmm.png", data=Y).name
    'hmm.png'
    """
    name = feature or (view.features[0] if view.features else "x0")
    if view.features and name not in view.features:
        raise ValidationError(f"the model has no feature {name!r}; it has {view.features}")
    column = view.features.index(name) if view.features else 0
    figure, (model_axes, curve_axes) = _figure()
    model = view.model
    if data is not None and model is not None and hasattr(model, "predict") and model.sequential:
        _draw_states(model_axes, data, np.asarray(model.predict(data)), column, name)
    elif data is not None and model is not None and hasattr(model, "filter"):
        _draw_track(model_axes, view, data, column, name)
    elif data is not None:
        raise ValidationError(
            f"--data is drawn under a model that runs over rows (a state sequence, a filtered "
            f"track): give a {view.family} model file (to_json), not "
            + ("a snapshot, which holds the parameters only" if model is None else "this one")
        )
    elif "topics" in view.parameters:
        _draw_topics(model_axes, view.parameters["topics"])
    else:
        _draw_matrices(figure, model_axes, view.parameters)
    _draw_curve(curve_axes, view, ())
    seen = view.facts.get("points seen")
    figure.suptitle(
        f"{view.name}: a {view.family} model" + (f", learned from {seen:,} units" if seen else ""),
        fontsize=13,
    )
    return _save(figure, out)


def _figure() -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(13, 5.5))


def _save(figure: Figure, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    out = Path(out)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _draw_states(axes: Axes, data: np.ndarray, states: np.ndarray, column: int, name: str) -> None:
    steps = np.arange(len(data))
    axes.plot(steps, data[:, column], color="0.75", lw=0.8, zorder=1)
    for state in np.unique(states):
        at = states == state
        axes.scatter(
            steps[at], data[at, column], s=6, color=f"C{state % 10}", label=f"state {state}"
        )
    axes.set_xlabel("step (row of the data file)")
    axes.set_ylabel(name)
    axes.set_title("State sequence: the most likely state of each step (Viterbi)")
    axes.legend(loc="lower right", markerscale=3)


def _draw_track(axes: Axes, view: ModelView, data: np.ndarray, column: int, name: str) -> None:
    assert view.model is not None
    means, _ = view.model.filter(data)  # type: ignore[attr-defined]
    C = np.asarray(view.parameters["observation_matrices"], dtype=float)
    d = np.asarray(view.parameters["observation_offsets"], dtype=float)
    track = np.asarray(means) @ C.T + d
    steps = np.arange(len(data))
    axes.scatter(steps, data[:, column], s=4, color="0.6", label="data")
    axes.plot(steps, track[:, column], color="C0", lw=2, label="filtered track (C x + d)")
    axes.set_xlabel("step (row of the data file)")
    axes.set_ylabel(name)
    axes.set_title("Filtered track: the state estimate after each step")
    axes.legend(loc="lower right")


def _draw_topics(axes: Axes, topics: list[dict[str, Any]]) -> None:
    lines = []
    for k, topic in enumerate(topics):
        words = topic.get("words") or [str(c) for c in topic.get("columns", [])]
        lines.append(f"topic {k}: " + ", ".join(words[:8]))
    axes.axis("off")
    axes.set_title("Top words per topic, heaviest first")
    axes.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=9, wrap=True)


def _draw_matrices(figure: Figure, axes: Axes, parameters: dict[str, Any]) -> None:
    """The estimated square matrices (those named in ``em_vars``, else every square one but
    the emission covariances) as heat maps with their values, side by side."""
    named = parameters.get("em_vars")
    keys = [
        key
        for key, value in parameters.items()
        if (named is None or key in named)
        and key not in ("means", "covariances")
        and np.ndim(value) == 2
        and np.shape(value)[0] == np.shape(value)[1]
    ][:2]
    axes.axis("off")
    if not keys:
        axes.set_title("no matrix to draw: give --data (a model file) for more")
        return
    spec = axes.get_subplotspec()
    assert spec is not None
    inner = spec.subgridspec(1, len(keys), wspace=0.4)
    for n, key in enumerate(keys):
        panel = figure.add_subplot(inner[0, n])
        matrix = np.asarray(parameters[key], dtype=float)
        panel.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            panel.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8)
        panel.set_title(key)
        panel.set_xticks(range(len(matrix)))
        panel.set_yticks(range(len(matrix)))


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


def _draw_curve(
    axes: Axes, summary: MixtureSummary | ModelView, marks: Sequence[tuple[int, str]]
) -> None:
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
