"""Shared pieces of the deploy/ checks: paths, the metric names the daemon exports, YAML files.

The exported names are derived from the code: a :class:`~streamem.service.app.Daemon` runs on
the in-memory source and sink of ``tests/service/fakes.py`` until it has learned, published and
checkpointed, and its registry is collected (histogram ``_bucket`` / ``_sum`` / ``_count`` and
counter ``_total`` samples included).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from streamem.service.app import Daemon
from streamem.service.config import Settings
from streamem.synthetic import FEATURES, SensorModes
from tests.service.fakes import FakeLog, FakeSource, SinkFactory

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIGS = ROOT / "configs"
METRIC = re.compile(r"\bstreamem_[a-z0-9_]+\b")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def metric_names(text: str) -> set[str]:
    """Every ``streamem_...`` name in a PromQL expression (or any text)."""
    return set(METRIC.findall(text))


def _daemon(tmp_path: Path) -> Daemon:
    data = {
        "kafka": {"topics": ["sensors"]},
        "input": {"format": "json", "features": list(FEATURES)},
        "batching": {"batch_size": 100, "max_wait_ms": 0},
        "model": {"n_components": 3, "init_size": 200, "n_init": 1},
        "state": {"dir": str(tmp_path / "state"), "checkpoint_every_batches": 1},
        "output": {"publish_every_batches": 1},
    }
    log = FakeLog()
    X, _ = SensorModes.default().sample(600, np.random.default_rng(0))
    for i, row in enumerate(X.tolist()):
        log.append(("sensors", i % 2), [json.dumps(dict(zip(FEATURES, row, strict=True))).encode()])
    log.append(("sensors", 0), [b"{oops"])
    daemon = Daemon(
        Settings.model_validate(data),
        source_factory=lambda handler: FakeSource(log, handler),
        sink_factory=SinkFactory(),
    )
    daemon.start()
    for _ in range(200):
        daemon.turn()
        if daemon.version >= 2 and daemon.metrics.state.last_checkpoint is not None:
            return daemon
    raise AssertionError("the daemon did not learn, publish and checkpoint on the fake log")


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Metric family name -> the sample names the daemon exports for it.

    ``_created`` samples are left out: ``streamem run`` disables them.
    The set is the union of a single replica's registry and the same registry once its state
    holds the time of the oldest statistics merged from another replica, as a scale-out replica's
    (``output.statistics_topic`` set) does: ``streamem_merged_statistics_age_seconds``.
    """
    daemon = _daemon(tmp_path_factory.mktemp("daemon"))
    families = _families(daemon.metrics.registry)
    assert "streamem_merged_statistics_age_seconds" not in families
    daemon.metrics.state.oldest_statistics = time.time()
    families.update(_families(daemon.metrics.registry))
    return families


def _families(registry: Any) -> dict[str, set[str]]:
    families: dict[str, set[str]] = {}
    for family in registry.collect():
        samples = {s.name for s in family.samples if not s.name.endswith("_created")}
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        families[family.name + suffix] = samples
    return families


@pytest.fixture(scope="session")
def exported_samples(exported: dict[str, set[str]]) -> set[str]:
    return set().union(*exported.values())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of ``deploy/Dockerfile``, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of the final image."""
    env: dict[str, str] = {}
    for word, rest in dockerfile_final_stage():
        if word == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))  # type: ignore[arg-type]
    return env


def dockerfile_json(instruction: str) -> list[str]:
    """The exec form (a JSON list) of the final stage's ``ENTRYPOINT`` or ``CMD``."""
    values = [rest for word, rest in dockerfile_final_stage() if word == instruction]
    assert len(values) == 1, f"expected one {instruction} in the final stage"
    parsed = json.loads(values[0])
    assert isinstance(parsed, list)
    return [str(item) for item in parsed]
