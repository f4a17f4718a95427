"""``streamem fit``: stepwise EM over a data file read in chunks, so it may exceed memory.

The file is read in chunks (:mod:`streamem.datafiles`), regrouped into mini-batches of exactly
``batch_size`` rows, and each batch is one :meth:`~streamem.GaussianMixture.partial_fit`: the
result is the model that the library's own ``partial_fit`` loop learns on the same rows (rows
whose every feature is missing are skipped and counted: no EM step can use them). A file
with fewer rows than ``init_size`` is small enough for memory: it gets batch EM
(:meth:`~streamem.GaussianMixture.fit`) on all its rows.

With ``n_components="auto"`` a first pass draws a uniform sample of the rows (all of them for a
small file) and fits every candidate K on it by batch EM; the K of the lowest BIC is learned in the
second pass.

:func:`fit_on_cluster` is the other way: CSV files (a glob) or a Parquet dataset read by Dask
on a cluster (a scheduler's address, or local worker processes), and batch EM over them
(:func:`streamem.dask.fit`): the in-memory ``fit`` of all the rows, on data of any size.

Examples
--------
>>> import tempfile, pathlib
>>> from streamem.datafiles import open_data
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(8, 1, (300, 2))])
>>> path = pathlib.Path(tempfile.mkdtemp()) / "two.npy"
>>> np.save(path, rng.permutation(X))
>>> result = fit_file(open_data(path), "auto", candidates=range(1, 5), init_size=200)
>>> result.n_components, result.n_rows
(2, 600)
"""

from __future__ import annotations

import collections
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from streamem.datafiles import DataFile, Rebatcher
from streamem.errors import ValidationError
from streamem.models.protocol import StreamingOptions
from streamem.models.registry import family_spec, model_class

__all__ = [
    "FitResult",
    "choose_components",
    "fit_documents",
    "fit_file",
    "fit_on_cluster",
    "fit_sequences",
    "uniform_sample",
]

SAMPLE_SIZE = 100_000
"""Rows of the sample on which ``--components auto`` compares the candidates."""

SAMPLE_STREAM = 0x5A4D
"""Entropy word that makes :func:`uniform_sample`'s keys a stream of their own for each seed."""

Progress = Callable[[int], None]
"""Called with the bytes read so far, over both passes of ``"auto"`` (for a progress bar)."""

