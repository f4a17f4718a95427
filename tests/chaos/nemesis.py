"""A seeded nemesis against scale-out replicas on the real broker, and the invariants it checks.

A *schedule* (made from a seed by :func:`schedule`) is a list of faults at times after the
stream starts: SIGKILL of a replica (a new one started in its place), SIGSTOP past the session
timeout then SIGCONT, a SIGTERM rolling restart of every replica, a replica added, a replica
removed (SIGTERM, not replaced), a broker restart (the embedded broker keeps its data in memory:
every topic, record and group is gone; the nemesis holds the stream, waits until the replicas
stored what was produced, pauses them, restarts the broker, creates the topics again, resumes
them and produces the rest of the stream into the new, empty logs).

:func:`run_schedule` starts 2 replicas on a fresh broker, produces a seeded stream while it
applies the faults, and checks, within a stated time after the stream and the faults end:

- the final published ``n_seen`` equals the valid records produced (no loss);
- no published model counts a record twice (``n_seen`` never above the records produced);
- the versions a streamem reader keeps (``streamem.commands.snapshots.SnapshotReader`` skips
  late deliveries) increase strictly, and every snapshot it skipped was built before a pause;
- every replica still running answers ``/healthz`` 200.

Run many schedules with ``python -m tests.chaos.run --schedules 50``; the test suite runs a few
(``tests/chaos/test_chaos.py``).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamem.service.broker import EmbeddedBroker
from streamem.service.statistics import KafkaStatisticsChannel
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    daemon_config_with_metrics,
    http_get,
    produce,
    readings,
)

N_PARTITIONS = 4
N_RECORDS = 40_000
RATE = 4_000.0  # records/s: the stream lasts 10 s, the faults fall inside and just after it
PAUSE_SECONDS = 8.0  # SIGSTOP: 4x the tests' session timeout of 2 s
SETTLE_SECONDS = 150.0  # the stated time for the final n_seen after the stream and faults end
STORE_SECONDS = 60.0  # broker restart: the replicas store what was produced within this time
CHUNK = 500  # records the stream produces between two looks at its hold (a multiple of 4)
KINDS = ("kill", "pause", "rolling_restart", "add", "remove")
BROKER_RESTART = "broker_restart"  # opt-in (``--broker-restarts``): see docs/scale-out-protocol.md


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, when (seconds after the stream starts) and which replica (an index
    into the running ones, modulo their number)."""

    kind: str
    at: float
    target: int


