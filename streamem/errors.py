"""The exceptions and warnings that streamem raises."""

from __future__ import annotations


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
