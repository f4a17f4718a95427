"""``streamem demo``: the whole system on this machine, in one command, for ``duration`` seconds.

It starts, each on a free loopback port:

1. a Kafka-protocol broker (:class:`~streamem.service.broker.EmbeddedBroker`, Tansu, memory only)
   with a ``sensors`` topic of three partitions;
2. the daemon, ``streamem run`` in a child process, with a configuration written to the output
   directory (``daemon.yaml``) and its metrics endpoint;
3. a producer of synthetic readings (four machines in three operating modes) whose regime
   changes half-way: the machines run hotter and mostly at heavy load.

A live view shows what the daemon publishes. At the end (``duration`` or Ctrl-C) the producer
stops, the daemon gets SIGTERM (it learns what it has, publishes, checkpoints and exits), the
broker stops, and the output directory receives ``model.json`` (the learned model, which
``GaussianMixture.from_json`` loads), ``snapshots.ndjson`` (every published version),
``demo.png`` (the mixture and its learning curve) and ``daemon.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streamem.commands.produce import Message, paced, send_records, synthetic_records
from streamem.commands.snapshots import SnapshotReader
from streamem.commands.summary import MixtureSummary
from streamem.errors import StreamemError
from streamem.service.broker import EmbeddedBroker, free_loopback_port, start_daemon
from streamem.service.checkpoint import CheckpointStore, partition_set_key
from streamem.service.config import load_config
from streamem.synthetic import FEATURES, SensorStream

__all__ = ["DemoResult", "run_demo"]

MODEL_NAME = "sensors"
INPUT_TOPIC = "sensors"
OUTPUT_TOPIC = "streamem.models"
DEAD_LETTER_TOPIC = "streamem.dead-letter"
PARTITIONS = 3
_STOP_SECONDS = 15.0  # the daemon's clean stop; it is killed after that
_PLOT_ROWS = 4_000  # newest readings drawn behind the final mixture


@dataclass
class DemoResult:
    """Where the demo wrote its files, and what it saw."""

    out_dir: Path
    produced: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        """The learned model (``GaussianMixture`` JSON)."""
        return self.out_dir / "model.json"

    @property
    def snapshots_path(self) -> Path:
        """Every published snapshot, one JSON document per line."""
        return self.out_dir / "snapshots.ndjson"

    @property
    def plot_path(self) -> Path:
        """The mixture over the newest readings, and the learning curve."""
        return self.out_dir / "demo.png"


def daemon_config(
    bootstrap_servers: str, out_dir: Path, metrics_port: int, seed: int
) -> dict[str, Any]:
    """The demo daemon's configuration (the schema of ``configs/*.yaml``)."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap_servers,
            "group_id": "streamem-demo",
            "topics": [INPUT_TOPIC],
            "client_id": "streamem-demo",
            # short group timings: the daemon joins in about a second (a demo, not production)
            "consumer": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500},
        },
        "input": {"format": "json", "features": list(FEATURES)},
        "output": {
            "topic": OUTPUT_TOPIC,
            "dead_letter_topic": DEAD_LETTER_TOPIC,
            "publish_every_batches": 1,
            "publish_every_seconds": 1.0,
        },
        "batching": {"batch_size": 500, "max_wait_ms": 250},
        "model": {
            "name": MODEL_NAME,
            "n_components": 3,
            "covariance_type": "full",
            "init_size": 2000,
            "n_init": 3,
            "seed": seed,
            "schedule": {"kind": "power", "alpha": 0.6, "t0": 2.0},
        },
        "drift": {"enabled": True, "response": "boost", "boost_step_size": 0.3},
        "state": {"dir": str(out_dir / "state"), "checkpoint_every_seconds": 2.0},
        "metrics": {"enabled": True, "address": "127.0.0.1", "port": metrics_port},
        "logging": {"level": "INFO", "format": "text"},
    }


class _Producer(threading.Thread):
    """Sends the synthetic readings at ``rate`` per second until stopped."""

    def __init__(self, bootstrap_servers: str, rate: float, change_after: int, seed: int) -> None:
        super().__init__(name="streamem-demo-producer", daemon=True)
        self.stream = SensorStream(change_after=change_after, seed=seed)
        self.recent: deque[bytes] = deque(maxlen=_PLOT_ROWS)  # parsed once, for the plot
        self.stop = threading.Event()
        self.sent = 0
        """Readings handed to the producer so far (the live view and the final line show it)."""
        self.error: BaseException | None = None
        self._bootstrap_servers = bootstrap_servers
        self._rate = rate

    def run(self) -> None:
        try:
            self.sent = send_records(
                self._bootstrap_servers,
                INPUT_TOPIC,
                paced(self._remembered(synthetic_records(self.stream)), self._rate, self.stop),
                on_sent=self._count,
            )
        except BaseException as error:  # reported by the demo, which stops cleanly
            self.error = error

    def _count(self, sent: int) -> None:
        self.sent = sent

    def _remembered(self, messages: Iterator[Message]) -> Iterator[Message]:
        """``messages``, keeping the newest readings for the plot."""
        for key, value in messages:
            self.recent.append(value)
            yield key, value


