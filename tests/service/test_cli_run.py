"""``streamem run``: the daemon's command line; errors are one line (a traceback with --debug)."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from streamem.cli import main
from streamem.service.app import COLLECTOR_THRESHOLDS, Daemon, run
from streamem.service.config import ConfigError, Settings


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


def test_the_daemon_runs_with_its_collector_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(Daemon, "run", lambda daemon: seen.append(gc.get_threshold()) or 0)
    # the process-wide settings of run() other than the collector's stay as they are
    monkeypatch.setattr("streamem.service.logs.configure_logging", lambda *args: None)
    monkeypatch.setattr("prometheus_client.disable_created_metrics", lambda: None)
    before = gc.get_threshold()
    settings = Settings.model_validate(
        {
            "input": {"features": ["x"]},
            "state": {"dir": str(tmp_path)},
            "metrics": {"enabled": False},
        }
    )
    try:
        assert run(settings) == 0
    finally:
        gc.set_threshold(*before)
    assert seen == [COLLECTOR_THRESHOLDS]
    assert before != COLLECTOR_THRESHOLDS  # not Python's default
