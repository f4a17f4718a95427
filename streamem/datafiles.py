"""Numeric data files read in chunks: CSV, NDJSON, ``.npy`` and Parquet, larger than memory if
need be.

:func:`open_data` looks at a file's extension and returns a :class:`DataFile` whose
:meth:`~DataFile.chunks` yields ``(rows, features)`` float64 arrays of at most ``chunk_rows`` rows,
so that only one chunk is in memory at a time:

- ``.csv``: comma-separated, a header row names the columns, ``.`` is the decimal mark; empty
  cells (and ``nan``, ``NA``, ``null``) are missing (NaN). The whole file is read once when it
  is opened: a row whose number of fields differs from the header's is refused with its line
  (a semicolon-separated file is named as such), and each column's kind is decided from all its
  cells: numbers, text (left out, listed in :attr:`DataFile.text_columns`), or both, which is
  refused with the line of the first cell that is not a number;
- ``.ndjson`` / ``.jsonl``: one JSON object per line (fields read by name; the numeric fields of
  the first object by default) or one JSON array of numbers per line; null is missing;
- ``.npy``: a 2-D numeric array, memory-mapped (never unpickled);
- ``.parquet`` / ``.pq``: one Parquet file (pyarrow, the ``dask`` extra), read by row batches;
  its numeric columns by default (a text column is left out and listed), null is missing.

A value that is not a number, or an infinite one (``inf``, ``1e400``), is a
:class:`~streamem.errors.ValidationError` naming the file, the line or row, and the column.

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

    Use :func:`open_data` to make one; :attr:`kind` is ``"csv"``, ``"ndjson"``, ``"npy"`` or
    ``"parquet"``; :attr:`named` says whether the features have names in the file (CSV and
    Parquet columns, NDJSON object fields) or are positions (``x0, x1, ...``).
    """

    path: Path
    kind: str
    features: tuple[str, ...]
    named: bool
    text_columns: tuple[str, ...] = ()
    """The columns of a CSV file that hold text only, or of a Parquet file that are not
    numeric: left out of the default features."""

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
        reader = {
            "csv": self._csv_chunks,
            "ndjson": self._ndjson_chunks,
            "npy": self._npy_chunks,
            "parquet": self._parquet_chunks,
        }
        first_row = 0
        for chunk, done in reader[self.kind](chunk_rows):
            self._check_finite(chunk, first_row)
            first_row += len(chunk)
            if progress is not None:
                progress(done)
            if len(chunk):
                yield chunk

    def keys(self, field: str) -> Iterator[str | int]:
        """The value of ``field`` in every row, in the order of :meth:`chunks`' rows: a text
        (a CSV text column, an NDJSON string) or a whole number (a numeric column).

        For sending each row keyed by its sequence (``streamem produce --key-field``).

        Raises
        ------
        ValidationError
            If the file has no such field, or a row's value is missing or neither a text nor a
            whole number.
        """
        if self.kind == "csv":
            values: Iterator[Any] = self._csv_texts(field)
        elif self.kind == "parquet":
            values = self._parquet_values(field)
        elif self.kind == "ndjson" and self.named:
            values = self._ndjson_values(field)
        elif field in self.features:
            column = self.features.index(field)
            values = (row[column] for chunk in self.chunks() for row in chunk.tolist())
        else:
            raise ValidationError(f"{str(self.path)!r} has no field {field!r}")
        for number, value in enumerate(values, start=1):
            yield _key_of(value, field, self.path, number)

    def _csv_texts(self, field: str) -> Iterator[str]:
        import pandas as pd

        try:
            reader = pd.read_csv(
                self.path, usecols=[field], dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS
            )
        except ValueError:
            raise ValidationError(f"{str(self.path)!r} has no column {field!r}") from None
        for frame in reader:
            yield from frame[field].str.strip()

    def _ndjson_values(self, field: str) -> Iterator[Any]:
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    item = _json_line(line, self.path, number)
                    yield item.get(field) if isinstance(item, dict) else None

    def _check_finite(self, chunk: np.ndarray, first_row: int) -> None:
        """Refuse an infinite value (``inf``, or a number too large for a float such as
        ``1e400``), naming its line (CSV; the header is line 1) or row (``.npy``) and column.
        NDJSON lines are checked as they are read (:func:`_ndjson_row`)."""
        infinite = np.isinf(chunk)
        if self.kind == "ndjson" or not infinite.any():
            return
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        where = f"line {first_row + row + 2}" if self.kind == "csv" else f"row {first_row + row}"
        raise ValidationError(
            f"{str(self.path)!r} {where}: column {self.features[column]!r} is "
            f"{chunk[row, column]}, not a finite number"
        )

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

    def _parquet_chunks(self, chunk_rows: int) -> Iterator[tuple[np.ndarray, int]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path)
        total, done = max(table.metadata.num_rows, 1), 0
        for batch in table.iter_batches(batch_size=chunk_rows, columns=list(self.features)):
            columns = [
                column.cast(pa.float64()).to_numpy(zero_copy_only=False) for column in batch.columns
            ]
            done += batch.num_rows
            yield (
                np.column_stack(columns).reshape(-1, len(self.features)),
                self.size * done // total,
            )

    def _parquet_values(self, field: str) -> Iterator[Any]:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path)
        if field not in table.schema_arrow.names:
            raise ValidationError(f"{str(self.path)!r} has no column {field!r}")
        for batch in table.iter_batches(batch_size=CHUNK_ROWS, columns=[field]):
            yield from batch.column(0).to_pylist()