def run_demo(
    duration: float = 30.0,
    *,
    rate: float = 3_000.0,
    out_dir: str | Path = "streamem-demo",
    seed: int = 0,
    console: Any = None,
) -> DemoResult:
    """Run the demo (see the module docstring) and return where its files are.

    Parameters
    ----------
    duration
        Seconds of streaming; Ctrl-C ends it earlier (the results are still written).
    rate
        Readings per second.
    out_dir
        The directory for the results (created; files of a previous demo are replaced).
    seed
        Seed of the synthetic readings and of the model's initialisation.
    console
        A :class:`rich.console.Console` for the live view; a new one by default.
    """
    from rich.console import Console

    console = console or Console()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "state").glob("*.json"):
        stale.unlink()
    result = DemoResult(out_dir, produced=0)
    with EmbeddedBroker() as broker:
        broker.create_topics([INPUT_TOPIC], partitions=PARTITIONS)
        broker.create_topics([OUTPUT_TOPIC, DEAD_LETTER_TOPIC])
        metrics_port = free_loopback_port()
        config = daemon_config(broker.bootstrap_servers, out_dir, metrics_port, seed)
        config_path = out_dir / "daemon.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        load_config(config_path, environ={})  # a mistake here is the demo's, not the user's
        console.print(
            f"broker on {broker.bootstrap_servers}, daemon metrics on "
            f"http://127.0.0.1:{metrics_port}/metrics, config {config_path}",
            soft_wrap=True,
        )
        reader = SnapshotReader(broker.bootstrap_servers, OUTPUT_TOPIC, MODEL_NAME)
        producer = _Producer(broker.bootstrap_servers, rate, int(rate * duration / 2), seed)
        daemon: subprocess.Popen[bytes] | None = None
        try:
            daemon = _start_daemon(config_path, out_dir / "daemon.log")
            started = time.monotonic()
            producer.start()
            with _live(console) as live:
                try:
                    while (elapsed := time.monotonic() - started) < duration:
                        result.snapshots.extend(reader.poll(0.25))
                        _check_alive(daemon, producer, out_dir)
                        live.update(_view(result.snapshots, producer, elapsed, duration))
                except KeyboardInterrupt:
                    console.print("stopping early (Ctrl-C)")
            console.print(
                "finishing: the daemon learns what was produced, publishes and stops "
                "(Ctrl-C again aborts without writing the results)"
            )
            producer.stop.set()
            producer.join(timeout=10)
            _check_alive(daemon, producer, out_dir)
            result.snapshots.extend(_catch_up(reader, producer, result.snapshots))
            _stop(daemon)
            result.snapshots.extend(_drain(reader))
        finally:
            producer.stop.set()
            if producer.ident is not None:  # started
                producer.join(timeout=10)
            reader.close()
            if daemon is not None:
                _stop(daemon)
    result.produced = producer.sent
    change_at = producer.stream.change_after
    changed = _regime_changed(change_at, producer.sent)  # not if stopped early, before it
    _write_results(result, config, producer.recent, change_at if changed else None)
    return result


def _regime_changed(change_after: int | None, sent: int) -> bool:
    """Whether readings of the changed regime were sent (the first ``change_after`` are not).

    >>> _regime_changed(45_000, 12_000), _regime_changed(45_000, 45_001), _regime_changed(None, 9)
    (False, True, False)
    """
    return change_after is not None and sent > change_after


@contextmanager
def _live(console: Any) -> Iterator[Any]:
    """A rich ``Live`` view whose last frame ends its line also without a terminal (rich
    leaves it open there, and the next line printed would be glued to the box)."""
    from rich.live import Live

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        yield live
    if not console.is_terminal:
        console.line()


