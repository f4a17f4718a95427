"""Helpers of the daemon's integration tests: config files, the daemon as a subprocess, data.

The daemon runs as ``python -m streamem run --config FILE`` in its own process group with a
parent-death signal, writes its log to a file, and is stopped through its pid only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamem.service.broker import EmbeddedBroker, free_loopback_port, start_daemon
from streamem.synthetic import FEATURES, SensorModes

__all__ = [
    "DaemonProcess",
    "SnapshotReader",
    "daemon_config",
    "daemon_config_with_metrics",
    "http_get",
    "metric_sample",
    "produce",
    "readings",
    "standardised_errors",
    "wait_consumed",
]

# max_poll_interval_ms is also the rebalance timeout a member sends when it joins: 30 s bounds
# how long a member that dies in the middle of a rebalance may hold the group (kafka-python's
# default is 300 s) and stays far above the longest learning step measured here.
GROUP_TIMING = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "max_poll_interval_ms": 30_000,
}


def daemon_config(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    name: str = "sensors",
    **sections: dict[str, Any],
) -> Path:
    """Write a daemon config (JSON, which is YAML) with fast group timing; return its path.

    The output topics are ``<topic>.models`` and ``<topic>.dead``; the state lives in
    ``path.parent / "state"`` unless ``state`` says otherwise; metrics are off unless asked.
    """
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "topics": [topic],
            "consumer": {**GROUP_TIMING, "fetch_max_wait_ms": 100, "request_timeout_ms": 5000},
            "producer": {"delivery_timeout_ms": 8000, "max_block_ms": 3000},
        },
        "input": {"format": "json", "features": list(FEATURES)},
        "output": {
            "topic": f"{topic}.models",
            "dead_letter_topic": f"{topic}.dead",
            "publish_every_batches": 5,
            "publish_every_seconds": 0.5,
        },
        "batching": {"batch_size": 1000, "max_wait_ms": 200},
        "model": {"name": name, "n_components": 3, "init_size": 2000, "n_init": 3, "seed": 0},
        "drift": {"enabled": True},
        "state": {"dir": str(path.parent / "state"), "checkpoint_every_batches": 10},
        "metrics": {"enabled": False},
        "logging": {"level": "INFO"},
    }
    for section, values in sections.items():
        current = data.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def daemon_config_with_metrics(path: Path, **kwargs: Any) -> tuple[Path, int]:
    """:func:`daemon_config` with the metrics endpoint on a free loopback port: (path, port)."""
    port = free_loopback_port()
    return daemon_config(path, metrics={"enabled": True, "port": port}, **kwargs), port


class DaemonProcess:
    """``python -m streamem run --config <config>`` as a child process.

    Parameters
    ----------
    config
        The config file.
    log_path
        Where its standard output and error go (appended, so restarts share one log).
    """

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        with open(log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = start_daemon(config, log, {**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.running:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: the fixture's clean-up."""
        if not self.running:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_for_log(self, text: str, timeout: float = 20.0, count: int = 1) -> None:
        """Wait until ``text`` occurs ``count`` times in the (shared) log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if not self.running:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not {count}x in the daemon's log:\n{self.log()[-4000:]}")


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET ``http://127.0.0.1:<port><path>``: the status and the body (an HTTP error is an answer;
    a refused connection raises ``OSError``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric_sample(port: int, name: str) -> float | None:
    """The value of the unlabelled sample ``name`` on the daemon's ``/metrics`` (None: absent)."""
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_consumed(port: int, count: int, timeout: float = 30.0) -> None:
    """Wait until the daemon's ``streamem_records_consumed_total`` equals ``count``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if metric_sample(port, "streamem_records_consumed_total") == count:
                return
        except OSError:
            pass  # the endpoint is not up yet
        time.sleep(0.2)
    raise AssertionError(f"the daemon did not read {count} records in {timeout} s")


def readings(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[bytes]]:
    """``n`` synthetic sensor readings and their JSON records (with a sensor id and a time)."""
    X, _ = SensorModes.default().sample(n, rng)
    values = []
    for i, row in enumerate(X.tolist()):
        reading = {"sensor": f"s{i % 7}", "ts": 1_700_000_000 + i / 10}
        reading.update(zip(FEATURES, row, strict=True))
        values.append(json.dumps(reading).encode())
    return X, values


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes | None],
    *,
    partitions: int = 3,
    rate: float | None = None,
    max_request_size: int = 8 * 1024 * 1024,
    first: int = 0,
) -> None:
    """Produce ``values`` round-robin over ``partitions``, optionally at ``rate`` records/s.

    Record ``i`` goes to partition ``(first + i) % partitions``, so that a stream produced in
    pieces lands where it would have landed in one go.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=max_request_size,
        acks=1,
    )
    try:
        started = time.monotonic()
        for i, value in enumerate(values):
            key = b"tombstone" if value is None else None  # Kafka needs a key or a value
            producer.send(topic, key=key, value=value, partition=(first + i) % partitions)
            if rate is not None and i % 500 == 499:
                ahead = started + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def crash_mid_stream(
    bootstrap: str,
    topic: str,
    stream: Sequence[bytes | None],
    start_daemon: Callable[[], DaemonProcess],
    delays: Sequence[float],
    *,
    rate: float,
    before_kill: Callable[[], None] | None = None,
) -> DaemonProcess:
    """SIGKILL a daemon ``len(delays)`` times in the middle of a stream, and return the last
    one started (its partitions assigned).

    The stream arrives while the daemons run: its first part before the first daemon, a part
    after each kill (round-robin over 3 partitions at ``rate`` records/s). Each daemon is
    killed ``delay`` seconds after it got its partitions (and ``before_kill`` returned).
    """
    parts = np.array_split(np.arange(len(stream)), len(delays) + 1)
    crashed = [threading.Event() for _ in parts]
    crashed[0].set()

    def stream_in_parts() -> None:
        for part, crash in zip(parts, crashed, strict=True):
            crash.wait(120)
            chunk = [stream[i] for i in part]
            produce(bootstrap, topic, chunk, rate=rate, first=int(part[0]) if len(part) else 0)

    producer = threading.Thread(target=stream_in_parts)
    producer.start()
    try:
        daemon = start_daemon()
        for crash, delay in enumerate(delays, start=1):
            daemon.wait_for_log(" assigned; ", timeout=30, count=crash)
            if before_kill is not None:
                before_kill()
            time.sleep(delay)
            daemon.kill()
            crashed[crash].set()
            daemon = start_daemon()
        daemon.wait_for_log(" assigned; ", timeout=30, count=len(delays) + 1)
        print(f"SIGKILL {len(delays)}x, {list(delays)} s after the daemon got its partitions")
    finally:
        for event in crashed:
            event.set()
        producer.join()
    return daemon


