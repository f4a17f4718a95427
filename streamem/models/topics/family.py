"""The LDA family: online variational Bayes for topic models as stepwise EM.

Online variational Bayes for latent Dirichlet allocation (Hoffman, Blei & Bach 2010) is
stepwise EM on the topic-word statistics. For a mini-batch of documents the E-step runs each
document's local fixed point (the variational Dirichlet ``gamma_d`` over its topics, with
``phi_dwk`` proportional to ``exp(E[log theta_dk] + E[log beta_kw])``) and returns the
expected topic-word counts ``sum_d n_dw phi_dwk``; the engine blends their per-document mean
into the running statistics ``s``; the M-step is ``lambda = eta + D * s``. The corpus-size
factor ``D`` is the effective number of documents behind the running statistics (the engine
hands :meth:`LDAFamily.maximize` the statistics already scaled to it), so a stream needs no
guess of its corpus size. With a step of 1 and the whole corpus as the batch it is batch
variational Bayes (``lambda = eta + sum_d n_dw phi_dwk``), as scikit-learn's
``learning_method="batch"``.

The E-step is vectorised over the documents of a batch: each fixed-point iteration is one
gather over the batch's non-zero counts and two sparse-dense products, and a document stops
iterating when its mean absolute change of ``gamma`` falls below the tolerance, as in
scikit-learn (documents that stopped are dropped from the arrays as they accumulate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.special import gammaln, psi

from streamem.engine.family import Expectation, NoCarry
from streamem.engine.records import ArrayRecord, FloatArray
from streamem.errors import DegenerateUpdateError

EPS = float(np.finfo(np.float64).eps)
"""Added to each word's normaliser in the fixed point, as scikit-learn does."""
INIT_GAMMA_SHAPE = 100.0
"""Random starting topic-word parameters are Gamma(100, 1/100) (mean 1), as scikit-learn's."""
COMPACT_WHEN_STOPPED = 0.25
"""The E-step rebuilds its arrays once this share of the iterating documents has stopped."""

Documents: TypeAlias = sp.csr_matrix
"""The batch type: a document-term matrix (n_documents, n_features) of non-negative counts."""


@dataclass(frozen=True)
class TopicWordParams(ArrayRecord):
    """The variational Dirichlet parameters of the topics.

    Attributes
    ----------
    components
        ``lambda``, shape (n_components, n_features): topic ``k``'s word distribution is
        Dirichlet(``lambda_k``) under the variational posterior.
    """

    components: FloatArray


@dataclass(frozen=True)
class TopicWordStats(ArrayRecord):
    """Expected topic-word counts.

    Attributes
    ----------
    word_topic
        ``sum_d n_dw phi_dwk``, shape (n_components, n_features).
    """

    word_topic: FloatArray


@dataclass(frozen=True)
class DocumentTopics:
    """The local fixed point of a batch of documents.

    Attributes
    ----------
    doc_topic
        ``gamma``, shape (n_documents, n_components): the variational Dirichlet parameters of
        each document's topic proportions.
    word_topic
        Expected topic-word counts of the batch (n_components, n_features), or None when
        they were not asked for.
    bound
        Each document's part of the evidence lower bound (nats), shape (n_documents,):
        ``E[log p(w_d | theta_d, beta)] + E[log p(theta_d | alpha)] - E[log q(theta_d)]``
        with the expectations of ``log beta`` under the topics' variational posterior.
    """

    doc_topic: FloatArray
    word_topic: FloatArray | None
    bound: FloatArray


def dirichlet_expectation(parameters: FloatArray) -> FloatArray:
    """``E[log x]`` under Dirichlet(row) for each row: ``psi(a) - psi(sum(a))``.

    Examples
    --------
    >>> print(dirichlet_expectation(np.array([[1.0, 1.0]])).round(4))
    [[-1. -1.]]
    """
    return np.asarray(psi(parameters) - psi(parameters.sum(axis=1))[:, np.newaxis])


