"""``inspect`` and ``plot`` of every family's model file and snapshots (issue 32, item 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from streamem import GaussianHMM, LinearGaussianSSM
from streamem.cli import main
from streamem.commands.plot import _draw_states
from streamem.commands.summary import load_view
from streamem.commands.views import ModelView
from streamem.models.protocol import StreamingOptions
from streamem.models.topics.lda import LatentDirichletAllocation
from streamem.service.config import DriftSettings, ModelSettings, VocabularySettings
from streamem.service.learner import Learner
from streamem.service.snapshot import build_snapshot

WORDS = ["pump", "valve", "leak", "sensor", "motor", "belt"]


def _regimes(seed: int = 0, n: int = 1_200) -> np.ndarray:
    """Two regimes of (temp, vib) that persist for ~100 steps."""
    rng = np.random.default_rng(seed)
    states = np.repeat(rng.integers(2, size=n // 100), 100)
    return np.array([[20.0, 1.0], [35.0, 4.0]])[states] + rng.normal(size=(n, 2))


def _level(seed: int = 0, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1.0, n)).reshape(-1, 1)


def _counts(seed: int = 0, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = np.array([[0.45, 0.45, 0.05, 0.05, 0.0, 0.0], [0.0, 0.0, 0.05, 0.05, 0.45, 0.45]])
    return np.array([rng.multinomial(30, topics[rng.integers(2)]) for _ in range(n)], float)


def _models() -> dict[str, Any]:
    hmm = GaussianHMM(2, random_state=0).fit(_regimes())
    ssm = LinearGaussianSSM(n_dim_state=1).partial_fit(_level())
    lda = LatentDirichletAllocation.from_options(
        StreamingOptions(n_components=2, vocabulary=WORDS, init_size=100, seed=0)
    )
    for batch in np.split(_counts(), 3):
        lda.learn(lda.batch_from_rows(batch))
    return {"hmm": hmm, "ssm": ssm, "lda": lda}


SHOWN = {  # what inspect prints of each family
    "hmm": ["transmat: Transition probabilities", "x0 mean ± sd", "startprob"],
    "ssm": ["transition covariance", "observation covariance", "points seen 600"],
    "lda": ["topics:", "top words", "pump", "belt", "effective documents"],
}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    files = {}
    for name, model in _models().items():
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(model.to_dict()))
    return files


@pytest.mark.parametrize("name", ["hmm", "ssm", "lda"])
def test_inspect_prints_every_familys_model_file(
    name: str, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(model_files[name])]) == 0, capsys.readouterr().err
    printed = " ".join(capsys.readouterr().out.split())
    for part in SHOWN[name]:
        assert part in printed


def test_the_hmm_table_shows_the_learned_transition_matrix(model_files: dict[str, Path]) -> None:
    view = load_view(model_files["hmm"])
    assert isinstance(view, ModelView)
    transmat = np.asarray(view.parameters["transmat"])
    # regimes of 100 steps: staying has probability ~0.99 (measured 0.985-0.995 over seeds)
    assert np.all(np.diag(transmat) > 0.95)
    means = np.sort(np.asarray(view.parameters["means"])[:, 0])
    np.testing.assert_allclose(means, [20.0, 35.0], atol=0.5)


def _snapshots(settings: ModelSettings, batches: list[np.ndarray], features: list[str]) -> str:
    learner = Learner(settings, DriftSettings(), features)
    lines = []
    for version, batch in enumerate(batches, start=1):
        learner.learn(batch)
        if learner.status.initialized:
            snapshot = build_snapshot(
                learner, name="plant", version=version, offsets={}, drift=False
            )
            lines.append(json.dumps(snapshot))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def snapshot_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("snapshots")
    texts = {
        "hmm": _snapshots(
            ModelSettings(family="gaussian_hmm", n_components=2, init_size=400),
            np.split(_regimes(), 6),
            ["temp", "vib"],
        ),
        "ssm": _snapshots(
            ModelSettings(family="linear_gaussian_ssm", n_components=1, init_size=200),
            np.split(_level(), 6),
            ["level"],
        ),
        "lda": _snapshots(
            ModelSettings(
                family="lda",
                n_components=2,
                init_size=100,
                vocabulary=VocabularySettings(words=WORDS),
            ),
            np.split(_counts(), 3),
            ["text"],
        ),
    }
    files = {}
    for name, text in texts.items():
        files[name] = folder / f"{name}.ndjson"
        files[name].write_text(text)
    return files


@pytest.mark.parametrize("name", ["hmm", "ssm", "lda"])
def test_inspect_and_plot_every_familys_snapshots(
    name: str, snapshot_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = snapshot_files[name]
    assert main(["inspect", str(path)]) == 0, capsys.readouterr().err
    printed = " ".join(capsys.readouterr().out.split())
    assert "version" in printed
    assert SHOWN[name][0].split(":")[0] in printed
    out = tmp_path / f"{name}.png"
    assert main(["plot", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    assert imread(out)[..., :3].std() > 0.05  # something was drawn
    assert capsys.readouterr().out == f"plot written to {out}\n"
    last = json.loads(path.read_text().splitlines()[-1])
    assert main(["inspect", str(path), "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == last
    assert printed.startswith('{\n  "schema_version"')  # indented, as on a topic


def test_inspect_json_of_a_model_file_is_indented(
    model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(model_files["ssm"]), "--json"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('{\n  "format"')
    assert json.loads(printed) == json.loads(model_files["ssm"].read_text())


def _csv(path: Path, X: np.ndarray, names: str) -> Path:
    np.savetxt(path, X, delimiter=",", header=names, comments="")
    return path


@pytest.mark.parametrize(("name", "data"), [("hmm", _regimes(1)), ("ssm", _level(1))])
def test_plot_draws_a_model_over_data_in_file_order(
    name: str,
    data: np.ndarray,
    model_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ",".join(f"x{i}" for i in range(data.shape[1]))
    csv = _csv(tmp_path / "data.csv", data, names)
    out = tmp_path / "over-data.png"
    argv = [
        "plot",
        str(model_files[name]),
        "--data",
        str(csv),
        "--sample",
        "500",
        "--out",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert imread(out)[..., :3].std() > 0.05


def test_the_state_sequence_colours_each_step_by_its_most_likely_state(
    model_files: dict[str, Path],
) -> None:
    from matplotlib.figure import Figure

    view = load_view(model_files["hmm"])
    assert isinstance(view, ModelView)
    assert view.model is not None
    data = _regimes(1)[:300]
    states = np.asarray(view.model.predict(data))  # type: ignore[attr-defined]
    axes = Figure().subplots()
    _draw_states(axes, data, states, 0, "x0")
    drawn = sorted(len(collection.get_offsets()) for collection in axes.collections)
    assert drawn == sorted(np.bincount(states).tolist())
    # one regime over the first 100 steps: one state (the first step may follow startprob)
    assert np.bincount(states[:100]).max() >= 98


def test_plot_of_a_snapshot_with_data_says_it_needs_a_model_file(
    snapshot_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _csv(tmp_path / "data.csv", _regimes(1), "temp,vib")
    argv = [
        "plot",
        str(snapshot_files["hmm"]),
        "--data",
        str(csv),
        "--out",
        str(tmp_path / "p.png"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "give a gaussian_hmm model file (to_json), not a snapshot, which holds the" in err
