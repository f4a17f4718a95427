"""Numeric data files read in chunks: CSV, NDJSON and ``.npy``, larger than memory if need be.

:func:`open_data` looks at a file's extension and returns a :class:`DataFile` whose
:meth:`~DataFile.chunks` yields ``(rows, features)`` float64 arrays of at most ``chunk_rows`` rows,
so that only one chunk is in memory at a time:

- ``.csv``: a header row names the columns; empty cells (and ``nan``, ``NA``, ``null``) are
  missing (NaN);
- ``.ndjson`` / ``.jsonl``: one JSON object per line (fields read by name; the numeric fields of
  the first object by default) or one JSON array of numbers per line; null is missing;
- ``.npy``: a 2-D numeric array, memory-mapped (never unpickled).

A value that is not a number is a :class:`~streamem.errors.ValidationError` naming the file, the
line or row, and the column.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "readings.csv"
>>> _ = path.write_text("temp,hum\\n21.5,0.4\\n22.0,\\n")
>>> data = open_data(path)
>>> data.features
('temp', 'hum')
>>> [chunk.tolist() for chunk in data.chunks(chunk_rows=10)]
[[[21.5, 0.4], [22.0, nan]]]
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamem.errors import ValidationError

__all__ = ["DataFile", "Rebatcher", "open_data"]

CHUNK_ROWS = 100_000
"""Rows read at once by default: ~10 MB of float64 for 12 features."""

_NDJSON_SUFFIXES = (".ndjson", ".jsonl")

MISSING_TEXTS = ["", "nan", "NaN", "NAN", "NA", "null"]
"""CSV cells read as a missing value (NaN)."""


@dataclass(frozen=True)
class DataFile:
    """A numeric data file and the features (columns) read from it.

    Use :func:`open_data` to make one; :attr:`kind` is ``"csv"``, ``"ndjson"`` or ``"npy"``;
    :attr:`named` says whether the features have names in the file (CSV columns, NDJSON object
    fields) or are positions (``x0, x1, ...``).
    """

    path: Path
    kind: str
    features: tuple[str, ...]
    named: bool

    @property
    def _positions(self) -> list[int]:
        """The column numbers of the features, for files whose columns have no names."""
        return [int(feature[1:]) for feature in self.features]

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self.path.stat().st_size

    def chunks(self, chunk_rows: int = CHUNK_ROWS, progress: Any = None) -> Iterator[np.ndarray]:
        """Yield the rows as float64 arrays ``(n <= chunk_rows, len(features))``, in file order.

        ``progress``, if given, is called with the number of bytes read so far after each chunk.
        """
        reader = {"csv": self._csv_chunks, "ndjson": self._ndjson_chunks, "npy": self._npy_chunks}
        for chunk, done in reader[self.kind](chunk_rows):
            if progress is not None:
                progress(done)
            if len(chunk):
                yield chunk

    def _csv_chunks(self, chunk_rows: int) -> Iterator[tuple[np.ndarray, int]]:
        import pandas as pd

        with self.path.open("rb") as handle:
            reader = pd.read_csv(
                handle,
                usecols=list(self.features),
                chunksize=chunk_rows,
                dtype=np.float64,
                keep_default_na=False,
                na_values=MISSING_TEXTS,
                **_exact_floats(pd.__version__),
            )
            try:
                for frame in reader:
                    yield frame[list(self.features)].to_numpy(dtype=float), handle.tell()
            except ValueError as error:  # a cell is not a number: find and name it
                _raise_first_bad_cell(self.path, self.features)
                raise ValidationError(f"{str(self.path)!r}: {error}") from None

    def _ndjson_chunks(self, chunk_rows: int) -> Iterator[tuple[np.ndarray, int]]:
        with self.path.open("rb") as handle:
            rows: list[list[float]] = []
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_ndjson_row(line, self, number))
                if len(rows) == chunk_rows:
                    yield np.asarray(rows, dtype=float), handle.tell()
                    rows = []
            yield np.asarray(rows, dtype=float).reshape(-1, len(self.features)), handle.tell()

    def _npy_chunks(self, chunk_rows: int) -> Iterator[tuple[np.ndarray, int]]:
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        bytes_per_row = array.itemsize * array.shape[1]
        for start in range(0, len(array), chunk_rows):
            chunk = np.array(array[start : start + chunk_rows, self._positions], dtype=float)
            yield chunk, min(self.size, (start + len(chunk)) * bytes_per_row)


def open_data(path: str | Path, features: Sequence[str] | None = None) -> DataFile:
    """Open a CSV, NDJSON or ``.npy`` file of numeric rows (see the module docstring).

    Parameters
    ----------
    path
        The file; its extension decides the format.
    features
        The columns (CSV), fields (NDJSON objects) to read, in this order; all numeric ones by
        default. The columns of ``.npy`` files and NDJSON arrays are named ``x0, x1, ...``.

    Raises
    ------
    ValidationError
        If the file is missing, empty, of an unknown kind, or lacks a named feature.
    """
    path = Path(path)
    if path.is_dir():
        raise ValidationError(f"{str(path)!r} is a directory, not a data file")
    if not path.is_file():
        raise ValidationError(f"no such data file: {str(path)!r}")
    name = path.name.lower()
    if name.endswith(".npy"):
        kind, (names, numeric, named) = "npy", _npy_features(path)
    elif name.endswith(_NDJSON_SUFFIXES):
        kind, (names, numeric, named) = "ndjson", _ndjson_features(path)
    elif name.endswith(".csv"):
        kind, (names, numeric, named) = "csv", _csv_features(path)
    else:
        raise ValidationError(
            f"{str(path)!r}: unknown data file kind; use .csv, .ndjson/.jsonl or .npy"
        )
    if features is None:
        if not numeric:
            raise ValidationError(f"{str(path)!r}: no numeric column (in its first rows)")
        return DataFile(path, kind, numeric, named)
    missing = [feature for feature in features if feature not in names]
    if missing:
        raise ValidationError(f"{str(path)!r} has no column(s) {missing}; it has {list(names)}")
    return DataFile(path, kind, tuple(features), named)


_Names = tuple[tuple[str, ...], tuple[str, ...], bool]
"""All the columns of a file, those that look numeric, and whether the file names them."""


def _csv_features(path: Path) -> _Names:
    import pandas as pd

    try:
        head = pd.read_csv(path, nrows=100, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{str(path)!r} is empty") from None
    _check_header(path)
    names = tuple(str(column) for column in head.columns)
    return names, tuple(name for name in names if all(_is_number(v) for v in head[name])), True


def _check_header(path: Path) -> None:
    """Refuse a CSV whose first line is a row of numbers: it has no header naming the columns
    (its first row would silently become the column names)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        first = next(csv.reader(handle), [])
    cells = [cell.strip() for cell in first]
    if cells and all(_is_number(cell) and cell not in MISSING_TEXTS for cell in cells):
        raise ValidationError(
            f"{str(path)!r} line 1 is a row of numbers ({','.join(cells)[:60]}), not a header: "
            "a CSV needs a first line naming its columns, e.g. temp,hum"
        )


