"""``streamem fit --scheduler/--workers``: CSV files (a glob) and a Parquet dataset read by Dask
and fitted by batch EM on a real cluster give the in-memory ``fit`` of the same rows (the same
start: fewer rows than the sample, so all of them in order; the sums' order differs only, which
leaves differences of 1e-15..1e-13 relative here, tolerance 1e-10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamem import GaussianMixture
from streamem.cli import main
from tests.models.hmm_helpers import relative_error

distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def rows(rng: np.random.Generator) -> np.ndarray:
    X = np.concatenate([rng.normal(0, 1, (2_500, 3)), rng.normal(4, 0.7, (3_500, 3))])
    X = rng.permutation(X)
    X[rng.random(X.shape) < 0.01] = np.nan
    return X


def _in_memory(X: np.ndarray) -> GaussianMixture:
    return GaussianMixture(2, n_init=2, random_state=7).fit(X)


def _same(path: Path, expected: GaussianMixture) -> None:
    model = GaussianMixture.from_json(path.read_text())
    for name in ("weights_", "means_", "covariances_"):
        assert relative_error(getattr(model, name), getattr(expected, name)) < 1e-10
    assert model.n_seen_ == expected.n_seen_
    assert list(model.feature_names_in_) == ["a", "b", "c"]


def test_a_csv_glob_on_a_cluster_gives_the_in_memory_fit(
    scheduler: str, rows: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, part in enumerate(np.array_split(rows, 4)):
        frame = pd.DataFrame(part, columns=["a", "b", "c"]).assign(site=f"s{i}")
        frame.to_csv(tmp_path / f"part-{i}.csv", index=False)
    out = tmp_path / "model.json"
    args = ["fit", str(tmp_path / "part-*.csv"), "--components", "2", "--n-init", "2"]
    assert main([*args, "--seed", "7", "--scheduler", scheduler, "--out", str(out)]) == 0
    _same(out, _in_memory(rows))
    printed = capsys.readouterr().out
    assert "start 2, iteration 1: mean log-likelihood" in printed
    assert "learned 6,000 rows by batch EM" in printed


def test_a_parquet_dataset_on_local_workers_gives_the_in_memory_fit(
    rows: np.ndarray, tmp_path: Path
) -> None:
    dataset = tmp_path / "history"
    dataset.mkdir()
    for i, part in enumerate(np.array_split(rows, 3)):
        pd.DataFrame(part, columns=["a", "b", "c"]).to_parquet(dataset / f"part-{i}.parquet")
    out = tmp_path / "model.json"
    args = ["fit", str(dataset), "--components", "2", "--n-init", "2", "--seed", "7"]
    assert main([*args, "--workers", "2", "--out", str(out)]) == 0
    _same(out, _in_memory(rows))
    assert json.loads(out.read_text())["state"]["n_features_in"] == 3


def test_other_files_and_columns_are_refused_before_a_cluster_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "rows.npy", np.zeros((10, 2)))
    assert main(["fit", str(tmp_path / "rows.npy"), "--workers", "1"]) != 0
    assert "file must be CSV files (*.csv) or Parquet" in capsys.readouterr().err
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    assert main(["fit", str(tmp_path / "rows.csv"), "--features", "a,z", "--workers", "1"]) != 0
    assert "features must be numeric columns" in capsys.readouterr().err
