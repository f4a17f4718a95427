"""Aggregate JSON-path throughput of one daemon next to one and two scale-out replicas.

One Tansu broker on loopback; ``--records`` JSON sensor readings (the record shape of
``benchmarks/daemon_throughput.py``) are produced round-robin onto a topic of ``--partitions``
partitions before anything is timed. Three configurations then learn them, in turn within every
repetition (``--repeat``), each run with a new consumer group, new state directories and new
output topics:

1. ``1 daemon``: one daemon, no ``output.statistics_topic`` (the single-replica path);
2. ``1 replica, scale-out``: one replica with ``output.statistics_topic`` set (the overhead of
   the scale-out path on its own);
3. ``2 replicas, scale-out``: two replicas of one group with the statistics topic.

Every replica is a separate process (``python -m streamem run --config FILE``, the settings of
``daemon_throughput.settings_for`` with the metrics endpoint on a free loopback port). The
window opens once the group has settled (every replica owns a partition and the
``streamem_assigned_partitions`` gauges add up to the partition count) and closes when the sum
of ``streamem_points_learned_total`` over the replicas reaches the record count (the endpoints
are scraped every 50 ms). The rate is the points learned inside the window (points learned
before the group settled are left out) over its length; the CPU seconds of every replica and of
the broker over the window come from ``/proc/<pid>/stat`` (user + system). After the window the
model published on the run's model topic must have ``n_seen`` equal to the record count. The
table gives the best run of each configuration (highest rate) and the median rate. The steady
rate leaves out the window's start and end: it spans the scrapes at which 10% and 90% of the
window's points were learned (the start holds the non-leader replicas' wait for the first
global parameters, the end the last partial batches, which close on ``max_wait_ms``).

Run: python benchmarks/scaleout.py [--records 600000] [--repeat 3] [--partitions 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from daemon_throughput import json_records, produce, settings_for

from streamem.service.broker import EmbeddedBroker, free_loopback_port, start_daemon
from streamem.synthetic import SensorModes

TOPIC = "bench-scaleout"
SCRAPE_SECONDS = 0.05
SETTLE_TIMEOUT = 120.0
LEARN_TIMEOUT = 900.0
PUBLISH_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STEADY = (0.1, 0.9)  # the part of the window's points that the steady rate spans


@dataclass(frozen=True)
class Configuration:
    label: str
    key: str
    replicas: int
    scale_out: bool


CONFIGURATIONS = (
    Configuration("1 daemon (no statistics topic)", "single", 1, False),
    Configuration("1 replica, scale-out", "one", 1, True),
    Configuration("2 replicas, scale-out", "two", 2, True),
)


@dataclass(frozen=True)
class Measurement:
    seconds: float
    points: int  # learned inside the window
    before: int  # learned before the group settled
    replica_cpu: tuple[float, ...]
    broker_cpu: float
    driver_cpu: float  # this script's, scraping the endpoints
    n_seen: int | None  # of the newest published model
    trace: tuple[tuple[float, int], ...]  # (seconds into the window, points learned in all)

    @property
    def rate(self) -> float:
        return self.points / self.seconds

    @property
    def steady_rate(self) -> float:
        """The rate between the scrapes where the window's first 10% and 90% were learned."""
        total = self.points + self.before
        low = self.before + STEADY[0] * self.points
        high = self.before + STEADY[1] * self.points
        start = next((t, n) for t, n in self.trace if n >= low)
        end = next((t, n) for t, n in self.trace if n >= min(high, total))
        return (end[1] - start[1]) / (end[0] - start[0]) if end[0] > start[0] else self.rate


class Replica:
    """``python -m streamem run --config <config>`` as a child process, stopped by its pid."""

    def __init__(self, config: Path, port: int) -> None:
        self.port = port
        self.log_path = config.with_suffix(".log")
        with open(self.log_path, "wb") as log:
            self.proc = start_daemon(config, log)

    def metrics(self) -> dict[str, float]:
        """The unlabelled samples of its ``/metrics`` (empty while the endpoint is not up)."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"replica exited with {self.proc.returncode}:\n{tail}")
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        samples = (line.split() for line in text.splitlines() if line and line[0] != "#")
        return {fields[0]: float(fields[1]) for fields in samples if "{" not in fields[0]}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields 3 onwards: utime is 14, stime 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def write_config(
    path: Path, bootstrap: str, config: Configuration, run: int, replica: int, port: int
) -> Path:
    """The replica's config file: ``settings_for`` with its group, outputs, state and port."""
    name = f"{config.key}-{run}"
    output = {"topic": f"{TOPIC}.{name}.models", "dead_letter_topic": f"{TOPIC}.{name}.dead"}
    if config.scale_out:
        output["statistics_topic"] = f"{TOPIC}.{name}.statistics"
    settings = settings_for(
        bootstrap,
        TOPIC,
        path.parent,
        run,
        name=f"{config.key}-r{replica}",
        kafka={"group_id": f"bench-scaleout-{name}"},
        output=output,
        metrics={"enabled": True, "port": port},
    )
    path.write_text(json.dumps(settings.model_dump(mode="json", exclude_defaults=True)))
    return path