def schedule(seed: int, n_faults: int = 3, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
    """The seeded faults of one run, in time order.

    Examples
    --------
    >>> schedule(7) == schedule(7)
    True
    >>> len(schedule(7, n_faults=4))
    4
    """
    chooser = random.Random(seed)
    times = sorted(chooser.uniform(1.0, N_RECORDS / RATE + 4.0) for _ in range(n_faults))
    return [Fault(chooser.choice(kinds), at, chooser.randrange(8)) for at in times]


@dataclass
class Outcome:
    """What one schedule did and found."""

    seed: int
    faults: list[Fault]
    violations: list[str] = field(default_factory=list)
    final_n_seen: int | None = None
    versions: int = 0
    seconds: float = 0.0


class _Stream:
    """The seeded stream, produced at :data:`RATE` in chunks of :data:`CHUNK` records; a broker
    restart holds it between two chunks."""

    def __init__(self, broker: EmbeddedBroker, topic: str, values: Sequence[bytes | None]) -> None:
        self.broker = broker
        self.topic = topic
        self.values = values
        self.produced = 0
        self._turn = threading.Condition()
        self._held = False  # a hold was asked for
        self._parked = False  # the producing thread waits between two chunks, or is done
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for first in range(0, len(self.values), CHUNK):
            with self._turn:
                if self._held:
                    while self._held:
                        self._parked = True
                        self._turn.notify_all()
                        self._turn.wait()
                    started = time.monotonic() - first / RATE  # go on at the rate
                self._parked = False
            chunk = self.values[first : first + CHUNK]
            produce(
                self.broker.bootstrap_servers,
                self.topic,
                chunk,
                partitions=N_PARTITIONS,
                first=first,
            )
            self.produced = first + len(chunk)
            ahead = started + self.produced / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        with self._turn:
            self._parked = True
            self._turn.notify_all()

    def hold(self) -> int:
        """Stop producing after the current chunk; return how many records were produced."""
        with self._turn:
            self._held = True
            self._turn.wait_for(lambda: self._parked, timeout=60)
            return self.produced

    def release(self) -> None:
        with self._turn:
            self._held = False
            self._turn.notify_all()


def _stored(broker: EmbeddedBroker, topic: str) -> int:
    """The records the newest statistics record of every partition holds (offsets summed)."""
    channel = KafkaStatisticsChannel(
        f"{topic}.statistics",
        "sensors",
        {"bootstrap_servers": broker.bootstrap_servers},
        {"bootstrap_servers": broker.bootstrap_servers},
    )
    try:
        newest = {record.partition: record for record in channel.catch_up(timeout=10.0)}
    finally:
        channel.close()
    return sum(record.offset or 0 for record in newest.values())


class _Group:
    """The replicas of one run: configs, processes, the pause log, the broker and stream."""

    def __init__(self, workdir: Path, broker: EmbeddedBroker, topic: str, stream: _Stream) -> None:
        self.workdir = workdir
        self.broker = broker
        self.topic = topic
        self.stream = stream
        self.running: list[tuple[DaemonProcess, int]] = []
        self.paused_at: list[float] = []
        self.readers = [SnapshotReader(broker.bootstrap_servers, f"{topic}.models")]
        """One reader per life of the broker (the output topic starts empty after a restart)."""
        self.produced_before = 0  # records produced before the last broker restart
        self._made = 0

    def start(self) -> DaemonProcess:
        i = self._made
        self._made += 1
        config, port = daemon_config_with_metrics(
            self.workdir / f"replica{i}" / "daemon.yaml",
            bootstrap=self.broker.bootstrap_servers,
            topic=self.topic,
            group=f"{self.topic}-group",
            output={"statistics_topic": f"{self.topic}.statistics"},
            state={"checkpoint_every_seconds": 1.0},
        )
        daemon = DaemonProcess(config, self.workdir / f"replica{i}.log")
        self.running.append((daemon, port))
        return daemon

    def apply(self, fault: Fault) -> None:
        if not self.running and fault.kind != "add":
            return
        index = fault.target % max(1, len(self.running))
        if fault.kind == "kill":
            daemon, _ = self.running.pop(index)
            daemon.kill()
            self.start()
        elif fault.kind == "pause":
            daemon, _ = self.running[index]
            self.paused_at.append(time.time())
            daemon.signal(signal.SIGSTOP)
            time.sleep(PAUSE_SECONDS)
            daemon.signal(signal.SIGCONT)
        elif fault.kind == "rolling_restart":
            for _ in range(len(self.running)):
                daemon, _ = self.running.pop(0)
                daemon.stop()
                self.start().wait_for_log(" assigned; ", timeout=60)
        elif fault.kind == "add":
            self.start()
        elif fault.kind == "remove" and len(self.running) > 1:
            daemon, _ = self.running.pop(index)
            daemon.stop()
        elif fault.kind == BROKER_RESTART:
            self.restart_broker()

    def create_topics(self) -> None:
        topic = self.topic
        self.broker.create_topics([topic], partitions=N_PARTITIONS)
        self.broker.create_topics([f"{topic}.models", f"{topic}.dead", f"{topic}.statistics"])

    def restart_broker(self) -> None:
        """Hold the stream until the replicas stored and published every record produced,
        restart the broker empty, create the topics and release the stream."""
        produced = self.stream.hold()
        try:
            deadline = time.monotonic() + STORE_SECONDS
            # the offsets count the records of the current logs: those since the last restart
            while _stored(self.broker, self.topic) != produced - self.produced_before:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the {produced} records were not stored in time")
                time.sleep(0.5)
            self.readers[-1].wait_for(
                lambda s: s["n_seen"] == produced, STORE_SECONDS, "with the records stored"
            )
            self.readers[-1].close()
            # The replicas are held while the broker is away, so that their metadata requests
            # cannot make it create a topic with its default number of partitions before the
            # nemesis creates it as deploy/ does (auto-creation is off in production).
            self.paused_at.append(time.time())
            for daemon, _ in self.running:
                daemon.signal(signal.SIGSTOP)
            try:
                self.broker.stop()
                self.broker.restart()  # same port, no topics, no data, no groups
                self.create_topics()
            finally:
                for daemon, _ in self.running:
                    daemon.signal(signal.SIGCONT)
            self.produced_before = produced
            self.readers.append(
                SnapshotReader(self.broker.bootstrap_servers, f"{self.topic}.models")
            )
        finally:
            self.stream.release()

    def stop(self) -> None:
        for daemon, _ in self.running:
            daemon.stop()


def _check(readers: list[SnapshotReader], paused_at: list[float], outcome: Outcome) -> None:
    """The invariants on every snapshot of the output topic, in topic order (the topic of
    each life of the broker, one after the other)."""
    readers[-1].poll()
    snapshots = [snapshot for reader in readers for snapshot in reader.snapshots]
    outcome.versions = len(snapshots)
    if max((s["n_seen"] for s in snapshots), default=0) > N_RECORDS:
        outcome.violations.append("a published model counted a record twice")
    newest: tuple[int, float] | None = None
    for snapshot in snapshots:
        # streamem's SnapshotReader skips a snapshot older than the newest in version and
        # build time: only a member paused before it built it may deliver one
        made = (snapshot["version"], float(snapshot["timestamp"]))
        if newest is not None and made[0] <= newest[0] and made[1] <= newest[1]:
            if not any(made[1] < at for at in paused_at):
                outcome.violations.append(f"version {made[0]} delivered late without a pause")
            continue
        if newest is not None and made[0] <= newest[0]:
            outcome.violations.append(f"version {made[0]} after {newest[0]}, built later")
        newest = made


def _healthz(port: int, timeout: float = 30.0) -> int:
    """``/healthz``'s status, once the endpoint of a replica that just started is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(port, "/healthz")[0]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_schedule(
    seed: int, workdir: Path, n_faults: int = 3, kinds: tuple[str, ...] = KINDS
) -> Outcome:
    """Run one seeded schedule on a fresh broker; return what it found (never raises for a
    violation: the caller decides)."""
    faults = schedule(seed, n_faults, kinds)
    outcome = Outcome(seed, faults)
    started = time.monotonic()
    topic = f"chaos-{seed}"
    _, values = readings(N_RECORDS, np.random.default_rng(seed))
    with EmbeddedBroker() as broker:
        stream = _Stream(broker, topic, values)
        group = _Group(workdir, broker, topic, stream)
        group.create_topics()
        try:
            for _ in range(2):
                group.start()
            for daemon, _ in group.running:
                daemon.wait_for_log(" assigned; ", timeout=60)
            t0 = time.monotonic()
            stream.thread.start()
            for fault in faults:
                time.sleep(max(0.0, t0 + fault.at - time.monotonic()))
                try:
                    group.apply(fault)
                except AssertionError as stuck:  # a replica started by the fault never joined
                    outcome.violations.append(f"{fault.kind}: {str(stuck).splitlines()[0]}")
            stream.thread.join(120)
            try:
                final = group.readers[-1].wait_for(
                    lambda s: s["n_seen"] == N_RECORDS, SETTLE_SECONDS, "with every record"
                )
                outcome.final_n_seen = final["n_seen"]
            except AssertionError as missing:
                outcome.violations.append(str(missing))
            time.sleep(2.0)  # late writes, if any, come now
            _check(group.readers, group.paused_at, outcome)
            for daemon, port in group.running:
                if not daemon.running:
                    outcome.violations.append(f"{daemon.log_path.name} exited")
                elif _healthz(port) != 200:
                    outcome.violations.append(f"{daemon.log_path.name} /healthz not 200")
        finally:
            group.readers[-1].close()
            group.stop()
    outcome.seconds = time.monotonic() - started
    return outcome
