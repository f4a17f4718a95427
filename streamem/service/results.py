"""The results stage: one result record per valid record, scored test-then-train.

With ``output.results_topic`` set, the daemon scores every micro-batch with the model as it
stood *before* the batch (river's prequential convention), then learns it; each valid record
gets one result on the results topic, keyed like the record: its source coordinates, the
version of the published snapshot of the model that scored it, the family's fields (a
:class:`~streamem.models.results.FamilyResults` that the family declares), an anomaly score
and flag. Records still in the warm-up get a result saying so (``warmup: true``,
``model_version: null``). The record format is ``streamem/schemas/result.schema.json``.

Results are delivered as dead letters are: kept until the broker acknowledged them, and a
checkpoint that covers a record is written only once its result was acknowledged. A crash
therefore never loses a result; the records after the checkpoint are read, scored and sent
again after a restart (at least once: a duplicate has the same source coordinates).

The anomaly flag compares the score with a running quantile of the stream's own earlier
scores (:class:`AnomalyThreshold`), so that the fraction of clean readings flagged is
``1 - output.anomaly_quantile``.

Examples
--------
>>> import numpy as np
>>> threshold = AnomalyThreshold(0.9)
>>> threshold.flags(np.array([5.0])).tolist()  # not enough scores yet
[False]
>>> threshold.add(np.arange(1000.0))
>>> threshold.flags(np.array([5.0, 950.0])).tolist()
[False, True]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from streamem.errors import StreamemError
from streamem.models.protocol import StreamingModel
from streamem.models.registry import family_spec
from streamem.models.results import FamilyResults, ResultColumns
from streamem.service.batching import MicroBatch
from streamem.service.codecs import Decoded
from streamem.service.config import OutputSettings
from streamem.service.publisher import DETAIL_MAX_CHARS
from streamem.service.snapshot import packaged_schema
from streamem.service.source import Record

__all__ = ["AnomalyThreshold", "ResultStage", "ScoredBatch", "result_records", "result_schema"]

FloatArray = npt.NDArray[np.float64]

log = logging.getLogger(__name__)


@cache
def result_schema() -> dict[str, Any]:
    """The JSON Schema of a result record (draft 2020-12), one ``oneOf`` branch per family.

    Examples
    --------
    >>> result_schema()["required"]
    ['family', 'source', 'model_version', 'warmup', 'anomaly', 'score', 'error']
    """
    return packaged_schema("result.schema.json")


class AnomalyThreshold:
    """A running ``quantile`` of the last ``window`` finite scores; a score above it is an
    anomaly.

    The window holds ``100 / (1 - quantile)`` scores (at least 1,000), so that about 100 of
    them are above the quantile; no score is flagged before ``10 / (1 - quantile)`` scores
    were seen (about 10 above the quantile: its estimate's relative error on the flagged
    fraction is then about a third, and falls as the window fills). The window is not part of
    the checkpoint: after a restart it fills again.

    Parameters
    ----------
    quantile
        In (0, 1): the fraction of clean scores below the threshold.
    """

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        tail = 1.0 - quantile
        self.window = max(1000, math.ceil(round(100.0 / tail, 6)))  # 1 - 0.9 is not 0.1
        self.min_scores = math.ceil(round(10.0 / tail, 6))
        self._scores = np.empty(self.window)
        self._count = 0
        self._threshold: float | None = None

    @property
    def threshold(self) -> float | None:
        """The current threshold (None: not enough scores yet)."""
        return self._threshold

    def flags(self, scores: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each score is above the current threshold (a NaN score never is)."""
        if self._threshold is None:
            return np.zeros(len(scores), dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(scores > self._threshold)

    def add(self, scores: FloatArray) -> None:
        """Take the finite ``scores`` into the window, and update the threshold."""
        finite = scores[np.isfinite(scores)][-self.window :]
        n = len(finite)
        if not n:
            return
        start = self._count % self.window
        first = min(n, self.window - start)
        self._scores[start : start + first] = finite[:first]
        self._scores[: n - first] = finite[first:]
        self._count += n
        if self._count >= self.min_scores:
            held = self._scores[: min(self._count, self.window)]
            self._threshold = float(np.quantile(held, self.quantile))


class ScoredBatch:
    """The results of a batch's points, computed before the batch is learned.

    Attributes
    ----------
    columns
        The family's fields and scores (None: the model was warming up, or ``error``).
    flags
        The anomaly flag of each point.
    version
        The published version of the scoring model (None: warm-up, or not published).
    error
        Why the batch could not be scored (None: it was).
    """

    __slots__ = ("columns", "error", "flags", "version")

    def __init__(
        self,
        columns: ResultColumns | None,
        flags: npt.NDArray[np.bool_],
        version: int | None,
        error: str | None = None,
    ) -> None:
        self.columns = columns
        self.flags = flags
        self.version = version
        self.error = error


class ResultStage:
    """Scores micro-batches and encodes their results (see the module docstring).

    Parameters
    ----------
    output
        The ``output`` section (``results_topic``, ``results_top_k``, ``anomaly_quantile``).
    family
        ``model.family``.

    The configuration checked that the family declares results.
    """

    def __init__(self, output: OutputSettings, family: str) -> None:
        assert output.results_topic is not None
        found = family_spec(family).result_family()
        assert found is not None, "Settings checks output.results_topic"
        self.results: FamilyResults = found
        self.topic = output.results_topic
        self.top_k = output.results_top_k
        self.threshold = AnomalyThreshold(output.anomaly_quantile)
        self.family = family

    def score(
        self,
        model: StreamingModel,
        points: Decoded,
        keys: tuple[str, ...] | None,
        version: int | None,
    ) -> ScoredBatch:
        """The results of ``points`` under ``model`` (which does not change); the threshold
        then takes their scores (test-then-train)."""
        n = points.shape[0]
        if not model.status.initialized:
            return ScoredBatch(None, np.zeros(n, dtype=bool), None)
        try:
            columns = self.results.compute(model, points, keys, self.top_k)
        except (StreamemError, ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
            log.error("a batch of %d points could not be scored: %s", n, error)
            detail = f"{type(error).__name__}: {error}"[:DETAIL_MAX_CHARS]
            return ScoredBatch(None, np.zeros(n, dtype=bool), version, detail)
        if columns.scores is None:
            return ScoredBatch(columns, np.zeros(n, dtype=bool), version)
        flags = self.threshold.flags(columns.scores)
        self.threshold.add(columns.scores)
        return ScoredBatch(columns, flags, version)

    def encode(
        self,
        scored: ScoredBatch,
        rows: Sequence[int],
        sources: Sequence[tuple[str, int, int, int | None]],
    ) -> list[bytes]:
        """The result records (JSON, UTF-8) of the scored points ``rows`` (their indices in
        the scored batch), from ``(topic, partition, offset, index)`` of each (``index``: the
        point's index in a record of several points, None for a record of one point)."""
        columns = scored.columns
        flags = scored.flags.tolist()
        family = self.family
        if columns is None:  # the warm-up, or an error
            warmup = scored.error is None
            return [
                _dumps(
                    {
                        "family": family,
                        "source": _source(source),
                        "model_version": scored.version,
                        "warmup": warmup,
                        "anomaly": False,
                        "score": None,
                        "error": scored.error,
                    }
                )
                for source in sources
            ]
        fields = columns.fields
        scores: list[float | None] = (
            [None] * len(fields)
            if columns.scores is None
            else [s if math.isfinite(s) else None for s in columns.scores.tolist()]
        )
        version = scored.version
        return [
            _dumps(
                {
                    "family": family,
                    "source": _source(source),
                    "model_version": version,
                    "warmup": False,
                    "anomaly": flags[row],
                    "score": scores[row],
                    "error": None,
                    **fields[row],
                }
            )
            for row, source in zip(rows, sources, strict=True)
        ]


def result_records(
    stage: ResultStage,
    batch: MicroBatch,
    kept: npt.NDArray[np.intp],
    scored: ScoredBatch,
    isolated: Sequence[int],
) -> list[tuple[Record, bytes]]:
    """Each learned point's record and result: ``kept`` are the indices in ``batch`` of the
    scored points, ``isolated`` the indices among them of points the engine then refused
    (dead-lettered: no result)."""
    rows = np.delete(np.arange(len(kept)), list(isolated)) if isolated else np.arange(len(kept))
    owners = batch.owners()
    first_point = None if batch.sizes is None else np.cumsum([0, *batch.sizes]).tolist()
    records = []
    sources = []
    for point in kept[rows].tolist():
        owner = int(owners[point])
        record = batch.records[owner]
        index = None if first_point is None else point - first_point[owner]
        records.append(record)
        sources.append((record.topic, record.partition, record.offset, index))
    values = stage.encode(scored, rows.tolist(), sources)
    return list(zip(records, values, strict=True))


def _source(source: tuple[str, int, int, int | None]) -> dict[str, Any]:
    topic, partition, offset, index = source
    out: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    if index is not None:
        out["index"] = index
    return out


def _dumps(result: dict[str, Any]) -> bytes:
    """Compact JSON; a float that is not finite (a log density of minus infinity) is null."""
    encoded: bytes = msgspec.json.encode(result)
    return encoded
