"""Micro-batching: gather decoded points until ``batch_size`` points or ``max_wait_ms`` passed.

A batch holds whole records only: the record that reaches ``batch_size`` closes the batch, so a
packed record of many points is never split across two batches (a batch may therefore hold up to
one record's points more than ``batch_size``). Keeping records whole is what lets the checkpoint
say "every record of this partition below offset ``o`` is in the model": the batcher remembers the
offset of the oldest record of each partition that it still holds, see :attr:`first_offsets`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamem.service.codecs import Decoded, Row
from streamem.service.source import Partition

__all__ = ["MicroBatch", "MicroBatcher"]


class MicroBatch:
    """The points of one closed micro-batch and the records they came from.

    Parameters
    ----------
    points
        float64 array of shape ``(n_points, n_features)`` (for documents, a sparse matrix of
        that shape).
    n_records
        Number of records whose points are in the batch.
    first_offsets
        Offset of the first record of each partition in the batch.
    keys
        The sequence key of each point, for a sequential model family (None otherwise).
    records
        The records, in the order of their points (empty if the caller gave none).
    sizes
        Points of each record (None: one point each).

    Examples
    --------
    >>> batch = MicroBatch(np.zeros((3, 2)), 2, {("sensors", 0): 10}, None, ["a", "b"], [2, 1])
    >>> len(batch), batch.n_records, batch.keys, batch.owners().tolist()
    (3, 2, None, [0, 0, 1])
    """

    __slots__ = ("first_offsets", "keys", "n_records", "points", "records", "sizes")

    def __init__(
        self,
        points: Decoded,
        n_records: int,
        first_offsets: dict[Partition, int],
        keys: tuple[str, ...] | None = None,
        records: Sequence[Any] = (),
        sizes: Sequence[int] | None = None,
    ) -> None:
        self.points = points
        self.n_records = n_records
        self.first_offsets = first_offsets
        self.keys = keys
        self.records = records
        self.sizes = sizes

    def owners(self) -> npt.NDArray[np.intp]:
        """Index in :attr:`records` of the record of each point, shape ``(n_points,)``."""
        if self.sizes is None:
            return np.arange(len(self))
        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __repr__(self) -> str:
        return f"MicroBatch(n_points={len(self)}, n_records={self.n_records})"


class MicroBatcher:
    """Collects the points of records into micro-batches.

    A batch closes when it holds at least ``batch_size`` points (:meth:`add` returns True) or when
    ``max_wait_ms`` milliseconds passed since its first point (:meth:`due`); the caller then takes
    it with :meth:`take`.

    Parameters
    ----------
    batch_size
        Number of points that closes a batch.
    max_wait_ms
        Longest time a point waits in an open batch; 0 closes a batch at every :meth:`due`.
    clock
        Monotonic clock in seconds (injectable for tests).
    assemble
        Builds the batch's points from the rows given to :meth:`add_row` (a float64 array
        by default; a topic model's decoder builds a sparse matrix of its documents).

    Examples
    --------
    >>> now = [0.0]
    >>> batcher = MicroBatcher(batch_size=3, max_wait_ms=500, clock=lambda: now[0])
    >>> batcher.add(np.ones((1, 2)), ("sensors", 0), 7)
    False
    >>> batcher.first_offsets, batcher.due()
    ({('sensors', 0): 7}, False)
    >>> now[0] = 0.6
    >>> batcher.due()
    True
    >>> batch = batcher.take()
    >>> batch.points.shape, batch.first_offsets, len(batcher)
    ((1, 2), {('sensors', 0): 7}, 0)
    >>> batcher.add(np.ones((5, 2)), ("sensors", 1), 0)  # a packed record: kept whole
    True
    >>> len(batcher.take())
    5
    """

    def __init__(
        self,
        batch_size: int,
        max_wait_ms: int,
        clock: Callable[[], float] = time.monotonic,
        assemble: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, received {batch_size!r}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms: expected an integer >= 0, received {max_wait_ms!r}")
        self.batch_size = batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._clock = clock
        self._assemble = _float_rows if assemble is None else assemble
        self._chunks: list[Decoded] = []
        self._rows: list[Any] = []
        self._keys: list[str] = []
        self._chunk_records: list[Any] = []
        self._row_records: list[Any] = []
        self._n_points = 0
        self._opened_at = 0.0
        self.first_offsets: dict[Partition, int] = {}
        """Offset of the oldest record of each partition in the open batch."""

    def __len__(self) -> int:
        """Number of points in the open batch."""
        return self._n_points

    @property
    def n_records(self) -> int:
        """Number of records in the open batch."""
        return len(self._chunks) + len(self._rows)

    def add(
        self,
        points: Decoded,
        partition: Partition,
        offset: int,
        key: str | None = None,
        *,
        record: Any = None,
    ) -> bool:
        """Add the points of one record; return True if the batch is now full.

        Parameters
        ----------
        points
            The record's points, shape ``(n_points, n_features)``.
        partition
            The record's ``(topic, partition)``.
        offset
            The record's offset.
        key
            The sequence its points continue (sequential families; give one for every record
            of the batch or for none).
        record
            The record itself, handed back in :attr:`MicroBatch.records` (so that a point the
            model refuses can be traced to its record).
        """
        if not self._n_points:
            self._opened_at = self._clock()
        self._chunks.append(points)
        self._chunk_records.append(record)
        self._n_points += len(points)
        if key is not None:
            self._keys.extend([key] * len(points))
        if partition not in self.first_offsets:
            self.first_offsets[partition] = offset
        return self._n_points >= self.batch_size

    def add_row(
        self,
        row: Row | dict[int, float],
        partition: Partition,
        offset: int,
        key: str | None = None,
        *,
        record: Any = None,
    ) -> bool:
        """:meth:`add` for a record of one point given as a plain row (see
        :func:`~streamem.service.codecs.row_decoder`) or a document's column counts (see
        :mod:`streamem.service.documents`); the batch's points are built at :meth:`take`,
        once, by ``assemble``."""
        if not self._n_points:
            self._opened_at = self._clock()
        self._rows.append(row)
        self._row_records.append(record)
        self._n_points += 1
        if key is not None:
            self._keys.append(key)
        if partition not in self.first_offsets:
            self.first_offsets[partition] = offset
        return self._n_points >= self.batch_size

    def due(self) -> bool:
        """Whether the open batch is full or its first point waited ``max_wait_ms``."""
        if not self._n_points:
            return False
        return self._n_points >= self.batch_size or self._clock() - self._opened_at >= self.max_wait

    def seconds_until_due(self) -> float | None:
        """Seconds until :meth:`due` becomes true by time (None if no batch is open)."""
        if not self._n_points:
            return None
        return max(0.0, self._opened_at + self.max_wait - self._clock())

    def take(self) -> MicroBatch:
        """Close the open batch and return it (it may be empty)."""
        chunks = self._chunks
        if self._rows:
            chunks = [*chunks, self._assemble(self._rows)]
        if len(chunks) == 1:
            points = chunks[0]
        elif chunks:
            points = np.concatenate(chunks)
        else:
            points = np.empty((0, 0))
        keys = tuple(self._keys) if self._keys else None
        sizes = None
        if self._chunks:
            sizes = [len(chunk) for chunk in self._chunks] + [1] * len(self._rows)
        records = self._chunk_records + self._row_records
        batch = MicroBatch(points, self.n_records, self.first_offsets, keys, records, sizes)
        self._chunks = []
        self._rows = []
        self._keys = []
        self._chunk_records = []
        self._row_records = []
        self._n_points = 0
        self.first_offsets = {}
        return batch

    def discard(self) -> None:
        """Drop the open batch (its records were not learned; they will be read again)."""
        self.take()


def _float_rows(rows: list[Row]) -> Decoded:
    return np.array(rows, dtype=np.float64)
