"""The ``streamem`` command line: every subcommand explains itself."""

from __future__ import annotations

import pytest

from streamem.cli import main


@pytest.mark.parametrize("command", ["demo", "fit", "produce", "inspect", "plot", "run"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"examples:\n  streamem {command}" in capsys.readouterr().out
