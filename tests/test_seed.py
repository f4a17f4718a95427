"""The tests' random seed is printed in every run, a passing and quiet one too (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_passing_quiet_run_prints_the_seed() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/commands/test_cli.py::test_a_rate_must_be_positive",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "STREAMEM_TEST_SEED": "12345"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert "random seed: 12345 (set STREAMEM_TEST_SEED to change it)" in done.stdout
