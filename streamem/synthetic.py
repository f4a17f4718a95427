"""Synthetic sensor streams: machines in a few operating modes, with an optional regime change."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamem.engine.records import FloatArray

FEATURES = ("temp", "hum", "vib")


@dataclass(frozen=True)
class SensorModes:
    """Operating modes of a machine: weights (K,), means (K, 3), covariances (K, 3, 3) of
    (temperature in °C, relative humidity, vibration in mm/s).

    Examples
    --------
    >>> modes = SensorModes.default()
    >>> X, labels = modes.sample(5, np.random.default_rng(0))
    >>> X.shape, labels.shape
    ((5, 3), (5,))
    """

    weights: FloatArray
    means: FloatArray
    covariances: FloatArray
    names: tuple[str, ...] = field(default=FEATURES)

    @classmethod
    def default(cls) -> SensorModes:
        """Idle, normal load and heavy load, overlapping a little."""
        return cls(
            weights=np.array([0.2, 0.5, 0.3]),
            means=np.array([[21.0, 0.45, 0.5], [35.0, 0.40, 2.5], [52.0, 0.30, 6.0]]),
            covariances=np.array(
                [
                    np.diag([1.5, 0.002, 0.05]),
                    [[9.0, -0.05, 1.2], [-0.05, 0.003, -0.01], [1.2, -0.01, 0.6]],
                    [[16.0, -0.08, 2.5], [-0.08, 0.004, -0.02], [2.5, -0.02, 1.5]],
                ]
            ),
        )

    def shifted(self) -> SensorModes:
        """The same machines after a regime change: hotter, and mostly at heavy load."""
        return SensorModes(
            weights=np.array([0.1, 0.3, 0.6]),
            means=self.means + np.array([4.0, -0.05, 0.8]),
            covariances=self.covariances,
            names=self.names,
        )

    def anomalous(self, labels: np.ndarray) -> FloatArray:
        """Readings (n, 3) of the modes ``labels`` (n,) that no mode produces: each mode's mean
        with its humidity 6 standard deviations above (the modes' humidity falls from mode to
        mode, so no other mode lies there).

        Examples
        --------
        >>> modes = SensorModes.default()
        >>> modes.anomalous(np.array([0]))[0].round(3).tolist()
        [21.0, 0.718, 0.5]
        """
        hum = self.names.index("hum")
        rows: FloatArray = self.means[labels].copy()
        rows[:, hum] += 6.0 * np.sqrt(self.covariances[labels, hum, hum])
        return rows

    def sample(self, n: int, rng: np.random.Generator) -> tuple[FloatArray, np.ndarray]:
        """``n`` readings (n, 3) and the mode each came from (n,)."""
        labels = rng.choice(len(self.weights), size=n, p=self.weights)
        factors = np.linalg.cholesky(self.covariances)
        noise = rng.standard_normal((n, self.means.shape[1]))
        rows = self.means[labels] + np.einsum("nab,nb->na", factors[labels], noise)
        return rows, labels


def random_mixture_sample(
    rng: np.random.Generator, n: int, n_features: int, n_components: int, spread: float = 3.0
) -> tuple[FloatArray, np.ndarray]:
    """Rows (n, d) from a random full-covariance Gaussian mixture with equal weights, and labels.

    Means are drawn from N(0, spread^2); each covariance is ``A A^T`` with ``A = I + N(0, 0.25)``,
    so components overlap more as ``spread`` shrinks.

    Examples
    --------
    >>> X, labels = random_mixture_sample(np.random.default_rng(0), 100, 8, 6)
    >>> X.shape, int(labels.max())
    ((100, 8), 5)
    """
    means = rng.normal(0.0, spread, (n_components, n_features))
    factors = rng.normal(0.0, 0.5, (n_components, n_features, n_features)) + np.eye(n_features)
    labels = rng.integers(n_components, size=n)
    noise = rng.normal(size=(n, n_features))
    rows = means[labels] + np.einsum("nab,nb->na", factors[labels], noise)
    return rows, labels


@dataclass
class SensorStream:
    """Readings of a few machines as JSON-ready dicts, with a regime change after ``change_after``.

    Each reading is ``{"machine": "m2", "ts": 1700000000.5, "temp": 35.1, "hum": 0.41,
    "vib": 2.4}``; machines take turns, every machine runs in the modes of :class:`SensorModes`,
    and after ``change_after`` readings (never, if None) the modes become
    :meth:`SensorModes.shifted`. With ``anomaly_every``, every ``anomaly_every``-th reading is
    an anomaly (:meth:`SensorModes.anomalous`).

    Examples
    --------
    >>> stream = SensorStream(n_machines=2, change_after=3, seed=0)
    >>> [reading["machine"] for reading in stream.take(4)]
    ['m1', 'm2', 'm1', 'm2']
    >>> stream.n_produced, stream.changed
    (4, True)
    """

    n_machines: int = 4
    change_after: int | None = None
    seed: int = 0
    anomaly_every: int | None = None
    modes: SensorModes = field(default_factory=SensorModes.default)
    n_produced: int = 0

    def __post_init__(self) -> None:
        if self.n_machines < 1:
            raise ValueError(f"n_machines must be >= 1, got {self.n_machines}")
        self._rng = np.random.default_rng(self.seed)

    @property
    def changed(self) -> bool:
        """Whether the readings produced so far reached the regime change."""
        return self.change_after is not None and self.n_produced >= self.change_after

    def take(self, n: int, timestamp: float = 0.0) -> list[dict[str, float | str]]:
        """The next ``n`` readings, all stamped ``timestamp`` (Unix seconds)."""
        readings: list[dict[str, float | str]] = []
        while len(readings) < n:
            before = self.change_after is None or self.n_produced < self.change_after
            modes = self.modes if before else self.modes.shifted()
            count = n - len(readings)
            if before and self.change_after is not None:
                count = min(count, self.change_after - self.n_produced)
            rows, labels = modes.sample(count, self._rng)
            if self.anomaly_every:
                odd = np.flatnonzero(
                    (self.n_produced + np.arange(count) + 1) % self.anomaly_every == 0
                )
                rows[odd] = modes.anomalous(labels[odd])
            for row in rows.round(4).tolist():
                machine = f"m{self.n_produced % self.n_machines + 1}"
                readings.append(
                    {
                        "machine": machine,
                        "ts": timestamp,
                        **dict(zip(modes.names, row, strict=True)),
                    }
                )
                self.n_produced += 1
        return readings
