"""One global model from the statistics of every partition: the replica's side of scale-out.

:class:`Shards` keeps a :class:`~streamem.service.learner.Learner` per owned input partition
(its running statistics, its sequences' carry) and the newest
:class:`~streamem.service.statistics.PartitionStatistics` of every partition read from the
statistics topic. After every change it merges the shares of all partitions, its own live ones
and the others' newest records (:func:`streamem.models.sharing.merged`), into the global model
:attr:`Shards.merged`, whose parameters every owned partition's next E-step then uses.

All partitions learn from the same parameters, elected on the statistics topic
(``docs/scale-out-protocol.md``): while no parameters are known, every owned partition warms up
on its own records and, once initialised, sends its record at once; every record carries the
*lineage* of its parameters (the id of the partition start they descend from), and the lineage
of the first record with statistics in the topic's order wins, for every replica alike (the
topic has one partition, so its order is total). A partition of another lineage lost the
election: its learner is dropped and the partition is read again from where it started
(:meth:`Shards.take_losers`), now from the winner's parameters. So no partition waits for
another one to receive records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from streamem.models.sharing import Share, adopt_parameters, merged, share_of, start_like
from streamem.service.config import Settings
from streamem.service.learner import Learner
from streamem.service.source import Partition
from streamem.service.statistics import PartitionStatistics

__all__ = ["STATISTICS_REFRESH_SECONDS", "Shards"]

STATISTICS_REFRESH_SECONDS = 60.0
"""An owner sends its partition's unchanged record again once it is this old: it stays the
newest of its key on a topic with retention, and in ``streamem_merged_statistics_age_seconds``
of the other replicas."""


class Shards:
    """The owned partitions' learners, the others' newest statistics, and their merge.

    Parameters
    ----------
    settings
        The validated configuration.
    leader
        The partition whose owner publishes the global model (it need not receive records).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.service.config import Settings
    >>> settings = Settings.model_validate({"model": {"n_components": 2, "init_size": 100},
    ...                                     "input": {"features": ["x"]}})
    >>> shards = Shards(settings, ("t", 0))
    >>> shards.assign([("t", 0), ("t", 1)])
    {}
    >>> rng = np.random.default_rng(0)
    >>> for partition in [("t", 1), ("t", 0)] * 3:  # partition 0 need not come first
    ...     _ = shards.learner_for(partition, 0).learn(rng.normal(size=(100, 1)))
    ...     shards.remerge(partition)
    >>> shards.merged.status.n_seen
    600
    >>> shards.lineage_of(("t", 0)) == shards.lineage_of(("t", 1))  # one start for both
    True
    """

    def __init__(self, settings: Settings, leader: Partition) -> None:
        self.settings = settings
        self.leader = leader
        self.owned: dict[Partition, Learner | None] = {}
        self.latest: dict[Partition, PartitionStatistics] = {}
        """The newest record read of every partition."""
        self.merged: Learner | None = None
        """The global model (None until some partition has parameters)."""
        self.stale: set[Partition] = set()
        """Owned partitions whose newest record on the topic another member wrote."""
        self.lineage: str | None = None
        """The elected lineage: that of the first record with statistics read (None: none yet)."""
        self._lineages: dict[Partition, str] = {}  # of the owned partitions' learners
        self._merged_lineage: str | None = None
        self._origins: dict[Partition, int | None] = {}  # where an own start began to read
        self._losers: dict[Partition, int | None] = {}

    def _new_learner(self) -> Learner:
        s = self.settings
        return Learner(s.model, s.drift, s.input.features)

    def _restore(self, state: dict[str, object]) -> Learner:
        s = self.settings
        return Learner.from_state(
            dict(state),
            s.model,
            s.drift,
            s.input.features,
            stored_in=f"the statistics topic {s.output.statistics_topic!r}",
            start_over="give output.statistics_topic (or model.name) a new value to start the "
            "model over (the state of a scale-out group lives in that topic, not in a file)",
        )

    @property
    def decided(self) -> bool:
        """Whether the election is over and the global model descends from its winner."""
        return self.lineage is not None and self._merged_lineage == self.lineage

    def lineage_of(self, partition: Partition) -> str | None:
        """The lineage of an owned partition's learner (None: it has none)."""
        return self._lineages.get(partition)

    def origin_of(self, partition: Partition) -> int | None:
        """The offset from which an owned partition's learner learned (None: unknown)."""
        return self._origins.get(partition)

    def absorb(self, records: Iterable[PartitionStatistics]) -> bool:
        """Take the records read from the topic, in its order; return True if one changes the
        merge. The first record with statistics decides the election; a record of another
        lineage is ignored (its partition lost and will start over)."""
        changed = False
        for record in records:
            if record.share is not None:
                if self.lineage is None:
                    self.lineage = record.lineage
                    changed = True
                elif record.lineage != self.lineage:
                    continue
            self.latest[record.partition] = record
            if record.partition not in self.owned:
                changed = True
        if self.lineage is not None:
            self._elect()
        if changed and self.merged is None:
            self._start_merged()
        return changed

    def _elect(self) -> None:
        """Drop the owned learners of a lost lineage (and a global model of one)."""
        for partition, lineage in list(self._lineages.items()):
            if lineage != self.lineage:
                self._losers[partition] = self._origins.get(partition)
                self.owned[partition] = None
                del self._lineages[partition]
                self.stale.add(partition)  # its record on the topic is of the lost lineage
        if self.merged is not None and self._merged_lineage != self.lineage:
            self.merged = None
            self._merged_lineage = None
            self._start_merged()

    def take_losers(self) -> dict[Partition, int | None]:
        """The owned partitions that lost the election since the last call, with the offset
        their own start began at (None: where ``auto_offset_reset`` says): they must be read
        again from there."""
        losers, self._losers = self._losers, {}
        return losers

    def assign(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Own ``partitions`` from their newest records; return their offsets to read from."""
        seek: dict[Partition, int] = {}
        for partition in partitions:
            record = self.latest.get(partition)
            learner = None
            if record is not None and record.learner is not None:
                learner = self._restore(record.learner)
                self._lineages[partition] = record.lineage
                self._origins[partition] = record.origin
            if record is not None and record.offset is not None:
                seek[partition] = record.offset
            self.owned[partition] = learner
        if self.lineage is not None:
            self._elect()  # a restored partition may carry a lost lineage
        if self.merged is None:
            self._start_merged()
        return seek

    def release(self, partitions: Iterable[Partition]) -> None:
        """Stop owning ``partitions`` (their newest state is the newest record sent)."""
        for partition in partitions:
            self.owned.pop(partition, None)
            self.stale.discard(partition)
            self._lineages.pop(partition, None)
            self._origins.pop(partition, None)
            self._losers.pop(partition, None)

    def offsets(self) -> dict[Partition, int]:
        """The offsets of every partition's newest record."""
        return {p: r.offset for p, r in self.latest.items() if r.offset is not None}

    def send_due(self, now: float) -> bool:
        """Whether an owned partition's record must be sent now, whatever the checkpoint
        schedule: one has parameters of its own start while the election is open (its record
        is its candidacy), another writer overwrote an owned partition's record
        (:attr:`stale`), or an owned partition's newest record is older than
        :data:`STATISTICS_REFRESH_SECONDS` (``now``: Unix time)."""
        if self.stale:
            return True
        for partition in self.owned:
            record = self.latest.get(partition)
            if record is not None and now - record.created_at >= STATISTICS_REFRESH_SECONDS:
                return True
        if self.lineage is not None:
            return False
        return any(
            learner is not None and learner.initialized and learner.status.n_seen > 0
            for learner in self.owned.values()
        )

    def needs_sending(
        self, partition: Partition, offset: int | None, version: int, now: float
    ) -> bool:
        """Whether ``partition``'s record must be sent at a checkpoint of ``offset`` reserving
        ``version``: not when its newest record has both, is younger than
        :data:`STATISTICS_REFRESH_SECONDS` and was not overwritten since."""
        sent = self.latest.get(partition)
        return (
            sent is None
            or partition in self.stale
            or (sent.offset, sent.version) != (offset, version)
            or now - sent.created_at >= STATISTICS_REFRESH_SECONDS
        )

    def learner_for(self, partition: Partition, offset: int | None) -> Learner:
        """The partition's learner: its own, else one from the global parameters, else (no
        parameters known yet) a new start of its own; a new learner learns from ``offset`` on
        (its origin: where the partition is read again if its lineage loses the election)."""
        learner = self.owned.get(partition)
        if learner is not None:
            return learner
        learner = self._new_learner()
        if self.merged is not None:
            learner.model = start_like(self.merged.model)
            learner.refresh()
            lineage = self._merged_lineage
        else:
            lineage = uuid.uuid4().hex
        self._origins[partition] = offset
        self._lineages[partition] = lineage or ""
        self.owned[partition] = learner
        return learner

    def _start_merged(self) -> None:
        """The global model, once some partition has parameters: the elected lineage's, else
        (the election still open) this replica's own."""
        for partition, learner in self.owned.items():
            lineage = self._lineages.get(partition)
            if learner is not None and learner.initialized and self._eligible(lineage):
                self.merged = self._restore(learner.state_dict())
                self._merged_lineage = lineage
                return
        for record in self.latest.values():
            usable = record.learner is not None and record.share is not None
            if usable and record.learner is not None and self._eligible(record.lineage):
                self.merged = self._restore(record.learner)
                self._merged_lineage = record.lineage
                return

    def _eligible(self, lineage: str | None) -> bool:
        return self.lineage is None or lineage == self.lineage

    def shares(self) -> list[Share]:
        """The owned partitions' live shares and the others' newest ones (of the global
        model's lineage)."""
        found = [
            share_of(learner.model)
            for partition, learner in self.owned.items()
            if learner is not None and self._lineages.get(partition) == self._merged_lineage
        ]
        found.extend(
            r.share
            for p, r in self.latest.items()
            if p not in self.owned and r.lineage == self._merged_lineage
        )
        return [share for share in found if share is not None]

    def oldest(self) -> float | None:
        """Unix time of the oldest record merged from another replica (None: none)."""
        times = [r.created_at for p, r in self.latest.items() if p not in self.owned and r.share]
        return min(times) if times else None

    def remerge(self, learned: Partition | None = None) -> None:
        """Merge every partition's share into :attr:`merged` and give its parameters to the
        owned partitions (``learned``: the partition that learned last, whose monitor the
        global model reports)."""
        if self.merged is None:
            self._start_merged()
        glob = self.merged
        if glob is None:
            return
        latest = self.owned.get(learned) if learned is not None else None
        glob.model = merged(glob.model, self.shares(), None if latest is None else latest.model)
        glob.refresh()
        for partition, learner in self.owned.items():
            same = self._lineages.get(partition) == self._merged_lineage
            if learner is not None and learner.initialized and same:
                adopt_parameters(learner.model, glob.model)
