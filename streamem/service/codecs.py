"""Decode and validate record values into points; encode points into record values.

This is the daemon's hot path: one call per Kafka record, a few microseconds each. A record's
value becomes a float64 array of shape ``(n_points, n_features)``, or is rejected with a
:class:`RecordRejected` whose :attr:`~RecordRejected.reason` is one of the few values of
:class:`RejectReason` (a metric label and a dead-letter header) and whose
:attr:`~RecordRejected.detail` explains it to a human.

Formats (``input.format``), for features ``[temp, hum]``:

``json``
    One point per record, a JSON object with the features as fields:
    ``{"sensor": "s1", "temp": 21.5, "hum": 0.4}`` (other fields are ignored).
``json_array``
    One point per record, a JSON array of the features in order: ``[21.5, 0.4]``.
``csv``
    One point per record, one line of the features in order: ``21.5,0.4`` (a trailing newline
    is allowed; no header, no quoting).
``packed_f32`` / ``packed_f64``
    Any number of points per record: the little-endian float32 / float64 values, row after row,
    so the length is a multiple of ``n_features * 4`` (or 8) bytes. The whole record is rejected
    if one of its points is.

Validation: numbers only (booleans, strings, even ``"21.5"``, nested values are rejected as
``non_numeric``); NaN and infinities are rejected as ``non_finite``, including the non-standard
JSON literals ``NaN`` and ``Infinity`` and numbers too large for a float64. A missing or null
feature (an empty CSV field) is ``missing_feature``, unless ``input.allow_missing`` is true: then
it becomes NaN, which the model marginalises. In packed formats NaN is the only way to mark a
missing feature, so there it means "missing" if ``allow_missing`` is true and is ``non_finite``
otherwise. A point whose features are all missing is rejected as ``all_missing``.
"""

from __future__ import annotations

import json
import json.scanner
import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from streamem.errors import ValidationError

__all__ = [
    "FORMATS",
    "JSON_PARSERS",
    "ROW_FORMATS",
    "CodecSpec",
    "Decoded",
    "RecordRejected",
    "RejectReason",
    "Row",
    "decode",
    "encode_points",
    "row_decoder",
    "sequence_key_decoder",
]

Decoded: TypeAlias = npt.NDArray[np.float64]
"""The points of one record: a float64 array of shape ``(n_points, n_features)``."""

FORMATS = ("json", "json_array", "csv", "packed_f32", "packed_f64")
"""The record formats that :func:`decode` and :func:`encode_points` understand."""


class CodecSpec(Protocol):
    """What the codecs need to know; :class:`streamem.service.config.InputSettings` is one.

    Examples
    --------
    >>> from streamem.service.config import InputSettings
    >>> spec: CodecSpec = InputSettings(features=["temp", "hum"])
    >>> spec.format
    'json'
    """

    @property
    def format(self) -> str:
        """One of :data:`FORMATS`."""
        ...

    @property
    def features(self) -> Sequence[str]:
        """The feature names, in order; their number is the dimension."""
        ...

    @property
    def max_record_bytes(self) -> int:
        """Longer values are rejected before parsing."""
        ...

    @property
    def allow_missing(self) -> bool:
        """Whether a missing feature becomes NaN instead of a rejection."""
        ...

    @property
    def csv_delimiter(self) -> str:
        """The field separator of the ``csv`` format."""
        ...


