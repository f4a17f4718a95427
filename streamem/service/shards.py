"""One global model from the statistics of every partition: the replica's side of scale-out.

:class:`Shards` keeps a :class:`~streamem.service.learner.Learner` per owned input partition
(its running statistics, its sequences' carry) and the newest
:class:`~streamem.service.statistics.PartitionStatistics` of every partition read from the
statistics topic. After every change it merges the shares of all partitions, its own live ones
and the others' newest records (:func:`streamem.models.sharing.merged`), into the global model
:attr:`Shards.merged`, whose parameters every owned partition's next E-step then uses.

All partitions start from the same parameters: the lowest partition (:attr:`Shards.leader`)
warms up and initialises as a single model does; a partition of no state waits (its records are
not read) until parameters exist, then starts from the global parameters.
"""

from __future__ import annotations

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
        The partition whose owner initialises the model and publishes it.

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.service.config import Settings
    >>> settings = Settings.model_validate({"model": {"n_components": 2, "init_size": 100},
    ...                                     "input": {"features": ["x"]}})
    >>> shards = Shards(settings, ("t", 0))
    >>> shards.assign([("t", 0), ("t", 1)])
    {}
    >>> shards.learner_for(("t", 1)) is None  # waits for the leader's parameters
    True
    >>> rng = np.random.default_rng(0)
    >>> for partition in [("t", 0), ("t", 1)] * 3:
    ...     _ = shards.learner_for(partition).learn(rng.normal(size=(100, 1)))
    ...     shards.remerge(partition)
    >>> shards.merged.status.n_seen
    600
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

    def _new_learner(self) -> Learner:
        s = self.settings
        return Learner(s.model, s.drift, s.input.features)

    def _restore(self, state: dict[str, object]) -> Learner:
        s = self.settings
        return Learner.from_state(dict(state), s.model, s.drift, s.input.features)

    def absorb(self, records: Iterable[PartitionStatistics]) -> bool:
        """Take the records read from the topic; return True if one changes the merge."""
        changed = False
        for record in records:
            self.latest[record.partition] = record
            if record.partition not in self.owned:
                changed = True
        if changed and self.merged is None:
            self._start_merged()
        return changed

    def assign(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Own ``partitions`` from their newest records; return their offsets to read from."""
        seek: dict[Partition, int] = {}
        for partition in partitions:
            record = self.latest.get(partition)
            learner = None
            if record is not None and record.learner is not None:
                learner = self._restore(record.learner)
            if record is not None and record.offset is not None:
                seek[partition] = record.offset
            self.owned[partition] = learner
        if self.merged is None:
            self._start_merged()
        return seek

    def release(self, partitions: Iterable[Partition]) -> None:
        """Stop owning ``partitions`` (their newest state is the newest record sent)."""
        for partition in partitions:
            self.owned.pop(partition, None)
            self.stale.discard(partition)

    def offsets(self) -> dict[Partition, int]:
        """The offsets of every partition's newest record."""
        return {p: r.offset for p, r in self.latest.items() if r.offset is not None}

    def send_due(self, now: float) -> bool:
        """Whether an owned partition's record must be sent now, whatever the checkpoint
        schedule: the leader partition has learned and sent no parameters yet (the other
        partitions wait for them), another writer overwrote an owned partition's record
        (:attr:`stale`), or an owned partition's newest record is older than
        :data:`STATISTICS_REFRESH_SECONDS` (``now``: Unix time)."""
        if self.stale:
            return True
        for partition in self.owned:
            record = self.latest.get(partition)
            if record is not None and now - record.created_at >= STATISTICS_REFRESH_SECONDS:
                return True
        record = self.latest.get(self.leader)
        if record is not None and record.share is not None:
            return False  # sent
        learner = self.owned.get(self.leader)
        return learner is not None and learner.initialized and learner.status.n_seen > 0

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

    def learner_for(self, partition: Partition) -> Learner | None:
        """The partition's learner; None while it must wait for the first parameters."""
        learner = self.owned.get(partition)
        if learner is not None:
            return learner
        if self.merged is not None:
            learner = self._new_learner()
            learner.model = start_like(self.merged.model)
            learner.refresh()
        elif partition == self.leader:
            learner = self._new_learner()
        else:
            return None
        self.owned[partition] = learner
        return learner

    def _start_merged(self) -> None:
        """The global model, once some partition has parameters (owned or read)."""
        for learner in self.owned.values():
            if learner is not None and learner.initialized:
                self.merged = self._restore(learner.state_dict())
                return
        for record in self.latest.values():
            if record.learner is not None and record.share is not None:
                self.merged = self._restore(record.learner)
                return

    def shares(self) -> list[Share]:
        """The owned partitions' live shares and the others' newest ones."""
        found = [share_of(learner.model) for learner in self.owned.values() if learner is not None]
        found.extend(r.share for p, r in self.latest.items() if p not in self.owned)
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
        for learner in self.owned.values():
            if learner is not None and learner.initialized:
                adopt_parameters(learner.model, glob.model)
