"""The four covariance structures, one small function per operation and type.

Shapes, with ``K = n_components`` and ``d = n_features``:

=============  =====================  ======================================
type           covariances            second-moment statistics
=============  =====================  ======================================
``full``       (K, d, d)              (K, d, d)   sum_i r_ij x_i x_i^T
``tied``       (d, d)                 (d, d)      sum_ij r_ij x_i x_i^T
``diag``       (K, d)                 (K, d)      sum_i r_ij x_i ** 2
``spherical``  (K,)                   (K, d)      sum_i r_ij x_i ** 2
=============  =====================  ======================================

Precision Cholesky factors have the shape of the covariances, with the convention of
scikit-learn: ``precision = U @ U.T`` for full and tied, ``1 / sqrt(variance)`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from streamem.errors import DegenerateUpdateError, ValidationError

CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[CovarianceType, ...] = ("full", "tied", "diag", "spherical")
FloatArray = NDArray[np.float64]

_ADVICE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)


def check_covariance_type(covariance_type: str) -> CovarianceType:
    """Return ``covariance_type`` if it is known, else raise a ValidationError naming it."""
    for known in COVARIANCE_TYPES:
        if covariance_type == known:
            return known
    raise ValidationError(
        f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
    )


def expected_shape(covariance_type: CovarianceType, k: int, d: int) -> tuple[int, ...]:
    """Shape of the covariances (and precision Cholesky factors) of this type."""
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def precision_cholesky(covariances: FloatArray, covariance_type: CovarianceType) -> FloatArray:
    """Cholesky factors of the precisions, computed without inverting a covariance.

    Raises DegenerateUpdateError when a covariance is not positive definite.

    Examples
    --------
    >>> precision_cholesky(np.array([[4.0, 0.0], [0.0, 1.0]]), "tied")
    array([[0.5, 0. ],
           [0. , 1. ]])
    """
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[np.newaxis]
        try:
            lower = np.linalg.cholesky(stack)
        except np.linalg.LinAlgError as error:
            raise DegenerateUpdateError(_ADVICE) from error
        # U = L^-T; numpy's batched inverse of the K factors is faster than K triangular solves
        # on the small matrices of a stream (measured), and as exact.
        factors = np.linalg.inv(lower).swapaxes(-1, -2)
        return factors if covariance_type == "full" else factors[0]
    if not np.all(covariances > 0.0):
        raise DegenerateUpdateError(_ADVICE)
    return 1.0 / np.sqrt(covariances)


def covariances_from_precisions(
    precisions: FloatArray, covariance_type: CovarianceType
) -> FloatArray:
    """Covariances from user-given precision matrices (inverse through Cholesky factors)."""
    if covariance_type in ("full", "tied"):
        stack = precisions if covariance_type == "full" else precisions[np.newaxis]
        try:
            lower = np.linalg.cholesky(stack)
        except np.linalg.LinAlgError as error:
            raise ValidationError("precisions_init must be symmetric positive definite") from error
        eye = np.broadcast_to(np.eye(stack.shape[-1]), stack.shape)
        inverse_lower = np.linalg.solve(lower, eye)
        covariances = np.swapaxes(inverse_lower, -1, -2) @ inverse_lower
        return covariances if covariance_type == "full" else covariances[0]
    if not np.all(precisions > 0.0):
        raise ValidationError("precisions_init must be positive")
    return 1.0 / precisions


def precisions_from_cholesky(factors: FloatArray, covariance_type: CovarianceType) -> FloatArray:
    """Precision matrices (or variances' inverses) from their Cholesky factors."""
    if covariance_type in ("full", "tied"):
        return factors @ factors.swapaxes(-1, -2)
    return factors**2


def log_det_cholesky(factors: FloatArray, covariance_type: CovarianceType, d: int) -> FloatArray:
    """Log-determinant of each precision Cholesky factor, shape (K,) or () for tied."""
    if covariance_type == "full":
        return np.asarray(np.log(factors.diagonal(axis1=1, axis2=2)).sum(axis=1))
    if covariance_type == "tied":
        return np.asarray(np.log(np.diag(factors)).sum())
    if covariance_type == "diag":
        return np.asarray(np.log(factors).sum(axis=1))
    return np.asarray(d * np.log(factors))


def full_matrices(
    covariances: FloatArray, covariance_type: CovarianceType, k: int, d: int
) -> FloatArray:
    """Every component's covariance as a (K, d, d) matrix, whatever the type."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (k, d, d)).copy()
    variances = covariances if covariance_type == "diag" else np.repeat(covariances[:, None], d, 1)
    return variances[:, :, np.newaxis] * np.eye(d)


def whiten(
    X: NDArray[np.floating], factors: FloatArray, covariance_type: CovarianceType
) -> FloatArray:
    """``X @ U_j`` for every component j of points shared by all components.

    ``X`` is one point (d,) or m points (m, d); the result is (K, d) or (K, m, d), without
    the leading K for tied (one shared ``U``). ``U_j`` is the precision Cholesky factor, so
    that ``|x @ U_j - mu_j @ U_j|^2`` is the squared Mahalanobis distance of ``x`` to the
    mean of component j (see :func:`whiten_means`).

    Examples
    --------
    >>> whiten(np.array([2.0, 3.0]), np.array([[0.5, 1.0]]), "diag")
    array([[1., 3.]])
    """
    if covariance_type == "full":
        return np.asarray(np.matmul(X, factors))
    if covariance_type == "tied":
        return np.asarray(X @ factors)
    if covariance_type == "diag":
        return np.asarray(X * (factors if X.ndim == 1 else factors[:, np.newaxis, :]))
    return np.asarray(np.multiply.outer(factors, X))


def whiten_means(
    means: FloatArray, factors: FloatArray, covariance_type: CovarianceType
) -> FloatArray:
    """``mu_j @ U_j`` (K, d): each component's mean (K, d) whitened by its own factor."""
    if covariance_type == "full":
        return np.asarray(np.matmul(means[:, np.newaxis, :], factors)[:, 0])
    if covariance_type == "tied":
        return np.asarray(means @ factors)
    if covariance_type == "diag":
        return np.asarray(means * factors)
    return np.asarray(means * factors[:, np.newaxis])


def row_second_moments(
    first: FloatArray, x: NDArray[np.floating], covariance_type: CovarianceType
) -> FloatArray:
    """Second-moment statistics of one row ``x`` (d,) from its first moments ``r_j x`` (K, d)."""
    if covariance_type == "full":
        return np.asarray(np.multiply.outer(first, x))
    if covariance_type == "tied":
        return np.asarray(np.multiply.outer(first.sum(axis=0), x))
    return np.asarray(first * x)


def weighted_second_moments(
    resp: FloatArray, X: NDArray[np.floating], covariance_type: CovarianceType
) -> FloatArray:
    """Second-moment statistics of the rows X (m, d) weighted by responsibilities (K, m)."""
    if covariance_type == "full":
        return np.asarray(np.matmul((resp[:, :, np.newaxis] * X).swapaxes(1, 2), X))
    if covariance_type == "tied":
        return np.asarray((X * resp.sum(axis=0)[:, np.newaxis]).T @ X)
    return np.asarray(resp @ (X * X))


def reduce_second_moments(full_second: FloatArray, covariance_type: CovarianceType) -> FloatArray:
    """Second-moment statistics of the type from per-component (K, d, d) ones."""
    if covariance_type == "full":
        return full_second
    if covariance_type == "tied":
        return np.asarray(full_second.sum(axis=0))
    return np.diagonal(full_second, axis1=1, axis2=2).copy()


# ---- M-step: covariances from statistics, around given means ---------------------------------


def _full(resp: FloatArray, first: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    moment = first / resp[:, np.newaxis]
    cross = moment[:, :, np.newaxis] * means[:, np.newaxis, :]
    return (
        second / resp[:, np.newaxis, np.newaxis]
        - cross
        - cross.swapaxes(1, 2)
        + means[:, :, np.newaxis] * means[:, np.newaxis, :]
    )


def _tied(resp: FloatArray, first: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    cross = first.T @ means
    centred = second - cross - cross.T + (resp[:, np.newaxis] * means).T @ means
    return np.asarray(centred / resp.sum())


def _diag(resp: FloatArray, first: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    inverse = 1.0 / resp[:, np.newaxis]
    return second * inverse - 2.0 * first * inverse * means + means**2


def _spherical(
    resp: FloatArray, first: FloatArray, second: FloatArray, means: FloatArray
) -> FloatArray:
    return np.asarray(_diag(resp, first, second, means).mean(axis=1))


_ESTIMATORS: dict[str, Callable[[FloatArray, FloatArray, FloatArray, FloatArray], FloatArray]] = {
    "full": _full,
    "tied": _tied,
    "diag": _diag,
    "spherical": _spherical,
}


# ---- the same when the means are the first moments ``first / resp`` (not held fixed) -----------


def _full_ml(resp: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    return np.asarray(
        second / resp[:, np.newaxis, np.newaxis] - means[:, :, np.newaxis] * means[:, np.newaxis, :]
    )


def _tied_ml(resp: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    return np.asarray((second - (resp[:, np.newaxis] * means).T @ means) / resp.sum())


def _diag_ml(resp: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    return np.asarray(second / resp[:, np.newaxis] - means**2)


def _spherical_ml(resp: FloatArray, second: FloatArray, means: FloatArray) -> FloatArray:
    return np.asarray(_diag_ml(resp, second, means).mean(axis=1))


_ML_ESTIMATORS: dict[str, Callable[[FloatArray, FloatArray, FloatArray], FloatArray]] = {
    "full": _full_ml,
    "tied": _tied_ml,
    "diag": _diag_ml,
    "spherical": _spherical_ml,
}


def estimate_covariances(
    covariance_type: CovarianceType,
    resp: FloatArray,
    first: FloatArray,
    second: FloatArray,
    means: FloatArray,
    reg_covar: float,
    means_are_moments: bool = False,
) -> FloatArray:
    """Maximum-likelihood covariances around ``means`` from the statistics, plus ``reg_covar``.

    ``means`` need not be ``first / resp``: when the means are held fixed, the covariance
    is the second moment around the fixed means. ``means_are_moments=True`` says that they
    are ``first / resp``; the covariance is then ``second / resp - means means^T``, the same
    up to rounding in fewer operations.
    """
    if means_are_moments:
        covariances = _ML_ESTIMATORS[covariance_type](resp, second, means)
    else:
        covariances = _ESTIMATORS[covariance_type](resp, first, second, means)
    if covariance_type in ("full", "tied"):
        covariances = covariances + covariances.swapaxes(-1, -2)
        covariances *= 0.5
        add_to_diagonal(covariances, reg_covar)
    else:
        covariances = covariances + reg_covar
    return covariances


def add_to_diagonal(matrices: FloatArray, values: FloatArray | float) -> None:
    """Add ``values`` (a number or (d,)) to the diagonal of each (d, d) matrix, in place.

    ``matrices`` must be C-contiguous, of shape (d, d) or (K, d, d).

    Examples
    --------
    >>> matrices = np.zeros((2, 2, 2))
    >>> add_to_diagonal(matrices, np.array([1.0, 2.0]))
    >>> matrices[1]
    array([[1., 0.],
           [0., 2.]])
    """
    if not matrices.flags.c_contiguous:
        raise ValueError("add_to_diagonal needs C-contiguous matrices")
    d = matrices.shape[-1]
    diagonal = matrices.reshape(-1, d * d)[:, :: d + 1]
    diagonal += values


def n_parameters(covariance_type: CovarianceType, k: int, d: int) -> int:
    """Number of free parameters of a mixture with this covariance type."""
    covariance = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return covariance + k * d + k - 1
