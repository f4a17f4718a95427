"""The fast row decoder of one-point formats: the same points and rejections as ``decode``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem.errors import ValidationError
from streamem.service.codecs import JSON_PARSERS, RecordRejected, decode, row_decoder
from streamem.service.config import InputSettings

FEATURES = ["temp", "hum", "vib"]

SPECS = [
    InputSettings(format=fmt, features=FEATURES, allow_missing=missing, max_record_bytes=200)
    for fmt in ("json", "json_array", "csv")
    for missing in (False, True)
]

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400),
)
values = st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=3), st.just([1.0]))
documents = st.one_of(
    st.dictionaries(st.sampled_from([*FEATURES, "sensor"]), values, max_size=5),
    st.lists(values, min_size=0, max_size=5),
    values,
)


def _encode(document: object, style: int) -> bytes:
    text = json.dumps(document, allow_nan=True)
    return [text, f"  {text}", f"{text}\n", text * 2][style].encode()


def _outcome(decoder: object, value: bytes | None) -> tuple[str, object]:
    try:
        row = decoder(value)  # type: ignore[operator]
    except RecordRejected as error:
        return "rejected", (error.reason, error.detail)
    return "row", [float(x) for x in row]


def _reference(value: bytes | None, spec: InputSettings) -> tuple[str, object]:
    try:
        points = decode(value, spec)
    except RecordRejected as error:
        return "rejected", (error.reason, error.detail)
    return "row", points[0].tolist()


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    if a[0] != b[0] or a[0] == "rejected":
        return a == b
    left, right = a[1], b[1]
    assert isinstance(left, list)
    assert isinstance(right, list)
    return len(left) == len(right) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(left, right, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(document=documents, style=st.integers(0, 3), which=st.integers(0, len(SPECS) - 1))
def test_rows_match_decode_on_any_json(document: object, style: int, which: int) -> None:
    spec = SPECS[which]
    value = _encode(document, style)
    assert _same(_outcome(row_decoder(spec), value), _reference(value, spec))


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=64), which=st.integers(0, len(SPECS) - 1))
def test_rows_match_decode_on_any_bytes(value: bytes, which: int) -> None:
    spec = SPECS[which]
    assert _same(_outcome(row_decoder(spec), value), _reference(value, spec))


# Where msgspec and Python's json differ, the standard library decides (the slow path).
JSON_EDGES = [
    b'\xef\xbb\xbf{"temp": 1, "hum": 2, "vib": 3}',  # a UTF-8 byte order mark
    b'{"\\ud800": 1, "temp": 1, "hum": 2, "vib": 3}',  # a lone surrogate escape
    b'{"temp": 1, "temp": 5, "hum": 2, "vib": 3}',  # a duplicate key: the last one wins
    b'{"temp": NaN, "hum": 2, "vib": 3}',
    b'{"temp": 1e999, "hum": 2, "vib": 3}',
    b'{"temp": 18446744073709551616, "hum": 2, "vib": 3}',  # beyond 64 bits
    b'{"temp": "a\tb", "hum": 2, "vib": 3}',  # a raw tab in a string
    b"[" * 150 + b"]" * 150,  # 300 bytes: too large for the specs, at their limit
    b"[" * 90 + b"]" * 90,
    b"[NaN, 2, 3]",
    b"[1, 2, 3] ",
]


@pytest.mark.parametrize(
    "value", [None, b"", b" " * 300, b"1,2,3", b"1,,3", b"[1, 2, 3]", *JSON_EDGES]
)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.format}-{s.allow_missing}")
@pytest.mark.parametrize("parser", JSON_PARSERS)
def test_rows_match_decode_on_edge_cases(
    value: bytes | None, spec: InputSettings, parser: str
) -> None:
    assert _same(_outcome(row_decoder(spec, parser), value), _reference(value, spec))


def test_nesting_far_deeper_than_the_parsers_allow_is_malformed() -> None:
    spec = InputSettings(format="json", features=FEATURES)
    for parser in JSON_PARSERS:
        for depth in (1_000, 100_000):
            with pytest.raises(RecordRejected, match="nested deeper") as error:
                row_decoder(spec, parser)(b"[" * depth + b"]" * depth)
            assert error.value.reason.value == "malformed"


def test_rows_become_the_same_batch_as_arrays() -> None:
    spec = InputSettings(format="json", features=FEATURES, allow_missing=True)
    values = [b'{"temp": 1.5, "hum": 2, "vib": 3.25}', b'{"temp": null, "hum": 1, "vib": 2}']
    rows = np.array([row_decoder(spec)(v) for v in values], dtype=np.float64)
    arrays = np.concatenate([decode(v, spec) for v in values])
    np.testing.assert_array_equal(rows, arrays)


def test_packed_formats_have_no_rows() -> None:
    with pytest.raises(ValidationError, match=r"input\.format"):
        row_decoder(InputSettings(format="packed_f32", features=FEATURES))
