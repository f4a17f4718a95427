"""What a newcomer meets on the command line is true (issue 15, "small lies and holes", and the
messages of missing extras): each test is one item of the issue."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from rich.console import Console

from streamem import GaussianMixture, ValidationError
from streamem.cli import main
from streamem.commands import demo as demo_command
from streamem.commands import fit as fit_command
from streamem.commands.plot import _draw_curve
from streamem.commands.summary import MixtureSummary, load_summary


def _csv(path: Path, n: int = 50) -> Path:
    rows = np.random.default_rng(0).normal(size=(n, 2))
    path.write_text("a,b\n" + "\n".join(f"{x!r},{y!r}" for x, y in rows.tolist()) + "\n")
    return path


def test_debug_works_after_the_command_too(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.csv")
    assert main(["fit", missing]) == 1  # one line
    with pytest.raises(ValidationError, match="no such data file"):
        main(["fit", missing, "--debug"])  # the traceback: the error itself
    with pytest.raises(ValidationError, match="no such data file"):
        main(["--debug", "fit", missing])


def test_an_unknown_flag_after_a_command_shows_that_commands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fit", "data.csv", "--bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: streamem fit ")
    assert "streamem fit: error: unrecognized arguments: --bogus" in err


def test_a_csv_without_a_header_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("21.5,0.4\n22.0,0.5\n23.0,0.45\n")
    assert main(["fit", str(path)]) == 1
    assert "line 1 is a row of numbers (21.5,0.4), not a header" in capsys.readouterr().err


def test_fit_on_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", str(tmp_path)]) == 1
    assert f"{str(tmp_path)!r} is a directory, not a data file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "x.csv", "--max-components", "0"],
        ["fit", "x.csv", "--batch-size", "-3"],
        ["fit", "x.csv", "--init-size", "0"],
        ["produce", "--bootstrap-servers", "b:1", "--count", "0"],
    ],
)
def test_counts_must_be_whole_numbers_of_at_least_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"expected a whole number >= 1, got {argv[-1]!r}" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", "zero rows"])
def test_an_empty_npy_file_is_named(
    tmp_path: Path, content: bytes | str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.empty((0, 3)))
    assert main(["fit", str(path)]) == 1
    assert repr(str(path)) in capsys.readouterr().err


def test_a_bad_out_folder_fails_before_the_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fit ran before --out was checked")

    monkeypatch.setattr(fit_command, "fit_file", must_not_run)
    out = tmp_path / "no" / "such" / "model.json"
    assert main(["fit", str(_csv(tmp_path / "d.csv")), "--out", str(out)]) == 1
    assert f"--out {str(out)!r}: no directory" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "d.csv"), "--out", str(tmp_path)]) == 1
    assert "is a directory; give a file name" in capsys.readouterr().err


@pytest.mark.parametrize("duration", ["0", "-5"])
def test_a_demo_of_no_time_is_refused_at_once(
    duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--duration", duration])
    assert exited.value.code == 2
    assert f"argument --duration: expected a number > 0, got {duration!r}" in (
        capsys.readouterr().err
    )


def test_a_small_file_fitted_by_batch_em_prints_its_log_likelihood(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small.model.json"
    argv = ["fit", str(_csv(tmp_path / "small.csv")), "--components", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "by batch EM" in printed
    assert "mean log-likelihood -" in printed
    assert "None" not in printed
    summary = load_summary(out)
    assert isinstance(summary.facts["mean log-likelihood"], float)
    assert summary.facts["EM iterations"] >= 1


def test_the_demos_live_view_counts_what_was_sent() -> None:
    producer = demo_command._Producer("127.0.0.1:1", rate=10.0, change_after=10_000, seed=0)
    producer.stream.take(400)  # generated ahead of the sends, as the real producer does
    producer._count(321)
    console = Console(record=True, width=120)
    console.print(demo_command._view([], producer, 1.0, 10.0))
    assert "321 readings" in console.export_text()


def test_the_curve_of_a_long_fit_says_it_shows_the_newest_updates(tmp_path: Path) -> None:
    X = np.random.default_rng(1).normal(size=(3_000, 2))
    model = GaussianMixture(2, init_size=100, random_state=0)
    for batch in np.array_split(X, 150):
        model.partial_fit(batch)
    path = tmp_path / "long.model.json"
    path.write_text(model.to_json())
    summary = load_summary(path)
    assert model.n_iter_ == 146  # the first 5 batches are the warm-up of one update
    assert summary.n_updates == 146
    assert len(summary.curve) == 100  # a model file keeps the newest 100
    axes = Figure().subplots()
    _draw_curve(axes, summary, [])
    assert axes.get_title() == "Learning curve of the last 100 of 146 updates"
    short = MixtureSummary.from_model(model)  # in memory: the whole history
    assert len(short.curve) == 146
    axes = Figure().subplots()
    _draw_curve(axes, short, [])
    assert axes.get_title() == "Learning curve (higher is better)"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("fit", ["--init-size INIT_SIZE", "(default: 10000)", "(default: 1000)", "(default: 5)"]),
        ("demo", ["readings per second (default: 3000.0)", "(default: 30.0)"]),
        ("produce", ["records per second (default: as fast as possible)"]),
        ("produce", ["(default: every row of --file; the synthetic stream: until Ctrl-C)"]),
    ],
)
def test_help_shows_the_defaults(
    command: str, shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in shown:
        assert " ".join(part.split()) in text


def test_help_says_which_commands_need_which_extra(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert (
        "demo, broker, fit, produce, inspect, follow, plot, run: need the service extra, "
        'pip install "streamem[service]"' in text
    )
    assert "quickstart: the library alone" in text
    assert 'import streamem.river: needs the river extra, pip install "streamem[river]"' in text


@pytest.mark.parametrize(("command", "module"), [("fit", "rich"), ("plot", "matplotlib")])
def test_a_missing_module_of_an_extra_is_named_with_the_extra(
    command: str,
    module: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    model = tmp_path / "m.json"
    model.write_text(GaussianMixture(1).fit(np.eye(3)).to_json())
    argv = [command, str(_csv(tmp_path / "d.csv"))] if command == "fit" else [command, str(model)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f'streamem {command} needs the service extra: pip install "streamem[service]"' in err
