"""From tokens to the columns of a document-term matrix: a fixed vocabulary or hashing.

A topic model's topics are distributions over a fixed set of columns. A stream of text either
states its vocabulary up front (:class:`FixedVocabulary`: column ``j`` is word ``j``; a word
outside it is dropped and counted) or hashes every token into ``n_features`` columns
(:class:`HashingVocabulary`: the columns of scikit-learn's
``HashingVectorizer(alternate_sign=False, norm=None)``, so that a corpus vectorised offline
with scikit-learn lands in the same columns).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import murmurhash3_32

from streamem.errors import ValidationError


def token_count(token: Hashable, value: Any) -> float:
    """``value`` as a count: a finite real number >= 0 (not a bool); raise otherwise."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"the count of token {token!r} must be a number >= 0, got {type(value).__name__} "
            f"{value!r}"
        )
    count = float(value)
    if not math.isfinite(count) or count < 0.0:
        raise ValidationError(f"the count of token {token!r} must be a number >= 0, got {value!r}")
    return count


class FixedVocabulary:
    """Column ``j`` is ``words[j]``; tokens outside the vocabulary are dropped.

    Examples
    --------
    >>> vocabulary = FixedVocabulary(["rain", "sun", "wind"])
    >>> vocabulary.encode({"sun": 2, "snow": 1, "rain": 1})
    ({1: 2.0, 0: 1.0}, 1)
    >>> vocabulary.word(2), vocabulary.n_features
    ('wind', 3)
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(words)
        if not self.words:
            raise ValidationError("vocabulary must hold at least one word, got none")
        self.index = {word: j for j, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValidationError("vocabulary must not repeat a word")

    @property
    def n_features(self) -> int:
        """Number of columns."""
        return len(self.words)

    def column(self, token: Hashable) -> int | None:
        """The column of ``token``, None for a word outside the vocabulary."""
        return self.index.get(token)  # type: ignore[call-overload, no-any-return]

    def word(self, column: int) -> str:
        """The word of a column."""
        return self.words[column]

    def encode(self, tokens: Mapping[Hashable, Any]) -> tuple[dict[int, float], int]:
        """A document's token counts as column counts, and how many tokens were unknown."""
        return _encode(self, tokens)


class HashingVocabulary:
    """Column ``abs(murmurhash3_32(token, seed=0)) % n_features``, scikit-learn's hashing.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import HashingVectorizer
    >>> vocabulary = HashingVocabulary(2**10)
    >>> ours, unknown = vocabulary.encode({"rain": 2, "sun": 1})
    >>> theirs = HashingVectorizer(n_features=2**10, alternate_sign=False, norm=None)
    >>> row = theirs.transform(["rain rain sun"])
    >>> ours == dict(zip(row.indices.tolist(), row.data.tolist())), unknown
    (True, 0)
    """

    def __init__(self, n_features: int) -> None:
        if not isinstance(n_features, int | np.integer) or n_features < 1:
            raise ValidationError(f"n_features must be an integer >= 1, got {n_features!r}")
        self.n_features = int(n_features)

    def column(self, token: Hashable) -> int:
        """The column of ``token`` (its ``str``)."""
        return abs(int(murmurhash3_32(str(token), seed=0))) % self.n_features

    def word(self, column: int) -> str:
        """A column's name: ``"#<column>"`` (hashing does not keep the tokens)."""
        return f"#{column}"

    def encode(self, tokens: Mapping[Hashable, Any]) -> tuple[dict[int, float], int]:
        """A document's token counts as column counts (hashing knows every token: 0 unknown)."""
        return _encode(self, tokens)


Vocabulary = FixedVocabulary | HashingVocabulary


def _encode(vocabulary: Vocabulary, tokens: Mapping[Hashable, Any]) -> tuple[dict[int, float], int]:
    columns: dict[int, float] = {}
    unknown = 0
    for token, value in tokens.items():
        count = token_count(token, value)
        column = vocabulary.column(token)
        if column is None:
            unknown += 1
        elif count:
            columns[column] = columns.get(column, 0.0) + count
    return columns, unknown


def vocabulary_from(spec: Sequence[str] | int) -> Vocabulary:
    """A fixed vocabulary from a sequence of words, hashing from a number of columns."""
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        return HashingVocabulary(int(spec))
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValidationError(
            f"vocabulary must be a sequence of words or a number of hashed columns, got {spec!r}"
        )
    return FixedVocabulary(str(word) for word in spec)


def documents_matrix(rows: Sequence[Mapping[int, float]], n_features: int) -> sp.csr_matrix:
    """The CSR document-term matrix (len(rows), n_features) of column-count rows.

    Raises
    ------
    ValidationError
        If a column is outside ``[0, n_features)`` or a count is not a number >= 0.

    Examples
    --------
    >>> documents_matrix([{2: 1.0, 0: 3.0}, {}], n_features=3).toarray()
    array([[3., 0., 1.],
           [0., 0., 0.]])
    """
    lengths = [len(row) for row in rows]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(int(indptr[-1]), dtype=np.float64)
    position = 0
    for row in rows:
        for column, value in row.items():
            if not isinstance(column, int | np.integer) or not 0 <= column < n_features:
                raise ValidationError(
                    f"a document's column must be an integer in [0, {n_features}), got {column!r}"
                )
            indices[position] = column
            data[position] = token_count(column, value)
            position += 1
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_features))
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix
