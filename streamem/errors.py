"""The exceptions and warnings that streamem raises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


class StreamemError(Exception):
    """Base class of every error that streamem raises on purpose."""


class ValidationError(StreamemError, ValueError):
    """An input, a parameter or a config value is not what was expected."""


class NotFittedError(StreamemError, ValueError, AttributeError):
    """A model was used before it learned anything."""


class DegenerateUpdateError(StreamemError, ValueError):
    """An EM update produced parameters that are not a valid model (NaN, not positive definite)."""


class StreamemWarning(UserWarning):
    """Base class of the warnings that streamem emits."""


class RefusedUpdateWarning(StreamemWarning):
    """A mini-batch update was refused and the previous parameters were kept."""


def input_error(error: ValueError) -> ValidationError:
    """scikit-learn's error about an input array, as a :class:`ValidationError` without the
    array it prints (a 1-D array in full) and without its advice to use other estimators.

    Examples
    --------
    >>> print(input_error(ValueError(
    ...     "Expected 2D array, got 1D array instead:\\narray=[0. 1. 2.\\n 3.].\\nReshape it.")))
    Expected 2D array, got 1D array instead: Reshape it.
    >>> print(input_error(ValueError(
    ...     "Input X contains NaN.\\nLDA does not accept missing values encoded as NaN natively. "
    ...     "For supervised learning, you might want to consider HistGradientBoostingClassifier")))
    Input X contains NaN. LDA does not accept missing values encoded as NaN natively.
    """
    text = re.sub(r"\barray=\[.*?\]\.?", "", str(error), flags=re.DOTALL)
    text = text.split("For supervised learning")[0]
    return ValidationError(" ".join(text.split()))


def format_mismatch(document: dict[str, Any], expected: str | list[str]) -> str:
    """What is wrong with a document whose ``format`` is not ``expected``; a published
    snapshot (it has a ``schema_version`` and no ``format``) is named as one.

    Examples
    --------
    >>> format_mismatch({"format": "sklearn"}, "streamem.GaussianHMM")
    "not a streamem.GaussianHMM document (format is 'sklearn')"
    >>> format_mismatch({"format": None}, ["streamem.GaussianHMM", "streamem.LDA"])
    "format must be one of ['streamem.GaussianHMM', 'streamem.LDA'], got None"
    >>> print(format_mismatch({"schema_version": 1, "model": "plant"}, "streamem.GaussianHMM"))
    this is a model snapshot that a daemon published (schema_version 1), not a
    streamem.GaussianHMM model document: a snapshot holds the parameters, not the statistics to
    continue from; load a model document (to_json, the demo's model.json) or view the snapshot
    with streamem inspect
    """
    if "format" not in document and "schema_version" in document:
        return (
            "this is a model snapshot that a daemon published (schema_version "
            f"{document['schema_version']!r:.20}), not a {expected} model document: a snapshot "
            "holds the parameters, not the statistics to continue from; load a model document "
            "(to_json, the demo's model.json) or view the snapshot with streamem inspect"
        )
    found = document.get("format")
    if isinstance(expected, list):
        return f"format must be one of {expected}, got {found!r:.60}"
    return f"not a {expected} document (format is {found!r:.60})"


def path_hint(text: str | bytes) -> str:
    """What to add to "not JSON" when the text given as a document is a file's name.

    Examples
    --------
    >>> path_hint("model.json")
    ": 'model.json' looks like a file name; from_json takes the document's text, e.g. \
from_json(Path('model.json').read_text())"
    >>> path_hint('{"format": ')
    ''
    """
    name = text.decode(errors="replace") if isinstance(text, bytes) else text
    name = name.strip()
    if not name or "\n" in name or name[0] in "{[" or len(name) > 1024:
        return ""
    if not (name.lower().endswith((".json", ".ndjson", ".txt")) or Path(name).is_file()):
        return ""
    return (
        f": {name!r} looks like a file name; from_json takes the document's text, e.g. "
        f"from_json(Path({name!r}).read_text())"
    )
