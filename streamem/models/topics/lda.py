"""``LatentDirichletAllocation``: batch and streaming variational Bayes for topic models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_non_negative, validate_data

from streamem.engine import (
    Constant,
    ConvergenceMonitor,
    PowerDecay,
    Schedule,
    StepwiseEM,
)
from streamem.engine.records import FloatArray
from streamem.errors import ValidationError, input_error
from streamem.models.base import (
    Bound,
    Constraint,
    EngineBackedModel,
    OneOf,
    as_float_array,
    document_hyperparameters,
)
from streamem.models.common.compact import decode_fields, encode_fields
from streamem.models.common.vocabulary import Vocabulary, documents_matrix, vocabulary_from
from streamem.models.protocol import StreamingOptions
from streamem.models.topics.family import (
    Documents,
    LDAFamily,
    TopicWordParams,
    TopicWordStats,
    topic_word_bound,
)

FORMAT = "streamem.LatentDirichletAllocation"
FORMAT_VERSION = 1
LEARNING_METHODS = ("batch", "online")
LDAEngine = StepwiseEM[Documents, TopicWordParams, TopicWordStats, None]
_RECORD_FIELDS = ("params", "stats", "averaged")
# Starting candidates tried when init_size is set and n_init is not, and batch iterations each.
WARMUP_N_INIT = 3
WARMUP_EM_ITER = 20


class LatentDirichletAllocation(EngineBackedModel, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Latent Dirichlet allocation by variational Bayes: batch (``fit``) or streaming
    (``partial_fit``, one stepwise EM update per call), with scikit-learn's names.

    The per-document E-step is the variational fixed point of Blei, Ng & Jordan (2003),
    vectorised over the documents of a batch. ``partial_fit`` is online variational Bayes
    (Hoffman, Blei & Bach 2010) as stepwise EM: the running per-document topic-word
    statistics ``s`` are blended with the mini-batch's, ``s <- (1 - rho) s + rho s_batch``,
    and ``components_ = topic_word_prior + D * s``.

    **The corpus-size factor D.** scikit-learn asks for ``total_samples`` (the corpus size,
    default 1e6) to scale a mini-batch's statistics; a stream does not know it. Here ``D`` is
    the effective number of documents behind the running statistics, Kish's
    ``1 / sum_d w_d**2`` over the weights ``w_d`` that the step sizes gave each document
    seen (``effective_documents_``). It equals the number of documents for batch EM and for
    a running mean; with the default decreasing steps ``rho_t = (t + learning_offset) **
    -learning_decay`` it grows like ``batch_size * t**learning_decay``: the old statistics,
    computed under worse topics, count less, and the topics are as concentrated as the
    documents that really stand behind them warrant. A forgetting schedule (``HalfLife``)
    keeps ``D`` near its window.

    Parameters
    ----------
    n_components
        Number of topics K.
    doc_topic_prior, topic_word_prior
        ``alpha`` and ``eta`` of the symmetric Dirichlet priors; None: ``1 / n_components``.
    learning_method
        What ``fit`` does: ``"batch"`` (``max_iter`` iterations of batch variational Bayes
        over the whole corpus, as scikit-learn) or ``"online"`` (``max_iter`` passes of
        stepwise updates over mini-batches of ``batch_size`` documents).
    learning_decay, learning_offset
        The stepwise schedule ``rho_t = (t + learning_offset) ** -learning_decay``
        (``learning_decay`` in (0.5, 1]). The first update takes ``rho = 1`` and the second
        the running mean's step; the schedule continues from the index that gives that step
        (see :class:`~streamem.StepwiseEM`), so ``learning_offset`` only matters when it is
        larger than ``2 ** (1 / learning_decay)``. The defaults (0.6, 1) differ from
        scikit-learn's (0.7, 10): one pass over the benchmark's synthetic corpora (K=10,
        V=500, 2,500 documents, batches of 128) gave held-out perplexities 120.8 and 128.6
        with them against 131.7 and 137.7 with scikit-learn's values (``benchmarks/lda.py``).
    max_iter
        ``fit``: iterations (batch) or passes over the corpus (online).
    batch_size
        ``fit`` with ``learning_method="online"``: documents per stepwise update.
    mean_change_tol, max_doc_update_iter
        A document's fixed point stops when the mean absolute change of its topic
        parameters falls below ``mean_change_tol``, or after ``max_doc_update_iter``
        iterations. Each document starts from ``gamma = 1`` (scikit-learn's ``transform``
        start; its ``fit`` starts from random values, which converged loops forget).
    components_init
        Starting ``components_`` (K, n_features); None: Gamma(100, 1/100) draws from
        ``random_state``, as scikit-learn.
    random_state
        Seed of the random starting components.
    schedule
        Step sizes of the stepwise updates, a :mod:`streamem.engine.schedules` object
        instead of ``learning_decay`` / ``learning_offset`` (e.g. ``HalfLife`` to follow
        topics that drift).
    averaging_start
        Polyak-Ruppert averaging of ``components_`` from this stepwise update on (None: off).
    parameter_tol, patience, smoothing, history_size
        The stream's converged flag (the largest change of a topic's mean word distribution,
        in total variation, stays below ``parameter_tol`` for ``patience`` updates), the
        weight of the newest batch in the smoothed bound per document, and the monitor's
        history length.
    vocabulary
        How tokens map to columns (for :meth:`documents_batch` and the words of
        :meth:`top_words`): a sequence of words (column j is word j), a number of hashed
        columns (scikit-learn's ``HashingVectorizer(alternate_sign=False)`` columns), or
        None (columns only).
    snapshot_top_words, snapshot_components
        What :meth:`parameters_document` publishes: the top words of each topic (their
        columns, words and weights), and the whole ``components_`` matrix only if asked.
    init_size, n_init, init_em_iter
        The streaming warm-up. One pass of online variational Bayes keeps the topic
        structure its first updates found: from random starting topics it often ends with
        two generating topics merged into one learned topic and another split in two (on
        50,000 synthetic documents, K=10, V=1,000, 14 of 16 runs did). With ``init_size``
        or ``n_init`` set, ``partial_fit`` first buffers ``init_size`` documents (None: the
        first mini-batch), runs ``init_em_iter`` iterations of batch variational Bayes on
        them from each of ``n_init`` random starts (None: 3) and starts the stream from the
        one with the best bound; the first update then learns the buffered documents (all
        16 of the same runs recovered every topic with 2,000 documents and 5 starts,
        ``benchmarks/lda_warmup.py``). Both
        None (the default): the first mini-batch starts from random topics at once.

    Attributes
    ----------
    components_
        ``lambda`` (n_components, n_features); ``components_[k] / components_[k].sum()`` is
        topic k's mean word distribution.
    doc_topic_prior_, topic_word_prior_
        The priors in use.
    effective_documents_
        ``D``: the effective number of documents behind the statistics.
    n_seen_, n_batch_iter_, n_iter_
        Documents learned, stepwise updates made, and ``fit``'s iterations or passes.
    bound_
        ``fit``: the training corpus's :meth:`perplexity` (as scikit-learn's ``bound_``).

    Examples
    --------
    >>> from streamem.synthetic_corpus import TopicCorpus, matched_topic_cosine
    >>> corpus = TopicCorpus.random(n_topics=3, n_words=30, rng=np.random.default_rng(0))
    >>> X, _ = corpus.sample(2000, doc_length=50, rng=np.random.default_rng(1))
    >>> model = LatentDirichletAllocation(3, max_iter=20, random_state=0).fit(X[:500])
    >>> print(round(matched_topic_cosine(model.components_, corpus.topics), 3))
    1.0
    >>> stream = LatentDirichletAllocation(3, random_state=0)
    >>> for start in range(0, 2000, 100):      # one stepwise update per mini-batch
    ...     stream = stream.partial_fit(X[start : start + 100])
    >>> stream.n_seen_, round(stream.effective_documents_)   # D: documents behind the topics
    (2000, 1057)
    >>> print(round(matched_topic_cosine(stream.components_, corpus.topics), 3))
    1.0
    """

    family = "lda"
    """The family's name in documents and configs (the model protocol)."""
    FORMAT = FORMAT
    _JSON_SEPARATORS = (",", ":")  # a compact document: topic-word matrices are large
    """The ``format`` of :meth:`to_dict`'s document."""
    sequential = False
    """Documents are independent units (no state crosses batches)."""

    def __init__(
        self,
        n_components: int = 10,
        *,
        doc_topic_prior: float | None = None,
        topic_word_prior: float | None = None,
        learning_method: str = "batch",
        learning_decay: float = 0.6,
        learning_offset: float = 1.0,
        max_iter: int = 10,
        batch_size: int = 128,
        mean_change_tol: float = 1e-3,
        max_doc_update_iter: int = 100,
        components_init: ArrayLike | None = None,
        random_state: int | None = None,
        schedule: Schedule | None = None,
        averaging_start: int | None = None,
        parameter_tol: float = 0.01,
        patience: int = 5,
        smoothing: float = 0.1,
        history_size: int = 10_000,
        vocabulary: Sequence[str] | int | None = None,
        snapshot_top_words: int = 10,
        snapshot_components: bool = False,
        init_size: int | None = None,
        n_init: int | None = None,
        init_em_iter: int = WARMUP_EM_ITER,
    ) -> None:
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_method = learning_method
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.mean_change_tol = mean_change_tol
        self.max_doc_update_iter = max_doc_update_iter
        self.components_init = components_init
        self.random_state = random_state
        self.schedule = schedule
        self.averaging_start = averaging_start
        self.parameter_tol = parameter_tol
        self.patience = patience
        self.smoothing = smoothing
        self.history_size = history_size
        self.vocabulary = vocabulary
        self.snapshot_top_words = snapshot_top_words
        self.snapshot_components = snapshot_components
        self.init_size = init_size
        self.n_init = n_init
        self.init_em_iter = init_em_iter

    @classmethod
    def from_options(cls, options: StreamingOptions) -> LatentDirichletAllocation:
        """A topic model for streaming from the model protocol's common options: K topics,
        ``seed`` (``random_state``), ``schedule`` (None: ``learning_decay`` and
        ``learning_offset``), ``averaging_start``, ``vocabulary`` and what the snapshot holds.
        ``init_size`` and ``n_init`` (the warm-up); ``covariance_type`` and ``reg_covar``
        have no meaning for topics and are not used."""
        return cls._from_common_options(
            options,
            options.init_size,
            vocabulary=options.vocabulary,
            snapshot_top_words=options.snapshot_top_words,
            snapshot_components=options.snapshot_components,
            n_init=options.n_init,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        return tags

    # ---- learning ----------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None) -> Self:
        """Learn the topics of the document-term matrix X (n_documents, n_features), sparse
        or dense, by ``max_iter`` iterations of batch variational Bayes (or, with
        ``learning_method="online"``, ``max_iter`` passes of stepwise updates)."""
        counts = self._validate(X, reset=True)
        self._check_parameters(counts.shape[1])
        rng = np.random.default_rng(self.random_state)
        start = self._family().initial_params(counts, rng)
        if self.learning_method == "batch":
            engine = self._batch_iterations(start, counts, int(self.max_iter))
            self.engine_ = self._streaming_engine()
            if engine.stats is not None:
                self.engine_.initialize(engine.params, engine.stats, n_units=counts.shape[0])
            else:
                self.engine_.initialize(engine.params)
        else:
            self.engine_ = self._streaming_engine()
            self.engine_.initialize(start)
            size = int(self.batch_size)
            for _ in range(self.max_iter):
                for begin in range(0, counts.shape[0], size):
                    self.engine_.update(counts[begin : begin + size])
        self._clear_warmup()
        self._publish()
        self.n_iter_ = int(self.max_iter)
        self.bound_ = self._perplexity(counts)
        return self

    def partial_fit(self, X: ArrayLike, y: object = None) -> Self:
        """One stepwise update with the mini-batch of documents X (n_documents, n_features)
        (the first call initialises the topics)."""
        first_call = not hasattr(self, "engine_")
        counts = self._validate(X, reset=first_call)
        if first_call:
            self._check_parameters(counts.shape[1])
            self.engine_ = self._streaming_engine()
        return self.learn(counts)

    def learn(self, batch: Documents) -> Self:
        """:meth:`partial_fit` for an already validated batch (canonical CSR float64
        counts, e.g. from :meth:`documents_batch`): no checks (the model protocol)."""
        if not hasattr(self, "engine_"):
            return self.partial_fit(batch)
        return self._step(batch)

    _UNITS = "documents"

    def _warmup_size(self) -> int:
        return int(self.init_size or 0)

    def _buffer(self, batch: Documents) -> Documents:
        buffered = getattr(self, "warmup_", None)
        self.warmup_ = batch if buffered is None else sp.vstack([buffered, batch], format="csr")
        return self.warmup_

    def _clear_warmup(self) -> None:
        self.warmup_ = None

    def _start(self, buffer: Documents) -> TopicWordParams:
        """Without ``init_size`` and ``n_init``, random topics (as scikit-learn); else the
        best of ``n_init`` random starts refined by ``init_em_iter`` batch iterations on the
        buffered documents, by their evidence lower bound there."""
        rng = np.random.default_rng(self.random_state)
        family = self._family()
        if self.init_size is None and self.n_init is None:
            start: TopicWordParams = family.initial_params(buffer, rng)
            return start
        best: tuple[float, TopicWordParams] | None = None
        for _ in range(WARMUP_N_INIT if self.n_init is None else int(self.n_init)):
            start = family.initial_params(buffer, rng)
            params = self._batch_iterations(start, buffer, int(self.init_em_iter)).params
            bound = float(family.infer(params, buffer, False).bound.sum())
            bound += topic_word_bound(params.components, family.topic_word_prior)
            if best is None or bound > best[0]:
                best = (bound, params)
        assert best is not None
        return best[1]

    def _stepwise_update(self, batch: Documents) -> None:
        self.engine_.update(batch)
        self._publish()
        self.n_iter_ = int(self.engine_.step)

    def _batch_iterations(
        self, start: TopicWordParams, counts: Documents, iterations: int
    ) -> StepwiseEM[Documents, TopicWordParams, TopicWordStats, None]:
        """An engine after ``iterations`` iterations of batch variational Bayes on counts."""
        engine = StepwiseEM(self._family(), Constant(1.0), ConvergenceMonitor(0.0, 1.0, 1))
        engine.initialize(start)
        for _ in range(iterations):
            engine.update(counts)
        return engine

    def _n_warmup(self) -> int:
        buffer = getattr(self, "warmup_", None)
        return 0 if buffer is None else int(buffer.shape[0])

    # ---- documents ---------------------------------------------------------------------------

    @property
    def vocabulary_(self) -> Vocabulary | None:
        """The token-to-column rule of ``vocabulary`` (None: columns only), built once per
        ``vocabulary`` value (a fixed vocabulary's word index is not rebuilt per batch)."""
        if self.vocabulary is None:
            return None
        cached = getattr(self, "_vocabulary_cache", None)
        if cached is None or cached[0] is not self.vocabulary:
            cached = self._vocabulary_cache = (self.vocabulary, vocabulary_from(self.vocabulary))
        return cached[1]

    def documents_batch(self, documents: Sequence[Mapping[Any, Any]]) -> Documents:
        """The validated batch of decoded documents, for :meth:`learn` and :meth:`log_density`.

        Each document maps tokens to counts (numbers >= 0). With a ``vocabulary`` the tokens
        are words (hashed, or looked up: words outside a fixed vocabulary are dropped);
        without one they are column indices. Needs the number of columns: ``vocabulary``,
        or a model that has learned.

        Examples
        --------
        >>> model = LatentDirichletAllocation(2, vocabulary=["rain", "sun", "wind"])
        >>> model.documents_batch([{"sun": 2, "rain": 1}, {"wind": 1, "hail": 4}]).toarray()
        array([[1., 2., 0.],
               [0., 0., 1.]])
        """
        vocabulary = self.vocabulary_
        if vocabulary is not None:
            rows = [vocabulary.encode(document)[0] for document in documents]
            return documents_matrix(rows, vocabulary.n_features)
        if not hasattr(self, "n_features_in_"):
            raise ValidationError(
                "documents_batch needs the number of columns: give vocabulary, or learn first"
            )
        return documents_matrix(list(documents), int(self.n_features_in_))

    def batch_from_rows(
        self, X: NDArray[np.floating] | sp.spmatrix, keys: tuple[str, ...] | None = None
    ) -> Documents:
        """The batch of decoded rows X (n_documents, n_features) of counts, dense or sparse
        (the model protocol's constructor for numeric rows; :meth:`documents_batch` is the one for
        tokens). Documents are independent: ``keys`` must be None.

        Raises
        ------
        ValidationError
            If keys are given, or a count is not a finite number >= 0 (NaN included: a
            count cannot be missing).
        """
        if keys is not None:
            raise ValidationError("a topic model's documents are independent: no sequence keys")
        if sp.issparse(X):  # e.g. the daemon's batch of documents (documents_matrix)
            counts = sp.csr_matrix(X, dtype=np.float64)
            if not np.isfinite(counts.data).all() or (counts.data < 0.0).any():
                raise ValidationError("documents must hold finite counts >= 0")
            counts.sum_duplicates()
            return counts
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim != 2 or not np.isfinite(rows).all() or (rows < 0.0).any():
            raise ValidationError(
                "documents must be rows (n_documents, n_features) of finite counts >= 0"
            )
        return sp.csr_matrix(rows)

    # ---- inference and scores ----------------------------------------------------------------

    def _infer(self, X: ArrayLike, word_topic: bool = False) -> Any:
        self._check_fitted()
        counts = self._validate(X, reset=False)
        return counts, self._lda_family.infer(self.engine_.output_params, counts, word_topic)

    def transform(self, X: ArrayLike, *, normalize: bool = True) -> FloatArray:
        """Each document's topic mixture (n_documents, n_components): the variational
        Dirichlet parameters, normalised to sum to one unless ``normalize=False``."""
        _, local = self._infer(X)
        gamma: FloatArray = local.doc_topic
        return gamma / gamma.sum(axis=1, keepdims=True) if normalize else gamma

    def fit_transform(self, X: ArrayLike, y: object = None, *, normalize: bool = True) -> Any:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X, normalize=normalize)

    def per_word_bound(self, X: ArrayLike) -> float:
        """The documents' evidence lower bound per word (nats): the sum over the documents
        of X of ``E[log p(w_d | theta_d, beta)] + E[log p(theta_d)] - E[log q(theta_d)]``
        divided by their number of words. A held-out measure that does not depend on how
        many documents trained the model; ``exp(-per_word_bound)`` is its perplexity."""
        counts, local = self._infer(X)
        return float(local.bound.sum() / counts.sum())

    def score(self, X: ArrayLike, y: object = None) -> float:
        """scikit-learn's approximate bound (nats): the documents' bound plus the topics'
        ``E[log p(beta | eta)] - E[log q(beta | lambda)]`` (which grows with the corpus)."""
        _, local = self._infer(X)
        return float(local.bound.sum()) + self._topic_bound()

    def perplexity(self, X: ArrayLike) -> float:
        """scikit-learn's perplexity: ``exp(-score(X) / number of words in X)``."""
        self._check_fitted()
        return self._perplexity(self._validate(X, reset=False))

    def _perplexity(self, counts: Documents) -> float:
        local = self._lda_family.infer(self.engine_.output_params, counts, False)
        return float(np.exp(-(local.bound.sum() + self._topic_bound()) / counts.sum()))

    def _topic_bound(self) -> float:
        return topic_word_bound(self.components_, self._lda_family.topic_word_prior)

    def top_words(self, n: int = 10) -> list[list[tuple[int, str, float]]]:
        """Each topic's ``n`` heaviest columns: (column, word, weight in the topic's mean
        word distribution), heaviest first (a column's word is ``"#<column>"`` without a
        fixed vocabulary)."""
        self._check_fitted()
        vocabulary = self.vocabulary_
        weights = self.components_ / self.components_.sum(axis=1, keepdims=True)
        n = min(int(n), weights.shape[1])
        top = np.argsort(-weights, axis=1, kind="stable")[:, :n]
        return [
            [
                (int(j), vocabulary.word(int(j)) if vocabulary else f"#{j}", float(row[j]))
                for j in columns
            ]
            for row, columns in zip(weights, top, strict=True)
        ]

    # ---- the model protocol (streamem.models.protocol.StreamingModel) -------------------------

    def log_density(self, batch: Documents) -> FloatArray:
        """Each document's evidence lower bound (nats) of a validated batch: a lower bound on
        its log probability under the model."""
        self._check_fitted()
        bound: FloatArray = self._lda_family.infer(self.engine_.output_params, batch, False).bound
        return bound

    def topic_weights_(self) -> FloatArray:
        """Each topic's share of the expected word counts behind the model (sums to one)."""
        self._check_fitted()
        return self._class_weights()

    def _class_weights(self) -> FloatArray:
        stats = self.engine_.stats
        mass = stats.word_topic.sum(axis=1) if stats is not None else np.ones(self.n_components)
        total = mass.sum()
        return np.asarray(mass / total if total > 0 else np.full_like(mass, 1 / len(mass)))

    def parameters_document(self) -> dict[str, Any]:
        """The topics for a published snapshot: each topic's weight and its
        ``snapshot_top_words`` top words with their weights; ``components_`` (K, V) only
        with ``snapshot_components=True``."""
        top = self.top_words(self.snapshot_top_words)
        document: dict[str, Any] = {
            "n_components": int(self.n_components),
            "n_features": int(self.components_.shape[1]),
            "effective_documents": float(self.effective_documents_),
            "topic_weights": self.topic_weights_().tolist(),
            "topics": [
                {
                    "columns": [column for column, _, _ in words],
                    "words": [word for _, word, _ in words],
                    "weights": [weight for _, _, weight in words],
                }
                for words in top
            ],
        }
        if self.snapshot_components:
            document["components"] = self.components_.tolist()
        return document

    # ---- engines and results -----------------------------------------------------------------

    def _priors(self) -> tuple[float, float]:
        k = float(self.n_components)
        alpha = 1.0 / k if self.doc_topic_prior is None else float(self.doc_topic_prior)
        eta = 1.0 / k if self.topic_word_prior is None else float(self.topic_word_prior)
        return alpha, eta

    def _family(self) -> LDAFamily:
        alpha, eta = self._priors()
        given = None if self.components_init is None else as_float_array(self.components_init)
        return LDAFamily(
            int(self.n_components),
            alpha,
            eta,
            int(self.max_doc_update_iter),
            float(self.mean_change_tol),
            given,
        )

    def _streaming_engine(self) -> LDAEngine:
        schedule = self.schedule
        if schedule is None:
            try:
                schedule = PowerDecay(alpha=self.learning_decay, t0=self.learning_offset)
            except ValidationError as error:
                raise ValidationError(
                    f"learning_decay must be in (0.5, 1] and learning_offset >= 0, got "
                    f"{self.learning_decay!r} and {self.learning_offset!r}"
                ) from error
        engine: LDAEngine = self._stream_engine(self._family(), schedule)
        return engine

    @property
    def _lda_family(self) -> LDAFamily:
        return self._engine_family(LDAFamily)

    def _refresh_fitted(self) -> None:
        self._publish()

    def _publish(self) -> None:
        engine = self.engine_
        self.components_ = engine.output_params.components
        self.doc_topic_prior_, self.topic_word_prior_ = self._priors()
        self.effective_documents_ = float(engine.effective_count)
        self.n_batch_iter_ = int(engine.step)

    # ---- checks ------------------------------------------------------------------------------

    def _validate(self, X: ArrayLike, reset: bool) -> Documents:
        """X as a canonical CSR float64 matrix of counts >= 0 (sparse or dense input)."""
        if (
            not reset
            and isinstance(X, sp.csr_matrix)
            and X.dtype == np.float64
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == getattr(self, "n_features_in_", -1)
            and X.has_canonical_format
            and bool(np.isfinite(X.data).all())
            and (X.nnz == 0 or float(X.data.min()) >= 0.0)
        ):
            return X
        try:
            checked = validate_data(
                self, X, reset=reset, accept_sparse="csr", dtype=np.float64, ensure_min_samples=1
            )
            check_non_negative(checked, f"{type(self).__name__} (input X)")
        except ValueError as error:
            raise input_error(error) from error
        counts = sp.csr_matrix(checked, dtype=np.float64, copy=not sp.issparse(checked))
        if not counts.has_canonical_format:
            counts = counts.copy()
            counts.sum_duplicates()
        counts.eliminate_zeros()
        return counts

    def _parameter_constraints(self) -> dict[str, Constraint]:
        return {
            "n_components": Bound(1, integer=True),
            "learning_method": OneOf(LEARNING_METHODS),
            "max_iter": Bound(0),
            "batch_size": Bound(1),
            "max_doc_update_iter": Bound(1),
            "mean_change_tol": Bound(0.0),
            "snapshot_top_words": Bound(1),
            "init_em_iter": Bound(0, integer=True),
            "init_size": Bound(1, integer=True, optional=True),
            "n_init": Bound(1, integer=True, optional=True),
            "doc_topic_prior": Bound(0, strict=True, optional=True),
            "topic_word_prior": Bound(0, strict=True, optional=True),
        }

    def _check_parameters(self, n_features: int) -> None:
        """Validate the hyper-parameters (:meth:`_parameter_constraints`) and the starting
        values; errors name the parameter."""
        k = self.n_components
        self._validate_parameters()
        if self.components_init is not None:
            given = as_float_array(self.components_init)
            if given.shape != (k, n_features):
                raise ValidationError(
                    f"components_init must have shape {(k, n_features)}, got {given.shape}"
                )
            if not (np.isfinite(given).all() and (given > 0.0).all()):
                raise ValidationError("components_init must hold finite numbers > 0")
        vocabulary = self.vocabulary_
        if vocabulary is not None and vocabulary.n_features != n_features:
            raise ValidationError(
                f"vocabulary has {vocabulary.n_features} columns but X has {n_features}"
            )
        self._streaming_engine()  # validates the schedule's parameters

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole model (hyper-parameters, statistics, counters) as JSON data, arrays in
        the compact exact encoding of :mod:`streamem.models.common.compact`.

        ``from_dict(model.to_dict())`` continues learning exactly where ``model`` was.
        """
        document = self._document_head(FORMAT, FORMAT_VERSION)
        if self.components_init is not None:
            given = as_float_array(self.components_init)
            document["hyperparameters"]["components_init"] = encode_fields({"a": given})["a"]
        if hasattr(self, "engine_"):
            engine = self.engine_.state_dict(lambda record: encode_fields(record.arrays()))
            document["state"] = {
                "n_features_in": int(self.n_features_in_),
                "engine": engine,
                "n_iter": int(getattr(self, "n_iter_", 0)),
                "bound": getattr(self, "bound_", None),
            }
            buffer = getattr(self, "warmup_", None)
            if buffer is not None:
                document["state"]["warmup"] = _encode_documents(buffer)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LatentDirichletAllocation:
        """Rebuild a model from :meth:`to_dict`'s output."""
        hyper = document_hyperparameters(document, FORMAT, FORMAT_VERSION)
        if hyper.get("components_init") is not None:
            hyper["components_init"] = decode_fields({"a": hyper["components_init"]})["a"]
        if isinstance(hyper.get("vocabulary"), list):
            hyper["vocabulary"] = tuple(hyper["vocabulary"])
        try:
            model = cls(**hyper)
        except TypeError as error:
            raise ValidationError(f"model document: hyperparameters: {error}") from error
        state = document.get("state")
        if state is None:
            return model
        model.n_features_in_ = int(state["n_features_in"])
        engine = dict(state["engine"])
        shape = (int(model.n_components), model.n_features_in_)
        for name in _RECORD_FIELDS:
            if engine.get(name) is not None:
                engine[name] = decode_fields(engine[name])
                _check_record(f"state.engine.{name}", engine[name], shape)
        model.engine_ = model._streaming_engine()
        model.engine_.load_state_dict(engine)
        if state.get("warmup") is not None:
            model.warmup_ = _decode_documents(state["warmup"], model.n_features_in_)
        if model.engine_.initialized:
            model._publish()
            model.n_iter_ = int(state["n_iter"])
            if state.get("bound") is not None:
                model.bound_ = float(state["bound"])
        return model


