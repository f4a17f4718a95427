"""``streamem fit --family``: every family of the registry learned from a file (issue 32, item 8).

Rows families read CSV rows, sequence families CSV rows in file order continuing the sequence of
their ``--sequence-key``, ``lda`` a text file of one document per line. The data are sampled by
hmmlearn (the reference implementation of the hidden Markov models) or by numpy with known
parameters; the written document loads with ``inspect``, ``plot`` and the daemon's
``model.initial``.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from hmmlearn import hmm as reference

from streamem.cli import main
from streamem.commands.fit import choose_components
from streamem.models.protocol import StreamingOptions
from streamem.models.registry import model_class, model_from_dict
from streamem.service.config import ModelSettings
from streamem.service.learner import initial_model

TOPICS = [
    ["pump", "valve", "leak", "seal"],
    ["motor", "belt", "bearing", "noise"],
    ["sensor", "cable", "drift", "fuse"],
]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text(
        ",".join(header) + "\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n"
    )
    return path


def _keyed(samples: list[np.ndarray], fmt: str = "{:.4f}") -> list[list[object]]:
    """Rows of several sequences interleaved (one row of each in turn), the key first."""
    rows: list[list[object]] = []
    for step in range(len(samples[0])):
        for key, sample in enumerate(samples):
            rows.append([f"m{key}", *(fmt.format(v) for v in sample[step])])
    return rows


def _fit(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict, str]:
    out = tmp_path / "model.json"
    assert main(["fit", *argv, "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    return json.loads(out.read_text()), printed


def _gaussian_hmm(seed: int) -> np.ndarray:
    truth = reference.GaussianHMM(2, covariance_type="diag")
    truth.startprob_ = np.array([0.5, 0.5])
    truth.transmat_ = np.array([[0.98, 0.02], [0.03, 0.97]])
    truth.means_ = np.array([[20.0, 1.0], [35.0, 4.0]])
    truth.covars_ = np.array([[1.0, 0.1], [1.0, 0.1]])
    return truth.sample(2_000, random_state=seed)[0]


def test_a_gaussian_hmm_per_key_is_what_the_librarys_loop_learns_and_the_daemon_starts_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = [_gaussian_hmm(seed) for seed in (1, 2)]
    path = _write_csv(tmp_path / "machines.csv", ["machine", "temp", "vib"], _keyed(samples))
    options = "--family gaussian_hmm --components 2 --sequence-key machine --init-size 1000"
    document, printed = _fit(tmp_path, capsys, str(path), *options.split(), "--batch-size", "500")
    assert "learned 4,000 rows of temp, vib in 2 sequences of machine by stepwise EM" in printed
    assert "transmat" in printed
    # the same rows, batches and keys through the model protocol: the same model, exactly
    rows = np.array([[float(v) for v in row[1:]] for row in _keyed(samples)])
    keys = tuple(str(row[0]) for row in _keyed(samples))
    library = model_class("gaussian_hmm").from_options(
        StreamingOptions(n_components=2, init_size=1_000, seed=0)
    )
    for start in range(0, len(rows), 500):
        part = slice(start, start + 500)
        library.learn(library.batch_from_rows(rows[part], keys[part]))
    fitted = model_from_dict(document)
    np.testing.assert_array_equal(fitted.transmat_, library.transmat_)
    np.testing.assert_array_equal(fitted.means_, library.means_)
    order = np.argsort(fitted.means_[:, 0])
    # 4,000 steps, ~100 regime switches: measured largest error 0.012 (these seeds), so 0.1
    np.testing.assert_allclose(fitted.means_[order], [[20.0, 1.0], [35.0, 4.0]], atol=0.1)
    path_model = tmp_path / "model.json"
    started = initial_model(
        ModelSettings(family="gaussian_hmm", n_components=2, initial=path_model), ("temp", "vib")
    )
    assert started.status.n_seen == 4_000
    plot = ["plot", str(path_model), "--data", str(path), "--out", str(tmp_path / "p.png")]
    assert main(plot) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_a_poisson_mixture_chooses_its_components_by_bic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    rates = np.array([[1.0, 8.0], [12.0, 2.0], [30.0, 30.0]])
    counts = rng.poisson(rates[rng.integers(3, size=3_000)])
    path = _write_csv(tmp_path / "counts.csv", ["calls", "faults"], counts.tolist())
    document, printed = _fit(
        tmp_path, capsys, str(path), "--family", "poisson_mixture", "--max-components", "5"
    )
    for k in range(1, 6):  # the sweep, one line per candidate
        assert f"K={k}: BIC" in printed
    assert "K=3 is lowest" in printed
    fitted = model_from_dict(document)
    order = np.argsort(fitted.lambdas_[:, 0])
    # 3,000 rows, ~1,000 per component: largest relative error measured on data seeds 0-4
    # 0.6%, 1.3%, 2.4%, 2.6%, 6.9% (K=3 chosen for all five), so 10%
    np.testing.assert_allclose(fitted.lambdas_[order], rates, rtol=0.1)
    assert choose_components(counts.astype(float), range(1, 6), family="poisson_mixture")[0] == 3
    settings = ModelSettings(
        family="poisson_mixture", n_components=3, initial=tmp_path / "model.json"
    )
    assert initial_model(settings, ("calls", "faults")).status.n_seen == 3_000


@pytest.mark.parametrize("family", ["poisson_hmm", "categorical_hmm"])
def test_a_table_hmm_learns_its_emissions_from_one_sequence(
    family: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if family == "poisson_hmm":
        truth: object = reference.PoissonHMM(2)
        truth.lambdas_ = np.array([[1.0, 6.0], [9.0, 0.5]])  # type: ignore[attr-defined]
        table, tolerance = "lambdas_", 0.25  # measured on seeds 0-2: 0.089, 0.039, 0.050
    else:
        truth = reference.CategoricalHMM(2)
        truth.emissionprob_ = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])  # type: ignore[attr-defined]
        table, tolerance = "emissionprob_", 0.06  # measured on seeds 0-2: 0.021, 0.009, 0.009
    truth.startprob_ = np.array([0.5, 0.5])  # type: ignore[attr-defined]
    truth.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])  # type: ignore[attr-defined]
    sample = truth.sample(6_000, random_state=0)[0]  # type: ignore[attr-defined]
    header = ["calls", "faults"] if family == "poisson_hmm" else ["code"]
    path = _write_csv(tmp_path / "steps.csv", header, sample.tolist())
    document, printed = _fit(
        tmp_path, capsys, str(path), "--family", family, "--components", "2", "--init-size", "2000"
    )
    assert "learned 6,000 rows" in printed
    fitted = model_from_dict(document)
    learned = getattr(fitted, table)
    expected = getattr(truth, table)
    order = np.argsort(learned[:, 0])
    # 6,000 steps, ~300 switches: the largest error within ``tolerance``
    np.testing.assert_allclose(learned[order], expected[np.argsort(expected[:, 0])], atol=tolerance)
    assert main(["inspect", str(tmp_path / "model.json")]) == 0
    settings = ModelSettings(family=family, n_components=2, initial=tmp_path / "model.json")
    assert initial_model(settings, tuple(header)).status.n_seen == 6_000


def test_a_state_space_model_per_tank_loads_as_the_daemons_initial_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    levels = [
        (np.cumsum(rng.normal(0, 0.5, 3_000)) + rng.normal(0, 0.5, 3_000))[:, None]
        for _ in range(2)
    ]
    path = _write_csv(tmp_path / "levels.csv", ["tank", "level"], _keyed(levels))
    document, printed = _fit(
        tmp_path, capsys, str(path), "--family", "linear_gaussian_ssm", "--sequence-key", "tank"
    )
    assert "learned 6,000 rows of level in 2 sequences of tank" in printed
    fitted = model_from_dict(document)
    q = float(np.ravel(fitted.transition_covariance_)[0])
    r = float(np.ravel(fitted.observation_covariance_)[0])
    # true Q = R = 0.25; 2 x 3,000 steps, measured on seeds 0-2: Q 0.236, 0.229, 0.260 and
    # R 0.267, 0.262, 0.259, so within 15%
    assert q == pytest.approx(0.25, rel=0.15)
    assert r == pytest.approx(0.25, rel=0.15)
    started = initial_model(
        ModelSettings(family="linear_gaussian_ssm", initial=tmp_path / "model.json"), ("level",)
    )
    assert started.status.n_seen == 6_000


def _notes(path: Path, n: int = 1_500) -> Path:
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(TOPICS[i % 3], 12)) for i in range(n)]
    lines[7] = "completely unrelated words"  # no word of a given vocabulary
    path.write_text("\n".join(lines) + "\n\n")
    return path


def _fit_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict, str]:
    notes = str(_notes(tmp_path / "notes.txt"))
    return _fit(
        tmp_path, capsys, notes, "--family", "lda", "--components", "3", *argv, "--init-size", "300"
    )


def test_lda_learns_topics_with_a_vocabulary_built_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, printed = _fit_notes(tmp_path, capsys)
    assert "learned 1,500 documents by stepwise EM, vocabulary of 15 words" in printed
    fitted = model_from_dict(document)
    words = np.array(fitted.vocabulary)
    tops = {frozenset(words[np.argsort(row)[::-1][:4]]) for row in fitted.components_}
    assert tops == {frozenset(topic) for topic in TOPICS}


def test_lda_with_a_given_vocabulary_skips_and_counts_documents_without_its_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("\n".join(word for topic in TOPICS for word in topic) + "\n")
    document, printed = _fit_notes(tmp_path, capsys, "--vocabulary", str(vocabulary))
    assert "learned 1,499 documents" in printed
    assert "skipped 1 documents without a word of it" in printed
    assert document["hyperparameters"]["vocabulary"][:2] == ["pump", "valve"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("--family gaussian_hmm --components auto", "--components auto chooses K"),
        ("--family gaussian_hmm", "--components: give the number for --family gaussian_hmm"),
        ("--family poisson_mixture --covariance-type diag", "--covariance-type has no meaning"),
        ("--family linear_gaussian_ssm --components 2", "--components has no meaning"),
        ("--sequence-key machine", "--sequence-key has no meaning for --family gaussian"),
        ("--family gaussian_hmm --components 2 --workers 2", "--workers: batch EM on a Dask"),
        ("--family lda --components 2 --features temp", "--features has no meaning"),
        ("--family nope", "model family must be one of ['gaussian_mixture'"),
        (
            "--family gaussian_hmm --components 2 --sequence-key machine --features machine,temp",
            "--sequence-key 'machine' is one of the features",
        ),
        (
            "--family gaussian_hmm --components 2 --init-size 500",
            "--init-size: the model starts after 500 rows of warm-up",
        ),
    ],
)
def test_options_a_family_does_not_take_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: str, message: str
) -> None:
    path = _write_csv(
        tmp_path / "m.csv", ["machine", "temp"], [[i % 7, 20.0 + i % 3] for i in range(40)]
    )
    assert main(["fit", str(path), *arguments.split(), "--out", str(tmp_path / "m.json")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert not (tmp_path / "m.json").exists()


def test_the_readmes_fit_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Learn a model of any family from a file\n")
    block = readme[readme.index("```bash\n", start) + 8 : readme.index("```\n", start + 60)]
    commands = [line for line in block.splitlines() if line.startswith("streamem ")]
    assert len(commands) == 4
    shutil.copytree(root / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for line in commands:
        assert main(shlex.split(line)[1:]) == 0, line
    printed = " ".join(capsys.readouterr().out.split())
    assert "learned 6,000 rows of temp, vib in 3 sequences of machine" in printed
    for name in ("machines", "levels", "notes"):
        assert (tmp_path / f"{name}.model.json").is_file()
    assert "top words" in printed  # inspect of the topics


def test_a_sequence_family_reads_a_parquet_file_as_it_reads_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    samples = [_gaussian_hmm(seed) for seed in (1, 2)]
    csv = _write_csv(tmp_path / "machines.csv", ["machine", "temp", "vib"], _keyed(samples))
    parquet = tmp_path / "machines.parquet"
    pd.read_csv(csv).to_parquet(parquet, row_group_size=700)
    options = "--family gaussian_hmm --components 2 --sequence-key machine --init-size 1000"
    from_csv, _ = _fit(tmp_path, capsys, str(csv), *options.split())
    from_parquet, printed = _fit(tmp_path, capsys, str(parquet), *options.split())
    assert "learned 4,000 rows of temp, vib in 2 sequences of machine" in printed
    assert from_parquet["state"] == from_csv["state"]
