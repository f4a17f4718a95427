"""The newcomer's commands against real servers: ``demo`` end to end, ``produce`` and ``inspect``
on a real broker (issue 6, acceptance 1)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from streamem import GaussianMixture
from streamem.cli import main
from streamem.service.broker import EmbeddedBroker
from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.snapshot import build_snapshot, encode_snapshot
from tests.integration.servers import read_records

_MARKER = "DEMO_TEST_TOKEN"  # inherited by every process the demo starts


def _processes_with(token: str) -> list[int]:
    """The processes whose environment holds ``_MARKER=token`` (ours or our children's)."""
    needle = f"{_MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone, or not ours
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def test_demo_publishes_a_growing_model_draws_it_and_leaves_no_process(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    out_dir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "streamem", "demo", "--duration", "10", "--out-dir", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, _MARKER: token},
    )
    assert done.returncode == 0, done.stderr + (out_dir / "daemon.log").read_text()
    assert f"model:     {out_dir / 'model.json'}" in done.stdout
    assert _processes_with(token) == []

    lines = (out_dir / "snapshots.ndjson").read_text().splitlines()
    snapshots = [json.loads(line) for line in lines]
    versions = [s["version"] for s in snapshots]
    seen = [s["n_seen"] for s in snapshots]
    assert len(snapshots) >= 3
    assert versions == sorted(set(versions))
    assert seen == sorted(seen)
    assert seen[-1] > seen[0] > 0
    summary = re.search(r"produced ([\d,]+) readings;", done.stdout)
    assert summary is not None, done.stdout
    produced = int(summary.group(1).replace(",", ""))
    assert seen[-1] == produced  # the daemon caught up before it was stopped

    model = GaussianMixture.from_json((out_dir / "model.json").read_text())
    assert model.n_seen_ == produced
    assert list(model.feature_names_in_) == ["temp", "hum", "vib"]
    image = imread(out_dir / "demo.png")
    assert image.ndim == 3
    assert image.shape[0] > 400
    assert image.shape[1] > 800
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank page


def test_ctrl_c_stops_the_demo_early_and_still_writes_the_results(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    out_dir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "streamem", "demo", "--duration", "600", "--out-dir", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, _MARKER: token},
        # as in a terminal: a test runner started in the background may ignore SIGINT, and a
        # child inherits that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(9)  # the daemon joins, warms up and publishes within a few seconds
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 0, stderr
    assert "stopping early (Ctrl-C)" in stdout
    assert (out_dir / "model.json").is_file()
    assert (out_dir / "demo.png").is_file()
    assert _processes_with(token) == []


def test_produce_sends_synthetic_readings_that_kafka_clients_read(
    broker: EmbeddedBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.create_topics([topic_name], partitions=2)
    bootstrap = broker.bootstrap_servers
    assert (
        main(
            [
                "produce",
                "--bootstrap-servers",
                bootstrap,
                "--topic",
                topic_name,
                "--count",
                "500",
                "--change-after",
                "250",
                "--rate",
                "5000",
            ]
        )
        == 0
    )
    assert f"sent 500 records to {topic_name}" in capsys.readouterr().out
    records = read_records(bootstrap, topic_name, 500)
    readings = [json.loads(record.value) for record in records]
    assert {r["machine"] for r in readings} == {"m1", "m2", "m3", "m4"}
    assert {record.key for record in records} == {b"m1", b"m2", b"m3", b"m4"}
    assert all(set(r) == {"machine", "ts", "temp", "hum", "vib"} for r in readings)


def test_produce_replays_a_file(broker: EmbeddedBroker, topic_name: str, tmp_path: Path) -> None:
    broker.create_topics([topic_name])
    path = tmp_path / "rows.csv"
    path.write_text("temp,hum\n21.5,0.4\n22.0,\n")
    assert (
        main(
            [
                "produce",
                "--bootstrap-servers",
                broker.bootstrap_servers,
                "--topic",
                topic_name,
                "--file",
                str(path),
            ]
        )
        == 0
    )
    values = [json.loads(r.value) for r in read_records(broker.bootstrap_servers, topic_name, 2)]
    assert values == [{"temp": 21.5, "hum": 0.4}, {"temp": 22.0, "hum": None}]


def test_inspect_prints_the_newest_model_of_a_topic(
    broker: EmbeddedBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kafka import KafkaProducer

    broker.create_topics([topic_name])
    learner = Learner(ModelSettings(n_components=2, init_size=50), DriftSettings(), ["temp", "hum"])
    X = np.random.default_rng(0).normal(size=(200, 2))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for version, batch in enumerate(np.split(X, 4), start=1):
        learner.learn(batch)
        snapshot = build_snapshot(learner, name="plant", version=version, offsets={}, drift=False)
        producer.send(topic_name, key=b"plant", value=encode_snapshot(snapshot))
    producer.send(topic_name, key=b"plant", value=b"not a snapshot")
    producer.flush()
    producer.close()

    command = ["inspect", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic_name]
    assert main(command) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "plant: 2 full-covariance components" in printed
    assert "version 4, points seen 200" in printed
    assert main([*command, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 4
    assert main([*command, "--model", "other"]) == 1
    assert "no model snapshot of model 'other'" in capsys.readouterr().err

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    snapshot = build_snapshot(learner, name="mill", version=9, offsets={}, drift=False)
    producer.send(topic_name, key=b"mill", value=encode_snapshot(snapshot))
    producer.flush()
    producer.close()
    assert main(command) == 1  # two models on the topic: which one?
    assert "holds models ['mill', 'plant']: choose one with --model" in capsys.readouterr().err
    assert main([*command, "--model", "plant"]) == 0
    assert "version 4" in " ".join(capsys.readouterr().out.split())