def _encode_documents(counts: Documents) -> dict[str, Any]:
    """A CSR matrix of counts in the compact encoding (its three arrays; indices are exact
    as float64)."""
    return encode_fields(
        {
            "data": counts.data,
            "indices": counts.indices.astype(np.float64),
            "indptr": counts.indptr.astype(np.float64),
        }
    )


def _decode_documents(document: Any, n_features: int) -> Documents:
    """Inverse of :func:`_encode_documents`, validated (counts >= 0 in n_features columns)."""
    fields = decode_fields(document)
    try:
        counts = sp.csr_matrix(
            (fields["data"], fields["indices"].astype(np.int64), fields["indptr"].astype(np.int64)),
            shape=(len(fields["indptr"]) - 1, n_features),
        )
        counts.check_format(full_check=True)
    except (KeyError, ValueError) as error:
        raise ValidationError(
            f"model document: state.warmup is not a document matrix: {error}"
        ) from error
    if not (np.isfinite(counts.data).all() and (counts.data >= 0.0).all()):
        raise ValidationError("model document: state.warmup must hold finite counts >= 0")
    return counts


def _check_record(path: str, fields: dict[str, FloatArray], shape: tuple[int, int]) -> None:
    """A decoded parameter or statistics record of the right shape, finite and >= 0."""
    for name, values in fields.items():
        if values.shape != shape or not np.isfinite(values).all() or (values < 0.0).any():
            raise ValidationError(
                f"model document: {path}.{name} must be finite numbers >= 0 of shape {shape}, "
                f"got shape {values.shape}"
            )
