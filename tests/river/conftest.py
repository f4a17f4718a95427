"""Fixtures of the river adapter tests: a seeded generator whose seed is printed.

Set ``STREAMEM_TEST_SEED`` to run the tests with another seed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture
def seed() -> int:
    """The data seed of a test (``STREAMEM_TEST_SEED``, 0 by default), printed."""
    value = int(os.environ.get("STREAMEM_TEST_SEED", "0"))
    print(f"STREAMEM_TEST_SEED={value}")
    return value


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A numpy generator seeded with :func:`seed`."""
    return np.random.default_rng(seed)