Candidate = Callable[[int, float, float], None]
"""Called after each candidate K of ``"auto"`` with K, its BIC and the seconds its fit took."""


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_file` learned: the model, the rows learned, the BIC of each candidate K,
    whether batch EM was used (a file smaller than ``init_size``), and the rows skipped because
    every feature was missing."""

    model: Any
    n_components: int
    n_rows: int
    bic: dict[int, float]
    batch_em: bool
    n_skipped: int = 0
    n_sequences: int = 0


def fit_file(
    data: DataFile,
    n_components: int | str,
    *,
    family: str = "gaussian_mixture",
    covariance_type: str = "full",
    batch_size: int = 1_000,
    init_size: int = 10_000,
    n_init: int = 5,
    seed: int = 0,
    candidates: Iterable[int] = range(1, 9),
    sample_size: int = SAMPLE_SIZE,
    chunk_rows: int | None = None,
    progress: Progress | None = None,
    on_candidate: Candidate | None = None,
) -> FitResult:
    """Learn a mixture from a data file by stepwise EM (see the module docstring).

    Parameters
    ----------
    data
        The file (:func:`streamem.datafiles.open_data`).
    n_components
        The number of components, or ``"auto"`` to choose it by BIC among ``candidates``.
    family
        A family of independent rows with a ``bic``: ``"gaussian_mixture"`` or
        ``"poisson_mixture"`` (see :func:`_mixture_family`).
    covariance_type, n_init, seed
        As in :class:`~streamem.GaussianMixture` (``seed`` is ``random_state``);
        ``covariance_type`` is a Gaussian mixture's only.
    batch_size
        Rows per ``partial_fit``.
    init_size
        Rows buffered before the model initialises (k-means++ restarts and batch EM on them).
    sample_size
        Rows of the sample that compares the candidates (``"auto"`` only).
    chunk_rows
        Rows read from the file at once (memory use); by default ``max(batch_size, 100_000)``.
    progress
        Called with the bytes read so far, after each chunk; with ``"auto"`` the second pass
        continues from the file's size, so a bar of ``2 * data.size`` fills once.
    on_candidate
        Called after each candidate K of ``"auto"`` (see :data:`Candidate`).
    """
    chunk_rows = chunk_rows or max(batch_size, 100_000)
    skipped = _RowsWithoutValues()
    read_before = data.size if n_components == "auto" else 0
    model, bic = _mixture(
        n_components,
        lambda: uniform_sample(
            skipped(data.chunks(chunk_rows, progress)), sample_size, seed, what=repr(str(data.path))
        ),
        candidates,
        dict(covariance_type=covariance_type, n_init=n_init, random_state=seed),
        family=family,
        on_candidate=on_candidate,
        init_size=init_size,
    )
    n_rows, skipped.count = 0, 0
    with threadpool_limits(1):
        second_pass = None if progress is None else _after(read_before, progress)
        for batch in Rebatcher(batch_size)(skipped(data.chunks(chunk_rows, second_pass))):
            model.partial_fit(batch)
            n_rows += len(batch)
        if n_rows == 0:
            raise ValidationError(f"{str(data.path)!r} has no row with a value")
        batch_em = not model.status.initialized
        if batch_em:  # the whole file is in the warm-up buffer: a fresh model, fitted on it
            model = clone(model).fit(np.vstack(model.warmup_))
    if data.named:
        model.feature_names_in_ = np.asarray(data.features, dtype=object)
    return FitResult(model, model.n_components, n_rows, bic, batch_em, skipped.count)


def fit_sequences(
    data: DataFile,
    family: str,
    n_components: int | None,
    *,
    sequence_key: str | None = None,
    covariance_type: str = "full",
    batch_size: int = 1_000,
    init_size: int | None = None,
    seed: int = 0,
    chunk_rows: int | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Learn a sequential family (hidden Markov models, state space) from a data file by
    stepwise EM, as the daemon learns its records: batches of ``batch_size`` rows in file
    order, each row continuing the sequence of its ``sequence_key`` value (a column of the
    file; None: the whole file is one sequence).

    Parameters
    ----------
    data
        The file (:func:`streamem.datafiles.open_data`), read in its ``features``; the key
        column must not be one of them.
    family
        A sequential family of the registry (``gaussian_hmm``, ``poisson_hmm``,
        ``categorical_hmm``, ``linear_gaussian_ssm``).
    n_components
        Hidden states (None for a family without them, the state space model).
    covariance_type, init_size, seed
        The model protocol's options (:class:`~streamem.models.protocol.StreamingOptions`);
        ``init_size`` None is the family's warm-up.
    batch_size, chunk_rows, progress
        As in :func:`fit_file` (one pass: ``progress`` ends at ``data.size``).

    Raises
    ------
    ValidationError
        If the family does not learn sequences, the key is a feature, or the file ends before
        the model's warm-up does.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from streamem.datafiles import open_data
    >>> rng = np.random.default_rng(0)
    >>> states = np.repeat(rng.integers(2, size=40), 50)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "level.csv"
    >>> rows = [f"{s * 10 + rng.normal():.3f},m{i % 2}" for i, s in enumerate(states)]
    >>> _ = path.write_text("temp,machine\\n" + "\\n".join(rows) + "\\n")
    >>> data = open_data(path)  # the text column machine is left out of the features
    >>> result = fit_sequences(data, "gaussian_hmm", 2, sequence_key="machine", init_size=500)
    >>> result.n_rows, result.n_sequences, sorted(np.round(result.model.means_.ravel()).tolist())
    (2000, 2, [0.0, 10.0])
    """
    spec = family_spec(family)
    if not spec.sequential:
        raise ValidationError(f"family must be a sequential family, got {family!r}")
    if sequence_key is not None and sequence_key in data.features:
        raise ValidationError(
            f"--sequence-key {sequence_key!r} is one of the features {list(data.features)}; "
            "a key column is not learned"
        )
    model = _new_model(family, n_components, covariance_type, init_size, None, seed)
    chunk_rows = chunk_rows or max(batch_size, 100_000)
    keys = None if sequence_key is None else (str(key) for key in data.keys(sequence_key))
    n_rows, seen = 0, set[str]()
    with threadpool_limits(1):
        for batch in Rebatcher(batch_size)(data.chunks(chunk_rows, progress)):
            batch_keys = None if keys is None else tuple(itertools.islice(keys, len(batch)))
            model.learn(model.batch_from_rows(batch, batch_keys))
            seen.update(batch_keys or ("",))
            n_rows += len(batch)
    _check_warmed_up(model, n_rows, "rows", data.path)
    if data.named:
        model.feature_names_in_ = np.asarray(data.features, dtype=object)
    return FitResult(model, n_components or 0, n_rows, {}, False, n_sequences=len(seen))


def fit_documents(
    path: Path,
    n_components: int,
    *,
    vocabulary: Sequence[str] | None = None,
    max_words: int = 5_000,
    batch_size: int = 1_000,
    init_size: int | None = None,
    n_init: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> FitResult:
    """Learn a topic model (``lda``) from a text file, one document per line, by stepwise EM.

    A line is tokenised as the daemon's ``input.format: text`` does
    (:class:`~streamem.service.documents.DocumentDecoder`); blank lines are not documents,
    and a document without a word of the vocabulary is skipped and counted (``n_skipped``).

    Parameters
    ----------
    path
        The UTF-8 text file.
    n_components
        Topics.
    vocabulary
        The words (the columns); None builds it from the file: its ``max_words`` most
        frequent tokens (ties in alphabetical order), in a first pass.
    batch_size
        Documents per update.
    init_size, n_init, seed
        The model protocol's options (None: the family's warm-up).
    progress
        Called with the bytes read so far; a bar of ``2 * size`` fills once when the
        vocabulary is built (two passes), of ``size`` otherwise.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> topics = [["pump", "valve", "leak"], ["motor", "belt", "noise"]]
    >>> lines = [" ".join(rng.choice(topics[i % 2], 8)) for i in range(400)]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_text("\\n".join(lines) + "\\n")
    >>> result = fit_documents(path, 2, init_size=100, batch_size=100)
    >>> result.n_rows, sorted(result.model.vocabulary)
    (400, ['belt', 'leak', 'motor', 'noise', 'pump', 'valve'])
    """
    from streamem.commands.produce import document_records
    from streamem.models.common.vocabulary import FixedVocabulary
    from streamem.service.documents import TOKEN_PATTERN, DocumentDecoder

    size = path.stat().st_size if path.is_file() else 0
    read_before = 0
    if vocabulary is None:
        counts = collections.Counter(
            token
            for text in _reading(document_records(path), progress)
            for token in re.findall(TOKEN_PATTERN, text.decode("utf-8").lower())
        )
        if not counts:
            raise ValidationError(f"{str(path)!r} has no word (two or more letters or digits)")
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        vocabulary = [word for word, _ in ranked[:max_words]]
        read_before = size
    decode = DocumentDecoder(FixedVocabulary(vocabulary), max_bytes=max(size, 1))
    model = _new_model("lda", n_components, "full", init_size, n_init, seed, tuple(vocabulary))
    unknown = _Rejected()
    second_pass = None if progress is None else _after(read_before, progress)
    lines = _reading(document_records(path), second_pass)
    documents, n_documents = unknown(decode, lines), 0
    with threadpool_limits(1):
        while batch := list(itertools.islice(documents, batch_size)):
            model.learn(model.batch_from_rows(decode.batch(batch)))
            n_documents += len(batch)
    _check_warmed_up(model, n_documents, "documents", path)
    return FitResult(model, n_components, n_documents, {}, False, unknown.count)


class _Rejected:
    """Decodes documents, leaving out (and counting) those the decoder rejects: a document
    with no word of a fixed vocabulary."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, decode: Any, lines: Iterator[bytes]) -> Iterator[dict[int, float]]:
        from streamem.service.codecs import RecordRejected

        for text in lines:
            try:
                yield decode(text)
            except RecordRejected:
                self.count += 1


def _reading(records: Iterator[tuple[Any, bytes]], progress: Progress | None) -> Iterator[bytes]:
    """The lines of :func:`~streamem.commands.produce.document_records`, ``progress`` called
    with the bytes read so far (each line and its end counted)."""
    done = 0
    for _, text in records:
        done += len(text) + 1
        if progress is not None:
            progress(done)
        yield text


def _new_model(
    family: str,
    n_components: int | None,
    covariance_type: str,
    init_size: int | None,
    n_init: int | None,
    seed: int,
    vocabulary: Sequence[str] | None = None,
) -> Any:
    """A new streaming model of ``family`` from the model protocol's options."""
    options = StreamingOptions(
        n_components=n_components or 1,
        covariance_type=covariance_type,
        init_size=init_size,
        n_init=n_init,
        seed=seed,
        vocabulary=vocabulary,
    )
    return model_class(family).from_options(options)


def _check_warmed_up(model: Any, n_units: int, units: str, path: Path) -> None:
    status = model.status
    if n_units == 0:
        raise ValidationError(f"{str(path)!r} has no {units[:-1]}")
    if not status.initialized:
        wanted = getattr(model, "init_size", None)
        needs = f"{wanted:,}" if isinstance(wanted, int) else "more"
        raise ValidationError(
            f"--init-size: the model starts after {needs} {units} of warm-up, {str(path)!r} "
            f"has {n_units:,} ({status.n_warmup:,} buffered); give a smaller --init-size"
        )


def _after(offset: int, progress: Progress) -> Progress:
    return lambda position: progress(offset + position)


class _RowsWithoutValues:
    """Drops the rows whose every feature is missing (no EM step can use them), counting them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for chunk in chunks:
            empty = np.isnan(chunk).all(axis=1)
            self.count += int(empty.sum())
            yield chunk[~empty] if empty.any() else chunk


def uniform_sample(
    chunks: Iterator[np.ndarray], size: int, seed: int = 0, what: str = "the data file"
) -> np.ndarray:
    """A uniform random sample of ``size`` rows (all rows if fewer), holding one chunk at a time.

    ``what`` names the rows' file in the error raised when there is no row.

    Every row gets a random key and the ``size`` smallest keys are kept, so each subset of
    ``size`` rows is equally likely. The keys come from their own stream of ``seed``
    (:data:`SAMPLE_STREAM`), never from ``default_rng(seed)``: data made by that generator
    (``SensorModes.default().sample(n, np.random.default_rng(0))`` labels each row by one of
    its uniforms) would otherwise give each row a key equal to its label's uniform, and the
    sample would keep the rows of the lowest labels.

    Examples
    --------
    >>> chunks = iter([np.arange(10.0).reshape(5, 2), np.arange(10.0, 20.0).reshape(5, 2)])
    >>> uniform_sample(chunks, 3).shape
    (3, 2)
    """
    rng = np.random.default_rng([SAMPLE_STREAM, seed])
    kept: np.ndarray | None = None
    keys = np.empty(0)
    for chunk in chunks:
        rows = chunk if kept is None else np.concatenate([kept, chunk])
        keys = np.concatenate([keys, rng.random(len(chunk))])
        if len(rows) > size:
            best = np.sort(np.argpartition(keys, size)[:size])
            rows, keys = rows[best], keys[best]
        kept = rows
    if kept is None:
        raise ValidationError(f"{what} has no row with a value")
    return kept


def choose_components(
    sample: np.ndarray,
    candidates: Iterable[int],
    *,
    family: str = "gaussian_mixture",
    covariance_type: str = "full",
    n_init: int = 5,
    seed: int = 0,
    on_candidate: Candidate | None = None,
) -> tuple[int, dict[int, float]]:
    """The K of the lowest BIC among ``candidates``, each fitted by batch EM on ``sample``.

    Returns the chosen K and the BIC of every candidate that the sample can support;
    ``on_candidate`` hears of each as soon as it is fitted (a long sweep shows its progress).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> counts = np.concatenate([rng.poisson(2, (300, 2)), rng.poisson(20, (300, 2))])
    >>> choose_components(counts, range(1, 4), family="poisson_mixture")[0]
    2
    """
    kind = _mixture_family(family)
    common = dict(covariance_type=covariance_type, n_init=n_init, random_state=seed)
    bic: dict[int, float] = {}
    with threadpool_limits(1):
        for k in _supported(candidates, len(sample)):
            began = time.perf_counter()
            model = kind(k, **_accepted(kind, common))
            bic[k] = model.fit(sample).bic(sample)
            if on_candidate is not None:
                on_candidate(k, bic[k], time.perf_counter() - began)
    if not bic:
        raise ValidationError(f"no candidate number of components fits {len(sample)} rows")
    return min(bic, key=bic.__getitem__), bic


def _mixture_family(family: str) -> Any:
    """The estimator class of a family of independent rows with a ``bic`` (the families
    that ``fit_file`` learns and ``"auto"`` compares)."""
    kind = model_class(family)
    if family_spec(family).sequential or family_spec(family).input_kind != "rows":
        raise ValidationError(f"family must be a family of independent rows, got {family!r}")
    if not hasattr(kind, "bic"):
        raise ValidationError(f"family {family!r} has no BIC to choose components by")
    return kind


def _accepted(kind: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` that the estimator class ``kind`` takes."""
    names = set(kind._get_param_names())
    return {name: value for name, value in options.items() if name in names}


def _supported(candidates: Iterable[int], n_rows: int) -> Sequence[int]:
    chosen = sorted(set(candidates))
    if not chosen or chosen[0] < 1:
        raise ValidationError(f"candidate numbers of components must be >= 1, got {chosen}")
    return [k for k in chosen if k <= n_rows]


def fit_on_cluster(
    path: Path | str,
    n_components: int | str,
    *,
    features: Sequence[str] | None = None,
    covariance_type: str = "full",
    n_init: int = 5,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-3,
    candidates: Iterable[int] = range(1, 9),
    sample_size: int = SAMPLE_SIZE,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[Any], None] | None = None,
) -> FitResult:
    """Batch EM of a Gaussian mixture over CSV files or a Parquet dataset on a Dask cluster.

    Parameters
    ----------
    path
        CSV files with a header (a path or a glob, ``data/*.csv``), or Parquet (a ``.parquet``
        file, a glob of them, or a dataset's directory).
    n_components, features, covariance_type, n_init, seed, max_iter, tol
        As in :class:`~streamem.GaussianMixture` (``seed`` is ``random_state``); ``"auto"``
        chooses K by BIC on a uniform sample of ``sample_size`` rows drawn on the cluster.
    scheduler, workers
        The cluster: a scheduler's address (``tcp://host:8786``), else ``workers`` local
        worker processes.
    progress
        Called after each EM iteration with a :class:`streamem.dask.EStep`.

    Rows whose every feature is missing are left out (no EM step can use them).
    """
    from streamem.dask import connect, fit

    frame, names = _read_frame(path, features)
    frame = frame.dropna(how="all", subset=names)
    with connect(scheduler, workers) as client:
        model, bic = _mixture(
            n_components,
            lambda: _frame_sample(frame[names], sample_size, seed),
            candidates,
            dict(covariance_type=covariance_type, n_init=n_init, random_state=seed),
            max_iter=max_iter,
            tol=tol,
        )
        model = fit(model, frame, columns=names, client=client, progress=progress)
    model.feature_names_in_ = np.asarray(names, dtype=object)
    return FitResult(model, model.n_components, int(model.n_seen_), bic, batch_em=True)


def _mixture(
    n_components: int | str,
    sample: Callable[[], np.ndarray],
    candidates: Iterable[int],
    common: dict[str, Any],
    *,
    family: str = "gaussian_mixture",
    on_candidate: Candidate | None = None,
    **options: Any,
) -> tuple[Any, dict[int, float]]:
    """The mixture of ``family`` to learn and the BIC of each candidate K: with ``"auto"``
    the K of the lowest BIC on ``sample()``. ``common`` holds ``covariance_type``, ``n_init``
    and ``random_state`` (shared with the candidates; those the family takes), ``options``
    the learned model's others."""
    kind = _mixture_family(family)
    bic: dict[int, float] = {}
    if n_components == "auto":
        n_components, bic = choose_components(
            sample(),
            candidates,
            family=family,
            covariance_type=common["covariance_type"],
            n_init=common["n_init"],
            seed=common["random_state"],
            on_candidate=on_candidate,
        )
    if not isinstance(n_components, int) or n_components < 1:
        raise ValidationError(
            f"components must be a positive integer or 'auto', got {n_components!r}"
        )
    return kind(n_components, **_accepted(kind, {**common, **options})), bic


def _read_frame(path: Path | str, features: Sequence[str] | None) -> tuple[Any, list[str]]:
    """The Dask frame of CSV files or Parquet, and its feature columns."""
    import dask.dataframe as dd

    text = str(path)
    parquet = text.endswith((".parquet", ".pq")) or Path(text).is_dir()
    if not parquet and not text.endswith((".csv", ".csv.gz")):
        raise ValidationError(
            f"file must be CSV files (*.csv) or Parquet (*.parquet or a dataset's directory) "
            f"with --scheduler or --workers, got {text!r}"
        )
    try:
        frame = dd.read_parquet(text) if parquet else dd.read_csv(text, assume_missing=True)
    except (OSError, ValueError) as error:
        raise ValidationError(f"file {text!r} cannot be read: {error}") from error
    numeric = list(frame.select_dtypes("number").columns)
    names = list(features) if features else numeric
    wrong = [name for name in names if name not in numeric]
    if wrong or not names:
        raise ValidationError(
            f"features must be numeric columns of {text!r} ({numeric}), got {wrong or names}"
        )
    return frame, names


def _frame_sample(frame: Any, size: int, seed: int) -> np.ndarray:
    """A uniform sample of about ``size`` rows of a Dask frame (all of them if fewer)."""
    n = len(frame)
    if n == 0:
        raise ValidationError("the data have no row with a value")
    part = frame if n <= size else frame.sample(frac=size / n, random_state=seed)
    return np.asarray(part.compute().to_numpy(dtype=np.float64))
