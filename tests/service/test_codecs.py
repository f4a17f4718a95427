"""Decoding and validating record values; encoding points back."""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamem.errors import ValidationError
from streamem.service.codecs import (
    FORMATS,
    RecordRejected,
    RejectReason,
    decode,
    encode_points,
    sequence_key_decoder,
)
from streamem.service.config import InputSettings

FEATURES = ["temp", "hum", "pressure"]
D = len(FEATURES)


def spec(format: str = "json", **kwargs: object) -> InputSettings:
    return InputSettings.model_validate({"format": format, "features": FEATURES, **kwargs})


def rejected(value: bytes | None, input_spec: InputSettings) -> RecordRejected:
    with pytest.raises(RecordRejected) as info:
        decode(value, input_spec)
    return info.value


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def f64(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


# ---------------------------------------------------------------------------------------------
# Valid records
# ---------------------------------------------------------------------------------------------


def test_json_object_reads_the_named_fields_and_ignores_the_rest() -> None:
    value = b'{"sensor": "s1", "ts": 1700000000, "pressure": 1013.25, "hum": 40, "temp": -2.5}'
    points = decode(value, spec("json"))
    assert points.dtype == np.float64
    assert points.shape == (1, D)
    np.testing.assert_array_equal(points, [[-2.5, 40.0, 1013.25]])


def test_json_array() -> None:
    np.testing.assert_array_equal(decode(b"[1, 2.5, -3e2]", spec("json_array")), [[1, 2.5, -300]])


@pytest.mark.parametrize("value", [b"1,2.5,-3e2", b"1,2.5,-3e2\n", b"1, 2.5 ,-3e2\r\n"])
def test_csv_line(value: bytes) -> None:
    np.testing.assert_array_equal(decode(value, spec("csv")), [[1, 2.5, -300]])


def test_csv_custom_delimiter() -> None:
    points = decode(b"1;2;3", spec("csv", csv_delimiter=";"))
    np.testing.assert_array_equal(points, [[1, 2, 3]])
    assert rejected(b"1,2,3", spec("csv", csv_delimiter=";")).reason is RejectReason.WRONG_DIMENSION


@pytest.mark.parametrize(("format", "pack"), [("packed_f32", f32), ("packed_f64", f64)])
def test_packed_holds_many_points(format: str, pack: object) -> None:
    assert callable(pack)
    points = decode(pack(1, 2, 3, 4, 5, 6), spec(format))
    assert points.dtype == np.float64
    np.testing.assert_array_equal(points, [[1, 2, 3], [4, 5, 6]])


def test_packed_is_little_endian() -> None:
    value = struct.pack("<3f", 1.5, 2.5, 3.5)
    assert value != struct.pack(">3f", 1.5, 2.5, 3.5)
    np.testing.assert_array_equal(decode(value, spec("packed_f32")), [[1.5, 2.5, 3.5]])


def test_packed_f64_does_not_copy_the_value() -> None:
    value = f64(1, 2, 3, 4, 5, 6)
    points = decode(value, spec("packed_f64"))
    assert np.shares_memory(points, np.frombuffer(value, dtype=np.uint8))
    assert not points.flags.writeable


def test_missing_features_become_nan_when_allowed() -> None:
    cases = [
        ("json", b'{"temp": 1, "pressure": 3}'),
        ("json", b'{"temp": 1, "hum": null, "pressure": 3}'),
        ("json_array", b"[1, null, 3]"),
        ("csv", b"1,,3"),
        ("csv", b"1, ,3"),
        ("packed_f32", f32(1, np.nan, 3)),
        ("packed_f64", f64(1, np.nan, 3)),
    ]
    for format, value in cases:
        points = decode(value, spec(format, allow_missing=True))
        np.testing.assert_array_equal(points, [[1.0, np.nan, 3.0]])


def test_value_at_the_size_limit_is_accepted() -> None:
    value = b"[1,2,3]"
    assert decode(value, spec("json_array", max_record_bytes=len(value))).shape == (1, D)


def test_any_object_with_the_spec_attributes_works() -> None:
    @dataclass
    class Spec:
        format: str = "csv"
        features: tuple[str, ...] = ("a", "b")
        max_record_bytes: int = 100
        allow_missing: bool = False
        csv_delimiter: str = "|"

    np.testing.assert_array_equal(decode(b"1|2", Spec()), [[1, 2]])


def test_unknown_format_is_a_programming_error() -> None:
    @dataclass
    class Spec:
        format: str = "xml"
        features: tuple[str, ...] = ("a",)
        max_record_bytes: int = 100
        allow_missing: bool = False
        csv_delimiter: str = ","

    with pytest.raises(ValidationError, match=r"input\.format"):
        decode(b"<a>1</a>", Spec())
    with pytest.raises(ValidationError, match=r"input\.format"):
        encode_points([1.0], Spec())


# ---------------------------------------------------------------------------------------------
# Rejections: every reason
# ---------------------------------------------------------------------------------------------


def test_the_reasons_are_a_stable_small_set() -> None:
    assert {reason.value for reason in RejectReason} == {
        "empty",
        "too_large",
        "malformed",
        "wrong_dimension",
        "non_numeric",
        "non_finite",
        "missing_feature",
        "all_missing",
        "missing_key",
        "key_too_long",
        "out_of_bounds",
        "degenerate",
        "outlier",
        "no_known_word",
        "internal",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"sensor": "s1", "temp": 1.0}', "s1"),
        (b'{"temp": 1.0, "sensor": 42}', "42"),
        (b'{"sensor": "", "temp": 1.0}', "must be a non-empty string or an integer, got a string"),
        (b'{"sensor": null, "temp": 1.0}', "'sensor' is missing or null"),
        (b'{"temp": 1.0}', "'sensor' is missing or null"),
        (b'{"sensor": true, "temp": 1.0}', "got a boolean"),
        (b'{"sensor": 1.5, "temp": 1.0}', "got a number"),
        (b'{"sensor": ["s1"], "temp": 1.0}', "got an array"),
    ],
)
def test_a_sequence_key_is_a_non_empty_string_or_an_integer(value: bytes, expected: str) -> None:
    key = sequence_key_decoder(InputSettings(features=["temp"]), "sensor")
    if expected in ("s1", "42"):
        assert key(value) == expected
        return
    with pytest.raises(RecordRejected, match=expected) as caught:
        key(value)
    assert caught.value.reason is RejectReason.MISSING_KEY