class RejectReason(StrEnum):
    """Why a record was rejected: a short, stable, low-cardinality label.

    Examples
    --------
    >>> str(RejectReason.NON_FINITE)
    'non_finite'
    >>> [reason.value for reason in RejectReason][:3]
    ['empty', 'too_large', 'malformed']
    """

    EMPTY = "empty"
    """The value is None (a tombstone) or has no content."""
    TOO_LARGE = "too_large"
    """The value is longer than ``max_record_bytes``."""
    MALFORMED = "malformed"
    """Not UTF-8, not JSON, the wrong JSON type, or more than one CSV line."""
    WRONG_DIMENSION = "wrong_dimension"
    """A JSON array or CSV line with the wrong number of values, or a packed length that is
    not a multiple of the point size."""
    NON_NUMERIC = "non_numeric"
    """A feature that is a boolean, a string, an object or an array instead of a number."""
    NON_FINITE = "non_finite"
    """A NaN or an infinity (or a number too large for a float64)."""
    MISSING_FEATURE = "missing_feature"
    """A missing or null feature while ``allow_missing`` is false."""
    ALL_MISSING = "all_missing"
    """A point whose features are all missing (there is nothing to learn from)."""
    MISSING_KEY = "missing_key"
    """No usable sequence key (``input.sequence_key``): missing, null, empty, or neither a
    string nor an integer."""
    KEY_TOO_LONG = "key_too_long"
    """A sequence key longer than ``input.max_key_bytes`` (UTF-8): every key's filter state is
    kept and checkpointed, so a huge key would weigh on every checkpoint."""
    OUT_OF_BOUNDS = "out_of_bounds"
    """A feature outside its ``input.bounds`` interval."""
    DEGENERATE = "degenerate"
    """A point the model cannot learn from at all: values so large that its statistics
    overflow, or a point that made the engine refuse the update it was part of."""
    OUTLIER = "outlier"
    """A point far less likely than what the warm model explains (see ``guard``)."""
    NO_KNOWN_WORD = "no_known_word"
    """A text document none of whose words is in the fixed vocabulary (``input.format: text``)."""
    INTERNAL = "internal"
    """Handling the record raised an unexpected error: the record is dead-lettered with the
    error in its detail, and the daemon goes on (a bug to report)."""


class RecordRejected(ValidationError):  # noqa: N818 - a rejection, named in the design
    """A record's value cannot become points.

    Parameters
    ----------
    reason
        The machine-readable reason.
    detail
        A human-readable explanation naming the offending feature or byte count.

    Examples
    --------
    >>> error = RecordRejected(RejectReason.EMPTY, "the record has no value")
    >>> error.reason, str(error)
    (<RejectReason.EMPTY: 'empty'>, 'empty: the record has no value')
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[RecordRejected], tuple[RejectReason, str]]:
        return (type(self), (self.reason, self.detail))


class _NonFiniteLiteralError(Exception):
    """Raised by the JSON parser on ``NaN``, ``Infinity`` or ``-Infinity``."""


def _reject_constant(name: str) -> float:
    raise _NonFiniteLiteralError(name)


_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordRejected(RejectReason.MALFORMED, f"not UTF-8 text: {exc.reason}") from None


def _parse_json(value: bytes) -> Any:
    text = _text(value)
    try:
        return _JSON_DECODER.decode(text)
    except _NonFiniteLiteralError as exc:
        raise RecordRejected(RejectReason.NON_FINITE, f"JSON literal {exc} is not finite") from None
    except RecursionError:
        raise RecordRejected(
            RejectReason.MALFORMED, "not valid JSON here: nested deeper than the parser allows"
        ) from None
    except ValueError as exc:
        if not text.strip():
            raise RecordRejected(RejectReason.EMPTY, "the value is blank") from None
        raise RecordRejected(RejectReason.MALFORMED, f"not valid JSON: {exc}") from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")


def _point(values: list[Any], spec: CodecSpec) -> Decoded:
    """Check one point's parsed values (numbers or None) and return them as a ``(1, d)`` array."""
    n_missing = 0
    for index, value in enumerate(values):
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise RecordRejected(
                    RejectReason.NON_FINITE,
                    f"feature {spec.features[index]!r} is {value!r}",
                )
        elif kind is int:
            continue  # an int too large for a float64 is caught below
        elif value is None:
            if not spec.allow_missing:
                raise RecordRejected(
                    RejectReason.MISSING_FEATURE,
                    f"feature {spec.features[index]!r} is missing or null",
                )
            n_missing += 1
        else:
            raise RecordRejected(
                RejectReason.NON_NUMERIC,
                f"feature {spec.features[index]!r} is {_json_type(value)}, expected a number",
            )
    if n_missing == len(values):
        raise RecordRejected(RejectReason.ALL_MISSING, "every feature is missing")
    try:
        return np.array([values], dtype=np.float64)
    except OverflowError:
        raise RecordRejected(
            RejectReason.NON_FINITE, "a feature is too large for a float64"
        ) from None


