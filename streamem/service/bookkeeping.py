"""What the daemon owes its next publication, checkpoint and offset commit.

:class:`Bookkeeping` is the one place that knows, between two checkpoints: the next offset of
every partition handled so far (:meth:`~Bookkeeping.store_offset`), whether a publication or a
checkpoint is due (:meth:`~Bookkeeping.publish_due`, :meth:`~Bookkeeping.expired`), the versions
the stored state allows (:meth:`~Bookkeeping.may_publish`, :meth:`~Bookkeeping.saved`), and the
offsets a saved state lets the group commit (:meth:`~Bookkeeping.commit`). A checkpoint only
*queues* its offsets: they are committed from the loop (or at shutdown), never inside a
rebalance callback, so no flag has to say where a checkpoint was called from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from streamem.service.config import OutputSettings, StateSettings
from streamem.service.source import Partition

__all__ = ["VERSION_RESERVE", "Bookkeeping"]

VERSION_RESERVE = 100
"""Versions a checkpoint reserves ahead of the last published one (see
:mod:`streamem.service.app`)."""


class Bookkeeping:
    """Offsets handled, due counters and reserved versions between two checkpoints.

    Parameters
    ----------
    state, output
        The ``state`` and ``output`` settings: how often to checkpoint and to publish.
    clock
        Monotonic time in seconds.

    Examples
    --------
    >>> from streamem.service.config import OutputSettings, StateSettings
    >>> book = Bookkeeping(StateSettings(checkpoint_every_batches=2), OutputSettings())
    >>> book.store_offset(("sensors", 0), 10, n_records=10)
    >>> book.batch_learned(changed=True, drift=False)
    >>> book.expired(), book.publish_due(), book.may_publish()
    (False, True, False)
    >>> book.saved({("sensors", 0): 10}, reserved=book.version + 100)  # a checkpoint was stored
    >>> book.may_publish(), book.expired()
    (True, False)
    >>> book.published()
    1
    >>> committed = []
    >>> book.commit(lambda offsets: committed.append(dict(offsets)), [("sensors", 0)])
    >>> committed
    [{('sensors', 0): 10}]
    """

    def __init__(
        self,
        state: StateSettings,
        output: OutputSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._output = output
        self._clock = clock
        self.next_offsets: dict[Partition, int] = {}
        """Per partition, the offset after the last record handled (learned, batched, rejected)."""
        self.version = 0
        """Version of the last published snapshot."""
        self.reserved_version = 0
        """The highest version the stored state allows to publish."""
        self.drift = False
        """Whether a batch since the last publication saw drift."""
        self._to_commit: dict[Partition, int] = {}
        self._batches_since_publish = 0
        self._last_publish = clock()
        self._batches_since_checkpoint = 0
        self._handled_since_checkpoint = 0
        self._last_checkpoint = clock()

    def restart(self, version: int, offsets: Mapping[Partition, int]) -> None:
        """Start over from a restored (or new) state: its version and its offsets."""
        self.version = version
        self.reserved_version = version
        self.next_offsets = dict(offsets)
        self._to_commit = {}
        self._batches_since_publish = 0
        self._batches_since_checkpoint = 0
        self._handled_since_checkpoint = 0

    # ---- records and batches ------------------------------------------------------------------

    def store_offset(self, partition: Partition, next_offset: int, *, n_records: int) -> None:
        """``n_records`` records of ``partition`` were handled, up to ``next_offset`` (excluded)."""
        self.next_offsets[partition] = next_offset
        self._handled_since_checkpoint += n_records

    def forget_offset(self, partition: Partition) -> None:
        """``partition``'s next offset is unknown again (its log was replaced)."""
        self.next_offsets.pop(partition, None)

    def lost(self, partitions: Collection[Partition]) -> None:
        """``partitions`` were lost to another member: forget their offsets and queued commits,
        and the changes not published yet (they included what was learned of them)."""
        for partition in partitions:
            self.next_offsets.pop(partition, None)
            self._to_commit.pop(partition, None)
        self.skip_publication()

    def batch_learned(self, *, changed: bool, drift: bool) -> None:
        """A batch was taken; ``changed``: the model changed; ``drift``: drift was seen."""
        self._batches_since_checkpoint += 1
        if changed:
            self._batches_since_publish += 1
        self.drift = self.drift or drift

    def model_changed(self) -> None:
        """The model changed outside a batch of this replica (a merge of others' statistics)."""
        self._batches_since_publish += 1

    # ---- publication --------------------------------------------------------------------------

    @property
    def unpublished(self) -> bool:
        """Whether the model changed since the last publication."""
        return self._batches_since_publish > 0

    def publish_due(self, now: float | None = None) -> bool:
        """Whether a new version should be published now."""
        if not self.unpublished:
            return False
        now = self._clock() if now is None else now
        return (
            self._batches_since_publish >= self._output.publish_every_batches
            or now - self._last_publish >= self._output.publish_every_seconds
        )

    def may_publish(self) -> bool:
        """Whether the stored state reserves the next version."""
        return self.version + 1 <= self.reserved_version

    def published(self) -> int:
        """A new version was published; return it."""
        self.version += 1
        self.skip_publication()
        return self.version

    def skip_publication(self) -> None:
        """Nothing to publish for the changes so far (another replica publishes them)."""
        self._batches_since_publish = 0
        self.drift = False
        self._last_publish = self._clock()

    # ---- checkpoint and commit ----------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether anything was handled or learned since the last checkpoint."""
        return bool(self._handled_since_checkpoint or self._batches_since_checkpoint)

    def expired(self, now: float | None = None) -> bool:
        """Whether a checkpoint is due."""
        if not self.pending:
            return False
        now = self._clock() if now is None else now
        return (
            self._batches_since_checkpoint >= self._state.checkpoint_every_batches
            or now - self._last_checkpoint >= self._state.checkpoint_every_seconds
        )

    def reservation(self, *, final: bool) -> int:
        """The version a checkpoint written now stores: the exact one when ``final`` (nothing is
        published after it), else :data:`VERSION_RESERVE` ahead."""
        return self.version if final else self.version + VERSION_RESERVE

    def saved(self, offsets: Mapping[Partition, int], *, reserved: int) -> None:
        """A checkpoint of ``offsets`` reserving versions up to ``reserved`` was stored: its
        offsets may be committed to the group."""
        self.reserved_version = reserved
        self._batches_since_checkpoint = 0
        self._handled_since_checkpoint = 0
        self._last_checkpoint = self._clock()
        self._to_commit = dict(offsets)

    def commit(
        self,
        send: Callable[[Mapping[Partition, int]], None],
        assigned: tuple[Partition, ...] | list[Partition],
    ) -> None:
        """Commit the offsets of the newest stored checkpoint with ``send`` (the assigned
        partitions' only: a revoked partition is another member's to commit)."""
        owned = set(assigned)
        offsets = {p: o for p, o in self._to_commit.items() if p in owned}
        self._to_commit = {}
        if offsets:
            send(offsets)
