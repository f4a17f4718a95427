"""``streamem fit``: the library's partial_fit over a file; K chosen as scikit-learn's BIC does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

from streamem import GaussianMixture
from streamem.cli import main
from streamem.commands.fit import fit_file, uniform_sample
from streamem.datafiles import open_data


def _csv(path: Path, X: np.ndarray, names: tuple[str, ...]) -> Path:
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in X)
    path.write_text(",".join(names) + "\n" + rows + "\n")
    return path


def old_faithful_like(rng: np.random.Generator) -> np.ndarray:
    """272 eruptions (duration, waiting time in minutes) of two kinds, like the geyser's."""
    short = rng.multivariate_normal([2.04, 54.5], [[0.07, 0.45], [0.45, 34.0]], size=97)
    long = rng.multivariate_normal([4.29, 80.0], [[0.17, 0.94], [0.94, 36.0]], size=175)
    return rng.permutation(np.concatenate([short, long]))


def test_fit_learns_what_the_librarys_partial_fit_loop_learns(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1, (6_000, 3)), rng.normal(4, 0.5, (4_000, 3))])
    X = rng.permutation(X)
    path = _csv(tmp_path / "rows.csv", X, ("a", "b", "c"))

    # read in chunks of 700 rows that do not line up with the batches of 300
    result = fit_file(open_data(path), 2, batch_size=300, init_size=1_000, chunk_rows=700)

    library = GaussianMixture(2, n_init=5, random_state=0, init_size=1_000)
    for start in range(0, len(X), 300):
        library.partial_fit(X[start : start + 300])
    assert result.n_rows == library.n_seen_ == 10_000
    assert not result.batch_em
    np.testing.assert_array_equal(result.model.means_, library.means_)
    np.testing.assert_array_equal(result.model.covariances_, library.covariances_)
    np.testing.assert_array_equal(result.model.weights_, library.weights_)
    assert list(result.model.feature_names_in_) == ["a", "b", "c"]


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_auto_picks_the_k_that_scikit_learns_bic_picks(data_seed: int, tmp_path: Path) -> None:
    X = old_faithful_like(np.random.default_rng(data_seed))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))

    result = fit_file(open_data(path), "auto", candidates=range(1, 7))

    with threadpool_limits(1):
        sklearn_bic = {
            k: SklearnGaussianMixture(k, n_init=5, random_state=0).fit(X).bic(X)
            for k in range(1, 7)
        }
    assert result.n_components == min(sklearn_bic, key=sklearn_bic.__getitem__) == 2
    assert result.bic.keys() == sklearn_bic.keys()
    # a file smaller than init_size is learned by batch EM on all of its rows
    assert result.batch_em
    assert result.model.n_features_in_ == 2


def test_rows_without_any_value_are_skipped_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3_000, 2))
    path = tmp_path / "gaps.csv"
    lines = ["a,b"] + [f"{a!r},{b!r}" for a, b in X.tolist()]
    lines[100:100] = [",", "nan,NA"]  # two rows with no value at all
    path.write_text("\n".join(lines) + "\n")

    result = fit_file(open_data(path), 2, batch_size=500, init_size=1_000)

    library = GaussianMixture(2, n_init=5, random_state=0, init_size=1_000)
    for start in range(0, len(X), 500):
        library.partial_fit(X[start : start + 500])
    assert (result.n_rows, result.n_skipped) == (3_000, 2)
    np.testing.assert_array_equal(result.model.means_, library.means_)


def test_a_small_file_gets_batch_em_and_its_rows_stay_out_of_the_model(tmp_path: Path) -> None:
    X = old_faithful_like(np.random.default_rng(4))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))
    result = fit_file(open_data(path), 2)
    assert result.batch_em
    expected = GaussianMixture(2, n_init=5, random_state=0, init_size=10_000).fit(X)
    np.testing.assert_allclose(result.model.means_, expected.means_)
    assert json.loads(result.model.to_json())["state"]["warmup"] == []


def test_progress_runs_once_over_both_passes_of_auto(tmp_path: Path) -> None:
    X = old_faithful_like(np.random.default_rng(5))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))
    positions: list[int] = []
    fit_file(open_data(path), "auto", candidates=range(1, 3), progress=positions.append)
    assert positions == sorted(positions)
    assert positions[-1] == 2 * path.stat().st_size


def test_uniform_sample_keeps_every_row_when_there_are_few_and_draws_evenly_otherwise() -> None:
    rows = np.arange(1_000.0).reshape(-1, 1)
    np.testing.assert_array_equal(uniform_sample(iter(np.split(rows, 10)), 5_000), rows)
    means = [uniform_sample(iter(np.split(rows, 10)), 100, seed=s).mean() for s in range(200)]
    assert abs(np.mean(means) - 499.5) < 5  # sd of one mean ~ 28 / sqrt(200) ~ 2


def test_the_command_writes_a_model_that_the_library_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X = old_faithful_like(np.random.default_rng(7))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))
    out = tmp_path / "model.json"
    assert (
        main(["fit", str(path), "--components", "auto", "--max-components", "4", "--out", str(out)])
        == 0
    )
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps lines at 80 columns
    assert "K=2 is lowest" in printed
    assert "eruptions mean" in printed
    model = GaussianMixture.from_json(out.read_text())
    assert model.means_.shape == (2, 2)
    assert json.loads(out.read_text())["state"]["feature_names_in"] == ["eruptions", "waiting"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--components", "0"], "components must be a positive integer"),
        (["--features", "nope"], "no column(s) ['nope']"),
    ],
)
def test_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    path = _csv(tmp_path / "rows.csv", np.ones((5, 2)), ("a", "b"))
    assert main(["fit", str(path), *arguments]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_the_bic_sweep_prints_one_line_per_candidate_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X = old_faithful_like(np.random.default_rng(7))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))
    argv = ["fit", str(path), "--max-components", "3", "--out", str(tmp_path / "m.json")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    swept = [line for line in lines if line.startswith("K=") and ": BIC " in line]
    assert [line.split(":")[0] for line in swept] == ["K=1", "K=2", "K=3"]
    expected = {
        k: SklearnGaussianMixture(k, n_init=5, random_state=0).fit(X).bic(X) for k in (1, 2)
    }
    for k, value in expected.items():  # the sample is every row: scikit-learn's BIC, to 0.1
        assert f"K={k}: BIC {value:,.1f} on a sample" in swept[k - 1]


def test_the_bic_sweep_prints_its_lines_above_the_progress_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import re

    from rich.console import Console

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr("streamem.cli._console", lambda: terminal)
    X = old_faithful_like(np.random.default_rng(7))
    path = _csv(tmp_path / "faithful.csv", X, ("eruptions", "waiting"))
    argv = ["fit", str(path), "--max-components", "3", "--out", str(tmp_path / "m.json")]
    assert main(argv) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # colours, cursor moves
    assert "reading faithful.csv" in text  # the bar was drawn
    for k in (1, 2, 3):
        assert f"K={k}: BIC" in text


def test_an_existing_model_file_is_named_before_it_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path / "rows.csv", np.random.default_rng(0).normal(size=(300, 2)), ("a", "b"))
    out = tmp_path / "model.json"
    argv = ["fit", str(path), "--components", "1", "--out", str(out)]
    assert main(argv) == 0
    assert "exists" not in capsys.readouterr().out
    out.write_text("an older model")
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.startswith(f"{out} exists: the new model will replace it")
    assert GaussianMixture.from_json(out.read_text()).n_components == 1
