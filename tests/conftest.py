"""Shared fixtures: a seeded generator whose seed is printed (set STREAMEM_TEST_SEED to replay)."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    seed = int(os.environ.get("STREAMEM_TEST_SEED", "20261121"))
    print(f"random seed: {seed} (set STREAMEM_TEST_SEED to change it)")
    return np.random.default_rng(seed)
