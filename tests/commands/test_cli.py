"""The ``streamem`` command line: every subcommand explains itself."""

from __future__ import annotations

import pytest

from streamem.cli import main


@pytest.mark.parametrize(
    "command", ["demo", "quickstart", "fit", "produce", "inspect", "plot", "run"]
)
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"examples:\n  streamem {command}" in capsys.readouterr().out


@pytest.mark.parametrize("rate", ["0", "-5", "fast"])
def test_a_rate_must_be_positive(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["produce", "--bootstrap-servers", "127.0.0.1:1", "--rate", rate])
    assert exited.value.code == 2
    assert f"expected a number > 0, got {rate!r}" in capsys.readouterr().err
