"""The example data files of the README's quick starts are what scripts/make_examples.py
writes (so they can be re-made, and nobody edits them by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.make_examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_file_is_its_generators_output(name: str) -> None:
    assert (ROOT / "examples" / name).read_text(encoding="utf-8") == EXAMPLES[name]()
