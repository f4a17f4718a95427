"""Where the assigned partitions' state lives: a checkpoint file, or the statistics topic.

The daemon's loop (:class:`~streamem.service.app.Daemon`) asks a :class:`PartitionState` every
question whose answer depends on that place: which learner learns a batch, whether this replica
may publish now, how the state of the owned partitions is stored, what an assignment restores
and what a revocation or a loss of partitions drops. Two implementations:

* :class:`CheckpointFileState` (one daemon, or replicas that do not share a model): the model
  of the assigned partition set and its offsets in one file of ``state.dir``
  (:class:`~streamem.service.checkpoint.CheckpointStore`), written atomically.
* :class:`StatisticsTopicState` (``output.statistics_topic``, scale-out): a learner per owned
  partition, whose record on the statistics topic is its checkpoint, and the global model merged
  from every partition's newest record (:class:`~streamem.service.shards.Shards`); the owner of
  the leader partition publishes it (``docs/scale-out-protocol.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from streamem.errors import StreamemError
from streamem.models.sharing import share_of
from streamem.service.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    highest_version,
    partition_set_key,
)
from streamem.service.learner import Learner
from streamem.service.logwatch import LogReplaced
from streamem.service.shards import Shards
from streamem.service.source import Partition
from streamem.service.state_check import (
    StateFieldError,
    check_learner_envelope,
    check_model_fits,
)
from streamem.service.statistics import PartitionStatistics, StatisticsChannel

if TYPE_CHECKING:
    from streamem.service.app import Daemon

__all__ = [
    "CheckpointFileState",
    "PartitionState",
    "StatisticsTopicState",
    "partition_names",
    "stored_positions",
]

log = logging.getLogger(__name__)


def partition_names(partitions: Sequence[Partition]) -> str:
    """``topic/partition`` names for a log line.

    >>> partition_names([("sensors", 0), ("sensors", 1)])
    'sensors/0, sensors/1'
    """
    return ", ".join(f"{topic}/{partition}" for topic, partition in partitions) or "(none)"


def stored_positions(
    daemon: Daemon,
    partitions: Sequence[Partition],
    marks: Mapping[Partition, Mapping[str, Any] | None],
) -> dict[Partition, int]:
    """Where an assignment reads each of ``partitions``: its restored offset, checked against
    the mark of the log it belongs to (one record earlier, to compare that record); a
    partition whose log was recreated is read from ``auto_offset_reset`` (left out)."""
    seek: dict[Partition, int] = {}
    for partition in partitions:
        stored = daemon.book.next_offsets.get(partition)
        if stored is None:
            continue
        try:
            seek[partition] = daemon.logs.expect(
                partition, marks.get(partition), stored, daemon.log_id(partition)
            )
        except LogReplaced as why:
            daemon.log_replaced(partition, str(why))
    return seek


class PartitionState(Protocol):
    """What the loop asks of the place where the assigned partitions' state lives."""

    @property
    def learner(self) -> Learner | None:
        """The model the daemon publishes (None: none restored or started yet)."""

    def open(self) -> None:
        """Connect what the state needs before the source joins the group."""

    def close(self) -> None:
        """Release what :meth:`open` connected."""

    def assign(self, partitions: tuple[Partition, ...]) -> dict[Partition, int]:
        """Restore the state of ``partitions`` (sorted, not empty); return where to read each
        partition (a partition without a stored offset is read from ``auto_offset_reset``)."""

    def learner_for(self, partition: Partition | None, first_offset: int | None) -> Learner | None:
        """The learner of a batch whose records start with ``partition`` at ``first_offset``."""

    def before_records(self, partition: Partition) -> None:
        """Records of ``partition`` are about to join the open batch."""

    def batch_learned(self, partition: Partition | None) -> None:
        """A batch of ``partition`` was learned."""

    def turn(self) -> None:
        """The loop's turn: take what other replicas wrote."""

    def may_publish(self) -> bool:
        """Whether this replica publishes its model now (it may also reload or skip it)."""

    def snapshot_offsets(self, offsets: dict[Partition, int]) -> dict[Partition, int]:
        """The offsets a published snapshot reports, given the owned ones."""

    def may_save(self) -> bool:
        """Whether there is a state to store now."""

    def save(self, offsets: dict[Partition, int], version: int) -> bool:
        """Store the owned partitions' state at ``offsets`` reserving ``version``; return
        False (counted and logged) if it could not be stored."""

    def save_due(self, now: float) -> bool:
        """Whether the state must be stored now whatever the checkpoint schedule (``now``:
        Unix time)."""

    def keeps_on_revoke(self) -> bool:
        """Whether the state is still this member's to save when partitions are revoked."""

    def released(self, partitions: Sequence[Partition]) -> None:
        """``partitions`` are no longer this member's (revoked, after their state was saved)."""

    def lost(self, partitions: Sequence[Partition]) -> None:
        """``partitions`` were taken from this member: drop what it learned of them."""

    def publishes(self, owned: Collection[Partition]) -> bool:
        """Whether a replica owning ``owned`` publishes the model."""

    def failure_detail(self, error: str | None) -> str:
        """The reason a final store failed, for the log line."""


