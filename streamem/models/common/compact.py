"""A compact, exact JSON encoding of large float arrays (no pickle).

A topic model's K x V statistics are too large for JSON lists of floats (about 20 characters
per number). An array is written as its little-endian float64 bytes, zlib-compressed
(statistics of words a topic never saw are exact zeros and compress well), in base64: about
11 characters per number at worst, and the exact same bits when read back.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import numpy as np

from streamem.engine.records import FloatArray
from streamem.errors import ValidationError

ENCODING = "zlib-base64-float64le"


def encode_array(values: FloatArray) -> dict[str, Any]:
    """``values`` as a JSON-able dictionary (shape, encoding and the packed bytes).

    Examples
    --------
    >>> packed = encode_array(np.array([[0.1, 0.0], [1e300, -2.5]]))
    >>> packed["shape"], packed["encoding"]
    ([2, 2], 'zlib-base64-float64le')
    >>> decode_array(packed).tolist()
    [[0.1, 0.0], [1e+300, -2.5]]
    """
    array = np.ascontiguousarray(values, dtype="<f8")
    data = base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")
    return {"encoding": ENCODING, "shape": list(array.shape), "data": data}


def decode_array(document: Any) -> FloatArray:
    """Inverse of :meth:`encode_array`.

    Raises
    ------
    ValidationError
        If ``document`` is not such an encoding or its bytes do not fill its shape.
    """
    if not isinstance(document, dict) or document.get("encoding") != ENCODING:
        raise ValidationError(f"an encoded array needs encoding {ENCODING!r}, got {document!r:.80}")
    shape = tuple(int(n) for n in document["shape"])
    try:
        raw = zlib.decompress(base64.b64decode(document["data"], validate=True))
    except (binascii.Error, zlib.error, TypeError) as error:
        raise ValidationError(f"an encoded array's data is not valid: {error}") from error
    if len(raw) != 8 * int(np.prod(shape)):
        raise ValidationError(f"an encoded array of shape {shape} holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype="<f8").reshape(shape).astype(np.float64)


def encode_fields(fields: dict[str, FloatArray]) -> dict[str, Any]:
    """Each array of a record's fields encoded (see :func:`encode_array`)."""
    return {name: encode_array(values) for name, values in fields.items()}


def decode_fields(document: dict[str, Any]) -> dict[str, FloatArray]:
    """Inverse of :func:`encode_fields`."""
    return {name: decode_array(value) for name, value in document.items()}
