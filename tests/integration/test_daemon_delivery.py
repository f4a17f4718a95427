"""The daemon's account of its outputs is true, against a real broker (issue 15, acceptance 1).

- A config whose output cannot be delivered by this installation (a compression codec that is
  not installed) is refused at start, naming what to install.
- ``streamem_published_total`` counts the snapshots the broker acknowledged: when the broker goes
  away while a snapshot is on its way, the counter stays, ``streamem_delivery_failures_total``
  grows and ``/readyz`` fails.
- Every config of ``configs/`` starts and becomes ready on this installation (``.[all]``);
  ``packed-batches.yaml`` (lz4 compression) also publishes a model that a consumer reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from streamem.service.broker import EmbeddedBroker, free_loopback_port
from streamem.service.codecs import encode_points
from streamem.service.config import load_config
from tests.integration.daemon import (
    DaemonProcess,
    create_daemon_topics,
    daemon_config_with_metrics,
    http_get,
    metric_sample,
    produce,
    readings,
    wait_consumed,
)
from tests.integration.servers import read_records

ROOT = Path(__file__).resolve().parents[2]

_WITHOUT_LZ4 = (
    "import sys\n"
    "for name in ('lz4', 'lz4.frame', 'lz4f', 'lz4framed'):\n"
    "    sys.modules[name] = None  # as if the codec were not installed\n"
    "from streamem.cli import main\n"
    "sys.exit(main(['run', '--config', sys.argv[1]]))\n"
)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:  # the endpoint is not up yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_codec_that_is_not_installed_is_refused_at_start(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "packed-batches.yaml").read_text())
    config["kafka"]["bootstrap_servers"] = "127.0.0.1:1"  # never reached: refused before
    config["metrics"]["port"] = free_loopback_port()
    config["state"]["dir"] = str(tmp_path / "state")
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LZ4, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < 10
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("streamem: error:")]
    assert errors == [
        "streamem: error: kafka.producer.compression_type is 'lz4', but its codec is not "
        'installed: pip install "streamem[service]" (it brings lz4), or pip install lz4'
    ]
    assert "cannot create the Kafka producer" not in done.stderr


def test_a_snapshot_the_broker_never_acknowledged_is_not_counted_as_published(
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    daemons: Callable[..., DaemonProcess],
    rng: np.random.Generator,
) -> None:
    from kafka import KafkaProducer

    broker = EmbeddedBroker()
    broker.start()
    try:
        create_daemon_topics(broker, topic_name)
        config, port = daemon_config_with_metrics(
            tmp_path / "daemon.json",
            bootstrap=broker.bootstrap_servers,
            topic=topic_name,
            group=group_id,
            # a batch of fewer than 1000 records waits 6 s: time to take the broker away
            batching={"batch_size": 1000, "max_wait_ms": 6000},
            output={"publish_every_batches": 1, "publish_every_seconds": 0.2},
            model={"init_size": 500},
        )
        daemon = daemons(config)
        _, values = readings(1500, rng)
        produce(broker.bootstrap_servers, topic_name, values[:1000])  # one whole batch
        wait_consumed(port, 1000)
        _wait(
            lambda: metric_sample(port, "streamem_published_total") == 1,
            15,
            "the first snapshot acknowledged",
        )
        assert metric_sample(port, "streamem_model_version") == 1
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        for value in values[1000:]:
            producer.send(topic_name, value)
        producer.flush()
        wait_consumed(port, 1500)  # in the open batch, learned and published 6 s from now
        broker.stop()  # the broker goes away before that snapshot is sent
        producer.close(timeout=0)

        _wait(
            lambda: (metric_sample(port, "streamem_delivery_failures_total") or 0) > 0,
            30,
            "the failed delivery of the second version counted",
        )
        assert metric_sample(port, "streamem_published_total") == 1
        # the version exported is the newest the broker acknowledged, not the one sent
        assert metric_sample(port, "streamem_model_version") == 1
        _wait(lambda: http_get(port, "/readyz")[0] == 503, 15, "/readyz failing")
        assert daemon.running
    finally:
        broker.stop()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_example_config_starts_on_this_installation(
    name: str, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    path = tmp_path / "configs" / name
    port = free_loopback_port()
    with EmbeddedBroker() as broker:
        environ = {
            "STREAMEM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "STREAMEM_METRICS__PORT": str(port),
            "STREAMEM_STATE__DIR": str(tmp_path / "state"),
        }
        settings = load_config(path, environ=environ)
        broker.create_topics(settings.kafka.topics, partitions=2)
        broker.create_topics([settings.output.topic])
        path.write_text(yaml.safe_dump(_merged(yaml.safe_load(path.read_text()), environ)))
        daemon = daemons(path, name=name)
        _wait(lambda: http_get(port, "/readyz")[0] == 200, 30, f"{name} ready")
        assert "cannot create the Kafka producer" not in daemon.log()
        if settings.kafka.producer.compression_type is None:
            return
        # a compressed snapshot is delivered and readable
        features = len(settings.input.features)
        means = np.arange(settings.model.n_components)[:, None] * 10.0 + np.zeros(features)
        rng = np.random.default_rng(0)
        labels = rng.integers(settings.model.n_components, size=4 * settings.model.init_size)
        points = means[labels] + rng.normal(size=(len(labels), features))
        values = [encode_points(chunk, settings.input) for chunk in np.array_split(points, 8)]
        produce(broker.bootstrap_servers, settings.kafka.topics[0], values, partitions=2)
        _wait(
            lambda: (metric_sample(port, "streamem_published_total") or 0) >= 1,
            60,
            f"{name} published a snapshot",
        )
        record = read_records(broker.bootstrap_servers, settings.output.topic, 1)[0]
        assert json.loads(record.value)["model"] == settings.model.name


def _merged(config: dict, environ: dict[str, str]) -> dict:
    """``config`` with the values of ``environ`` (``STREAMEM_A__B``) written into it."""
    for key, value in environ.items():
        section, field = key.removeprefix("STREAMEM_").lower().split("__")
        config.setdefault(section, {})[field] = int(value) if value.isdigit() else value
    return config