class CheckpointFileState:
    """The model of the assigned partition set and its offsets in one checkpoint file.

    The file's key is the model name plus the sorted assigned partitions: a member that owns
    the same partitions again resumes its model; a set without a file starts a new model. A
    member paused while another one advanced the file (:meth:`_superseded`) reloads it instead
    of publishing or storing its stale model.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.store: CheckpointStore | None = None
        self._learner: Learner | None = None
        self._store_identity: tuple[int, int, int] | None = None  # the file as we left it

    @property
    def learner(self) -> Learner | None:
        return self._learner

    def open(self) -> None:
        pass  # the state directory is the daemon's (checked at its start)

    def close(self) -> None:
        pass

    def learner_for(self, partition: Partition | None, first_offset: int | None) -> Learner | None:
        return self._learner

    def before_records(self, partition: Partition) -> None:
        pass  # one model: a batch mixes partitions

    def batch_learned(self, partition: Partition | None) -> None:
        pass

    def turn(self) -> None:
        pass  # nobody else writes the file while this member owns its partitions

    def snapshot_offsets(self, offsets: dict[Partition, int]) -> dict[Partition, int]:
        return offsets

    def save_due(self, now: float) -> bool:
        return False  # stored on the checkpoint schedule only

    def assign(self, partitions: tuple[Partition, ...]) -> dict[Partition, int]:
        daemon = self.daemon
        settings = daemon.settings
        key = partition_set_key(settings.model.name, partitions)
        same = self.store is not None and self.store.key == key and self._learner is not None
        if same and self._superseded():
            log.warning(
                "partitions %s assigned again, but another member advanced checkpoint %s in "
                "between: reloading it",
                partition_names(partitions),
                self.store.path if self.store is not None else "?",
            )
            same = False
        marks: Mapping[Partition, dict[str, Any] | None]
        if same:
            log.info("partitions %s assigned again: resuming", partition_names(partitions))
            marks = {p: daemon.logs.current_mark(p) for p in partitions}
        else:
            marks = self._load(partitions)
        return stored_positions(daemon, partitions, marks)

    def _load(self, partitions: tuple[Partition, ...]) -> dict[Partition, dict[str, Any]]:
        """Restore the partition set's file (or start a new model); return the log marks it
        stored."""
        daemon = self.daemon
        settings = daemon.settings
        daemon.batcher.discard()
        daemon.guard.reset()  # the data range it knows is the old model's
        self.store = CheckpointStore(
            settings.state.dir, partition_set_key(settings.model.name, partitions)
        )
        checkpoint = self.store.load()
        self._store_identity = self.store.identity()
        floor = highest_version(settings.state.dir, settings.model.name, settings.kafka.topics)
        for partition in partitions:
            daemon.logs.forget(partition)
        if checkpoint is None:
            log.info(
                "partitions %s assigned; no checkpoint %s: a new model learns from the %s offsets",
                partition_names(partitions),
                self.store.path,
                settings.kafka.consumer.auto_offset_reset,
            )
            self._learner = Learner(settings.model, settings.drift, settings.input.features)
            daemon.restart(floor, {})  # above every partition set's versions of this model
            return {}
        self._learner = self._restore(checkpoint)
        daemon.restart(
            max(checkpoint.version, floor),
            {p: o for p, o in checkpoint.offsets.items() if p in set(partitions)},
        )
        log.info(
            "partitions %s assigned; restored checkpoint %s: n_seen=%d, version=%d, offsets %s",
            partition_names(partitions),
            self.store.path,
            self._learner.status.n_seen,
            daemon.version,
            daemon.book.next_offsets,
        )
        return dict(checkpoint.logs)

    def _restore(self, checkpoint: Checkpoint) -> Learner:
        """The learner of ``checkpoint``, checked whole against the configuration.

        Raises
        ------
        CheckpointError
            One line naming the file and the field that does not fit.
        """
        settings = self.daemon.settings
        try:
            check_learner_envelope(checkpoint.model)
            learner = Learner.from_state(
                checkpoint.model, settings.model, settings.drift, settings.input.features
            )
            check_model_fits(
                learner.model,
                settings.model.n_components,
                settings.model.covariance_type,
                settings.input.features,
            )
        except Exception as error:
            if isinstance(error, StateFieldError):
                detail = f"model.{error}"
            elif isinstance(error, StreamemError | ValueError):
                detail = str(error)
            else:
                detail = f"{type(error).__name__}: {error}"
            if "restore the configuration" not in detail:
                detail += "; restore it from a backup, or move it away to start the model over"
            path = self.store.path if self.store is not None else "?"
            raise CheckpointError(
                f"checkpoint file {str(path)!r} cannot be used: {detail}"
            ) from error
        return learner

    def _superseded(self) -> bool:
        """Whether another member rewrote the file since this one last wrote or read it."""
        return self.store is not None and self.store.identity() != self._store_identity

    def _reload(self) -> None:
        """Drop the in-memory model for the file another member advanced, and read the
        assigned partitions again from its offsets."""
        daemon = self.daemon
        log.warning(
            "checkpoint %s was advanced by another member since this one wrote or read it: "
            "reloading it (what this member learned since is dropped; those records are read "
            "again)",
            self.store.path if self.store is not None else "?",
        )
        self.store = None
        self._learner = None
        partitions = daemon.assigned
        offsets = self.assign(partitions)
        if daemon.source is not None:
            for partition in partitions:
                daemon.source.seek(partition, offsets.get(partition))

    def may_publish(self) -> bool:
        if self._superseded():  # a paused member must not publish its stale model
            self._reload()
            return False
        return True

    def may_save(self) -> bool:
        if self.store is None or self._learner is None:
            return False
        if self._superseded():
            self._reload()
            return False
        return True

    def save(self, offsets: dict[Partition, int], version: int) -> bool:
        daemon = self.daemon
        assert self.store is not None
        assert self._learner is not None
        try:
            self.store.save(
                Checkpoint(
                    model=self._learner.state_dict(),
                    offsets=offsets,
                    version=version,
                    created_at=daemon.wall_clock(),
                    logs=daemon.logs.marks(
                        offsets,
                        daemon.batcher.first_offsets,
                        {partition: daemon.log_id(partition) for partition in offsets},
                    ),
                )
            )
        except CheckpointError as error:
            daemon.note_checkpoint_failure(error)
            return False
        finally:  # a save can fail after its rename (the directory fsync): the file is ours
            self._store_identity = self.store.identity()
        return True

    def keeps_on_revoke(self) -> bool:
        if self._superseded():  # a stale member has nothing to save: reloaded at assignment
            self.store = None
            return False
        return True

    def released(self, partitions: Sequence[Partition]) -> None:
        pass  # the file stays for the next owner of the same partition set

    def lost(self, partitions: Sequence[Partition]) -> None:
        self._learner = None  # restored from the checkpoint at the next assignment
        self.store = None

    def publishes(self, owned: Collection[Partition]) -> bool:
        return bool(owned)

    def failure_detail(self, error: str | None) -> str:
        return f"the state directory failed: {error}"


class StatisticsTopicState:
    """Scale-out: a learner per owned partition, its record on the statistics topic as its
    checkpoint, and the global model merged from every partition's newest record.

    Parameters
    ----------
    daemon
        The loop it serves (its factory connects the statistics topic at :meth:`open`).
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        settings = daemon.settings
        self.shards = Shards(settings, (min(settings.kafka.topics), 0))
        """The partitions' learners and the global model."""
        self.channel: StatisticsChannel | None = None
        """The statistics topic (None until :meth:`open`)."""

    @property
    def learner(self) -> Learner | None:
        return self.shards.merged

    def open(self) -> None:
        if self.channel is None:
            self.channel = self.daemon.statistics_factory()

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def _channel(self) -> StatisticsChannel:
        assert self.channel is not None, "open() connects the statistics topic"
        return self.channel

    def assign(self, partitions: tuple[Partition, ...]) -> dict[Partition, int]:
        """Restore the partitions from the statistics topic (read to its end)."""
        daemon, shards = self.daemon, self.shards
        daemon.batcher.discard()
        daemon.guard.reset()
        shards.absorb(self._channel().catch_up(timeout=10.0))
        seek = shards.assign(partitions)
        self._start_over_losers(seek)
        version = daemon.version
        leader = shards.latest.get(shards.leader)
        if shards.leader in partitions and leader is not None:
            version = max(version, leader.version)
        shards.remerge()
        daemon.restart(version, seek)
        if shards.leader in partitions and shards.merged is not None:
            daemon.book.model_changed()  # a takeover publishes what it restored
        marks = {}
        for partition in partitions:
            daemon.logs.forget(partition)
            record = shards.latest.get(partition)
            marks[partition] = None if record is None else record.log
        seek = stored_positions(daemon, partitions, marks)
        log.info(
            "partitions %s assigned; restored from the statistics topic: global n_seen=%d, "
            "version=%d, offsets %s",
            partition_names(partitions),
            0 if shards.merged is None else shards.merged.status.n_seen,
            daemon.version,
            seek,
        )
        daemon.metrics.state.oldest_statistics = shards.oldest()
        return seek

    def learner_for(self, partition: Partition | None, first_offset: int | None) -> Learner | None:
        if partition is None:
            return self.shards.merged
        return self.shards.learner_for(partition, first_offset)

    def batch_learned(self, partition: Partition | None) -> None:
        self.shards.remerge(partition)
        self._merged_changed()

    def before_records(self, partition: Partition) -> None:
        """A batch holds one partition's records (each has its own learner)."""
        if any(other != partition for other in self.daemon.batcher.first_offsets):
            self.daemon.learn_batch()

    def turn(self) -> None:
        shards, channel = self.shards, self._channel()
        # while the first parameters are elected, its own records count too
        own = shards.owned if shards.lineage is not None else ()
        changed = shards.absorb(channel.read(own))
        self._start_over_losers()
        if changed:
            shards.remerge()
            self._merged_changed()
        shards.stale |= channel.overwritten() & shards.owned.keys()

    def _start_over_losers(self, seek: dict[Partition, int] | None = None) -> None:
        """Read again, from where they started, the owned partitions whose own start lost the
        election of the first parameters (what they learned of it is dropped). Inside an
        assignment, ``seek`` (where the assignment reads each partition from) says it."""
        daemon = self.daemon
        for partition, origin in self.shards.take_losers().items():
            log.info(
                "partition %s/%d: another partition's start was elected first; it is read "
                "again from offset %s with the elected parameters",
                *partition,
                origin if origin is not None else daemon.settings.kafka.consumer.auto_offset_reset,
            )
            if seek is not None:
                if origin is None:
                    seek.pop(partition, None)
                else:
                    seek[partition] = origin
                continue
            if partition in daemon.batcher.first_offsets:
                daemon.batcher.discard()  # the open batch holds only this partition's records
            daemon.book.rewind(partition, origin)
            daemon.logs.forget(partition)
            if daemon.source is not None:
                daemon.source.seek(partition, origin)

    def _merged_changed(self) -> None:
        """The global model changed: report it, and publish it in due time."""
        daemon, shards = self.daemon, self.shards
        if shards.merged is not None:
            daemon.metrics.state.status = shards.merged.status
            daemon.book.model_changed()
        daemon.metrics.state.oldest_statistics = shards.oldest()

    def may_publish(self) -> bool:
        if self.shards.leader not in self.shards.owned:
            self.daemon.book.skip_publication()  # another replica publishes the global model
            return False
        return self.shards.decided  # not before the first parameters are elected

    def snapshot_offsets(self, offsets: dict[Partition, int]) -> dict[Partition, int]:
        return {**self.shards.offsets(), **offsets}

    def may_save(self) -> bool:
        return bool(self.shards.owned)

    def save_due(self, now: float) -> bool:
        return self.shards.send_due(now)

    def save(self, offsets: dict[Partition, int], version: int) -> bool:
        """Send the owned partitions' statistics records and wait for their acknowledgement
        (they are the checkpoint); a partition whose record on the topic is current is not
        sent again (:meth:`Shards.needs_sending`)."""
        daemon, shards, channel = self.daemon, self.shards, self._channel()
        now = daemon.wall_clock()
        marks = daemon.logs.marks(
            {p: o for p, o in offsets.items() if p in shards.owned},
            daemon.batcher.first_offsets,
            {partition: daemon.log_id(partition) for partition in shards.owned},
        )
        records = []
        for partition, learner in sorted(shards.owned.items()):
            offset = offsets.get(partition)
            reserved = version if partition == shards.leader else 0
            if not shards.needs_sending(partition, offset, reserved, now):
                continue
            records.append(
                PartitionStatistics(
                    model=daemon.settings.model.name,
                    partition=partition,
                    offset=offset,
                    version=reserved,
                    created_at=now,
                    share=None if learner is None else share_of(learner.model),
                    learner=None if learner is None else learner.state_dict(),
                    origin=shards.origin_of(partition),
                    lineage=shards.lineage_of(partition) or "",
                    writer=channel.writer,
                    log=marks.get(partition),
                )
            )
        state = daemon.metrics.state
        if records and not channel.send(records, timeout=10.0):
            reason = f"the statistics topic {daemon.settings.output.statistics_topic!r} did "
            reason += "not acknowledge this replica's records"
            since = state.statistics_problem[0] if state.statistics_problem else daemon.clock()
            state.statistics_problem = (since, reason)
            daemon.note_checkpoint_failure(CheckpointError(reason))
            return False
        state.statistics_problem = None
        shards.latest.update({record.partition: record for record in records})
        shards.stale.difference_update(record.partition for record in records)
        return True

    def released(self, partitions: Sequence[Partition]) -> None:
        self.shards.release(partitions)

    def lost(self, partitions: Sequence[Partition]) -> None:
        self.shards.release(partitions)

    def keeps_on_revoke(self) -> bool:
        return True

    def publishes(self, owned: Collection[Partition]) -> bool:
        return self.shards.leader in owned

    def failure_detail(self, error: str | None) -> str:
        return str(error)