class _IteratingDocuments:
    """The documents of a batch whose fixed point still iterates, with their own arrays.

    ``theta`` is ``exp(psi(gamma))`` without the per-document normaliser
    ``exp(-psi(sum_k gamma_dk))``: the update is invariant to a document's scale, so the
    normaliser is left out of the loop.
    """

    def __init__(
        self,
        counts: Documents,
        docs: NDArray[np.intp],
        exp_topic_word_t: FloatArray,
        gamma: FloatArray,
        theta: FloatArray,
    ) -> None:
        self.docs = docs
        self.live = np.ones(len(docs), dtype=bool)
        self.lengths = np.diff(counts.indptr)
        self.words = exp_topic_word_t[counts.indices]  # (nnz, K): exp E[log beta] per count
        self.exp_topic_word_t = exp_topic_word_t
        self.data = counts.data
        self.scaled = counts.copy()  # its data is replaced by count / norm in each iteration
        self.gamma = gamma
        self.theta = theta

    def still_iterating(self) -> _IteratingDocuments:
        """The documents that have not stopped, as a new (smaller) set."""
        live = self.live
        keep = np.repeat(live, self.lengths)
        lengths = self.lengths[live]
        indptr = np.zeros(len(lengths) + 1, dtype=self.scaled.indptr.dtype)
        np.cumsum(lengths, out=indptr[1:])
        subset = object.__new__(_IteratingDocuments)
        subset.docs = self.docs[live]
        subset.live = np.ones(len(subset.docs), dtype=bool)
        subset.lengths = lengths
        subset.words = self.words[keep]
        subset.exp_topic_word_t = self.exp_topic_word_t
        subset.scaled = sp.csr_matrix(
            (self.data[keep], self.scaled.indices[keep], indptr),
            shape=(len(lengths), self.scaled.shape[1]),
        )
        subset.data = subset.scaled.data.copy()
        subset.gamma = self.gamma[live]
        subset.theta = self.theta[live]
        return subset

    def iterate(self, doc_topic_prior: float, tol: float) -> None:
        """One fixed-point iteration of the documents that have not stopped."""
        # Each document's row once per count (np.repeat is faster than fancy indexing).
        norm = np.einsum("ij,ij->i", np.repeat(self.theta, self.lengths, axis=0), self.words)
        norm += EPS
        np.divide(self.data, norm, out=self.scaled.data)
        new_gamma = self.scaled @ self.exp_topic_word_t
        new_gamma *= self.theta
        new_gamma += doc_topic_prior
        new_theta = np.exp(psi(new_gamma))
        # Mean absolute change per document, compared as a sum (n_components * tol).
        difference = new_gamma - self.gamma
        change = np.abs(difference, out=difference).sum(axis=1)
        live = self.live
        if live.all():
            self.gamma, self.theta = new_gamma, new_theta
        else:
            np.copyto(self.gamma, new_gamma, where=live[:, np.newaxis])
            np.copyto(self.theta, new_theta, where=live[:, np.newaxis])
        live &= change >= tol * new_gamma.shape[1]


def _iterate(
    local_counts: Documents,
    docs: NDArray[np.intp],
    exp_topic_word_t: FloatArray,
    gamma: FloatArray,
    doc_topic_prior: float,
    max_iter: int,
    tol: float,
) -> None:
    """Run the fixed point of the documents ``docs`` (none empty), writing ``gamma``."""
    whole = len(docs) == local_counts.shape[0]
    active = _IteratingDocuments(
        local_counts if whole else local_counts[docs],
        docs,
        exp_topic_word_t,
        gamma[docs],
        np.exp(psi(gamma[docs])),
    )
    for iteration in range(1, max_iter + 1):
        active.iterate(doc_topic_prior, tol)
        stopped = iteration == max_iter or not active.live.any()
        if stopped or active.live.sum() <= (1.0 - COMPACT_WHEN_STOPPED) * len(active.live):
            gamma[active.docs] = active.gamma
            if stopped:
                return
            active = active.still_iterating()


def infer_documents(
    counts: Documents,
    components: FloatArray,
    doc_topic_prior: float,
    max_iter: int,
    tol: float,
    word_topic: bool,
) -> DocumentTopics:
    """The local variational fixed point of each document of ``counts`` (vectorised).

    Each document starts from ``gamma = 1`` and iterates, at most ``max_iter`` times,
    ``gamma_d = alpha + exp(E[log theta_d]) * sum_w n_dw exp(E[log beta_w]) / norm_dw`` with
    ``norm_dw = sum_k exp(E[log theta_dk] + E[log beta_kw]) + EPS``, until the mean absolute
    change of ``gamma_d`` is below ``tol`` (scikit-learn's rule, per document).

    Parameters
    ----------
    counts
        Canonical CSR document-term matrix (n_documents, n_features), non-negative.
    components
        ``lambda`` (n_components, n_features).
    doc_topic_prior, max_iter, tol
        ``alpha``, the largest number of iterations and the per-document tolerance.
    word_topic
        Whether to return the expected topic-word counts (the E-step's statistics).
    """
    n_docs = counts.shape[0]
    n_topics = components.shape[0]
    words, local = np.unique(counts.indices, return_inverse=True)
    local_counts = sp.csr_matrix(
        (counts.data, local.astype(counts.indices.dtype), counts.indptr),
        shape=(n_docs, len(words)),
    )
    totals = components.sum(axis=1)
    log_topic_word = psi(components[:, words]) - psi(totals)[:, np.newaxis]
    exp_topic_word_t = np.ascontiguousarray(np.exp(log_topic_word).T)  # (U, K)

    gamma = np.ones((n_docs, n_topics))
    lengths = np.diff(counts.indptr)
    if max_iter > 0:
        # A document without words goes from gamma = 1 to alpha in its first iteration and
        # stays there.
        gamma[lengths == 0] = doc_topic_prior
    nonempty = np.flatnonzero(lengths)
    if max_iter > 0 and len(nonempty):
        _iterate(local_counts, nonempty, exp_topic_word_t, gamma, doc_topic_prior, max_iter, tol)

    rows = np.repeat(np.arange(n_docs), lengths)
    log_theta = dirichlet_expectation(gamma)
    theta = np.exp(log_theta)
    norm = np.einsum("ij,ij->i", np.repeat(theta, lengths, axis=0), exp_topic_word_t[local])
    bound = np.bincount(rows, weights=counts.data * np.log(norm), minlength=n_docs).astype(float)
    bound += ((doc_topic_prior - gamma) * log_theta + gammaln(gamma)).sum(axis=1)
    bound += gammaln(doc_topic_prior * n_topics) - n_topics * gammaln(doc_topic_prior)
    bound -= gammaln(gamma.sum(axis=1))
    stats = None
    if word_topic:
        scaled = sp.csr_matrix(
            (counts.data / (norm + EPS), local, counts.indptr), shape=(n_docs, len(words))
        )
        local_stats = np.asarray(scaled.T @ theta).T * exp_topic_word_t.T  # (K, U)
        stats = np.zeros_like(components)
        stats[:, words] = local_stats
    return DocumentTopics(doc_topic=gamma, word_topic=stats, bound=bound)