def _start_daemon(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    # a session of its own: Ctrl-C reaches the demo, which stops the daemon in order
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMEM_")}
    with log_path.open("wb") as log:
        return start_daemon(config_path, log, environment)


def _check_alive(daemon: subprocess.Popen[bytes], producer: _Producer, out_dir: Path) -> None:
    if daemon.poll() is not None:
        raise StreamemError(
            f"the daemon exited with code {daemon.returncode}; see {out_dir / 'daemon.log'}"
        )
    if producer.error is not None:
        raise StreamemError(f"the producer failed: {producer.error}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _catch_up(
    reader: SnapshotReader, producer: _Producer, seen: list[dict[str, Any]], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Wait (up to ``timeout`` s) until a published model counts every reading produced."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = (seen + found)[-1:]
        if newest and newest[0]["n_seen"] >= producer.sent:
            break
        found.extend(reader.poll(0.25))
    return found


def _drain(reader: SnapshotReader, quiet_seconds: float = 1.0) -> list[dict[str, Any]]:
    """The snapshots still on their way: read until none came for ``quiet_seconds``."""
    found: list[dict[str, Any]] = []
    while news := reader.poll(quiet_seconds):
        found.extend(news)
    return found


def _view(
    snapshots: list[dict[str, Any]], producer: _Producer, elapsed: float, duration: float
) -> Any:
    from rich.table import Table

    table = Table(title=f"streamem demo: {elapsed:4.0f} s of {duration:.0f} s", show_header=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    changed = _regime_changed(producer.stream.change_after, producer.sent)
    regime = "changed (hotter, heavier load)" if changed else "normal"
    table.add_row("produced", f"{producer.sent:,} readings, regime {regime}")
    if not snapshots:
        table.add_row("model", "warming up (the daemon joins the group, then buffers 2,000 points)")
        return table
    last = snapshots[-1]
    rate = _learning_rate(snapshots)
    table.add_row(
        "learned", f"{last['n_seen']:,} readings ({rate:,.0f}/s), version {last['version']}"
    )
    table.add_row(
        "log-likelihood",
        f"{last['mean_log_likelihood']:.3f} per point "
        f"(smoothed {last['smoothed_log_likelihood']:.3f})",
    )
    table.add_row(
        "convergence",
        f"step size {last['step_size']:.3f}, parameter change {last['parameter_change']:.4f}, "
        f"{'converged' if last['converged'] else 'learning'}",
    )
    table.add_row("drift events", str(last["drift_events"]))
    means = np.asarray(last["means"])
    for j in np.argsort(means[:, 0]):
        weight = last["weights"][j]
        centre = "  ".join(
            f"{name} {value:.1f}" for name, value in zip(last["features"], means[j], strict=True)
        )
        table.add_row(f"component {j}", f"{'█' * round(weight * 20):<20} {weight:.2f}  {centre}")
    return table


def _learning_rate(snapshots: list[dict[str, Any]], window: float = 5.0) -> float:
    last = snapshots[-1]
    earlier = [s for s in snapshots if s["timestamp"] <= last["timestamp"] - window] or snapshots[
        :1
    ]
    seconds = last["timestamp"] - earlier[-1]["timestamp"]
    return (last["n_seen"] - earlier[-1]["n_seen"]) / seconds if seconds > 0 else 0.0


def _write_results(
    result: DemoResult,
    config: dict[str, Any],
    recent: Iterable[bytes],
    change_at: int | None,
) -> None:
    from streamem.commands.plot import plot_summary

    if not result.snapshots:
        raise StreamemError(
            f"the daemon published no model; see {result.out_dir / 'daemon.log'} (a longer "
            "--duration gives it time to join and warm up)"
        )
    with result.snapshots_path.open("w", encoding="utf-8") as out:
        for snapshot in result.snapshots:
            out.write(json.dumps(snapshot) + "\n")
    last = result.snapshots[-1]
    partitions = [(INPUT_TOPIC, p) for p in range(PARTITIONS)]
    store = CheckpointStore(config["state"]["dir"], partition_set_key(MODEL_NAME, partitions))
    checkpoint = store.load()
    if checkpoint is None:
        raise StreamemError(f"the daemon wrote no checkpoint in {store.path.parent}")
    estimator = checkpoint.model["estimator"]
    estimator["state"]["feature_names_in"] = list(last["features"])
    result.model_path.write_text(json.dumps(estimator), encoding="utf-8")
    readings = [json.loads(value) for value in recent]
    data = np.array([[reading[f] for f in last["features"]] for reading in readings]).reshape(
        -1, len(last["features"])
    )
    marks = [] if change_at is None else [(change_at, "regime change in the readings")]
    summary = MixtureSummary.from_snapshots(result.snapshots)
    plot_summary(summary, result.plot_path, data=data, marks=marks)
