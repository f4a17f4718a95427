"""``streamem run``: the daemon's command line; errors are one line (a traceback with --debug)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamem.cli import main
from streamem.service.config import ConfigError


def test_a_missing_config_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("streamem: error: invalid streamem configuration")
    assert "nope.yaml" in err


def test_a_bad_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text("model: {n_components: 0}\nkafka: {consumer: {sesion_timeout_ms: 1}}\n")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "model.n_components" in err
    assert "kafka.consumer.sesion_timeout_ms" in err


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        main(["--debug", "run", "--config", str(tmp_path / "nope.yaml")])


def test_run_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_python_dash_m_streamem_run_is_the_same_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamem", "run", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("streamem: error: invalid streamem configuration")
