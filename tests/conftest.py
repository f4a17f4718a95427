"""Shared fixtures: a seeded generator whose seed is printed (set STREAMEM_TEST_SEED to replay).

The seed is printed at the end of every run, passing or not, quiet or not, and again in the
captured output of a test that uses ``rng`` (shown when it fails).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

SEED = int(os.environ.get("STREAMEM_TEST_SEED", "20261121"))
_SAYS = f"random seed: {SEED} (set STREAMEM_TEST_SEED to change it)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(_SAYS)  # also with -q, where there is no header


@pytest.fixture
def rng() -> np.random.Generator:
    print(_SAYS)
    return np.random.default_rng(SEED)