def open_data(path: str | Path, features: Sequence[str] | None = None) -> DataFile:
    """Open a CSV, NDJSON, ``.npy`` or Parquet file of numeric rows (see the module docstring).

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
    elif name.endswith((".parquet", ".pq")):
        kind, (names, numeric, named) = "parquet", _parquet_features(path)
    else:
        raise ValidationError(
            f"{str(path)!r}: unknown data file kind; use .csv, .ndjson/.jsonl, .npy or .parquet"
        )
    if features is not None:
        missing = [feature for feature in features if feature not in names]
        if missing:
            raise ValidationError(f"{str(path)!r} has no column(s) {missing}; it has {list(names)}")
    if kind == "csv":
        numeric, text = _csv_column_kinds(path, names, features)
        return DataFile(path, kind, tuple(features or numeric), named, text)
    if kind == "parquet":
        other = [name for name in names if name not in numeric]
        wrong = [name for name in features or () if name in other]
        if wrong:
            raise ValidationError(f"{str(path)!r}: column(s) {wrong} are not numeric")
        if features is None and not numeric:
            raise ValidationError(f"{str(path)!r}: no numeric column")
        return DataFile(path, kind, tuple(features or numeric), named, tuple(other))
    if features is None:
        if not numeric:
            raise ValidationError(f"{str(path)!r}: no numeric column")
        return DataFile(path, kind, numeric, named)
    return DataFile(path, kind, tuple(features), named)


_Names = tuple[tuple[str, ...], tuple[str, ...], bool]
"""All the columns of a file, those that look numeric, and whether the file names them."""


def _csv_features(path: Path) -> _Names:
    """The header's names, once every row was checked to have as many fields as it (the
    columns' kinds come from :func:`_csv_column_kinds`)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        rows = csv.reader(handle)
        header = [cell.strip() for cell in next(rows, [])]
        if not header:
            raise ValidationError(f"{str(path)!r} is empty")
        _check_header(path, header)
        for row in rows:
            if row and len(row) != len(header):
                raise ValidationError(_ragged(path, header, rows.line_num, row))
    return tuple(header), (), True


def _check_header(path: Path, header: list[str]) -> None:
    """Refuse a first line that is a row of numbers (no header naming the columns: its first
    row would silently become the column names) or one name holding a ``;`` or a tab (a file
    separated by something other than commas)."""
    if all(_is_number(cell) and cell not in MISSING_TEXTS for cell in header):
        raise ValidationError(
            f"{str(path)!r} line 1 is a row of numbers ({','.join(header)[:60]}), not a header: "
            "a CSV needs a first line naming its columns, e.g. temp,hum"
        )
    if len(header) == 1 and (separator := _other_separator(header[0])):
        raise ValidationError(
            f"{str(path)!r} line 1 ({header[0][:60]}) is one column name holding {separator!r}: "
            "the file looks separated by " + repr(separator) + "; streamem reads comma-separated "
            "files with '.' as the decimal mark, e.g. temp,hum then 21.5,0.4"
        )


