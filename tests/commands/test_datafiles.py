"""Data files read in chunks: every format, every row once, bad cells named by line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamem.datafiles import Rebatcher, open_data
from streamem.errors import ValidationError

ROWS = np.array([[1.5, -2.0, 3.25], [4.0, np.nan, 6.5], [7.0, 8.0, -9.125]])


def _write_csv(path: Path, rows: np.ndarray, header: str = "a,b,c") -> Path:
    lines = [header] + [
        ",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _read_all(path: Path, chunk_rows: int = 2, **kwargs: object) -> np.ndarray:
    data = open_data(path, **kwargs)  # type: ignore[arg-type]
    return np.concatenate(list(data.chunks(chunk_rows)))


def test_csv_rows_come_back_exactly_in_chunks(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "rows.csv", ROWS)
    data = open_data(path)
    assert data.features == ("a", "b", "c")
    assert data.named
    assert [len(c) for c in data.chunks(2)] == [2, 1]
    np.testing.assert_array_equal(_read_all(path), ROWS)


def test_csv_columns_are_chosen_by_name_in_the_given_order(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("id,temp,hum\nx,1.0,2.0\ny,3.0,4.0\n")
    assert open_data(path).features == ("temp", "hum")  # the text column is left out
    np.testing.assert_array_equal(_read_all(path, features=["hum", "temp"]), [[2, 1], [4, 3]])


def test_ndjson_objects_arrays_and_nulls(tmp_path: Path) -> None:
    objects = tmp_path / "rows.ndjson"
    objects.write_text('{"a": 1, "b": null, "id": "s1"}\n\n{"a": 2.5, "b": 3, "id": "s2"}\n')
    assert open_data(objects).features == ("a", "b")
    np.testing.assert_array_equal(_read_all(objects), [[1.0, np.nan], [2.5, 3.0]])
    arrays = tmp_path / "rows.jsonl"
    arrays.write_text("[1, 2]\n[3, null]\n")
    data = open_data(arrays)
    assert (data.features, data.named) == (("x0", "x1"), False)
    np.testing.assert_array_equal(_read_all(arrays, features=["x1"]), [[2.0], [np.nan]])


def test_npy_is_memory_mapped_and_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, ROWS.astype(np.float32))
    np.testing.assert_array_equal(_read_all(path), ROWS.astype(np.float32))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValidationError, match=r"not a numeric \.npy array"):
        open_data(objects)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.csv", "a,b\n" + "1,2\n" * 150 + "3,oops\n", "line 152: column 'b' is 'oops'"),
        ("bad.ndjson", '{"a": 1}\n{"a": "x"}\n', "line 2: 'a' is 'x', not a number"),
        ("bad.ndjson", '{"a": 1}\n{"a": 1\n', "line 2: not JSON"),
        ("bad.ndjson", '{"a": 1}\n[1]\n', "line 2: expected a JSON object like the first line"),
        ("bad.jsonl", "[1, 2]\n[1]\n", "line 2: 1 values, fewer than the first line's"),
        ("empty.csv", "", "is empty"),
        ("empty.ndjson", "\n\n", "is empty"),
        ("text.csv", "a,b\nx,y\n", "no numeric column"),
        ("rows.parquet", "PAR1", "unknown data file kind"),
    ],
)
def test_bad_files_and_values_get_a_specific_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(message)):
        _read_all(path)


def test_missing_file_and_missing_column(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such data file"):
        open_data(tmp_path / "nope.csv")
    path = _write_csv(tmp_path / "rows.csv", ROWS)
    with pytest.raises(ValidationError, match=r"no column\(s\) \['temp'\]"):
        open_data(path, ["a", "temp"])


@given(
    sizes=st.lists(st.integers(0, 30), max_size=8),
    batch_size=st.integers(1, 12),
)
def test_rebatching_keeps_every_row_in_order(sizes: list[int], batch_size: int) -> None:
    rows = np.arange(sum(sizes), dtype=float).reshape(-1, 1)
    chunks = np.split(rows, np.cumsum(sizes)[:-1]) if sizes else []
    batches = list(Rebatcher(batch_size)(chunks))
    assert all(len(b) == batch_size for b in batches[:-1])
    assert not batches or 1 <= len(batches[-1]) <= batch_size
    joined = np.concatenate(batches) if batches else np.empty((0, 1))
    np.testing.assert_array_equal(joined, rows)


def test_ndjson_objects_with_positional_looking_keys_are_objects(tmp_path: Path) -> None:
    # what `streamem produce --file rows.npy` sends: objects keyed x0, x1
    path = tmp_path / "replayed.ndjson"
    path.write_text('{"x0": 1.0, "x1": 2.0}\n{"x0": 3.0, "x1": null}\n')
    assert open_data(path).named
    np.testing.assert_array_equal(_read_all(path), [[1.0, 2.0], [3.0, np.nan]])


def test_csv_missing_value_spellings_are_nan(tmp_path: Path) -> None:
    path = tmp_path / "saved.csv"  # np.savetxt writes "nan"
    path.write_text("a,b\n1.0,nan\nNA,2.0\nnull,\n")
    np.testing.assert_array_equal(_read_all(path), [[1.0, np.nan], [np.nan, 2.0], [np.nan, np.nan]])