def _decode_json(value: bytes, spec: CodecSpec) -> Decoded:
    record = _parse_json(value)
    if type(record) is not dict:
        raise RecordRejected(
            RejectReason.MALFORMED, f"expected a JSON object, received {_json_type(record)}"
        )
    return _point([record.get(name) for name in spec.features], spec)


def _decode_json_array(value: bytes, spec: CodecSpec) -> Decoded:
    record = _parse_json(value)
    if type(record) is not list:
        raise RecordRejected(
            RejectReason.MALFORMED, f"expected a JSON array, received {_json_type(record)}"
        )
    if len(record) != len(spec.features):
        raise RecordRejected(
            RejectReason.WRONG_DIMENSION,
            f"expected {len(spec.features)} values, received {len(record)}",
        )
    return _point(record, spec)


def _csv_field(field: str, name: str) -> float | None:
    field = field.strip()
    if not field:
        return None
    # float() also accepts "1_000" and non-ASCII digits; a CSV number is plain ASCII.
    if field.isascii() and "_" not in field:
        try:
            return float(field)
        except ValueError:
            pass
    raise RecordRejected(
        RejectReason.NON_NUMERIC, f"feature {name!r} is {field[:40]!r}, expected a number"
    )


def _decode_csv(value: bytes, spec: CodecSpec) -> Decoded:
    line = _text(value).rstrip("\r\n")
    if not line.strip():
        raise RecordRejected(RejectReason.EMPTY, "the line is blank")
    if "\n" in line or "\r" in line:
        raise RecordRejected(RejectReason.MALFORMED, "expected one CSV line, received several")
    fields = line.split(spec.csv_delimiter)
    if len(fields) != len(spec.features):
        raise RecordRejected(
            RejectReason.WRONG_DIMENSION,
            f"expected {len(spec.features)} fields separated by {spec.csv_delimiter!r}, "
            f"received {len(fields)}",
        )
    return _point([_csv_field(f, n) for f, n in zip(fields, spec.features, strict=True)], spec)


def _decode_packed(value: bytes, spec: CodecSpec, dtype: np.dtype[Any]) -> Decoded:
    n_features = len(spec.features)
    point_bytes = n_features * dtype.itemsize
    if len(value) % point_bytes:
        raise RecordRejected(
            RejectReason.WRONG_DIMENSION,
            f"{len(value)} bytes is not a whole number of points of {n_features} "
            f"{dtype.name} values ({point_bytes} bytes each)",
        )
    raw = np.frombuffer(value, dtype=dtype).reshape(-1, n_features)
    points: Decoded = raw.astype(np.float64, copy=False)
    finite = np.isfinite(points)
    if not finite.all():
        # With allow_missing, NaN marks a missing feature; an infinity is always an error.
        bad = np.isinf(points) if spec.allow_missing else ~finite
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise RecordRejected(
                RejectReason.NON_FINITE,
                f"point {row}, feature {spec.features[col]!r} is {float(points[row, col])!r}",
            )
        empty_rows = np.flatnonzero(~finite.any(axis=1))
        if empty_rows.size:
            raise RecordRejected(
                RejectReason.ALL_MISSING, f"every feature of point {int(empty_rows[0])} is NaN"
            )
    return points


_F32 = np.dtype("<f4")
_F64 = np.dtype("<f8")

