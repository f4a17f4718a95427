"""A seeded nemesis against scale-out replicas on the real broker, and the invariants it checks.

A *schedule* (made from a seed by :func:`schedule`) is a list of faults at times after the
stream starts: SIGKILL of a replica (a new one started in its place), SIGSTOP past the session
timeout then SIGCONT, a SIGTERM rolling restart of every replica, a replica added, a replica
removed (SIGTERM, not replaced). :func:`run_schedule` starts 2 replicas on a fresh broker,
produces a seeded stream while it applies the faults, and checks, within a stated time after
the stream and the faults end:

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamem.service.broker import EmbeddedBroker
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
KINDS = ("kill", "pause", "rolling_restart", "add", "remove")


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, when (seconds after the stream starts) and which replica (an index
    into the running ones, modulo their number)."""

    kind: str
    at: float
    target: int


def schedule(seed: int, n_faults: int = 3) -> list[Fault]:
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
    return [Fault(chooser.choice(KINDS), at, chooser.randrange(8)) for at in times]


@dataclass
class Outcome:
    """What one schedule did and found."""

    seed: int
    faults: list[Fault]
    violations: list[str] = field(default_factory=list)
    final_n_seen: int | None = None
    versions: int = 0
    seconds: float = 0.0


class _Group:
    """The replicas of one run: configs, processes, the pause log."""

    def __init__(self, workdir: Path, broker: EmbeddedBroker, topic: str) -> None:
        self.workdir = workdir
        self.broker = broker
        self.topic = topic
        self.running: list[tuple[DaemonProcess, int]] = []
        self.paused_at: list[float] = []
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

    def stop(self) -> None:
        for daemon, _ in self.running:
            daemon.stop()


def _check(reader: SnapshotReader, paused_at: list[float], outcome: Outcome) -> None:
    """The invariants on every snapshot of the output topic, in topic order."""
    reader.poll()
    snapshots = reader.snapshots
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


def run_schedule(seed: int, workdir: Path, n_faults: int = 3) -> Outcome:
    """Run one seeded schedule on a fresh broker; return what it found (never raises for a
    violation: the caller decides)."""
    faults = schedule(seed, n_faults)
    outcome = Outcome(seed, faults)
    started = time.monotonic()
    topic = f"chaos-{seed}"
    _, values = readings(N_RECORDS, np.random.default_rng(seed))
    with EmbeddedBroker() as broker:
        broker.create_topics([topic], partitions=N_PARTITIONS)
        broker.create_topics([f"{topic}.models", f"{topic}.dead", f"{topic}.statistics"])
        group = _Group(workdir, broker, topic)
        reader = SnapshotReader(broker.bootstrap_servers, f"{topic}.models")
        try:
            for _ in range(2):
                group.start()
            for daemon, _ in group.running:
                daemon.wait_for_log(" assigned; ", timeout=60)
            producer = threading.Thread(
                target=produce,
                args=(broker.bootstrap_servers, topic, values),
                kwargs={"partitions": N_PARTITIONS, "rate": RATE},
            )
            t0 = time.monotonic()
            producer.start()
            for fault in faults:
                time.sleep(max(0.0, t0 + fault.at - time.monotonic()))
                try:
                    group.apply(fault)
                except AssertionError as stuck:  # a replica started by the fault never joined
                    outcome.violations.append(f"{fault.kind}: {str(stuck).splitlines()[0]}")
            producer.join(120)
            try:
                final = reader.wait_for(
                    lambda s: s["n_seen"] == N_RECORDS, SETTLE_SECONDS, "with every record"
                )
                outcome.final_n_seen = final["n_seen"]
            except AssertionError as missing:
                outcome.violations.append(str(missing))
            time.sleep(2.0)  # late writes, if any, come now
            _check(reader, group.paused_at, outcome)
            for daemon, port in group.running:
                if not daemon.running:
                    outcome.violations.append(f"{daemon.log_path.name} exited")
                elif _healthz(port) != 200:
                    outcome.violations.append(f"{daemon.log_path.name} /healthz not 200")
        finally:
            reader.close()
            group.stop()
    outcome.seconds = time.monotonic() - started
    return outcome
