"""river adapter of the topic model: a river transformer from token counts to topic mixtures.

``import streamem`` does not import river; ``import streamem.river`` does.

* **Input.** ``x`` is one document as a ``dict`` of token counts (``{"rain": 2, "sun": 1}``,
  e.g. from ``river.feature_extraction.BagOfWords``). Tokens are hashed into ``n_features``
  columns (scikit-learn's ``HashingVectorizer(alternate_sign=False)`` columns, so that the
  order of the tokens never matters and a new word needs no new column). A count must be a
  real number >= 0; anything else raises :class:`~streamem.errors.ValidationError` before
  the model is touched.
* **Update semantics.** With ``batch_size=1`` (the default) every ``learn_one`` is one
  stepwise update of the topics with that document (online variational Bayes, one document
  per mini-batch); with ``batch_size=m`` the documents are buffered and one update is made
  per ``m`` documents. The corpus-size factor is the effective number of documents behind
  the statistics (see :class:`streamem.LatentDirichletAllocation`).
* **Output.** ``transform_one(x)`` is the document's topic mixture ``{topic: share}``
  (the normalised variational Dirichlet parameters; the shares sum to one). Before the first
  update it is the prior's mixture, every topic ``1 / n_components``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
from river import base

from streamem.engine import PowerDecay
from streamem.errors import ValidationError
from streamem.models.common.vocabulary import HashingVocabulary, documents_matrix
from streamem.models.topics.lda import LatentDirichletAllocation

__all__ = ["LDATransformer"]

HISTORY_SIZE = 100
"""Monitor records kept (one per update)."""

UNIT_TEST_SKIPS: dict[str, str] = {}
"""river checks that the transformer skips, with the reason."""


class LDATransformer(base.Transformer):
    """Streaming latent Dirichlet allocation: token counts in, topic mixture out.

    Parameters
    ----------
    n_components
        Number of topics K.
    n_features
        Hashed columns of the vocabulary.
    batch_size
        Documents per stepwise update; 1 is one update per ``learn_one``.
    doc_topic_prior, topic_word_prior
        ``alpha`` and ``eta`` of the Dirichlet priors; None: ``1 / n_components``.
    learning_decay, learning_offset
        The step sizes ``rho_t = (t + learning_offset) ** -learning_decay``.
    max_doc_update_iter, mean_change_tol
        The per-document fixed point's iteration limit and tolerance.
    seed
        Seed of the random starting topics.

    Attributes
    ----------
    model
        The :class:`streamem.LatentDirichletAllocation` learned (``components_``,
        ``n_seen_``, ``effective_documents_``, ``top_words()``, ...).

    Examples
    --------
    >>> from streamem.river import LDATransformer
    >>> documents = [{"rain": 3, "wind": 2, "cloud": 1}, {"sun": 3, "beach": 2, "sand": 1}] * 50
    >>> lda = LDATransformer(n_components=2, n_features=64, seed=0)
    >>> lda.transform_one(documents[0])
    {0: 0.5, 1: 0.5}
    >>> for document in documents:
    ...     lda.learn_one(document)
    >>> lda.model.n_seen_
    100
    >>> rain, sun = lda.transform_one({"rain": 1, "cloud": 1}), lda.transform_one({"sand": 2})
    >>> max(rain, key=rain.get) != max(sun, key=sun.get)
    True
    >>> print(round(max(rain.values()), 2))
    0.83
    """

    def __init__(
        self,
        n_components: int = 10,
        n_features: int = 2**12,
        batch_size: int = 1,
        doc_topic_prior: float | None = None,
        topic_word_prior: float | None = None,
        learning_decay: float = 0.6,
        learning_offset: float = 1.0,
        max_doc_update_iter: int = 100,
        mean_change_tol: float = 1e-3,
        seed: int | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(n_components, int) or n_components < 1:
            raise ValidationError(f"n_components must be an integer >= 1, got {n_components!r}")
        PowerDecay(alpha=learning_decay, t0=learning_offset)  # validates the schedule
        self.n_components = n_components
        self.n_features = n_features
        self.batch_size = batch_size
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.seed = seed
        self._vocabulary = HashingVocabulary(n_features)
        self.model = LatentDirichletAllocation(
            n_components,
            doc_topic_prior=doc_topic_prior,
            topic_word_prior=topic_word_prior,
            learning_method="online",
            learning_decay=learning_decay,
            learning_offset=learning_offset,
            max_doc_update_iter=max_doc_update_iter,
            mean_change_tol=mean_change_tol,
            random_state=seed,
            history_size=HISTORY_SIZE,
            vocabulary=n_features,
        )
        self._pending: list[dict[int, float]] = []

    def _columns(self, x: dict[Hashable, Any]) -> dict[int, float]:
        if not isinstance(x, dict):
            raise ValidationError(f"x must be a dict of token counts, got {type(x).__name__}")
        return self._vocabulary.encode(x)[0]

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Add the document ``x``; one stepwise update per ``batch_size`` documents."""
        self._pending.append(self._columns(x))
        if len(self._pending) >= self.batch_size:
            batch = documents_matrix(self._pending, self.n_features)
            self._pending = []
            self.model.learn(batch)

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        """The topic mixture of the document ``x`` (shares summing to one)."""
        row = self._columns(x)
        if not self.model.__sklearn_is_fitted__():
            return dict.fromkeys(range(self.n_components), 1.0 / self.n_components)
        mixture = self.model.transform(documents_matrix([row], self.n_features))[0]
        return dict(enumerate(np.asarray(mixture, dtype=float).tolist()))

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"n_components": 3, "n_features": 256, "seed": 42}
        yield {"n_components": 2, "n_features": 64, "batch_size": 5, "seed": 7}

    def _unit_test_skips(self) -> set[str]:
        return set(UNIT_TEST_SKIPS)
