"""Small typed records of arrays: what a family's parameters and statistics are made of.

A record is a frozen dataclass whose fields are numpy arrays. The engine combines records
field by field (blending statistics, averaging parameters) without knowing the family, and
serialises them to JSON-able dictionaries without pickle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class ArrayRecord:
    """Base class of a frozen dataclass of float arrays.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Pair(ArrayRecord):
    ...     a: FloatArray
    ...     b: FloatArray
    >>> p = Pair(np.array([1.0, 2.0]), np.array(3.0))
    >>> (p + p.scaled(2.0)).a
    array([3., 6.])
    >>> p.blended(p.scaled(3.0), 0.5).a
    array([2., 4.])
    >>> Pair.from_dict(p.to_dict()).equals(p)
    True
    """

    def arrays(self) -> dict[str, FloatArray]:
        """The fields by name."""
        return {name: getattr(self, name) for name in _field_names(type(self))}

    def scaled(self, factor: float) -> Self:
        """Every field multiplied by ``factor``."""
        return type(self)(*[getattr(self, name) * factor for name in _field_names(type(self))])

    def blended(self, other: Self, t: float) -> Self:
        """``self.scaled(1 - t) + other.scaled(t)`` in one pass (the same numbers)."""
        keep = 1.0 - t
        return type(self)(
            *[
                getattr(self, name) * keep + getattr(other, name) * t
                for name in _field_names(type(self))
            ]
        )

    def __add__(self, other: Self) -> Self:
        return type(self)(
            *[getattr(self, name) + getattr(other, name) for name in _field_names(type(self))]
        )

    def equals(self, other: ArrayRecord) -> bool:
        """True when ``other`` is of the same type with exactly equal arrays."""
        if type(other) is not type(self):
            return False
        theirs = other.arrays()
        return all(np.array_equal(value, theirs[name]) for name, value in self.arrays().items())

    def is_finite(self) -> bool:
        """True when no field holds NaN or infinity."""
        values = [getattr(self, name).ravel() for name in _field_names(type(self))]
        return bool(np.isfinite(np.concatenate(values)).all())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: nested lists of floats (``repr`` of a float round-trips exactly)."""
        return {name: np.asarray(value).tolist() for name, value in self.arrays().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        names = set(_field_names(cls))
        if set(data) != names:
            raise ValueError(f"{cls.__name__} needs the fields {sorted(names)}, got {sorted(data)}")
        return cls(**{name: np.asarray(data[name], dtype=np.float64) for name in names})


_FIELD_NAMES: dict[type[ArrayRecord], tuple[str, ...]] = {}


def _field_names(kind: type[ArrayRecord]) -> tuple[str, ...]:
    """The field names of a record class, in order (``dataclasses.fields`` is slow per call)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(kind))
    return names
