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
    >>> Pair.from_dict(p.to_dict()).equals(p)
    True
    """

    def arrays(self) -> dict[str, FloatArray]:
        """The fields by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def scaled(self, factor: float) -> Self:
        """Every field multiplied by ``factor``."""
        return type(self)(**{name: value * factor for name, value in self.arrays().items()})

    def __add__(self, other: Self) -> Self:
        theirs = other.arrays()
        return type(self)(**{name: value + theirs[name] for name, value in self.arrays().items()})

    def equals(self, other: ArrayRecord) -> bool:
        """True when ``other`` is of the same type with exactly equal arrays."""
        if type(other) is not type(self):
            return False
        theirs = other.arrays()
        return all(np.array_equal(value, theirs[name]) for name, value in self.arrays().items())

    def is_finite(self) -> bool:
        """True when no field holds NaN or infinity."""
        return all(bool(np.all(np.isfinite(value))) for value in self.arrays().values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: nested lists of floats (``repr`` of a float round-trips exactly)."""
        return {name: np.asarray(value).tolist() for name, value in self.arrays().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        names = {field.name for field in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(f"{cls.__name__} needs the fields {sorted(names)}, got {sorted(data)}")
        return cls(**{name: np.asarray(data[name], dtype=np.float64) for name in names})