def test_a_sequence_key_longer_than_max_key_bytes_is_rejected() -> None:
    key = sequence_key_decoder(InputSettings(features=["temp"]), "sensor", 8)
    assert key('{"sensor": "éééé", "temp": 1.0}'.encode()) == "éééé"  # 8 bytes in UTF-8
    with pytest.raises(RecordRejected, match="9 bytes long, more than") as caught:
        key(b'{"sensor": "s12345678", "temp": 1.0}')
    assert caught.value.reason is RejectReason.KEY_TOO_LONG
    with pytest.raises(RecordRejected, match="1,000,000 bytes"):
        key(b'{"sensor": "' + b"k" * 1_000_000 + b'", "temp": 1.0}')
    with pytest.raises(RecordRejected, match="10 bytes"):
        key(b'{"sensor": 1234567890, "temp": 1.0}')  # an integer key, as its decimal string


def test_a_sequence_key_needs_named_fields() -> None:
    with pytest.raises(
        ValidationError, match=r"input\.sequence_key: expected input\.format 'json'"
    ):
        sequence_key_decoder(InputSettings(format="csv", features=["temp"]), "sensor")


ALLOW = {"allow_missing": True}
HUGE_INT = b"1" + b"0" * 400

CASES = [
    # empty
    ("json", None, {}, RejectReason.EMPTY),
    ("json", b"", {}, RejectReason.EMPTY),
    ("json", b"  \n", {}, RejectReason.EMPTY),
    ("csv", b"\n", {}, RejectReason.EMPTY),
    ("packed_f32", b"", {}, RejectReason.EMPTY),
    # too_large (checked before parsing: the value is not even JSON)
    ("json", b"{" * 20, {"max_record_bytes": 19}, RejectReason.TOO_LARGE),
    ("packed_f64", f64(1, 2, 3, 4, 5, 6), {"max_record_bytes": 47}, RejectReason.TOO_LARGE),
    # malformed
    ("json", b'{"temp": 1,', {}, RejectReason.MALFORMED),
    ("json", b'{"temp": 1} {}', {}, RejectReason.MALFORMED),
    ("json", b"[1, 2, 3]", {}, RejectReason.MALFORMED),
    ("json", b"42", {}, RejectReason.MALFORMED),
    ("json", b'"temp"', {}, RejectReason.MALFORMED),
    ("json", b"\xff\xfe{}", {}, RejectReason.MALFORMED),
    ("json_array", b'{"temp": 1}', {}, RejectReason.MALFORMED),
    ("json_array", b"null", {}, RejectReason.MALFORMED),
    ("csv", b"1,2,3\n4,5,6", {}, RejectReason.MALFORMED),
    ("csv", b"1,2,\xff", {}, RejectReason.MALFORMED),
    # wrong_dimension
    ("json_array", b"[1, 2]", {}, RejectReason.WRONG_DIMENSION),
    ("json_array", b"[1, 2, 3, 4]", {}, RejectReason.WRONG_DIMENSION),
    ("json_array", b"[]", {}, RejectReason.WRONG_DIMENSION),
    ("csv", b"1,2", {}, RejectReason.WRONG_DIMENSION),
    ("csv", b"1,2,3,4", {}, RejectReason.WRONG_DIMENSION),
    ("packed_f32", f32(1, 2), {}, RejectReason.WRONG_DIMENSION),
    ("packed_f32", f32(1, 2, 3) + b"\x00", {}, RejectReason.WRONG_DIMENSION),
    ("packed_f64", f64(1, 2, 3, 4), {}, RejectReason.WRONG_DIMENSION),
    ("packed_f64", f32(1, 2, 3), {}, RejectReason.WRONG_DIMENSION),
    # non_numeric: booleans, strings (even numeric-looking), containers
    ("json", b'{"temp": true, "hum": 1, "pressure": 2}', {}, RejectReason.NON_NUMERIC),
    ("json", b'{"temp": false, "hum": 1, "pressure": 2}', {}, RejectReason.NON_NUMERIC),
    ("json", b'{"temp": "21.5", "hum": 1, "pressure": 2}', {}, RejectReason.NON_NUMERIC),
    ("json", b'{"temp": [1], "hum": 1, "pressure": 2}', {}, RejectReason.NON_NUMERIC),
    ("json", b'{"temp": {"v": 1}, "hum": 1, "pressure": 2}', {}, RejectReason.NON_NUMERIC),
    ("json", b'{"temp": true, "hum": 1, "pressure": 2}', ALLOW, RejectReason.NON_NUMERIC),
    ("json_array", b"[1, true, 3]", {}, RejectReason.NON_NUMERIC),
    ("json_array", b'[1, "2", 3]', {}, RejectReason.NON_NUMERIC),
    ("json_array", b"[1, [2], 3]", {}, RejectReason.NON_NUMERIC),
    ("csv", b"1,abc,3", {}, RejectReason.NON_NUMERIC),
    ("csv", b'1,"2",3', {}, RejectReason.NON_NUMERIC),
    ("csv", b"1,true,3", {}, RejectReason.NON_NUMERIC),
    ("csv", b"1,1_000,3", {}, RejectReason.NON_NUMERIC),
    ("csv", "1,\u0662,3".encode(), {}, RejectReason.NON_NUMERIC),  # an Arabic-Indic digit
    ("csv", b"temp,hum,pressure", {}, RejectReason.NON_NUMERIC),  # a header line
    # non_finite: literals, overflow, packed NaN without allow_missing, infinities always
    ("json", b'{"temp": NaN, "hum": 1, "pressure": 2}', {}, RejectReason.NON_FINITE),
    ("json", b'{"temp": Infinity, "hum": 1, "pressure": 2}', ALLOW, RejectReason.NON_FINITE),
    ("json", b'{"temp": -Infinity, "hum": 1, "pressure": 2}', {}, RejectReason.NON_FINITE),
    ("json", b'{"temp": 1e400, "hum": 1, "pressure": 2}', {}, RejectReason.NON_FINITE),
    ("json", b'{"temp": ' + HUGE_INT + b', "hum": 1, "pressure": 2}', {}, RejectReason.NON_FINITE),
    ("json_array", b"[1, NaN, 3]", ALLOW, RejectReason.NON_FINITE),
    ("json_array", b"[1, -1e999, 3]", {}, RejectReason.NON_FINITE),
    ("csv", b"1,nan,3", {}, RejectReason.NON_FINITE),
    ("csv", b"1,nan,3", ALLOW, RejectReason.NON_FINITE),
    ("csv", b"1,-inf,3", {}, RejectReason.NON_FINITE),
    ("csv", b"1,1e999,3", {}, RejectReason.NON_FINITE),
    ("packed_f32", f32(1, 2, 3, 4, np.nan, 6), {}, RejectReason.NON_FINITE),
    ("packed_f32", f32(1, 2, 3, 4, np.inf, 6), ALLOW, RejectReason.NON_FINITE),
    ("packed_f64", f64(-np.inf, 2, 3), {}, RejectReason.NON_FINITE),
    ("packed_f64", f64(1, np.nan, np.inf), ALLOW, RejectReason.NON_FINITE),
    # missing_feature
    ("json", b'{"temp": 1, "pressure": 2}', {}, RejectReason.MISSING_FEATURE),
    ("json", b'{"temp": 1, "hum": null, "pressure": 2}', {}, RejectReason.MISSING_FEATURE),
    ("json", b"{}", {}, RejectReason.MISSING_FEATURE),
    ("json_array", b"[1, null, 3]", {}, RejectReason.MISSING_FEATURE),
    ("csv", b"1,,3", {}, RejectReason.MISSING_FEATURE),
    ("csv", b"1, ,3", {}, RejectReason.MISSING_FEATURE),
    # all_missing
    ("json", b"{}", ALLOW, RejectReason.ALL_MISSING),
    ("json", b'{"sensor": "s1", "temp": null}', ALLOW, RejectReason.ALL_MISSING),
    ("json_array", b"[null, null, null]", ALLOW, RejectReason.ALL_MISSING),
    ("csv", b",,", ALLOW, RejectReason.ALL_MISSING),
    ("packed_f32", f32(1, 2, 3, np.nan, np.nan, np.nan), ALLOW, RejectReason.ALL_MISSING),
    ("packed_f64", f64(np.nan, np.nan, np.nan), ALLOW, RejectReason.ALL_MISSING),
]


