"""Bad input on a real broker: every bad record goes to the dead letters with its reason, every
good one is learned, and the daemon keeps running (issue 4, acceptance 3)."""

from __future__ import annotations

import json
from collections import Counter
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

N_RECORDS = 20_000
BIG = b"[" + b" " * 2_000_000 + b"]"  # 2 MB: over input.max_record_bytes (1 MiB)

# One of each kind of bad record, with the reason the daemon must give.
BAD: list[tuple[bytes | None, str]] = [
    (b"[21.5, 0.4", "malformed"),  # truncated JSON
    (b'{"temp": 21.5, "hum": 0.4, "vib": 1.0}', "malformed"),  # an object, not an array
    (b"\xff\xfe[1, 2, 3]", "malformed"),  # not UTF-8
    (b"[21.5, 0.4]", "wrong_dimension"),
    (b"[21.5, 0.4, 1.0, 7.0]", "wrong_dimension"),
    (b"[NaN, 0.4, 1.0]", "non_finite"),
    (b"[1e999, 0.4, 1.0]", "non_finite"),
    (b'["21.5", 0.4, 1.0]', "non_numeric"),
    (b"[true, 0.4, 1.0]", "non_numeric"),
    (b"[null, 0.4, 1.0]", "missing_feature"),
    (b"", "empty"),
    (None, "empty"),  # a tombstone
    (b"   ", "empty"),
    (BIG, "too_large"),
]


def test_bad_records_go_to_the_dead_letters_with_their_reason(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    X, _ = SensorModes.default().sample(N_RECORDS, rng)
    stream: list[bytes | None] = [json.dumps(row).encode() for row in X.tolist()]
    bad_at = rng.choice(N_RECORDS, size=N_RECORDS // 20, replace=False)  # 5%
    expected: dict[tuple[int, int], str] = {}  # (partition, offset) -> reason
    kinds = [i % (len(BAD) - 1) for i in range(len(bad_at))]  # every kind but the 2 MB one
    kinds[:5] = [len(BAD) - 1] * 5  # five 2 MB records, the rest spread over the kinds
    for index, kind in zip(bad_at.tolist(), kinds, strict=True):
        value, reason = BAD[kind]
        stream[index] = value
        expected[(index % 3, index // 3)] = reason
    n_good = N_RECORDS - len(bad_at)
    produce(broker.bootstrap_servers, topic_name, stream)

    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        input={"format": "json_array"},
        model={"init_size": 500},
    )
    daemon = daemons(config)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        last = reader.wait_for(lambda s: s["n_seen"] >= n_good, 60, "with every good record")
    finally:
        reader.close()
    assert last["n_seen"] == n_good
    assert last["n_dropped"] == 0

    letters = read_records(broker.bootstrap_servers, f"{topic_name}.dead", len(bad_at), 30)
    got: dict[tuple[int, int], str] = {}
    for letter in letters:
        headers = {key: value.decode() for key, value in letter.headers}
        assert headers["source.topic"] == topic_name
        where = (int(headers["source.partition"]), int(headers["source.offset"]))
        got[where] = headers["reason"]
        assert headers["detail"]
        original = stream[where[1] * 3 + where[0]]
        if original is not None and len(original) > 1_000_000:
            assert headers["truncated"] == "true"
            assert headers["original.size"] == str(len(original))
            assert letter.value == original[:1_000_000]
        else:
            assert letter.value == original
    assert got == expected
    print("dead letters by reason:", dict(Counter(got.values())))
    assert set(got.values()) == {reason for _, reason in BAD}
    assert daemon.running
