"""Deeply nested JSON on a real broker: each such record is a dead letter, never a crash
(issue 16, item 1).

Python's JSON decoder raises ``RecursionError`` (not ``ValueError``) on nesting deeper than
about 1,000 levels: a 2 KB record. Before the fix that error escaped the loop, the daemon exited
1 a few seconds after every restart, and nothing after the record was ever read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamem.service.broker import EmbeddedBroker
from streamem.synthetic import SensorModes
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config,
    produce,
)
from tests.integration.servers import read_records

N_RECORDS = 12_000
DEEP = [
    b"[" * 1_000 + b"]" * 1_000,  # 2 KB
    b"[" * 100_000 + b"]" * 100_000,  # 200 KB, under max_record_bytes
    b'{"temp": ' + b"[" * 5_000 + b"]" * 5_000 + b', "hum": 1, "vib": 1}',
    b'{"temp": 1, "hum": 1, "vib": ' + b'{"a":' * 3_000 + b"1" + b"}" * 3_000 + b"}",
]


def test_records_nested_1000_and_100000_deep_are_dead_lettered_and_the_daemon_goes_on(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    X, _ = SensorModes.default().sample(N_RECORDS, rng)
    stream = [
        json.dumps(dict(zip(("temp", "hum", "vib"), row, strict=True))).encode()
        for row in X.tolist()
    ]
    bad_at = sorted(rng.choice(np.arange(500, N_RECORDS), size=40, replace=False).tolist())
    for i, index in enumerate(bad_at):
        stream[index] = DEEP[i % len(DEEP)]
    n_good = N_RECORDS - len(bad_at)
    produce(broker.bootstrap_servers, topic_name, stream)

    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 500},
    )
    daemon = daemons(config)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        last = reader.wait_for(lambda s: s["n_seen"] >= n_good, 90, "with every good record")
    finally:
        reader.close()
    assert last["n_seen"] == n_good
    letters = read_records(broker.bootstrap_servers, f"{topic_name}.dead", len(bad_at), 30)
    where = set()
    for letter in letters:
        headers = {key: value.decode() for key, value in letter.headers}
        assert headers["reason"] == "malformed", headers
        assert "nested deeper" in headers["detail"]
        offset = (int(headers["source.partition"]), int(headers["source.offset"]))
        where.add(offset)
        assert letter.value == stream[offset[1] * 3 + offset[0]]
    assert where == {(index % 3, index // 3) for index in bad_at}
    assert daemon.running
    assert "Traceback" not in daemon.log()
