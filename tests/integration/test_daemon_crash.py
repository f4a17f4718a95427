"""Crash safety on a real broker: SIGKILL the daemon at three random moments of a 100,000-record
stream and restart it; the model counts every valid record exactly once (issue 4, acceptance 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    crash_mid_stream,
    create_daemon_topics,
    daemon_config,
    readings,
)

N_RECORDS = 100_000
BAD_EVERY = 97  # about 1% invalid records, which must not count

pytestmark = pytest.mark.slow


def _standardised(snapshot: dict, scale: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(np.asarray(snapshot["means"])[:, 0])
    means = np.asarray(snapshot["means"])[order] / scale
    covariances = np.asarray(snapshot["covariances"])[order] / np.outer(scale, scale)
    return means, np.asarray(snapshot["weights"])[order], covariances


def test_sigkill_at_three_random_moments_keeps_the_model_exact(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name, f"{topic_name}.reference")
    X, values = readings(N_RECORDS, rng)
    stream: list[bytes | None] = list(values)
    for i in range(BAD_EVERY - 1, N_RECORDS, BAD_EVERY):
        stream[i] = b'{"temp": "broken"}'
    valid = N_RECORDS - len(range(BAD_EVERY - 1, N_RECORDS, BAD_EVERY))

    common = {"bootstrap": broker.bootstrap_servers, "topic": topic_name}
    crashing = daemon_config(tmp_path / "crashing" / "daemon.yaml", group=group_id, **common)
    reference = daemon_config(
        tmp_path / "reference" / "daemon.yaml",
        group=f"{group_id}-reference",
        output={"topic": f"{topic_name}.reference"},
        **common,
    )
    # The stream arrives while the daemons run, a quarter before the first daemon and a quarter
    # after each crash (10,000 records/s), so every crash happens in the middle of the stream.
    daemons(reference, name="reference")
    delays = [round(float(rng.uniform(0.3, 2.0)), 2) for _ in range(3)]
    daemon = crash_mid_stream(
        broker.bootstrap_servers, topic_name, stream, lambda: daemons(crashing), delays, rate=10_000
    )

    results = {}
    for topic in (f"{topic_name}.models", f"{topic_name}.reference"):
        reader = SnapshotReader(broker.bootstrap_servers, topic)
        try:
            results[topic] = reader.wait_for(lambda s: s["n_seen"] >= valid, 90, "complete")
            snapshots = list(reader.snapshots)
        finally:
            reader.close()
        versions = [s["version"] for s in snapshots]
        assert versions == sorted(set(versions)), "versions must increase strictly"
    crashed, uninterrupted = results[f"{topic_name}.models"], results[f"{topic_name}.reference"]
    assert crashed["n_seen"] == valid
    assert uninterrupted["n_seen"] == valid
    assert daemon.running
    assert daemon.log().count("restored checkpoint") == 3

    scale = X.std(axis=0)
    for got, expected in zip(
        _standardised(crashed, scale), _standardised(uninterrupted, scale), strict=True
    ):
        print(f"largest difference to the uninterrupted run: {np.abs(got - expected).max():.4f}")
        np.testing.assert_allclose(got, expected, atol=0.05)