def scrape(replicas: list[Replica], name: str) -> list[float]:
    """The sample ``name`` of every replica (0 where it is absent)."""
    return [replica.metrics().get(name, 0.0) for replica in replicas]


def wait_settled(replicas: list[Replica], partitions: int) -> None:
    """Wait until every replica owns a partition and their partitions add up to ``partitions``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        assigned = scrape(replicas, "streamem_assigned_partitions")
        if min(assigned) >= 1 and sum(assigned) == partitions:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the group did not settle in {SETTLE_TIMEOUT} s: {assigned}")
        time.sleep(SCRAPE_SECONDS)


def points_learned(replicas: list[Replica]) -> int:
    return int(sum(scrape(replicas, "streamem_points_learned_total")))


def wait_learned(replicas: list[Replica], count: int) -> list[tuple[float, int]]:
    """Wait until the replicas learned ``count`` points in all; return every scrape until then
    as (seconds since the call, points learned in all)."""
    started = time.perf_counter()
    deadline = time.monotonic() + LEARN_TIMEOUT
    trace = []
    while True:
        learned = points_learned(replicas)
        trace.append((time.perf_counter() - started, learned))
        if learned >= count:
            return trace
        if time.monotonic() > deadline:
            raise RuntimeError(f"{learned:,} of {count:,} points learned in {LEARN_TIMEOUT} s")
        time.sleep(SCRAPE_SECONDS)


def published_n_seen(bootstrap: str, topic: str, count: int) -> int | None:
    """``n_seen`` of the newest model on ``topic``, once it is ``count`` (or after a timeout)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    newest: int | None = None
    deadline = time.monotonic() + PUBLISH_TIMEOUT
    try:
        while newest != count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                newest = json.loads(records[-1].value)["n_seen"]
    finally:
        consumer.close()
    return newest


@dataclass(frozen=True)
class Bench:
    """Where the runs happen: the broker with the pre-produced topic, and a scratch directory."""

    broker: EmbeddedBroker
    workdir: Path
    partitions: int
    records: int


def start_replicas(bench: Bench, config: Configuration, run: int) -> list[Replica]:
    replicas = []
    try:
        for i in range(config.replicas):
            port = free_loopback_port()
            path = bench.workdir / f"{config.key}-{run}-r{i}.yaml"
            write_config(path, bench.broker.bootstrap_servers, config, run, i, port)
            replicas.append(Replica(path, port))
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


def measure(bench: Bench, config: Configuration, run: int) -> Measurement:
    """Run ``config`` once on the pre-produced topic and measure its window."""
    name = f"{config.key}-{run}"
    outputs = [f"{TOPIC}.{name}.{kind}" for kind in ("models", "dead", "statistics")]
    bench.broker.create_topics(outputs if config.scale_out else outputs[:2])
    broker_pid = bench.broker.pid
    assert broker_pid is not None
    replicas = start_replicas(bench, config, run)
    try:
        wait_settled(replicas, bench.partitions)
        before = points_learned(replicas)
        replica_start = [cpu_seconds(replica.proc.pid) for replica in replicas]
        broker_start = cpu_seconds(broker_pid)
        driver_start = time.process_time()
        started = time.perf_counter()
        trace = wait_learned(replicas, bench.records)
        learned = trace[-1][1]
        seconds = time.perf_counter() - started
        replica_end = [cpu_seconds(replica.proc.pid) for replica in replicas]
        broker_end = cpu_seconds(broker_pid)
        driver = time.process_time() - driver_start
        n_seen = published_n_seen(bench.broker.bootstrap_servers, outputs[0], bench.records)
    finally:
        for replica in replicas:
            replica.stop()
    return Measurement(
        seconds=seconds,
        points=learned - before,
        before=before,
        replica_cpu=tuple(e - s for s, e in zip(replica_start, replica_end, strict=True)),
        broker_cpu=broker_end - broker_start,
        driver_cpu=driver,
        n_seen=n_seen,
        trace=tuple(trace),
    )