def _other_separator(name: str) -> str | None:
    return next((separator for separator in (";", "\t", "|") if separator in name), None)


def _ragged(path: Path, header: list[str], line: int, row: list[str]) -> str:
    text = ",".join(row)[:60]
    return (
        f"{str(path)!r} line {line} has {len(row)} fields ({text}), the header has "
        f"{len(header)} ({','.join(header)[:60]}): every row needs one value per column "
        "(an empty field is a missing value)"
    )


def _csv_column_kinds(
    path: Path, names: tuple[str, ...], features: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The numeric and the text columns of a CSV, from every cell of the file.

    A column is numeric if every cell is a number or missing, text if none is a number; a
    column that holds both is refused with the line of its first cell that is not a number
    (among ``features`` only, when they are given: the other columns are not read).
    """
    import pandas as pd

    chosen = list(features) if features is not None else list(names)
    kinds = {name: _ColumnKind() for name in chosen}
    reader = pd.read_csv(  # numbers parsed as the reader will; only other columns looked into
        path,
        usecols=chosen,
        keep_default_na=False,
        na_values=MISSING_TEXTS,
        chunksize=CHUNK_ROWS,
        skip_blank_lines=False,  # a row per line: the line numbers of errors are exact
    )
    first_line = 2  # the header is line 1
    for frame in reader:
        for name in chosen:
            kinds[name].add(frame[name], first_line)
        first_line += len(frame)
    for name in chosen:
        kinds[name].check(path, name, mixed_only=features is None)
    numeric = tuple(name for name in chosen if kinds[name].numeric)
    text = tuple(name for name in chosen if not kinds[name].numeric)
    if not numeric:
        raise ValidationError(f"{str(path)!r}: no numeric column; it has {list(names)}")
    return numeric, text


class _ColumnKind:
    """What the cells of one CSV column were: numbers, and the first of the others."""

    def __init__(self) -> None:
        self.numbers = 0
        self.others = 0
        self.first_other: tuple[int, str] | None = None

    @property
    def numeric(self) -> bool:
        return self.others == 0

    def add(self, cells: Any, first_line: int) -> None:
        import pandas as pd

        if pd.api.types.is_float_dtype(cells) or pd.api.types.is_integer_dtype(cells):
            self.numbers += int(cells.notna().sum())
            return
        text = cells.astype(str).str.strip()
        missing = (cells.isna() | text.isin(MISSING_TEXTS)).to_numpy()
        number = pd.to_numeric(text, errors="coerce").notna().to_numpy()
        other = ~(missing | number)
        self.numbers += int(number.sum())
        self.others += int(other.sum())
        if self.first_other is None and other.any():
            at = int(np.argmax(other))
            self.first_other = (first_line + at, str(text.iloc[at]))

    def check(self, path: Path, name: str, mixed_only: bool) -> None:
        """Refuse a column of numbers and text (any text if ``mixed_only`` is false)."""
        if self.first_other is None or (mixed_only and self.numbers == 0):
            return
        line, text = self.first_other
        both = (
            f", though {self.numbers:,} of its cells are numbers ({self.others:,} are not); "
            "correct the cell, or choose the columns to read (--features)"
            if self.numbers
            else ""
        )
        raise ValidationError(
            f"{str(path)!r} line {line}: column {name!r} is {text!r}, not a number{both}"
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


def _parquet_features(path: Path) -> _Names:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowException, OSError) as error:
        raise ValidationError(f"{str(path)!r} is not a Parquet file: {error}") from None
    numeric = (
        field.name
        for field in schema
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
    )
    return tuple(schema.names), tuple(numeric), True


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


def _key_of(value: Any, field: str, path: Path, row: int) -> str | int:
    """A row's key: a non-empty text, or a whole number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value and value not in MISSING_TEXTS:
        return value
    raise ValidationError(
        f"{str(path)!r} row {row}: {field!r} is {value!r}, not a key (a text or a whole number)"
    )


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
        elif _is_json_number(value) and math.isinf(value):
            raise ValidationError(
                f"{str(path)!r} line {number}: {feature!r} is {value!r}, not a finite number"
            )
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
