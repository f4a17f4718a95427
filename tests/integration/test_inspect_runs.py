"""``streamem inspect`` of a topic whose model's versions started again (issue 32, item 10)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from streamem.cli import main
from streamem.commands.produce import send_records
from streamem.service.broker import EmbeddedBroker
from streamem.service.config import DriftSettings, ModelSettings
from streamem.service.learner import Learner
from streamem.service.snapshot import build_snapshot


def test_inspect_shows_the_newest_run_and_warns_that_versions_started_again(
    broker: EmbeddedBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{topic_name}.models"
    broker.create_topics([topic], partitions=1)
    learner = Learner(ModelSettings(n_components=2, init_size=200), DriftSettings(), ["a", "b"])
    rng = np.random.default_rng(0)
    records = []
    for version in (20, 21, 1, 2):  # one daemon, then the same model switched to scale-out
        learner.learn(rng.normal(size=(200, 2)))
        snapshot = build_snapshot(learner, name="plant", version=version, offsets={}, drift=False)
        records.append((b"plant", json.dumps(snapshot).encode()))
    send_records(broker.bootstrap_servers, topic, iter(records))
    argv = ["inspect", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["version"] == 2  # the newest record, not version 21
    assert json.loads(captured.out)["n_seen"] == 800
    assert "version 1 was published after version 21: the model's versions started again" in (
        captured.err
    )
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "version 2, points seen 800" in printed


def test_inspect_of_a_topic_without_a_model_fails_at_once_unless_told_to_wait(
    broker: EmbeddedBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{topic_name}.models"
    argv = ["inspect", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic]
    started = time.monotonic()
    assert main(argv) != 0
    assert f"no topic {topic!r}" in capsys.readouterr().err
    assert main([*argv, "--wait", "8"]) != 0  # a missing topic takes 5 s to tell
    err = capsys.readouterr().err
    assert "waiting up to 8 s for the first model (--wait)" in err
    assert f"no topic {topic!r}" in err
    print(f"both answers in {time.monotonic() - started:.1f} s")