def topic_word_bound(components: FloatArray, topic_word_prior: float) -> float:
    """``E[log p(beta | eta)] - E[log q(beta | lambda)]`` (nats): the topics' part of the
    evidence lower bound (scikit-learn adds it to ``score``)."""
    n_features = components.shape[1]
    log_topic_word = dirichlet_expectation(components)
    score = float(((topic_word_prior - components) * log_topic_word).sum())
    score += float((gammaln(components) - gammaln(topic_word_prior)).sum())
    score += float((gammaln(topic_word_prior * n_features) - gammaln(components.sum(1))).sum())
    return score


class LDAFamily(NoCarry):
    """E-step and M-step of latent Dirichlet allocation for :class:`~streamem.StepwiseEM`.

    Parameters
    ----------
    n_components
        Number of topics K.
    doc_topic_prior, topic_word_prior
        ``alpha`` and ``eta`` of the symmetric Dirichlet priors.
    max_doc_update_iter, mean_change_tol
        The per-document fixed point's iteration limit and tolerance.
    components_init
        Starting ``lambda`` (K, n_features); None: Gamma(100, 1/100) draws.

    Examples
    --------
    >>> from streamem.engine import Constant, StepwiseEM
    >>> counts = sp.csr_matrix(np.array([[4.0, 3, 0, 0], [0, 0, 5, 2], [3, 4, 0, 1]]))
    >>> family = LDAFamily(2, 0.5, 0.1, 100, 1e-6)
    >>> engine = StepwiseEM(family, Constant(1.0))
    >>> engine.start(counts, np.random.default_rng(0))
    >>> report = engine.update(counts)
    >>> report.n_units, engine.params.components.shape
    (3, (2, 4))
    >>> print(round(float(engine.params.components.sum()), 6))    # eta * K * V + all counts
    22.8
    """

    params_type = TopicWordParams
    stats_type = TopicWordStats

    def __init__(
        self,
        n_components: int,
        doc_topic_prior: float,
        topic_word_prior: float,
        max_doc_update_iter: int,
        mean_change_tol: float,
        components_init: FloatArray | None = None,
    ) -> None:
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.components_init = components_init

    def initial_params(self, batch: Documents, rng: np.random.Generator) -> TopicWordParams:
        if self.components_init is not None:
            return TopicWordParams(np.array(self.components_init, dtype=np.float64))
        shape = (self.n_components, batch.shape[1])
        return TopicWordParams(rng.gamma(INIT_GAMMA_SHAPE, 1.0 / INIT_GAMMA_SHAPE, shape))

    def infer(self, params: TopicWordParams, batch: Documents, word_topic: bool) -> DocumentTopics:
        """The documents' local fixed point under ``params`` (see :func:`infer_documents`)."""
        return infer_documents(
            batch,
            params.components,
            self.doc_topic_prior,
            self.max_doc_update_iter,
            self.mean_change_tol,
            word_topic,
        )

    def expected_statistics(
        self, params: TopicWordParams, batch: Documents, carry: None
    ) -> Expectation[TopicWordStats, None]:
        local = self.infer(params, batch, word_topic=True)
        assert local.word_topic is not None
        return Expectation(
            TopicWordStats(local.word_topic), float(local.bound.sum()), int(batch.shape[0])
        )

    def maximize(self, stats: TopicWordStats) -> TopicWordParams:
        components = self.topic_word_prior + stats.word_topic
        if not np.isfinite(components).all():
            raise DegenerateUpdateError("the topic-word statistics are not finite")
        return TopicWordParams(components)

    def parameter_change(self, old: TopicWordParams, new: TopicWordParams) -> float:
        """The largest total-variation distance between a topic's old and new mean word
        distribution (in [0, 1])."""
        before = old.components / old.components.sum(axis=1, keepdims=True)
        after = new.components / new.components.sum(axis=1, keepdims=True)
        return float(0.5 * np.abs(after - before).sum(axis=1).max())

    def interpolate(self, a: TopicWordParams, b: TopicWordParams, t: float) -> TopicWordParams:
        return TopicWordParams((1.0 - t) * a.components + t * b.components)
