"""``inspect``, ``produce`` and ``broker`` against real servers: no silent waits (issue 15,
acceptance 2 and 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem.cli import main
from streamem.commands.produce import paced, send_records, synthetic_records
from streamem.service.broker import EmbeddedBroker, free_loopback_port
from streamem.synthetic import SensorStream
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config,
)

STREAMEM = [sys.executable, "-m", "streamem"]


def test_inspect_of_a_topic_a_daemon_keeps_publishing_to_returns_at_once(
    broker: EmbeddedBroker,
    topic_name: str,
    group_id: str,
    tmp_path: Path,
    daemons: Callable[..., DaemonProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_daemon_topics(broker, topic_name)
    config = daemon_config(
        tmp_path / "daemon.json",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        output={"publish_every_batches": 1, "publish_every_seconds": 0.2},
        batching={"batch_size": 200, "max_wait_ms": 100},
        model={"init_size": 500},
    )
    daemon = daemons(config)
    stop = threading.Event()
    stream = synthetic_records(SensorStream(seed=np.random.default_rng(0).integers(1000)))
    producer = threading.Thread(
        target=send_records,
        args=(broker.bootstrap_servers, topic_name, paced(stream, 3000.0, stop)),
        daemon=True,
    )
    producer.start()
    command = ["inspect", "--bootstrap-servers", broker.bootstrap_servers]
    command += ["--topic", f"{topic_name}.models", "--model", "sensors"]
    try:
        daemon.wait_for_log("assigned", timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and main(command) != 0:  # until the first version
            capsys.readouterr()
            time.sleep(0.5)
        capsys.readouterr()
        durations = []
        for _ in range(3):  # the daemon publishes about every 0.1-0.2 s all along
            started = time.monotonic()
            assert main(command) == 0
            durations.append(time.monotonic() - started)
            assert "sensors: 3 full-covariance components" in " ".join(
                capsys.readouterr().out.split()
            )
        print(f"inspect of a live topic took {[round(d, 2) for d in durations]} s")
        assert max(durations) < 5.0
        assert daemon.log().count("rejected") == 0
    finally:
        stop.set()
        producer.join(timeout=15)


def test_produce_and_inspect_fail_fast_naming_the_unreachable_broker() -> None:
    commands = {
        "produce": [*STREAMEM, "produce", "--bootstrap-servers", "127.0.0.1:1", "--count", "5"],
        "inspect": [*STREAMEM, "inspect", "--bootstrap-servers", "127.0.0.1:1"],
    }
    started = time.monotonic()
    processes = {
        name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, command in commands.items()
    }
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        elapsed = time.monotonic() - started
        assert process.returncode == 1, (name, out, err)
        assert elapsed < 12.0, (name, elapsed)
        lines = err.strip().splitlines()
        assert lines == [
            "connecting to 127.0.0.1:1 (--connect-timeout 6 s)",
            "streamem: error: no Kafka broker answered at 127.0.0.1:1 within 6 s: 127.0.0.1:1 "
            "refused the connection (nothing listens there) (raise --connect-timeout to wait "
            "longer, or check the address)",
        ], name


def test_the_broker_command_serves_creates_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    from kafka import KafkaConsumer

    port = free_loopback_port()
    log = tmp_path / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*STREAMEM, "broker", "--port", str(port), "--topics", "readings:3,models"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while "use: --bootstrap-servers" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        assert f"broker ready at 127.0.0.1:{port} (memory only; Ctrl-C stops it)" in text
        assert "topics: readings (3 partitions), models (1 partitions)" in text
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            assert consumer.partitions_for_topic("readings") == {0, 1, 2}
        finally:
            consumer.close()
        taken = subprocess.run(
            [*STREAMEM, "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert taken.returncode == 1
        assert f"--port {port}: 127.0.0.1:{port} is already in use" in taken.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert "broker stopped" in log.read_text()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
