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
        ("rows.xlsx", "PK", "unknown data file kind"),
        ("rows.parquet", "PAR1", "is not a Parquet file"),
        # issue 32, item 12: inf or 1e400 reached scikit-learn, whose error names no line
        ("big.csv", "a,b\n1,2\n3,1e400\n", "line 3: column 'b' is inf, not a finite number"),
        ("big.csv", "a,b\n1,2\n-inf,4\n", "line 3: column 'a' is -inf, not a finite number"),
        ("big.ndjson", '{"a": 1}\n{"a": 1e400}\n', "line 2: 'a' is inf, not a finite number"),
        ("big.jsonl", "[1, 2]\n[Infinity, 2]\n", "line 2: 'x0' is inf, not a finite number"),
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


def _sensor_rows(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"{t:.3f},{h:.3f},{v:.3f}" for t, h, v in rng.normal(size=(n, 3)).tolist()]


def test_one_bad_cell_among_the_first_rows_is_refused_not_the_column_dropped(
    tmp_path: Path,
) -> None:
    # issue 32 item 2: a single "oops" on line 6 dropped the column "hum" without a word
    rows = _sensor_rows(1_000)
    rows[4] = rows[4].split(",")[0] + ",oops," + rows[4].split(",")[2]
    path = tmp_path / "readings.csv"
    path.write_text("temp,hum,vib\n" + "\n".join(rows) + "\n")
    message = "line 6: column 'hum' is 'oops', not a number, though 999 of its cells are numbers"
    with pytest.raises(ValidationError, match=re.escape(message)):
        open_data(path)
    path.write_text("temp,hum,vib\n\n" + "\n".join(rows) + "\n")  # a blank line 2
    with pytest.raises(ValidationError, match=re.escape(message.replace("line 6", "line 7"))):
        open_data(path)
    assert open_data(path, ["temp", "vib"]).features == ("temp", "vib")  # chosen: not read


def test_a_text_column_is_decided_from_every_row_and_listed(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    # text in the first 150 rows, a number after them: a column of both, refused
    path.write_text("id,temp\n" + "x,1.0\n" * 150 + "7,2.0\n")
    with pytest.raises(ValidationError, match=re.escape("line 2: column 'id' is 'x'")):
        open_data(path)
    path.write_text("id,temp\n" + "x,1.0\n" * 150 + "y,2.0\n")
    data = open_data(path)
    assert (data.features, data.text_columns) == (("temp",), ("id",))
    with pytest.raises(ValidationError, match=re.escape("line 2: column 'id' is 'x', not a")):
        open_data(path, ["id", "temp"])  # chosen, a text column is refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("temp;hum\n21,5;0,4\n22,0;0,5\n", "line 1 (temp;hum) is one column name holding ';'"),
        ("temp\thum\n21.5\t0.4\n", "the file looks separated by '\\t'"),
        ("temp,hum\n21.5,0.4\n22.0,0.5,7\n", "line 3 has 3 fields (22.0,0.5,7), the header has 2"),
        ("temp,hum\n21.5,0.4,9\n22.0,0.5\n", "line 2 has 3 fields (21.5,0.4,9), the header has 2"),
        ("temp,hum\n21.5,0.4\n22.0\n", "line 3 has 1 fields (22.0), the header has 2"),
    ],
)
def test_a_file_not_separated_by_commas_or_with_ragged_rows_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    # issue 32 item 3: "learned 2 rows of temp;hum"; extra fields were dropped silently
    path = tmp_path / "readings.csv"
    path.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(message)):
        open_data(path)


def test_an_infinite_value_in_a_npy_file_is_named_by_row(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    rows = ROWS.copy()
    rows[2, 1] = np.inf
    np.save(path, rows)
    with pytest.raises(ValidationError, match=re.escape("row 2: column 'x1' is inf")):
        _read_all(path)


def test_fit_says_which_text_columns_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamem.cli import main

    path = tmp_path / "readings.csv"
    path.write_text(
        "machine,temp,hum\n"
        + "\n".join(
            f"m{i % 3},{r}"
            for i, r in enumerate(row.rsplit(",", 1)[0] for row in _sensor_rows(300))
        )
        + "\n"
    )
    assert main(["fit", str(path), "--components", "1", "--out", str(tmp_path / "m.json")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "learned 300 rows of temp, hum" in printed
    assert "left out the text column(s) machine" in printed


def test_a_parquet_file_is_read_by_row_batches_in_its_numeric_columns(tmp_path: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "machine": [f"m{i % 3}" for i in range(1_000)],
            "temp": rng.normal(size=1_000),
            "count": rng.integers(0, 5, 1_000),
        }
    )
    frame.loc[3, "temp"] = np.nan
    frame["count"] = frame["count"].astype("Int64")
    frame.loc[5, "count"] = pd.NA  # a null integer: missing
    path = tmp_path / "readings.parquet"
    frame.to_parquet(path, row_group_size=300)
    data = open_data(path)
    assert (data.kind, data.features, data.text_columns) == (
        "parquet",
        ("temp", "count"),
        ("machine",),
    )
    positions: list[int] = []
    chunks = list(data.chunks(400, progress=positions.append))
    assert [len(chunk) for chunk in chunks] == [400, 400, 200]
    expected = frame[["temp", "count"]].astype(float).to_numpy()
    np.testing.assert_array_equal(np.concatenate(chunks), expected)  # NaN where null
    assert positions[-1] == path.stat().st_size
    assert list(data.keys("machine"))[:4] == ["m0", "m1", "m2", "m0"]
    with pytest.raises(ValidationError, match=r"column\(s\) \['machine'\] are not numeric"):
        open_data(path, ["temp", "machine"])


def test_an_infinite_value_in_a_parquet_file_is_named_by_row(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "bad.pq"
    pd.DataFrame({"a": [1.0, 2.0, np.inf]}).to_parquet(path)
    with pytest.raises(ValidationError, match="row 2: column 'a' is inf"):
        list(open_data(path).chunks())
