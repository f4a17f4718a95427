"""Scale-out on in-memory stages: replicas of one group share the statistics topic."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamem.models.sharing import share_of
from streamem.service.app import Daemon
from streamem.service.codecs import encode_points
from streamem.service.learner import Learner, LearnerStateError
from streamem.service.shards import STATISTICS_REFRESH_SECONDS, Shards
from streamem.service.source import Partition
from streamem.service.state import StatisticsTopicState
from streamem.service.statistics import PartitionStatistics
from streamem.synthetic import SensorModes
from tests.service.fakes import FakeLog, FakeSource, FakeStatisticsTopic, SinkFactory
from tests.service.test_app import PARTITIONS, Clock, _fill, _settings


class Replica:
    """A scale-out daemon that owns ``partitions`` of a fake log."""

    def __init__(
        self,
        tmp_path: Path,
        log: FakeLog,
        topic: FakeStatisticsTopic,
        sinks: SinkFactory,
        partitions: list[Partition],
        **sections: Any,
    ) -> None:
        self.clock = Clock()
        output = {"publish_every_batches": 1, "statistics_topic": "stats"}
        settings = _settings(
            tmp_path, **{**sections, "output": {**output, **sections.get("output", {})}}
        )
        self.daemon = Daemon(
            settings,
            source_factory=lambda handler: FakeSource(log, handler),
            sink_factory=sinks,
            statistics_factory=topic.channel,
            clock=self.clock,
            wall_clock=lambda: self.clock.now + 1.7e9,
        )
        self.daemon.start()
        source = self.daemon.source
        assert isinstance(source, FakeSource)
        self.source = source
        source.assign(partitions)

    @property
    def state(self) -> StatisticsTopicState:
        """The daemon's scale-out state (its learners, the election, the channel)."""
        state = self.daemon.state
        assert isinstance(state, StatisticsTopicState)
        return state

    def turn(self) -> None:
        self.daemon.turn()
        self.clock.now += 0.05

    def done(self, log: FakeLog) -> bool:
        """Every owned partition read to its end and the open batch learned."""
        positions = self.source.positions
        read = all(positions[p] == len(log.partitions.get(p, [])) for p in positions)
        return read and len(self.daemon.batcher) == 0


def _run(replicas: list[Replica], log: FakeLog, limit: int = 5_000) -> None:
    """Turn the replicas in turn until each read its partitions, then let the time-based
    checkpoint and publication fall due and every replica read the others' records."""
    for _ in range(limit):
        for replica in replicas:
            replica.turn()
        if all(replica.done(log) for replica in replicas):
            for _ in range(2):
                for replica in replicas:
                    replica.clock.now += 10.0
                    replica.turn()
            return
    raise AssertionError("the replicas did not read their partitions")


def _n_seen(replica: Replica) -> int:
    learner = replica.daemon.learner
    assert learner is not None
    return learner.status.n_seen


def test_two_replicas_learn_every_record_once_into_one_model(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    valid = _fill(log, rng, 3000, bad_every=50)
    first = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:2])
    second = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[2:])
    _run([first, second], log)
    assert _n_seen(first) == _n_seen(second) == valid
    assert first.daemon.metrics.state.publishing  # it owns the leader partition
    assert not second.daemon.metrics.state.publishing
    # one lineage: only the leader's owner published, and its newest model has every record
    published = [v for _, v, _ in sinks.on("streamem.models") if v is not None]
    assert published
    assert first.daemon.version == len(published)
    assert second.daemon.version == 0
    newest = {r.partition: r for r in topic.records()}
    assert {p: r.offset for p, r in newest.items()} == {
        p: len(values) for p, values in log.partitions.items()
    }


def test_an_idle_partition_is_sent_again_only_when_its_record_is_old(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 1500)
    replica = Replica(tmp_path, log, topic, sinks, PARTITIONS)
    _run([replica], log)
    assert {r.partition for r in topic.records()} == set(PARTITIONS)
    busy, idle = PARTITIONS[1], PARTITIONS[2]

    def sent_while_learning(n: int, later: float = 0.0) -> Counter[Partition]:
        """The partitions of the records sent while ``n`` readings of ``busy`` are learned."""
        before = len(topic.values)
        replica.clock.now += later
        X, _ = SensorModes.default().sample(n, rng)
        log.append(busy, [encode_points(row, replica.daemon.settings.input) for row in X])
        _run([replica], log)
        return Counter(record.partition for record in topic.records()[before:])

    sent = sent_while_learning(400)
    assert sent[busy] >= 1
    assert idle not in sent  # its newest record is current
    sent = sent_while_learning(400, later=STATISTICS_REFRESH_SECONDS)
    assert sent[busy] >= 1
    assert sent[idle] == 1  # refreshed once, unchanged
    newest = [r for r in topic.records() if r.partition == idle]
    assert newest[-1].offset == newest[-2].offset
    assert newest[-1].share == newest[-2].share
    assert _n_seen(replica) == 1500 + 800


