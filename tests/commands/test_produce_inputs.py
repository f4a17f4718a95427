"""``streamem produce`` of keyed rows and of text documents (issue 32, items 8 and 11)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from streamem.cli import main
from streamem.commands.produce import document_records, file_records
from streamem.datafiles import open_data
from streamem.errors import ValidationError
from streamem.synthetic import SensorModes, SensorStream


def test_rows_keyed_by_a_text_column_carry_it_as_key_and_field(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("sensor,temp,vib\ns1,21.5,0.5\ns2,35.0,\ns1,22.0,0.4\n")
    sent = list(file_records(open_data(path), key_field="sensor"))
    assert [key for key, _ in sent] == [b"s1", b"s2", b"s1"]
    assert json.loads(sent[1][1]) == {"temp": 35.0, "vib": None, "sensor": "s2"}


@pytest.mark.parametrize(
    ("name", "text", "keys"),
    [  # a CSV cell is a text as written ("007" stays "007"); a JSON number stays a number
        ("readings.csv", "sensor,temp\n007,21.5\n8,35.0\n", ["007", "8"]),
        ("readings.ndjson", '{"sensor": 7, "temp": 21.5}\n\n{"sensor": 8, "temp": 3}\n', [7, 8]),
        ("readings.npy", None, [7, 8]),
    ],
)
def test_keys_of_every_file_kind(
    tmp_path: Path, name: str, text: str | None, keys: list[object]
) -> None:
    path = tmp_path / name
    if text is None:
        np.save(path, np.array([[7.0, 21.5], [8.0, 35.0]]))
    else:
        path.write_text(text)
    features = ["x1"] if text is None else ["temp"]
    key_field = "x0" if text is None else "sensor"
    data = open_data(path, [key_field, *features] if text is None else features)
    sent = list(file_records(data, key_field=key_field))
    assert [key for key, _ in sent] == [str(key).encode() for key in keys]
    assert [json.loads(value)[key_field] for _, value in sent] == keys


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sensor,temp\ns1,21.5\n,35.0\n", "row 2: 'sensor' is '', not a key"),
        ("machine,temp\ns1,21.5\n", "has no column 'sensor'"),
    ],
)
def test_a_missing_key_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "readings.csv"
    path.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(message)):
        list(file_records(open_data(path, ["temp"]), key_field="sensor"))


def test_documents_are_the_lines_of_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("pump leak at valve 3\r\n\n  \nbelt motor noise\nvalve ok ✓\n".encode())
    assert [value for _, value in document_records(path)] == [
        b"pump leak at valve 3",
        b"belt motor noise",
        "valve ok ✓".encode(),
    ]
    path.write_bytes(b"fine\n\xff\xfe bad\n")
    with pytest.raises(ValidationError, match="line 2 is not UTF-8 text"):
        list(document_records(path))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--file", "r.csv", "--change-after", "10"], "--change-after changes the synthetic"),
        (["--file", "r.csv", "--anomaly-every", "10"], "--anomaly-every changes the synthetic"),
        (["--documents", "n.txt", "--change-after", "10"], "--documents is replayed as it is"),
        (["--key-field", "sensor"], "--key-field keys the rows of --file; give --file"),
        (["--file", "r.csv", "--documents", "n.txt"], "give --file (readings) or --documents"),
    ],
)
def test_produce_refuses_options_that_would_be_ignored(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["produce", "--bootstrap-servers", "127.0.0.1:1", *extra]) == 1
    assert message in capsys.readouterr().err


def test_every_nth_synthetic_reading_is_an_anomaly_no_mode_produces() -> None:
    stream = SensorStream(n_machines=2, seed=0, anomaly_every=7)
    readings = stream.take(300) + stream.take(100)  # the count goes on across calls
    hum = np.array([reading["hum"] for reading in readings])
    modes = SensorModes.default()
    highest = float(np.max(modes.anomalous(np.arange(3))[:, 1])) + 1e-4  # rounded to 4 digits
    lowest = float(np.min(modes.anomalous(np.arange(3))[:, 1])) - 1e-4
    odd = np.arange(6, 400, 7)  # the 7th, 14th, ... reading
    assert np.all((hum[odd] >= lowest) & (hum[odd] <= highest))
    normal = np.delete(hum, odd)
    # A clean humidity lies 6 sd above its mode's mean with probability 1e-9.
    assert not np.any([SensorModes.default().means[:, 1].max() + 0.27 < normal])