_DECODERS: dict[str, Callable[[bytes, CodecSpec], Decoded]] = {
    "json": _decode_json,
    "json_array": _decode_json_array,
    "csv": _decode_csv,
    "packed_f32": lambda value, spec: _decode_packed(value, spec, _F32),
    "packed_f64": lambda value, spec: _decode_packed(value, spec, _F64),
}


def _unknown_format(spec: CodecSpec) -> ValidationError:
    return ValidationError(f"input.format: expected one of {FORMATS}, received {spec.format!r}")


def decode(value: bytes | None, spec: CodecSpec) -> Decoded:
    """Turn one record's value into validated points.

    Parameters
    ----------
    value
        The record's value; None is a tombstone.
    spec
        The ``input`` section of the configuration (or any :class:`CodecSpec`).

    Returns
    -------
    numpy.ndarray
        float64 points of shape ``(n_points, n_features)``: one point for the text formats,
        one or more for the packed formats. NaN marks a missing feature (``allow_missing``
        only). For ``packed_f64`` on a little-endian machine the array is a read-only view of
        ``value`` (no copy): copy it before modifying it in place.

    Raises
    ------
    RecordRejected
        If the value is not a valid record; ``reason`` says why (see :class:`RejectReason`).
    ValidationError
        If ``spec.format`` is not one of :data:`FORMATS` (a programming error, not a bad record).

    Examples
    --------
    >>> from streamem.service.config import InputSettings
    >>> spec = InputSettings(format="json", features=["temp", "hum"])
    >>> decode(b'{"sensor": "s1", "temp": 21.5, "hum": 40}', spec)
    array([[21.5, 40. ]])
    >>> decode(b'{"temp": true, "hum": 40}', spec)
    Traceback (most recent call last):
    ...
    streamem.service.codecs.RecordRejected: non_numeric: feature 'temp' is a boolean, ...
    """
    if not value:
        raise RecordRejected(
            RejectReason.EMPTY, "the record has no value" if value is None else "the value is empty"
        )
    if len(value) > spec.max_record_bytes:
        raise RecordRejected(
            RejectReason.TOO_LARGE,
            f"{len(value)} bytes, more than max_record_bytes ({spec.max_record_bytes})",
        )
    decoder = _DECODERS.get(spec.format)
    if decoder is None:
        raise _unknown_format(spec)
    return decoder(value, spec)


ROW_FORMATS = ("json", "json_array", "csv")
"""The formats of one point per record, which :func:`row_decoder` decodes into plain rows."""

Row: TypeAlias = list[float]
"""The point of a one-point record as a list of ``n_features`` floats (NaN: missing)."""

# The C scanner that JSONDecoder.decode wraps; calling it directly saves the wrapper's work.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    _JSON_DECODER  # type: ignore[arg-type]
)
_SAFE_INT = 2**53  # ints below this convert to float64 exactly, without overflow


def _stdlib_parse(value: bytes) -> Any:
    text = value.decode("utf-8")
    record, end = _SCAN(text, 0)
    if end != len(text):
        raise ValueError("extra data")
    return record


_FAST_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "msgspec": msgspec.json.Decoder().decode,
    "stdlib": _stdlib_parse,
}
JSON_PARSERS = tuple(_FAST_PARSERS)
"""Parsers of :func:`row_decoder`'s short path: ``msgspec`` (the default) or ``stdlib``
(Python's C scanner, the earlier default; kept for ``benchmarks/daemon_throughput.py``)."""


