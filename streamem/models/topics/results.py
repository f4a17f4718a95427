"""The topic model's per-record results: the document's topic mixture (its top topics, from
:meth:`~LatentDirichletAllocation.transform`). A topic model has no anomaly score.

Examples
--------
>>> import numpy as np
>>> from streamem import LatentDirichletAllocation
>>> rng = np.random.default_rng(0)
>>> X = rng.poisson(1.0, (100, 12)).astype(float)
>>> model = LatentDirichletAllocation(3, random_state=0).fit(X)
>>> columns = LDA_RESULTS.compute(model, X[:2], None, 2)
>>> len(columns.fields[0]["topics"]), columns.scores is None
(2, True)
"""

from __future__ import annotations

from typing import Any

from streamem.models.protocol import StreamingModel
from streamem.models.results import FamilyResults, ResultColumns, top_pairs

__all__ = ["LDA_RESULTS"]


def _topics(
    model: StreamingModel, X: Any, keys: tuple[str, ...] | None, top_k: int | None
) -> ResultColumns:
    from streamem.models.topics.lda import LatentDirichletAllocation

    assert isinstance(model, LatentDirichletAllocation)
    mixture = model.transform(model.batch_from_rows(X, keys))
    return ResultColumns([{"topics": top} for top in top_pairs(mixture, top_k)], None)


LDA_RESULTS = FamilyResults(
    _topics,
    {
        "required": ["topics"],
        "properties": {
            "topics": {
                "type": "array",
                "items": {
                    "type": "array",
                    "prefixItems": [
                        {"type": "integer", "minimum": 0},
                        {"type": "number", "minimum": 0},
                    ],
                    "minItems": 2,
                    "maxItems": 2,
                },
                "minItems": 1,
                "description": "[topic, share] pairs of the document's topic mixture, largest "
                "first: the top output.results_top_k topics (all with null).",
            }
        },
    },
)
"""Latent Dirichlet allocation's results."""
