"""A checkpoint that parses but does not fit is refused with the file and the field named
(issue 16, item 4).

Before the fix such a checkpoint was accepted (means of shape (1, 3) with 3 components,
negative weights, ``n_seen`` -5 or 5000.5), then every batch failed while the offsets advanced:
records lost for good with ``/readyz`` 200; other damage gave messages such as
``string indices must be integers, not 'str'`` or ``'counters'``.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamem.service.broker import EmbeddedBroker
from tests.integration.daemon import (
    DaemonProcess,
    SnapshotReader,
    create_daemon_topics,
    daemon_config,
    produce,
    readings,
)


def _engine(document: dict[str, Any]) -> dict[str, Any]:
    return document["model"]["estimator"]["state"]["engine"]


_DELETE = object()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change of the checkpoint's ``model`` at ``path`` (``_DELETE``: remove the key)."""

    def change(document: dict[str, Any]) -> None:
        node = document["model"]
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


def _means_1x3(document: dict[str, Any]) -> None:
    _engine(document)["params"]["means"] = _engine(document)["params"]["means"][:1]


def _negative_weights(document: dict[str, Any]) -> None:
    _engine(document)["params"]["weights"] = [1.5, -0.25, -0.25]


# (what is changed, the field the refusal must name)
DAMAGE: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_means_1x3, "means"),
    (_negative_weights, "weights"),
    (_set("estimator.state.engine.n_seen", -5), "state.engine.n_seen"),
    (_set("estimator.state.engine.n_seen", 5000.5), "state.engine.n_seen"),
    (_set("counters", _DELETE), "model.counters"),
    (_set("estimator", "a string"), "model.estimator"),
    (_set("drift", {"detector": "page_hinkley", "history": "x"}), "model.drift.history"),
]


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_file_and_the_field(
    broker: EmbeddedBroker,
    daemons: Callable[..., DaemonProcess],
    tmp_path: Path,
    topic_name: str,
    group_id: str,
    rng: np.random.Generator,
) -> None:
    create_daemon_topics(broker, topic_name)
    _, values = readings(8_000, rng)
    produce(broker.bootstrap_servers, topic_name, values[:5_000])
    config = daemon_config(
        tmp_path / "daemon.yaml",
        bootstrap=broker.bootstrap_servers,
        topic=topic_name,
        group=group_id,
        model={"init_size": 1000},
    )
    first = daemons(config)
    reader = SnapshotReader(broker.bootstrap_servers, f"{topic_name}.models")
    reader.wait_for(lambda s: s["n_seen"] == 5_000, 60, "with the first 5,000 readings")
    first.stop()
    assert first.proc.returncode == 0
    (path,) = (tmp_path / "state").glob("*.checkpoint.json")
    good = json.loads(path.read_text())
    assert good["model"]["estimator"]["state"]["engine"]["n_seen"] == 5_000

    for change, field in DAMAGE:
        damaged = copy.deepcopy(good)
        change(damaged)
        path.write_text(json.dumps(damaged))
        daemon = daemons(config)
        try:
            code = daemon.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon accepted a checkpoint with {field} damaged")
        assert code != 0
        lines = [line for line in daemon.log().splitlines() if line.startswith("streamem: error")]
        assert lines, daemon.log()[-2000:]
        assert str(path) in lines[-1], lines[-1]
        assert field in lines[-1], lines[-1]
        print(lines[-1])

    path.write_text(json.dumps(good))  # the good checkpoint again: nothing was lost
    produce(broker.bootstrap_servers, topic_name, values[5_000:], first=5_000)
    daemons(config)
    reader.wait_for(lambda s: s["n_seen"] == 8_000, 60, "with all 8,000 readings")
    reader.close()