@pytest.mark.parametrize(
    ("format", "value", "options", "reason"),
    CASES,
    ids=[f"{case[3].value}-{case[0]}-{index}" for index, case in enumerate(CASES)],
)
def test_rejections(
    format: str, value: bytes | None, options: dict[str, object], reason: RejectReason
) -> None:
    error = rejected(value, spec(format, **options))
    assert error.reason is reason
    assert error.detail
    assert str(error) == f"{reason.value}: {error.detail}"


def test_every_reason_is_exercised() -> None:
    # missing_key and key_too_long are the sequence-key decoder's reasons (their own tests
    # above); the others are
    # given after decoding: by the row guard (tests/service/test_guard.py) and by the loop for an
    # unexpected error (tests/service/test_app.py); no_known_word is the text decoder's
    # (tests/service/test_documents.py).
    after_decoding = {
        RejectReason.MISSING_KEY,
        RejectReason.KEY_TOO_LONG,
        RejectReason.NO_KNOWN_WORD,
        RejectReason.OUT_OF_BOUNDS,
        RejectReason.DEGENERATE,
        RejectReason.OUTLIER,
        RejectReason.INTERNAL,
    }
    assert {case[3] for case in CASES} == set(RejectReason) - after_decoding


def test_detail_names_the_feature() -> None:
    error = rejected(b'{"temp": 1, "pressure": 2}', spec())
    assert "'hum'" in error.detail
    error = rejected(f32(1, 2, 3, 4, 5, np.inf), spec("packed_f32"))
    assert "point 1" in error.detail
    assert "'pressure'" in error.detail