def row_decoder(spec: CodecSpec, parser: str = "msgspec") -> Callable[[bytes | None], Row]:
    """Return a function that decodes one record of a one-point format into a plain row.

    It gives the same point as :func:`decode` (``decode(value, spec)[0].tolist()``) and rejects
    the same records with the same reason, several times as fast: a record of plain finite
    numbers takes a short path that builds no array (the caller builds one array per
    micro-batch); anything else goes through :func:`decode` itself.

    The short path parses with msgspec (bytes in, no UTF-8 decoding step, nesting bounded by
    construction). The rules that keep Python's ``json`` behaviour: whatever msgspec refuses
    (the ``NaN`` and ``Infinity`` literals, numbers that overflow a float64, a UTF-8 byte order
    mark, lone surrogate escapes, invalid UTF-8, nesting deeper than it allows) goes to the
    slow path, where the standard library decides and names the reason; what msgspec accepts
    the standard library accepts with the same values (duplicate keys: the last one wins in
    both; integers of any size stay integers, and the row keeps only those below 2**53).

    Parameters
    ----------
    spec
        The ``input`` section; its format must be one of :data:`ROW_FORMATS`.
    parser
        One of :data:`JSON_PARSERS`.

    Raises
    ------
    ValidationError
        If the format holds several points per record (packed formats).

    Examples
    --------
    >>> from streamem.service.config import InputSettings
    >>> row = row_decoder(InputSettings(format="json", features=["temp", "hum"]))
    >>> row(b'{"sensor": "s1", "temp": 21.5, "hum": 40}')
    [21.5, 40]
    >>> row(b'{"temp": 21.5}')
    Traceback (most recent call last):
    ...
    streamem.service.codecs.RecordRejected: missing_feature: feature 'hum' is missing or null
    """
    if spec.format not in ROW_FORMATS:
        raise ValidationError(
            f"input.format: expected one of {ROW_FORMATS} for rows, received {spec.format!r}"
        )
    features = tuple(spec.features)
    n_features = len(features)
    max_bytes = spec.max_record_bytes
    isfinite = math.isfinite
    parse = _FAST_PARSERS[parser]

    def slow(value: bytes | None) -> Row:
        row: Row = decode(value, spec)[0].tolist()
        return row

    def plain(row: list[Any]) -> bool:
        for x in row:
            kind = type(x)
            if kind is float:
                if not isfinite(x):
                    return False
            elif kind is not int or not -_SAFE_INT < x < _SAFE_INT:
                return False
        return True

    def json_object(value: bytes | None) -> Row:
        if not value or len(value) > max_bytes:
            return slow(value)
        try:
            record = parse(value)
        except Exception:  # not UTF-8, not JSON, NaN literals, too deep: the slow path decides
            return slow(value)
        if type(record) is not dict:
            return slow(value)
        row: list[Any] = [record.get(name) for name in features]
        return row if plain(row) else slow(value)

    def json_array(value: bytes | None) -> Row:
        if not value or len(value) > max_bytes:
            return slow(value)
        try:
            record = parse(value)
        except Exception:
            return slow(value)
        if type(record) is not list or len(record) != n_features:
            return slow(value)
        return record if plain(record) else slow(value)

    if spec.format == "json":
        return json_object
    if spec.format == "json_array":
        return json_array
    return slow