class SnapshotReader:
    """Reads the published snapshots of a topic (all partitions, from the beginning)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self.snapshots: list[dict[str, Any]] = []
        self.records: list[Any] = []
        self._assigned: set[int] = set()

    def _assign(self) -> None:
        from kafka import TopicPartition

        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        if partitions and set(partitions) != self._assigned:
            self._assigned = set(partitions)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
            self.snapshots, self.records = [], []

    def poll(self) -> None:
        self._assign()
        if not self._assigned:
            time.sleep(0.1)
            return
        for batch in self.consumer.poll(timeout_ms=200).values():
            for record in batch:
                self.records.append(record)
                self.snapshots.append(json.loads(record.value))

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str = ""
    ) -> dict[str, Any]:
        """Return the first snapshot (newest first among those read) that satisfies."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            for snapshot in reversed(self.snapshots):
                if predicate(snapshot):
                    return snapshot
            if time.monotonic() > deadline:
                last = self.snapshots[-1] if self.snapshots else None
                summary = None if last is None else {k: last[k] for k in ("version", "n_seen")}
                raise AssertionError(f"no snapshot {what} within {timeout} s; last: {summary}")

    def close(self) -> None:
        self.consumer.close()


def standardised_errors(
    snapshot: dict[str, Any], truth: SensorModes, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Errors of means (in standard deviations of the data) and weights, components matched.

    The components are matched by their mean temperature (the modes are far apart there).
    """
    scale = X.std(axis=0)
    means = np.asarray(snapshot["means"])
    weights = np.asarray(snapshot["weights"])
    order = np.argsort(means[:, 0])
    truth_order = np.argsort(truth.means[:, 0])
    mean_errors = np.abs(means[order] - truth.means[truth_order]) / scale
    weight_errors = np.abs(weights[order] - truth.weights[truth_order])
    return mean_errors, weight_errors


def all_values(records: Iterable[Any]) -> list[bytes]:
    return [record.value for record in records]


def create_daemon_topics(broker: EmbeddedBroker, topic: str, *extra: str) -> None:
    """The input topic (3 partitions), ``<topic>.models``, ``<topic>.dead`` and any ``extra``."""
    broker.create_topics([topic], partitions=3)
    broker.create_topics([f"{topic}.models", f"{topic}.dead", *extra], partitions=1)
