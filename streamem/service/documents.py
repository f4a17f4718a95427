"""Decode text records into documents: the columns and counts of a topic model's rows.

With ``input.format: text`` each record's value is one document, UTF-8 text. A document is
tokenised as scikit-learn's ``CountVectorizer`` does by default (lower case, then the tokens
of the pattern ``(?u)\\b\\w\\w+\\b``: runs of two or more word characters), and its tokens
are counted into the columns of ``model.vocabulary``
(:class:`~streamem.models.common.vocabulary.FixedVocabulary` or
:class:`~streamem.models.common.vocabulary.HashingVocabulary`, the columns of scikit-learn's
``HashingVectorizer(alternate_sign=False, norm=None)``).

A record is rejected (dead-lettered with the reason) when it is a tombstone or holds no token
(``empty``), is longer than ``input.max_record_bytes`` (``too_large``), is not UTF-8
(``malformed``), or none of its tokens is in a fixed vocabulary (``no_known_word``).
No word counts more than ``input.max_word_count`` times in one document: a longer run is
capped, so that one document (a spam of one word repeated, a machine-generated text) cannot
give a word a large share of a topic; the document is learned with its capped counts.
A micro-batch of documents is a sparse CSR document-term matrix (:meth:`DocumentDecoder.batch`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import scipy.sparse as sp

from streamem.models.common.vocabulary import Vocabulary, documents_matrix
from streamem.service.codecs import RecordRejected, RejectReason

__all__ = ["TOKEN_PATTERN", "DocumentDecoder"]

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's default token pattern: two or more word characters."""

Document = dict[int, float]
"""A decoded document: column -> count (no zero)."""


class DocumentDecoder:
    """Decodes a text record into a document of column counts; rejects what cannot be one.

    Parameters
    ----------
    vocabulary
        The columns (:mod:`streamem.models.common.vocabulary`).
    max_bytes
        Longer values are rejected as ``too_large`` before decoding.
    max_word_count
        The most a word counts in one document (None: no cap).

    Examples
    --------
    >>> from streamem.models.common.vocabulary import FixedVocabulary
    >>> decode = DocumentDecoder(FixedVocabulary(["rain", "sun", "wind"]), max_bytes=100)
    >>> decode("Sun, rain and SUN again".encode())
    {1: 2.0, 0: 1.0}
    >>> decode(b"snow and hail")
    Traceback (most recent call last):
    ...
    streamem.service.codecs.RecordRejected: no_known_word: none of the 3 tokens is in the vocabulary
    >>> DocumentDecoder(FixedVocabulary(["rain"]), 10_000, max_word_count=20)(b"rain " * 1000)
    {0: 20.0}
    >>> decode.batch([{1: 2.0, 0: 1.0}, {2: 1.0}]).toarray()
    array([[1., 2., 0.],
           [0., 0., 1.]])
    """

    def __init__(
        self, vocabulary: Vocabulary, max_bytes: int, max_word_count: int | None = None
    ) -> None:
        self.vocabulary = vocabulary
        self.max_bytes = int(max_bytes)
        self.max_word_count = max_word_count
        self._tokens = re.compile(TOKEN_PATTERN).findall

    def __call__(self, value: bytes | None) -> Document:
        """The document of one record's value.

        Raises
        ------
        RecordRejected
            ``empty``, ``too_large``, ``malformed`` (not UTF-8) or ``no_known_word``.
        """
        if not value:
            raise RecordRejected(RejectReason.EMPTY, "the record has no value")
        if len(value) > self.max_bytes:
            raise RecordRejected(
                RejectReason.TOO_LARGE,
                f"the document has {len(value)} bytes, more than input.max_record_bytes "
                f"({self.max_bytes})",
            )
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordRejected(RejectReason.MALFORMED, f"not UTF-8: {error}") from None
        tokens = Counter(self._tokens(text.lower()))
        if not tokens:
            raise RecordRejected(
                RejectReason.EMPTY, "the document holds no token (two or more word characters)"
            )
        columns, _ = self.vocabulary.encode(tokens)
        if not columns:
            raise RecordRejected(
                RejectReason.NO_KNOWN_WORD,
                f"none of the {sum(tokens.values())} tokens is in the vocabulary",
            )
        cap = self.max_word_count
        if cap is not None:
            columns = {column: min(count, float(cap)) for column, count in columns.items()}
        return columns

    def batch(self, documents: Sequence[Document]) -> sp.csr_matrix:
        """The CSR document-term matrix ``(len(documents), n_features)`` of decoded documents."""
        return documents_matrix(documents, self.vocabulary.n_features)
