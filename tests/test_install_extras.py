"""The library alone, installed as a user would (``pip install streamem``, no extra), says for
every command which extra to install (issue 15, acceptance 4).

A fresh virtual environment gets a real ``pip install`` of a copy of the package (pip's wheel
cache makes it quick after the first time); then every command, ``import streamem.river`` and
``streamem --help`` are run in it.
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from streamem import GaussianMixture

ROOT = Path(__file__).resolve().parents[1]
SERVICE = 'needs the service extra: pip install "streamem[service]"'


@pytest.fixture(scope="module")
def library_alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh virtual environment with the base package only."""
    here = tmp_path_factory.mktemp("library-alone")
    source = here / "source"  # what the package is built from, as .dockerignore lets in
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "streamem", source / "streamem", ignore=shutil.ignore_patterns("*.pyc"))
    venv.create(here / "venv", with_pip=True)
    bin_dir = here / "venv" / "bin"
    done = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir


def _run(
    bin_dir: Path, program: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``program`` of the virtual environment with ``args``; its exit code is the caller's."""
    return subprocess.run(
        [str(bin_dir / program), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


@pytest.mark.slow
def test_the_base_install_has_no_extra(library_alone: Path) -> None:
    done = _run(library_alone, "pip", "list", "--format=freeze")
    assert done.returncode == 0, done.stderr
    installed = {line.split("==")[0].lower() for line in done.stdout.splitlines()}
    assert "streamem" in installed
    assert not installed & {
        "rich",
        "kafka-python",
        "pandas",
        "river",
        "matplotlib",
        "pyyaml",
        "dask",
        "distributed",
    }


@pytest.mark.slow
def test_every_command_names_the_extra_it_needs(library_alone: Path, tmp_path: Path) -> None:
    data = tmp_path / "readings.csv"
    data.write_text("temp,hum\n" + "\n".join(f"{i % 7}.5,0.{i % 9}" for i in range(50)) + "\n")
    model = tmp_path / "model.json"
    X = np.random.default_rng(0).normal(size=(50, 2))
    model.write_text(GaussianMixture(2, random_state=0).fit(X).to_json())
    config = tmp_path / "daemon.yaml"
    config.write_text("kafka: {bootstrap_servers: '127.0.0.1:1'}\n")
    commands = {
        "fit": ["fit", str(data)],
        "plot": ["plot", str(model)],
        "inspect": ["inspect", str(model)],
        "run": ["run", "--config", str(config)],
        "demo": ["demo", "--duration", "1"],
        "produce": ["produce", "--bootstrap-servers", "127.0.0.1:1", "--count", "1"],
        "follow": ["follow", "--bootstrap-servers", "127.0.0.1:1", "--topic", "results"],
        "broker": ["broker"],
    }
    for name, argv in commands.items():
        done = _run(library_alone, "streamem", *argv, cwd=tmp_path)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"streamem: error: streamem {name} {SERVICE} (No module named "), (
            name,
            done.stderr,
        )
    quickstart = _run(library_alone, "streamem", "quickstart", "--points", "20000", cwd=tmp_path)
    assert quickstart.returncode == 0, quickstart.stderr  # the library alone is enough


@pytest.mark.slow
def test_import_of_the_river_learner_names_its_extra(library_alone: Path) -> None:
    done = _run(library_alone, "python", "-c", "import streamem.river")
    assert done.returncode == 1
    assert (
        "streamem.extras.MissingExtraError: streamem.river needs the river extra: pip install "
        '"streamem[river]" (No module named '
    ) in done.stderr


@pytest.mark.slow
def test_help_lists_which_commands_need_which_extra(library_alone: Path, tmp_path: Path) -> None:
    done = _run(library_alone, "streamem", "--help", cwd=tmp_path)
    assert done.returncode == 0
    needs = "demo, broker, fit, produce, inspect, follow, plot, run: need the service extra"
    assert needs in done.stdout
    assert "quickstart: the library alone" in done.stdout


@pytest.mark.slow
def test_the_dask_backfill_names_its_extra(library_alone: Path) -> None:
    done = _run(library_alone, "python", "-c", "import streamem.dask")
    assert done.returncode != 0
    assert 'streamem.dask needs the dask extra: pip install "streamem[dask]"' in done.stderr