def row(
    config: Configuration, runs: list[Measurement], base: tuple[float, float], records: int
) -> str:
    """The table row of ``config``: its best run (highest rate) and the median rate, over the
    whole window and over its steady part (``base``: one daemon's best of each)."""
    best = max(runs, key=lambda m: m.rate)
    cpu = f"{sum(best.replica_cpu):.1f}"
    if len(best.replica_cpu) > 1:
        cpu += " (" + " + ".join(f"{c:.1f}" for c in best.replica_cpu) + ")"
    exact = sum(m.n_seen == records for m in runs)
    seen = sorted({m.n_seen for m in runs}, key=lambda n: -1 if n is None else n)
    check = f"{exact}/{len(runs)} exact" + ("" if exact == len(runs) else f" (saw {seen})")
    cells = [
        config.label,
        str(config.replicas),
        f"{records:,}",
        f"{best.seconds:.2f}",
        f"{best.rate:,.0f}",
        f"{statistics.median(m.rate for m in runs):,.0f}",
        f"{best.rate / base[0]:.2f}x",
        f"{max(m.steady_rate for m in runs):,.0f}",
        f"{max(m.steady_rate for m in runs) / base[1]:.2f}x",
        cpu,
        f"{best.broker_cpu:.1f}",
        check,
    ]
    return "| " + " | ".join(cells) + " |"


def report(results: dict[Configuration, list[Measurement]], records: int) -> None:
    def best(config: Configuration, steady: bool = False) -> float:
        return max(m.steady_rate if steady else m.rate for m in results[config])

    single, one, two = CONFIGURATIONS
    base = (best(single), best(single, steady=True))
    print()
    print(
        "| configuration | replicas | records | best s | records/s (best) | median records/s "
        "| speed-up vs 1 daemon | steady records/s (best) | steady speed-up | replica CPU s "
        "| broker CPU s | n_seen check |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for config, runs in results.items():
        print(row(config, runs, base, records))
    print()
    for config, runs in results.items():
        top = max(runs, key=lambda m: m.rate)
        replicas, broker = sum(top.replica_cpu) / top.seconds, top.broker_cpu / top.seconds
        driver = top.driver_cpu / top.seconds
        print(
            f"{config.label}: best window used {replicas:.2f} cores in the replicas, "
            f"{broker:.2f} in the broker and {driver:.2f} in this script "
            f"({replicas + broker + driver:.2f} of {os.cpu_count()}); "
            f"{1e6 * sum(top.replica_cpu) / top.points:.1f} replica CPU us and "
            f"{1e6 * top.broker_cpu / top.points:.1f} broker CPU us per record"
        )
    print()
    for steady, what in ((False, "whole window"), (True, "steady part")):
        print(
            f"goal: 2 replicas >= 1.6x one daemon, {what}: "
            f"{best(two, steady) / best(single, steady):.2f}x "
            f"({best(two, steady) / best(one, steady):.2f}x one scale-out replica)"
        )


def progress(run: int, config: Configuration, m: Measurement) -> None:
    cpu = ", ".join(f"{c:.1f}" for c in m.replica_cpu)
    print(
        f"run {run}, {config.label}: {m.seconds:.2f} s, {m.rate:,.0f} records/s, steady "
        f"{m.steady_rate:,.0f} ({m.before:,} learned before the window), CPU s: replicas "
        f"{cpu}, broker {m.broker_cpu:.1f}, script {m.driver_cpu:.1f}; published n_seen {m.n_seen}",
        flush=True,
    )


def machine_facts() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: os.cpu_count() = {os.cpu_count()}, {platform.machine()}, "
        f"Python {platform.python_version()}, load average before the runs {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    print(machine_facts())
    X, _ = SensorModes.default().sample(args.records, np.random.default_rng(args.seed))
    values = json_records(X)
    results: dict[Configuration, list[Measurement]] = {config: [] for config in CONFIGURATIONS}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        broker.create_topics([TOPIC], partitions=args.partitions)
        produce(broker.bootstrap_servers, TOPIC, values, args.partitions)
        bench = Bench(broker, Path(workdir), args.partitions, args.records)
        for run in range(args.repeat):  # every configuration in turn, so that load affects all
            for config in CONFIGURATIONS:
                results[config].append(measure(bench, config, run))
                progress(run, config, results[config][-1])
    report(results, args.records)


if __name__ == "__main__":
    main()
