"""Synthetic corpora from the LDA generative model, and how well learned topics match.

A :class:`TopicCorpus` holds K topics (word distributions over V words) and a document-topic
prior; :meth:`TopicCorpus.sample` draws documents by the generative model of latent Dirichlet
allocation (topic proportions from Dirichlet(alpha), then each token's topic, then its word).
:func:`matched_topic_cosine` scores learned topics against the generating ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from streamem.errors import ValidationError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TopicCorpus:
    """The generating topics and document-topic prior of a synthetic corpus.

    Attributes
    ----------
    topics
        Word distributions (n_topics, n_words), rows summing to one.
    doc_topic_prior
        ``alpha`` of the symmetric Dirichlet prior of each document's topic proportions.

    Examples
    --------
    >>> corpus = TopicCorpus.random(n_topics=4, n_words=50, rng=np.random.default_rng(0))
    >>> X, theta = corpus.sample(3, doc_length=20, rng=np.random.default_rng(1))
    >>> X.shape, X.sum(axis=1).A1.tolist(), theta.shape
    ((3, 50), [20.0, 20.0, 20.0], (3, 4))
    """

    topics: FloatArray
    doc_topic_prior: float = 0.1

    @classmethod
    def random(
        cls,
        n_topics: int,
        n_words: int,
        rng: np.random.Generator,
        topic_word_concentration: float = 0.05,
        doc_topic_prior: float = 0.1,
    ) -> TopicCorpus:
        """Topics drawn from a symmetric Dirichlet(``topic_word_concentration``)."""
        if n_topics < 1 or n_words < 2:
            raise ValidationError(
                f"a corpus needs n_topics >= 1 and n_words >= 2, got {n_topics} and {n_words}"
            )
        topics = rng.dirichlet(np.full(n_words, topic_word_concentration), size=n_topics)
        return cls(topics=topics, doc_topic_prior=doc_topic_prior)

    def sample(
        self, n_documents: int, doc_length: int, rng: np.random.Generator
    ) -> tuple[sp.csr_matrix, FloatArray]:
        """Documents of ``doc_length`` tokens: their counts (n_documents, n_words) as CSR,
        and their topic proportions (n_documents, n_topics)."""
        n_topics = self.topics.shape[0]
        theta = rng.dirichlet(np.full(n_topics, self.doc_topic_prior), size=n_documents)
        # Each document's word distribution is theta_d @ topics: one multinomial per document.
        word_probabilities = theta @ self.topics
        counts = np.stack([rng.multinomial(doc_length, p / p.sum()) for p in word_probabilities])
        return sp.csr_matrix(counts.astype(np.float64)), theta


def matched_topic_cosine(learned: FloatArray, true: FloatArray) -> float:
    """Mean cosine similarity between the generating topics and the learned ones, matched
    one to one (Hungarian assignment on the cosines), in [0, 1]; 1 is a perfect recovery.

    ``learned`` may be unnormalised (``components_``); both are (n_topics, n_words).

    Examples
    --------
    >>> true = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    >>> matched_topic_cosine(true[::-1] * 5.0, true)
    1.0
    """
    if learned.shape[1] != true.shape[1]:
        raise ValidationError(
            f"learned topics have {learned.shape[1]} words, the true ones {true.shape[1]}"
        )
    a = learned / np.linalg.norm(learned, axis=1, keepdims=True)
    b = true / np.linalg.norm(true, axis=1, keepdims=True)
    cosines = b @ a.T
    rows, columns = linear_sum_assignment(-cosines)
    return round(float(cosines[rows, columns].mean()), 12)
