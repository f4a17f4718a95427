"""``streamem inspect`` and ``streamem plot`` on model files: what they print and draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from streamem import GaussianMixture
from streamem.cli import main
from streamem.commands.plot import plot_summary, separating_features
from streamem.commands.summary import MixtureSummary, load_summary
from streamem.errors import ValidationError
from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.snapshot import build_snapshot

MEANS = np.array([[0.0, 10.0, 0.0], [6.0, 10.0, 0.5]])


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return MEANS[rng.integers(2, size=2_000)] + rng.normal(size=(2_000, 3))


@pytest.fixture
def model_file(tmp_path: Path, data: np.ndarray) -> Path:
    model = GaussianMixture(2, covariance_type="diag", init_size=500, random_state=0)
    for batch in np.split(data, 4):
        model.partial_fit(batch)
    path = tmp_path / "model.json"
    path.write_text(model.to_json())
    return path


@pytest.fixture
def snapshots_file(tmp_path: Path, data: np.ndarray) -> Path:
    learner = Learner(ModelSettings(n_components=2, init_size=500), DriftSettings(), "abc")
    lines = []
    for version, batch in enumerate(np.split(data, 4), start=1):
        learner.learn(batch)
        snapshot = build_snapshot(
            learner, name="plant", version=version, offsets={}, drift=version == 3
        )
        lines.append(json.dumps(snapshot))
    path = tmp_path / "snapshots.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_model_file_is_summarised_with_full_covariances(model_file: Path) -> None:
    summary = load_summary(model_file)
    assert summary.covariance_type == "diag"
    assert summary.covariances.shape == (2, 3, 3)
    assert summary.facts["points seen"] == 2_000
    assert [point.n_seen for point in summary.curve] == [500, 1_000, 1_500, 2_000]
    means = summary.means[np.argsort(summary.means[:, 0])]
    np.testing.assert_allclose(means, MEANS, atol=0.2)


def test_snapshots_give_the_newest_model_and_the_whole_curve(snapshots_file: Path) -> None:
    summary = load_summary(snapshots_file)
    assert summary.name == "plant"
    assert summary.features == ("a", "b", "c")
    assert summary.facts["version"] == 4
    assert [p.drift for p in summary.curve] == [False, False, True, False]


def test_separating_features_are_those_that_tell_components_apart(model_file: Path) -> None:
    # feature "x0" separates the components, "x2" a little, "x1" not at all
    assert separating_features(load_summary(model_file)) == ("x0", "x2")


def test_inspect_prints_a_table_per_component(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(model_file)]) == 0
    printed = capsys.readouterr().out
    assert "model: 2 diag-covariance components" in printed
    assert "x0 mean ± sd" in printed
    assert "points seen 2,000" in " ".join(printed.split())


def test_plot_writes_a_png_with_the_data_behind(
    tmp_path: Path, snapshots_file: Path, data: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,c\n" + "\n".join(",".join(map(str, row)) for row in data) + "\n")
    out = tmp_path / "plot.png"
    command = ["plot", str(snapshots_file), "--data", str(csv), "--features", "a,c"]
    assert main([*command, "--out", str(out)]) == 0
    assert f"plot written to {out}" in capsys.readouterr().out
    image = imread(out)
    assert image.shape[0] > 400
    assert image.shape[1] > 800
    assert image[..., :3].std() > 0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "holds neither a streamem.GaussianMixture model"),
        ('{"format": "sklearn"}', "not a streamem.GaussianMixture document"),
        ('{"schema_version": 1}', "model snapshot: n_components is missing"),
        ('{"format": "streamem.GaussianMixture", "format_version": 1}', "hyperparameters is"),
        ("[1, 2]", "holds no JSON object"),
        ("{not json", "neither JSON nor NDJSON"),
    ],
)
def test_files_that_are_not_models_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message):
        load_summary(path)


def test_inspect_needs_a_file_or_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 1
    assert "give a model FILE or --bootstrap-servers (one of the two)" in capsys.readouterr().err


def test_a_model_fitted_by_batch_em_has_no_stream_curve(data: np.ndarray, tmp_path: Path) -> None:
    summary = MixtureSummary.from_model(GaussianMixture(2, random_state=0).fit(data))
    assert summary.facts["converged"] is True
    assert summary.curve == ()
    assert plot_summary(summary, tmp_path / "fit.png").is_file()


def test_another_familys_snapshot_is_named_not_misread_as_a_mixture(tmp_path: Path) -> None:
    snapshot = {"schema_version": 1, "model": "regimes", "family": "gaussian_hmm"}
    path = tmp_path / "hmm.json"
    path.write_text(json.dumps(snapshot))
    with pytest.raises(ValidationError, match="a 'gaussian_hmm' model, not a Gaussian mixture"):
        load_summary(path)