def _ndjson_features(path: Path) -> _Names:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                first = _json_line(line, path, number)
                break
        else:
            raise ValidationError(f"{str(path)!r} is empty")
    if isinstance(first, list):
        names = _positions(len(first))
        return names, names, False
    if not isinstance(first, dict):
        raise ValidationError(f"{str(path)!r} line {number}: expected a JSON object or array")
    numeric = (key for key, value in first.items() if value is None or _is_json_number(value))
    return tuple(first), tuple(numeric), True


def _npy_features(path: Path) -> _Names:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:  # an empty file: EOFError
        raise ValidationError(f"{str(path)!r} is not a numeric .npy array: {error}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValidationError(
            f"{str(path)!r} must hold a 2-D numeric array, got shape {array.shape} of {array.dtype}"
        )
    names = _positions(array.shape[1])
    return names, names, False


def _positions(n: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(n))


def _is_number(text: str) -> bool:
    if text in MISSING_TEXTS:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _exact_floats(pandas_version: str) -> dict[str, str]:
    """``read_csv`` options that parse every float exactly (the shortest repr round-trips).

    Before pandas 3.1 the default parser gets about one float in four wrong by one ulp; 3.1
    made the exact parser the default (and deprecated the option).

    >>> _exact_floats("2.2.3"), _exact_floats("3.1.1")
    ({'float_precision': 'round_trip'}, {})
    """
    major, minor = (int(part) for part in pandas_version.split(".")[:2])
    return {} if (major, minor) >= (3, 1) else {"float_precision": "round_trip"}


def _raise_first_bad_cell(path: Path, features: tuple[str, ...]) -> None:
    """Raise a ValidationError naming the first cell of ``features`` that is not a number."""
    import pandas as pd

    reader = pd.read_csv(
        path, usecols=list(features), chunksize=CHUNK_ROWS, dtype=str, keep_default_na=False
    )
    first_line = 2  # the header is line 1
    for frame in reader:
        for feature in features:
            for at, text in enumerate(frame[feature]):
                if not _is_number(text):
                    raise ValidationError(
                        f"{str(path)!r} line {first_line + at}: column {feature!r} is "
                        f"{text!r}, not a number"
                    )
        first_line += len(frame)


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_line(line: bytes, path: Path, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as error:
        raise ValidationError(f"{str(path)!r} line {number}: not JSON ({error})") from None


def _ndjson_row(line: bytes, data: DataFile, number: int) -> list[float]:
    path, features = data.path, data.features
    item = _json_line(line, path, number)
    if isinstance(item, list) and not data.named:
        try:
            pairs: Iterable[tuple[str, Any]] = [
                (f, item[i]) for f, i in zip(features, data._positions, strict=True)
            ]
        except IndexError:
            raise ValidationError(
                f"{str(path)!r} line {number}: {len(item)} values, fewer than the first line's"
            ) from None
    elif isinstance(item, dict) and data.named:
        pairs = ((feature, item.get(feature)) for feature in features)
    else:
        raise ValidationError(
            f"{str(path)!r} line {number}: expected a JSON "
            f"{'object' if data.named else 'array'} like the first line"
        )
    row = []
    for feature, value in pairs:
        if value is None:
            row.append(math.nan)
        elif _is_json_number(value):
            row.append(float(value))
        else:
            raise ValidationError(
                f"{str(path)!r} line {number}: {feature!r} is {value!r}, not a number"
            )
    return row


class Rebatcher:
    """Regroups chunks of rows into batches of exactly ``batch_size`` rows (the last one shorter).

    Examples
    --------
    >>> rebatch = Rebatcher(batch_size=4)
    >>> chunks = [np.zeros((3, 1)), np.zeros((6, 1))]
    >>> [len(batch) for batch in rebatch(chunks)]
    [4, 4, 1]
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def __call__(self, chunks: Iterator[np.ndarray] | Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """Yield the batches."""
        pending: list[np.ndarray] = []
        n_pending = 0
        for chunk in chunks:
            pending.append(chunk)
            n_pending += len(chunk)
            if n_pending < self.batch_size:
                continue
            rows = np.concatenate(pending)
            cut = len(rows) - len(rows) % self.batch_size
            yield from np.split(rows[:cut], cut // self.batch_size)
            pending, n_pending = [rows[cut:]], len(rows) - cut
        if n_pending:
            yield np.concatenate(pending)
