"""River rows as float vectors: the one row-conversion helper the adapters compose.

The feature order is fixed by the first row that is learned (its keys that hold a value, in
their order); a known feature missing from a later row (absent, None or NaN) is NaN; a feature
that was not in that first row is ignored and counted per name. Values must be real numbers;
a ``str``, a ``bool``, an infinite value or an empty ``dict`` raises
:class:`~streamem.errors.ValidationError`.
"""

from __future__ import annotations

import collections
import math
import numbers
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from streamem.errors import ValidationError
from streamem.models.common import covariance as cov

FloatArray = NDArray[np.float64]
_NAN = math.nan


def real_number(key: Hashable, value: Any) -> float:
    """``value`` as a float, NaN for missing (None, NaN); raise on anything else."""
    if type(value) is float:
        number = value
    elif type(value) is int:  # the common cases first: no ABC check (bool is not int here)
        try:
            return float(value)
        except OverflowError as error:
            raise ValidationError(f"feature {key!r} does not fit a float: {value!r}") from error
    elif value is None:
        return _NAN
    elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"feature {key!r} must be a real number (or None for missing), got "
            f"{type(value).__name__} {value!r}"
        )
    else:
        try:
            number = float(value)
        except (OverflowError, ValueError) as error:
            raise ValidationError(f"feature {key!r} does not fit a float: {value!r}") from error
    if number - number != 0.0 and number == number:
        raise ValidationError(f"feature {key!r} must be finite, got {value!r}")
    return number


def column(name: Hashable, values: pd.Series) -> FloatArray:
    """A DataFrame column as floats with NaN for missing; the checks of :func:`real_number`."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ValidationError(f"feature {name!r} must hold real numbers, got booleans")
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        column: FloatArray = values.to_numpy(dtype=np.float64, na_value=_NAN)
        if np.isinf(column).any():
            raise ValidationError(f"feature {name!r} must be finite, got an infinite value")
        return column
    return np.array([_NAN if v is pd.NA else real_number(name, v) for v in values], dtype=float)


def check_adapter_parameters(
    n_components: int,
    covariance_type: str,
    batch_size: int,
    init_size: int | None,
    reg_covar: float,
) -> None:
    """The checks of a Gaussian adapter's constructor arguments (errors name them)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(n_components, int) or n_components < 1:
        raise ValidationError(f"n_components must be an integer >= 1, got {n_components!r}")
    if init_size is not None and (not isinstance(init_size, int) or init_size < 1):
        raise ValidationError(f"init_size must be an integer >= 1 or None, got {init_size!r}")
    if not isinstance(reg_covar, int | float) or not reg_covar >= 0.0:
        raise ValidationError(f"reg_covar must be a number >= 0, got {reg_covar!r}")
    cov.check_covariance_type(covariance_type)


class Rows:
    """The feature order, the counters of ignored features, and the conversion of river's
    ``dict`` rows and pandas frames into float vectors (see the module docstring).

    Examples
    --------
    >>> rows = Rows()
    >>> rows.learn_vector({"a": 1.0, "b": None, "c": 2}).tolist()
    [1.0, 2.0]
    >>> rows.vector({"c": 5.0, "z": 1.0}).tolist(), rows.features
    ([nan, 5.0], ('a', 'c'))
    """

    def __init__(self) -> None:
        self.features: tuple[Hashable, ...] = ()
        self.index: dict[Hashable, int] = {}
        self.ignored: collections.Counter[Hashable] = collections.Counter()

    def vector(self, x: dict[Hashable, Any], unknown: list[Hashable] | None = None) -> FloatArray:
        """The known features of ``x`` in model order, NaN where missing. No state change.

        The names of the unknown features that hold a value are appended to ``unknown``.
        """
        return np.array(self.values(x, unknown)[0])

    def values(
        self, x: dict[Hashable, Any], unknown: list[Hashable] | None = None
    ) -> tuple[list[float], int]:
        """:meth:`vector` as a list, and how many known features hold a value."""
        if not isinstance(x, dict):
            raise ValidationError(f"x must be a dict of features, got {type(x).__name__}")
        if not x:
            raise ValidationError("x is an empty dict; a row needs at least one feature")
        values = [_NAN] * len(self.features)
        index = self.index
        observed = 0
        for key, value in x.items():
            # a finite float as it is, without a call; anything else through the checks
            number = (
                value if type(value) is float and value - value == 0.0 else real_number(key, value)
            )
            position = index.get(key)
            if position is not None:
                values[position] = number
                observed += number == number
            elif unknown is not None and number == number:
                unknown.append(key)
        return values, observed

    def learn_vector(self, x: dict[Hashable, Any]) -> FloatArray:
        """:meth:`vector` for learning: fixes the features at first sight, counts new ones."""
        if not self.features:
            return self._first_vector(x)
        unknown: list[Hashable] = []
        values, observed = self.values(x, unknown)
        if not observed:
            raise ValidationError(
                f"x has no value for any of the features the model knows {self.features[:5]}"
                f"{'...' if len(self.features) > 5 else ''}; nothing to learn from it"
            )
        if unknown:
            self.ignored.update(unknown)
        return np.array(values)

    def _first_vector(self, x: dict[Hashable, Any]) -> FloatArray:
        self.vector(x)  # the checks
        numbers_ = {key: real_number(key, value) for key, value in x.items()}
        observed = {key: number for key, number in numbers_.items() if number == number}
        if not observed:
            raise ValidationError("the first row to learn has no value (all None or NaN)")
        self.features = tuple(observed)
        self.index = {key: position for position, key in enumerate(self.features)}
        return np.array(list(observed.values()))

    def matrix(self, X: pd.DataFrame, learning: bool) -> FloatArray:
        """The rows of ``X`` (n, d) in model order; columns are checked as :func:`real_number`."""
        if not isinstance(X, pd.DataFrame):
            raise ValidationError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        if X.columns.has_duplicates:
            raise ValidationError(f"X has duplicated columns: {X.columns.tolist()}")
        if X.shape[1] == 0 or X.shape[0] == 0:
            raise ValidationError(f"X needs at least one row and one column, got shape {X.shape}")
        columns = {name: column(name, X[name]) for name in X.columns}
        if learning and not self.features:
            observed = [name for name, values in columns.items() if not np.isnan(values).all()]
            if not observed:
                raise ValidationError("the first rows to learn have no value (all None or NaN)")
            features: tuple[Hashable, ...] = tuple(observed)
        else:
            features = self.features
        out = np.full((len(X), len(features)), _NAN)
        for position, name in enumerate(features):
            if name in columns:
                out[:, position] = columns[name]
        if learning:
            empty = np.flatnonzero(np.isnan(out).all(axis=1))
            if len(empty):
                raise ValidationError(
                    f"rows {empty[:5].tolist()} of X have no value for any known feature; "
                    "nothing to learn from them"
                )
            known = set(features)
            new = {name: int((~np.isnan(values)).sum()) for name, values in columns.items()}
            if not self.features:
                self.features = features
                self.index = {key: position for position, key in enumerate(features)}
            for name, count in new.items():
                if name not in known and count:
                    self.ignored[name] += count
        return out
