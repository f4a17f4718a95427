"""The smaller attacks of issue 16 (item 6): idle connections to the metrics endpoint, a metrics
port in use, an empty ``state.dir``, a YAML alias bomb.

Before the fix 1,500 idle connections made 1,506 threads, the port in use said only
``[Errno 98] Address already in use``, ``state.dir: ''`` was accepted, and a 9-level alias bomb
took 53 s and 3.2 GB before failing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config,
    daemon_config_with_metrics,
    http_get,
)

BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["kafka: {topics: [*a9]}"]
)


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def _run(config: Path, timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streamem", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stderr + done.stdout, time.monotonic() - started


def test_1500_idle_connections_to_the_metrics_endpoint_do_not_make_1500_threads(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
) -> None:
    create_daemon_topics(broker, topic_name)
    config, port = daemon_config_with_metrics(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
    )
    daemon = daemons(config)
    deadline = time.monotonic() + 30
    while True:
        try:
            if http_get(port, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    before = _threads(daemon.pid)
    idle = []
    try:
        for _ in range(1_500):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1.0)
        during = _threads(daemon.pid)
    finally:
        for connection in idle:
            connection.close()
    print(f"threads: {before} before, {during} with 1,500 idle connections")
    assert during <= before + 40
    deadline = time.monotonic() + 15  # the idle ones are closed after 5 s; the endpoint answers
    while True:
        try:
            if http_get(port, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the endpoint does not answer after the flood"
        time.sleep(0.2)
    assert daemon.running


def test_a_metrics_port_in_use_is_named_with_its_address(
    broker: EmbeddedBroker, tmp_path: Path, topic_name: str, group_id: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = daemon_config(
            tmp_path / "daemon.yaml",
            bootstrap=broker.bootstrap_servers,
            topic=topic_name,
            group=group_id,
            metrics={"enabled": True, "port": port},
        )
        code, output, _ = _run(config)
    assert code != 0
    assert f"127.0.0.1:{port}" in output, output
    assert "metrics.port" in output, output


def test_an_empty_state_dir_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(json.dumps({"state": {"dir": ""}}))
    code, output, _ = _run(config)
    assert code != 0
    assert "state.dir" in output, output


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(BOMB)
    code, output, seconds = _run(config, timeout=120)
    assert code != 0
    assert "aliases" in output, output
    assert seconds < 10, seconds