def test_every_partition_starts_and_the_first_start_on_the_topic_wins(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Two replicas warm up their own partitions at once, before either sent anything: each
    sends its start as soon as it has one; the first on the topic is elected by both, the other
    replica's partitions are read again from where they started, and every record counts once
    in one model."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 6000)
    first = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:1])
    second = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[1:])
    topic.held = True  # each sends its start before it reads the other's
    for _ in range(2000):
        first.turn()
        second.turn()
        if len({r.lineage for r in topic.records() if r.share is not None}) == 2:
            break
    topic.held = False
    _run([first, second], log)
    records = topic.records()
    candidates = {r.lineage for r in records if r.share is not None}
    assert len(candidates) == 2, "both replicas started on their own"
    winner = next(r.lineage for r in records if r.share is not None)
    for replica in (first, second):
        shards = replica.state.shards
        assert shards.lineage == winner
        assert all(shards.lineage_of(p) == winner for p in shards.owned)
    assert _n_seen(first) == _n_seen(second) == log.size()


def test_the_group_learns_when_the_leader_partition_gets_no_records(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Keyed input that never lands on partition 0: the other partitions start on their own,
    and the owner of partition 0 publishes the global model."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 4500)
    log.partitions[PARTITIONS[0]] = []
    leader = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:1])
    other = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[1:])
    _run([leader, other], log)
    assert _n_seen(leader) == _n_seen(other) == log.size()
    published = _published(sinks)
    assert published
    assert published[-1]["n_seen"] == log.size()


def _published(sinks: SinkFactory) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v, _ in sinks.on("streamem.models") if v is not None]


def test_a_member_unsure_of_its_partitions_writes_nothing_and_a_lost_one_drops_them(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A member paused past the session timeout (its heartbeats unanswered) neither publishes
    nor sends statistics nor commits; once told its partitions are lost, it drops what it
    learned of them; the member that gets them continues from their newest records."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 3000)
    zombie = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS)
    for _ in range(40):
        zombie.turn()
    sent, published = len(topic.values), len(_published(sinks))
    committed = dict(log.committed)
    assert sent
    assert published
    zombie.source.expel()
    _run([zombie], log)  # reads, learns and its checkpoint and publication fall due
    assert len(topic.values) == sent
    assert len(_published(sinks)) == published
    assert log.committed == committed
    zombie.source.lose()
    assert zombie.daemon.assigned == ()
    assert not zombie.state.shards.owned
    assert not zombie.daemon.metrics.state.publishing
    heir = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS)
    _run([heir], log)
    assert _n_seen(heir) == log.size()
    versions = [snapshot["version"] for snapshot in _published(sinks)]
    assert versions == sorted(set(versions))
    assert _published(sinks)[-1]["n_seen"] == log.size()


def test_the_member_that_takes_over_the_leader_partition_publishes_what_it_restored(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A rolling restart after traffic stopped: no record arrives any more, and still the
    replica that gets the leader partition publishes the restored global model."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 3000)
    first = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:1])
    second = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[1:])
    _run([first, second], log)
    # the leader's owner stops before the others' newest statistics reached its publication
    first.daemon.shutdown()
    newest = _published(sinks)[-1]
    heir = Replica(tmp_path / "c", log, topic, sinks, PARTITIONS[:1])
    _run([heir, second], log)
    after = _published(sinks)[-1]
    assert after["version"] > newest["version"]
    assert after["n_seen"] == log.size()


def test_an_owner_sends_its_record_again_over_another_members_late_write(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 1500)
    owner = Replica(tmp_path, log, topic, sinks, PARTITIONS)
    _run([owner], log)
    own = {r.partition: r for r in topic.records()}
    stale = own[PARTITIONS[1]]
    late = PartitionStatistics(
        stale.model, stale.partition, 0, 0, stale.created_at, None, None, writer="expelled"
    )
    topic.values.append(late.encode())  # a member that had not noticed it lost the partition
    owner.turn()
    owner.turn()
    newest = [r for r in topic.records() if r.partition == PARTITIONS[1]][-1]
    assert newest.writer == owner.state.channel.writer  # type: ignore[union-attr]
    assert newest.offset == stale.offset
    assert newest.share == stale.share


def test_a_partition_restored_from_a_lost_start_is_read_again_from_its_origin(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A replica stops before it read that its partition's start lost the election: the member
    that restores the partition from its last record (of the lost lineage) reads it again from
    where that start began, and every record counts once."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 6000)
    stopping = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:1])
    other = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[1:])

    def candidacies() -> list[Partition]:
        return [r.partition for r in topic.records() if r.share is not None]

    topic.held = True  # the other replica's start goes out first, then this one's
    for replica, partition in ((other, PARTITIONS[1]), (stopping, PARTITIONS[0])):
        for _ in range(2000):
            replica.turn()
            if partition in candidacies():
                break
    stopping.daemon.shutdown()  # its last record carries its own, losing start
    topic.held = False
    heir = Replica(tmp_path / "c", log, topic, sinks, PARTITIONS[:1])
    assert heir.state.shards.lineage == other.state.shards.lineage_of(PARTITIONS[1])
    _run([heir, other], log)
    assert _n_seen(heir) == _n_seen(other) == log.size()


