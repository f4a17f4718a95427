"""Backfill on a Dask cluster -> model file -> the daemon starts from it on the real broker
(issue 31, acceptance 3): its first published version carries the backfilled ``n_seen`` plus
the new records, and the parameters move no more than the new records' share of the mass.

The new readings come from shifted modes, so that a daemon that ignored the backfilled mass
(a cold start, or a first step of 1) would jump to them; drift response and the outlier guard
are off, so that nothing but the warm step decides how far the model moves. A restart then
continues from the checkpoint (the model file is gone): the backfill's mass is counted once.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamem import GaussianMixture
from streamem.service.broker import EmbeddedBroker
from streamem.synthetic import FEATURES, SensorModes
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config,
    produce,
)

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
backfill = pytest.importorskip("streamem.dask")

pytestmark = pytest.mark.slow

N_HISTORY = 60_000
N_NEW = 3_000


def test_the_daemon_continues_a_backfill_with_its_mass(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    history, _ = SensorModes.default().sample(N_HISTORY, rng)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c,
        distributed.Client(c),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        fitted = backfill.fit(
            GaussianMixture(3, random_state=0), da.from_array(history, chunks=15_000)
        )
    model_file = tmp_path / "backfill.json"
    model_file.write_text(fitted.to_json())
    assert fitted.n_seen_ == N_HISTORY

    new, _ = SensorModes.default().sample(N_NEW, rng)
    new = new + 1.5 * history.std(axis=0)
    values = [json.dumps(dict(zip(FEATURES, row, strict=True))).encode() for row in new.tolist()]
    create_daemon_topics(broker, topic_name)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"initial": str(model_file)},
        drift={"enabled": False},
        guard={"outliers": False},
        output={"publish_every_batches": 1, "publish_every_seconds": 0.1},
    )
    daemon = daemons(config)
    produce(broker.bootstrap_servers, topic_name, values)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    try:
        reader.wait_for(lambda s: s["n_seen"] == N_HISTORY + N_NEW, 90, "with every record")
        snapshots = sorted(reader.snapshots, key=lambda s: s["version"])
        # a restart continues from its checkpoint: the backfill's mass is counted once
        daemon.stop()
        model_file.unlink()
        daemons(config)
        produce(broker.bootstrap_servers, topic_name, values[:500], first=N_NEW)
        total = N_HISTORY + N_NEW + 500
        reader.wait_for(lambda s: s["n_seen"] == total, 90, f"with n_seen = {total}")
        assert max(s["n_seen"] for s in reader.snapshots) == total
    finally:
        reader.close()

    first = snapshots[0]
    learned = first["n_seen"] - N_HISTORY
    print(f"first version {first['version']}: n_seen {first['n_seen']} = {N_HISTORY} + {learned}")
    assert 0 < learned <= N_NEW
    for snapshot in snapshots:
        m = snapshot["n_seen"] - N_HISTORY
        share = m / snapshot["n_seen"]
        weights, means = np.array(snapshot["weights"]), np.array(snapshot["means"])
        # w' = (n w + the new responsibilities) / (n + m): |w' - w| <= m / (n + m)
        assert np.abs(weights - fitted.weights_).max() <= share + 1e-9
        # mu' - mu = sum_i r_ij (x_i - mu) / (N_j + sum_i r_ij) with N_j = n w_j, summed over
        # the batches: at most m max|x - mu| / (n w_j) (10% for the moving mu of later batches)
        for j in range(3):
            reach = np.abs(new - fitted.means_[j]).max(axis=0)
            bound = 1.1 * m * reach / (N_HISTORY * fitted.weights_[j])
            assert (np.abs(means[j] - fitted.means_[j]) <= bound).all(), (j, snapshot["version"])
    # and the shifted readings did move it: the bounds are not met by standing still
    assert np.abs(np.array(snapshots[-1]["means"]) - fitted.means_).max() > 0.0


def test_an_initial_model_that_does_not_fit_stops_the_daemon_with_the_key(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    model_file = tmp_path / "backfill.json"
    history, _ = SensorModes.default().sample(2_000, rng)
    model_file.write_text(GaussianMixture(2, random_state=0).fit(history).to_json())
    create_daemon_topics(broker, topic_name)
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"initial": str(model_file)},  # n_components 3 in the configuration
    )
    daemon = daemons(config)
    assert daemon.wait(30) != 0
    assert "model.n_components: the initial model" in daemon.log()
