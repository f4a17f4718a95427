"""Smaller items of issue 32 (9, 11): the demo's results after an early stop, its output
without a terminal, --version, the broker's help."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.panel import Panel

from streamem import __version__
from streamem.cli import main
from streamem.commands import demo as demo_command


def test_the_live_view_ends_its_line_without_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=40)
    assert not console.is_terminal
    with demo_command._live(console) as live:
        live.update(Panel("produced 12,000 readings"))
    console.print("finishing: the daemon learns what was produced")
    assert "╯\nfinishing:" in out.getvalue()


def test_a_regime_change_that_was_never_sent_is_not_marked() -> None:
    # a 30 s demo at 3,000/s changes after 45,000 readings; stopped at 12,000 it never did
    assert not demo_command._regime_changed(45_000, 12_000)
    assert not demo_command._regime_changed(45_000, 45_000)  # the first 45,000 are before it
    assert demo_command._regime_changed(45_000, 45_001)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"streamem {__version__}\n"


def test_the_broker_help_tells_the_partitions_of_an_automatic_topic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["broker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a topic that a producer or consumer names first is created with 4 partitions" in text
    assert "1 partition" not in text