def test_an_assignment_restoring_a_lost_start_reads_it_again_without_waiting_for_records(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """The election is decided, and a partition is assigned whose newest record carries
    another start: it is given back at once (with the origin its record names), not at the
    next record that happens to change the merge."""
    settings = _settings(tmp_path)
    X, _ = SensorModes.default().sample(2000, rng)

    def record(partition: Partition, lineage: str, origin: int) -> PartitionStatistics:
        learner = Learner(settings.model, settings.drift, settings.input.features)
        learner.learn(X)
        return PartitionStatistics(
            "sensors",
            partition,
            2000 + origin,
            0,
            1.7e9,
            share_of(learner.model),
            learner.state_dict(),
            origin=origin,
            lineage=lineage,
        )

    shards = Shards(settings, PARTITIONS[0])
    shards.absorb([record(PARTITIONS[1], "winner", 0)])
    shards.latest[PARTITIONS[0]] = record(PARTITIONS[0], "loser", 40)  # read before the vote
    assert shards.assign([PARTITIONS[0]]) == {PARTITIONS[0]: 2040}
    assert shards.take_losers() == {PARTITIONS[0]: 40}
    assert shards.owned[PARTITIONS[0]] is None


def test_a_revocation_without_the_lease_is_a_loss(tmp_path: Path, rng: np.random.Generator) -> None:
    """A member resumed after a pause is told of a revocation before it learned of its
    expulsion (it stops, say): it publishes, stores and commits nothing for the partitions."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 3000)
    zombie = Replica(tmp_path, log, topic, sinks, PARTITIONS)
    for _ in range(40):
        zombie.turn()
    sent, published = len(topic.values), len(_published(sinks))
    zombie.source.expel()
    zombie.daemon.shutdown()  # closing the consumer revokes the partitions
    assert len(topic.values) == sent
    assert len(_published(sinks)) == published
    assert not zombie.state.shards.owned


def test_a_partition_restored_from_a_lost_warm_up_is_read_from_its_origin_not_its_offset(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A replica dies while its partition still warms up (its records carry the warm-up
    buffer and an offset past the partition's start) and before it read that another start
    won: the heir reads that partition from the start the buffer began at."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 9000)
    slow_start = {"model": {"init_size": 2400}, "state": {"checkpoint_every_batches": 1}}
    winner = Replica(tmp_path / "b", log, topic, sinks, PARTITIONS[1:], **slow_start)
    dying = Replica(tmp_path / "a", log, topic, sinks, PARTITIONS[:1], **slow_start)
    topic.held = True  # neither reads the other's records yet
    for _ in range(2000):
        winner.turn()
        if any(r.share is not None for r in topic.records()):
            break

    def warming(record: PartitionStatistics) -> bool:
        return record.partition == PARTITIONS[0] and record.share is None and bool(record.offset)

    for _ in range(2000):
        dying.turn()
        if any(warming(r) for r in topic.records()):
            break
    assert any(warming(r) for r in topic.records())
    topic.held = False  # the dying replica is gone (SIGKILL): no shutdown
    heir = Replica(tmp_path / "c", log, topic, sinks, PARTITIONS[:1], **slow_start)
    _run([heir, winner], log)
    assert _n_seen(heir) == _n_seen(winner) == log.size()


def test_a_new_owner_reads_a_recreated_input_log_from_its_start(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """The input topic was recreated (a memory-only broker restarted) and its new log grew
    past the offsets in the statistics records: the fingerprint of the last settled record
    in each record tells the new owner, which reads every new record once."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    valid = _fill(log, rng, 1500)
    _run([Replica(tmp_path / "a", log, topic, sinks, PARTITIONS)], log)
    assert all(record.log is not None for record in topic.records() if record.offset)
    new_log = FakeLog()
    more = _fill(new_log, rng, 3000)  # longer than the old log, other records
    heir = Replica(tmp_path / "b", new_log, topic, sinks, PARTITIONS)
    _run([heir], new_log)
    assert _n_seen(heir) == valid + more


def test_a_k_change_in_scale_out_names_the_statistics_topic(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A rolling update that changes K: the state lives in the statistics topic, not in a file,
    and the refusal says what to do there."""
    log, topic, sinks = FakeLog(), FakeStatisticsTopic(), SinkFactory()
    _fill(log, rng, 1500)
    _run([Replica(tmp_path / "a", log, topic, sinks, PARTITIONS)], log)
    with pytest.raises(LearnerStateError) as refused:
        Replica(tmp_path / "b", log, topic, sinks, PARTITIONS, model={"n_components": 4})
    message = str(refused.value)
    assert "model.n_components: the statistics topic 'stats' was written with 3" in message
    assert "output.statistics_topic" in message
    assert "delete the checkpoint" not in message