def test_too_large_is_checked_before_parsing() -> None:
    error = rejected(b"not json at all", spec(max_record_bytes=4))
    assert error.reason is RejectReason.TOO_LARGE
    assert "15 bytes" in error.detail


def test_record_rejected_is_a_validation_error_and_pickles() -> None:
    error = rejected(b"", spec())
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail) == (error.reason, error.detail)


def test_reason_is_a_plain_string_label() -> None:
    error = rejected(b"[1]", spec("json_array"))
    assert error.reason == "wrong_dimension"
    assert f"{error.reason}" == "wrong_dimension"
    assert error.reason.encode() == b"wrong_dimension"  # usable as a Kafka header value


# ---------------------------------------------------------------------------------------------
# Encoding and the round trip
# ---------------------------------------------------------------------------------------------


def test_encode_examples() -> None:
    point = [21.5, 40.0, 1013.25]
    assert encode_points(point, spec("json")) == b'{"temp":21.5,"hum":40.0,"pressure":1013.25}'
    assert encode_points(point, spec("json_array")) == b"[21.5,40.0,1013.25]"
    assert encode_points([point], spec("csv")) == b"21.5,40.0,1013.25"
    assert encode_points(point, spec("csv", csv_delimiter="\t")) == b"21.5\t40.0\t1013.25"
    assert encode_points(point, spec("packed_f64")) == f64(*point)
    assert encode_points(point, spec("packed_f32")) == f32(*point)


