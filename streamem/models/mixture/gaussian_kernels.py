"""Compiled (numba) kernels of one online-EM step of a Gaussian mixture on one complete row.

The numpy path of a one-row step (:meth:`GaussianFamily.expected_statistics`, the engine's
blend, :meth:`GaussianFamily.maximize`, :meth:`GaussianFamily.parameter_change`) is about a
hundred numpy calls on arrays of a few numbers; their call overhead, not the arithmetic, is
its cost. :func:`one_row_step` does the same arithmetic, in the same order, in one compiled
call: the E-step, the blend ``s <- (1 - eta) s + eta s(x)``, Kish's count, the M-step with
``reg_covar`` and the fading MAP prior, the precision Cholesky factors (a Cholesky
factorisation and a triangular inverse per component, exact, so there is no drift to bound),
and the parameter change. :func:`one_row_log_joint` is the E-step's log-joint alone.

Both kernels read one flat float64 buffer (:class:`Layout`) and :func:`one_row_step` writes
the new state into another one that the caller owns: a call has few arguments (numba's
dispatch costs about a microsecond per call plus a fraction per argument), returns four floats
rather than a new array (boxing an array costs about as much as the call), and the records of
the engine are views of the two buffers, made once
(:class:`~streamem.models.mixture.gaussian_online.OneRowStep` alternates them).

numba is optional (the ``river`` extra): without it :data:`AVAILABLE` is False and the
mixture takes the numpy path. ``cache=True`` keeps the compiled code between processes (in
``__pycache__`` next to this file, or numba's per-user cache directory when the install is
read-only).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

try:
    _numba: Any = importlib.import_module("numba")
except ModuleNotFoundError:  # the numpy path does the work
    _numba = None

AVAILABLE = _numba is not None
"""Whether the compiled one-row step can be used (numba is installed)."""

LOG_2PI = math.log(2.0 * math.pi)
UNDERFLOW = -80.0
EPS = 10.0 * float(np.finfo(np.float64).eps)

OK, MISSING, DEGENERATE = 0.0, 1.0, 2.0
"""Outcomes of :func:`one_row_step`: done; the row has a NaN; the M-step is degenerate."""


def _jit(function: F) -> F:
    """``numba.njit`` with an on-disk cache where numba finds a writable place for one
    (``__pycache__``, the user's cache directory or ``NUMBA_CACHE_DIR``), else without: the
    kernels are then compiled once per process (about a second, measured in the README)."""
    if _numba is None:
        return function
    try:
        compiled: F = _numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        compiled = _numba.njit(nogil=True)(function)
    return compiled


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each array of a one-row step lives in its flat buffer.

    In order: statistics ``resp`` (K,), ``first`` (K, d), ``second`` (K, S); parameters
    ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, S), ``precisions_cholesky``
    (K, S). ``S`` is ``d * d`` for full covariances, ``d`` for diagonal ones.
    """

    k: int
    d: int
    full: bool

    @functools.cached_property
    def blocks(self) -> tuple[int, ...]:
        """The number of values of each array, in order."""
        s = self.d * self.d if self.full else self.d
        k, d = self.k, self.d
        return (k, k * d, k * s, k, k * d, k * s, k * s)

    @functools.cached_property
    def size(self) -> int:
        """The length of a buffer."""
        return sum(self.blocks)

    @functools.cached_property
    def _slices(self) -> tuple[tuple[slice, tuple[int, ...] | None], ...]:
        """Each array's slice of the buffer and its shape (None: 1-D, no reshape)."""
        k, d = self.k, self.d
        second = (k, d, d) if self.full else (k, d)
        shapes = (None, (k, d), second, None, (k, d), second, second)
        ends = np.cumsum(self.blocks).tolist()
        starts = [0, *ends[:-1]]
        return tuple(
            (slice(start, end), shape)
            for start, end, shape in zip(starts, ends, shapes, strict=True)
        )

    def pack(self, buffer: NDArray[np.float64], arrays: tuple[NDArray[np.float64], ...]) -> None:
        """Write ``arrays`` (the seven blocks in order) into ``buffer``."""
        for array, (where, _) in zip(arrays, self._slices, strict=True):
            buffer[where] = np.ravel(array)

    def views(self, buffer: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """The seven arrays of ``buffer``, as views in their shapes."""
        return [
            buffer[where] if shape is None else buffer[where].reshape(shape)
            for where, shape in self._slices
        ]


@_jit
def one_row_log_joint(
    state: NDArray[np.float64], x: NDArray[np.floating], k: int, full: bool
) -> NDArray[np.float64]:
    """``log w_j + log N(x | mu_j, Sigma_j)`` (K,) of the complete row ``x`` (d,) under the
    parameters of ``state`` (a :class:`Layout` buffer); NaN if ``x`` has a NaN."""
    d = x.shape[0]
    s = d * d if full else d
    o_weights = k + k * d + k * s
    o_means = o_weights + k
    o_factor = o_means + k * d + k * s
    joint = np.empty(k)
    whitened = np.empty(d)
    for j in range(k):
        log_det = 0.0
        distance = 0.0
        if full:
            base = o_factor + j * s
            for a in range(d):
                log_det += math.log(state[base + a * d + a])
            for b in range(d):  # U is upper triangular: rows a <= b of column b
                xu = 0.0
                mu = 0.0
                for a in range(b + 1):
                    xu += x[a] * state[base + a * d + b]
                    mu += state[o_means + j * d + a] * state[base + a * d + b]
                whitened[b] = xu - mu
        else:
            base = o_factor + j * d
            for a in range(d):
                log_det += math.log(state[base + a])
            for a in range(d):
                factor = state[base + a]
                whitened[a] = x[a] * factor - state[o_means + j * d + a] * factor
        for b in range(d):
            distance += whitened[b] * whitened[b]
        constant = math.log(state[o_weights + j]) - 0.5 * d * LOG_2PI + log_det
        joint[j] = distance * -0.5 + constant
    return joint


@_jit
def one_row_step(
    state: NDArray[np.float64],
    x: NDArray[np.floating],
    k: int,
    full: bool,
    eta: float,
    squared_weights: float,
    reg_covar: float,
    prior_strength: float,
    prior_fade: float,
    out: NDArray[np.float64],
) -> tuple[float, float, float, float]:
    """One stepwise EM update of the mixture in ``state`` (a :class:`Layout` buffer) with the
    complete row ``x`` (d,), step size ``eta``, written into ``out`` (a buffer of the same
    layout, not ``state``).

    ``squared_weights`` is the engine's sum of squared unit weights after this update
    (Kish's count is its inverse). Returns the outcome (``OK``, ``MISSING``, ``DEGENERATE``),
    the log-likelihood of ``x``, the parameter change and the smallest new weight; ``out``
    is meaningful only when the outcome is ``OK``.
    """
    d = x.shape[0]
    s = d * d if full else d
    # offsets of the blocks (see Layout)
    o_resp = 0
    o_first = o_resp + k
    o_second = o_first + k * d
    o_weights = o_second + k * s
    o_means = o_weights + k
    o_cov = o_means + k * d
    o_factor = o_cov + k * s
    o_end = o_factor + k * s
    for a in range(d):
        if x[a] != x[a]:
            return MISSING, 0.0, 0.0, 0.0

    # ---- E-step (GaussianFamily._row_statistics) ---------------------------------------------
    joint = one_row_log_joint(state, x, k, full)
    peak = joint[0]
    for j in range(1, k):
        if joint[j] > peak:
            peak = joint[j]
    norm = 0.0
    for j in range(k):
        joint[j] = math.exp(max(joint[j] - peak, UNDERFLOW))
        norm += joint[j]
    for j in range(k):
        joint[j] /= norm
    log_likelihood = math.log(norm) + peak

    # ---- blend (StepwiseEM.update) and the scaled statistics the M-step sees -----------------
    keep = 1.0 - eta
    scale = 1.0 / squared_weights
    resp = np.empty(k)
    first = np.empty(k * d)
    second = np.empty(k * s)
    for j in range(k):
        r = joint[j]
        out[o_resp + j] = state[o_resp + j] * keep + r * eta
        resp[j] = out[o_resp + j] * scale
        for a in range(d):
            i = j * d + a
            rx = r * x[a]
            out[o_first + i] = state[o_first + i] * keep + rx * eta
            first[i] = out[o_first + i] * scale
            if full:
                for b in range(d):
                    i2 = j * s + a * d + b
                    out[o_second + i2] = state[o_second + i2] * keep + rx * x[b] * eta
                    second[i2] = out[o_second + i2] * scale
            else:
                out[o_second + i] = state[o_second + i] * keep + rx * x[a] * eta
                second[i] = out[o_second + i] * scale

    # ---- M-step (GaussianFamily.maximize, covariance.estimate_covariances, _shrink) ---------
    total = np.sum(resp)
    cov = np.empty(s)
    strength = 0.0
    spread = np.zeros(d)
    if prior_strength > 0.0:
        for a in range(d):
            mean = 0.0
            moment = 0.0
            for j in range(k):
                mean += first[j * d + a]
                moment += second[j * s + a * d + a] if full else second[j * d + a]
            mean /= total
            spread[a] = max(moment / total - mean**2, 0.0) + reg_covar
        strength = prior_strength * min(1.0, prior_fade / total)
    change = 0.0
    smallest = math.inf
    for j in range(k):
        mass = resp[j] + EPS
        weight = resp[j] / total
        out[o_weights + j] = weight
        smallest = min(smallest, weight)
        change = max(change, abs(weight - state[o_weights + j]))
        for a in range(d):
            out[o_means + j * d + a] = first[j * d + a] / mass
        for a in range(d):
            mean_a = out[o_means + j * d + a]
            if full:
                for b in range(d):
                    cov[a * d + b] = (
                        second[j * s + a * d + b] / mass - mean_a * out[o_means + j * d + b]
                    )
            else:
                cov[a] = second[j * d + a] / mass - mean_a**2 + reg_covar
        if full:
            for a in range(d):
                for b in range(a + 1):
                    value = (cov[a * d + b] + cov[b * d + a]) * 0.5
                    cov[a * d + b] = value
                    cov[b * d + a] = value
                cov[a * d + a] += reg_covar
        if prior_strength > 0.0:
            for a in range(s):
                cov[a] *= resp[j]
            for a in range(d):
                cov[a * d + a if full else a] += strength * spread[a]
            for a in range(s):
                cov[a] /= resp[j] + strength
        for a in range(s):
            out[o_cov + j * s + a] = cov[a]
        if not _factor_into(cov, d, full, out, o_factor + j * s):
            return DEGENERATE, log_likelihood, 0.0, 0.0
        # the parameter change (GaussianFamily.parameter_change)
        for a in range(d):
            old_variance = state[o_cov + j * s + (a * d + a if full else a)]
            new_variance = out[o_cov + j * s + (a * d + a if full else a)]
            mean_change = out[o_means + j * d + a] - state[o_means + j * d + a]
            change = max(change, abs(mean_change / math.sqrt(old_variance)))
            change = max(change, abs(math.log(new_variance / old_variance)))
    for i in range(o_weights, o_end):
        if not math.isfinite(out[i]):
            return DEGENERATE, log_likelihood, 0.0, 0.0
    return OK, log_likelihood, change, smallest


@_jit
def _factor_into(
    cov: NDArray[np.float64], d: int, full: bool, out: NDArray[np.float64], offset: int
) -> bool:
    """Write the precision Cholesky factor of ``cov`` at ``out[offset:]``; False if ``cov``
    is not positive definite (covariance.precision_cholesky)."""
    if not full:
        for a in range(d):
            if not cov[a] > 0.0:
                return False
            out[offset + a] = 1.0 / math.sqrt(cov[a])
        return True
    lower = np.zeros(d * d)
    for a in range(d):
        for b in range(a + 1):
            total = cov[a * d + b]
            for c in range(b):
                total -= lower[a * d + c] * lower[b * d + c]
            if a == b:
                if not total > 0.0:
                    return False
                lower[a * d + a] = math.sqrt(total)
            else:
                lower[a * d + b] = total / lower[b * d + b]
    # U = L^-T: column b of L^-1 by forward substitution, written as row b of U.
    for b in range(d):
        for a in range(d):
            out[offset + b * d + a] = 0.0
        out[offset + b * d + b] = 1.0 / lower[b * d + b]
        for a in range(b + 1, d):
            total = 0.0
            for c in range(b, a):
                total -= lower[a * d + c] * out[offset + b * d + c]
            out[offset + b * d + a] = total / lower[a * d + a]
    # out holds (L^-1)^T row by row: entry (b, a) = (L^-1)[a, b]
    return True
