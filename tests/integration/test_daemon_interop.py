"""Interop with an independent client: records produced by kcat (librdkafka) are learned, and the
published model is read back with kcat (issue 4, acceptance 4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np

from streamem.service.broker import EmbeddedBroker
from streamem.service.snapshot import snapshot_schema
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config,
    readings,
)
from tests.integration.servers import Kcat

N_RECORDS = 3_000


def test_kcat_records_are_learned_and_the_model_is_read_back_with_kcat(
    broker: EmbeddedBroker,
    kcat: Kcat,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    _, values = readings(N_RECORDS, rng)
    lines = [value.decode() for value in values]
    for sensor in range(3):  # one key per sensor: librdkafka spreads them over partitions
        kcat.produce(broker.bootstrap_servers, topic_name, lines[sensor::3], key=f"s{sensor}")
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
    )
    daemons(config)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        expected = reader.wait_for(lambda s: s["n_seen"] == N_RECORDS, 60, "with every record")
        count = len(reader.snapshots)
    finally:
        reader.close()

    published = [
        json.loads(text)
        for text in kcat.consume(broker.bootstrap_servers, f"{topic_name}.models", count)
    ]
    validator = jsonschema.Draft202012Validator(snapshot_schema())
    for snapshot in published:
        validator.validate(snapshot)
    newest = max(published, key=lambda s: s["version"])
    assert newest["n_seen"] == N_RECORDS
    assert newest == expected
    offsets = sum(o["offset"] for o in newest["source_offsets"])
    assert offsets == N_RECORDS