def test_encode_writes_nan_as_missing() -> None:
    point = [1.0, np.nan, 3.0]
    assert encode_points(point, spec("json")) == b'{"temp":1.0,"hum":null,"pressure":3.0}'
    assert encode_points(point, spec("json_array")) == b"[1.0,null,3.0]"
    assert encode_points(point, spec("csv")) == b"1.0,,3.0"


@pytest.mark.parametrize(
    ("format", "points", "match"),
    [
        ("json", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "one point per record"),
        ("csv", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "one point per record"),
        ("json", [1.0, 2.0], "expected shape"),
        ("packed_f32", np.zeros((2, 4)), "expected shape"),
        ("packed_f32", np.zeros((0, 3)), "expected shape"),
        ("packed_f64", np.zeros((2, 3, 1)), "expected shape"),
        ("json", [1.0, np.inf, 3.0], "inf"),
        ("packed_f64", [1.0, -np.inf, 3.0], "inf"),
        ("packed_f32", [1.0, 1e300, 3.0], "overflows float32"),
    ],
)
def test_encode_rejects_what_cannot_be_a_record(format: str, points: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        encode_points(points, spec(format))  # type: ignore[arg-type]


FINITE64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
FINITE32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def with_missing(elements: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.one_of(elements, st.just(float("nan")))


def point_arrays(
    elements: st.SearchStrategy[float], max_points: int
) -> st.SearchStrategy[np.ndarray]:
    shapes = st.tuples(st.integers(1, max_points), st.just(D))
    return hnp.arrays(np.float64, shapes, elements=elements)


def assert_round_trip(points: np.ndarray, format: str, allow_missing: bool) -> None:
    input_spec = spec(format, allow_missing=allow_missing)
    decoded = decode(encode_points(points, input_spec), input_spec)
    assert decoded.dtype == np.float64
    assert decoded.shape == points.shape
    np.testing.assert_array_equal(decoded, points)  # NaN == NaN here
    np.testing.assert_array_equal(np.signbit(decoded), np.signbit(points))  # -0.0 survives


@pytest.mark.parametrize("format", ["json", "json_array", "csv"])
@settings(max_examples=150, deadline=None)
@given(points=point_arrays(FINITE64, max_points=1))
def test_round_trip_text_formats(format: str, points: np.ndarray) -> None:
    assert_round_trip(points, format, allow_missing=False)


@pytest.mark.parametrize("format", ["json", "json_array", "csv"])
@settings(max_examples=150, deadline=None)
@given(points=point_arrays(with_missing(FINITE64), max_points=1))
def test_round_trip_text_formats_with_missing(format: str, points: np.ndarray) -> None:
    if np.isnan(points).all(axis=1).any():
        with pytest.raises(RecordRejected, match="all_missing"):
            assert_round_trip(points, format, allow_missing=True)
    else:
        assert_round_trip(points, format, allow_missing=True)


@pytest.mark.parametrize(
    ("format", "elements"), [("packed_f32", FINITE32), ("packed_f64", FINITE64)]
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_packed(
    format: str, elements: st.SearchStrategy[float], data: st.DataObject
) -> None:
    assert_round_trip(data.draw(point_arrays(elements, max_points=50)), format, allow_missing=False)


@pytest.mark.parametrize(
    ("format", "elements"), [("packed_f32", FINITE32), ("packed_f64", FINITE64)]
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_packed_with_missing(
    format: str, elements: st.SearchStrategy[float], data: st.DataObject
) -> None:
    points = data.draw(point_arrays(with_missing(elements), max_points=20))
    points[:, 0] = np.nan_to_num(points[:, 0])  # keep every point partly observed
    assert_round_trip(points, format, allow_missing=True)


def test_all_formats_are_covered() -> None:
    assert set(FORMATS) == {"json", "json_array", "csv", "packed_f32", "packed_f64"}
