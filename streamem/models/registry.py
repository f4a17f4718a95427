"""The families streamem knows, by name: what configs, documents and snapshots refer to.

Each family's estimator implements :class:`~streamem.models.protocol.StreamingModel`; its
module is imported only when the family is used, so ``import streamem`` stays light.

Examples
--------
>>> model_class("gaussian_mixture").__name__
'GaussianMixture'
>>> family_names()
('gaussian_mixture', 'gaussian_hmm', 'linear_gaussian_ssm', 'lda')
"""

from __future__ import annotations

import importlib
from typing import Any

from streamem.errors import ValidationError
from streamem.models.protocol import StreamingModel

_FAMILIES: dict[str, tuple[str, str]] = {
    "gaussian_mixture": ("streamem.models.mixture.gaussian_mixture", "GaussianMixture"),
    "gaussian_hmm": ("streamem.models.hmm.gaussian_hmm", "GaussianHMM"),
    "linear_gaussian_ssm": ("streamem.models.state_space.linear_gaussian_ssm", "LinearGaussianSSM"),
    "lda": ("streamem.models.topics.lda", "LatentDirichletAllocation"),
}
"""Family name -> (module, estimator class)."""


def family_names() -> tuple[str, ...]:
    """The names of the families, in the order they were added."""
    return tuple(_FAMILIES)


def model_class(family: str) -> type[StreamingModel]:
    """The estimator class of ``family``.

    Raises
    ------
    ValidationError
        If no family has that name.
    """
    try:
        module, name = _FAMILIES[family]
    except (KeyError, TypeError):
        raise ValidationError(
            f"model family must be one of {list(_FAMILIES)}, got {family!r}"
        ) from None
    kind: type[StreamingModel] = getattr(importlib.import_module(module), name)
    return kind


def model_from_dict(document: dict[str, Any]) -> StreamingModel:
    """Rebuild any family's model from its ``to_dict`` document (its ``format`` decides).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import LinearGaussianSSM
    >>> fitted = LinearGaussianSSM(n_dim_state=1).partial_fit(np.arange(50.0))
    >>> type(model_from_dict(fitted.to_dict())).__name__
    'LinearGaussianSSM'

    Raises
    ------
    ValidationError
        If the document is not a streamem model document.
    """
    if not isinstance(document, dict):
        raise ValidationError(f"a model document is a JSON object, got {type(document).__name__}")
    fmt = document.get("format")
    for family in _FAMILIES:
        kind = model_class(family)
        if getattr(kind, "FORMAT", None) == fmt:
            return kind.from_dict(document)
    known = [getattr(model_class(family), "FORMAT", None) for family in _FAMILIES]
    raise ValidationError(f"format must be one of {known}, got {fmt!r}")