def sequence_key_decoder(
    spec: CodecSpec, field: str, max_bytes: int | None = None
) -> Callable[[bytes | None], str]:
    """Return a function that reads a ``json`` record's sequence key: its field ``field``.

    A sequential model family (a hidden Markov model, a state-space model) learns each key's
    readings as one sequence. The key is a non-empty string, or an integer (given as its
    decimal string) of at most ``max_bytes`` bytes in UTF-8 (``key_too_long`` beyond; no
    limit when None). Call it on records that the row decoder accepted (JSON objects); it
    parses the record once more.

    Examples
    --------
    >>> from streamem.service.config import InputSettings
    >>> key = sequence_key_decoder(InputSettings(features=["temp"]), "sensor")
    >>> key(b'{"sensor": "s1", "temp": 21.5}'), key(b'{"sensor": 7, "temp": 20}')
    ('s1', '7')
    >>> key(b'{"temp": 21.5}')
    Traceback (most recent call last):
    ...
    streamem.service.codecs.RecordRejected: missing_key: the sequence key field 'sensor' is \
missing or null
    >>> sequence_key_decoder(InputSettings(features=["temp"]), "sensor", 4)(b'{"sensor": "s12345"}')
    Traceback (most recent call last):
    ...
    streamem.service.codecs.RecordRejected: key_too_long: the sequence key field 'sensor' is 6 \
bytes long, more than input.max_key_bytes (4)
    """
    if spec.format != "json":
        raise ValidationError(
            f"input.sequence_key: expected input.format 'json' (a key is a named field), "
            f"received {spec.format!r}"
        )

    def sequence_key(value: bytes | None) -> str:
        record = _parse_json(value or b"")
        key = record.get(field) if type(record) is dict else None
        if type(key) is int:
            key = str(key)
        if type(key) is str and key:
            size = len(key.encode("utf-8", "surrogatepass")) if max_bytes is not None else 0
            if max_bytes is not None and size > max_bytes:
                raise RecordRejected(
                    RejectReason.KEY_TOO_LONG,
                    f"the sequence key field {field!r} is {size:,} bytes long, more than "
                    f"input.max_key_bytes ({max_bytes:,})",
                )
            return key
        if key is None:
            detail = f"the sequence key field {field!r} is missing or null"
        else:
            detail = f"the sequence key field {field!r} must be a non-empty string or an "
            detail += f"integer, got {_json_type(key)}"
        raise RecordRejected(RejectReason.MISSING_KEY, detail)

    return sequence_key


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def encode_points(points: npt.ArrayLike, spec: CodecSpec) -> bytes:
    """Encode points as one record's value; the inverse of :func:`decode`.

    Parameters
    ----------
    points
        Points of shape ``(n_points, n_features)``, or one point of shape ``(n_features,)``.
        The text formats hold exactly one point per record. NaN marks a missing feature and is
        written as ``null`` (JSON), an empty field (CSV) or NaN (packed).
    spec
        The ``input`` section of the configuration (or any :class:`CodecSpec`).

    Returns
    -------
    bytes
        The record's value. Text formats write each float with its shortest exact
        representation, so decoding gives back the same float64 values; ``packed_f32`` rounds
        to float32.

    Raises
    ------
    ValidationError
        If the shape does not fit the spec, a value is infinite, or a value overflows float32.

    Examples
    --------
    >>> from streamem.service.config import InputSettings
    >>> encode_points([21.5, 40.0], InputSettings(format="json", features=["temp", "hum"]))
    b'{"temp":21.5,"hum":40.0}'
    >>> spec = InputSettings(format="packed_f32", features=["temp", "hum"])
    >>> decode(encode_points([[1.0, 2.0], [3.0, 4.0]], spec), spec)
    array([[1., 2.], [3., 4.]])
    """
    n_features = len(spec.features)
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != n_features or array.shape[0] == 0:
        raise ValidationError(
            f"points: expected shape (n_points >= 1, {n_features}), received {np.shape(points)}"
        )
    if np.isinf(array).any():
        raise ValidationError("points: expected finite values or NaN (missing), received inf")
    if spec.format in ("packed_f32", "packed_f64"):
        dtype = _F32 if spec.format == "packed_f32" else _F64
        packed = array.astype(dtype)
        if np.isinf(packed).any():
            raise ValidationError(f"points: a value overflows {dtype.name}")
        return packed.tobytes()
    if spec.format not in _DECODERS:
        raise _unknown_format(spec)
    if array.shape[0] != 1:
        raise ValidationError(
            f"points: the {spec.format} format holds one point per record, "
            f"received {array.shape[0]}"
        )
    row = [_number(x) for x in array[0].tolist()]
    if spec.format == "json":
        document: Any = dict(zip(spec.features, row, strict=True))
    elif spec.format == "json_array":
        document = row
    else:
        return spec.csv_delimiter.join("" if x is None else repr(x) for x in row).encode()
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
