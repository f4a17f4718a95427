"""The compose file, the Kubernetes manifests, the systemd unit and the Dockerfile agree with the
CLI and the config schema: the daemon's command parses with ``streamem``'s own parser, the config
it names is a file of configs/ that loads with the environment the manifest sets, and the ports
are the config's ``metrics.port`` (issue 5, acceptance 4). The image itself cannot be built here
(no Docker engine): its commands are checked against the tested install instead."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streamem.cli import build_parser
from streamem.service.config import Settings, load_config
from tests.deploy.conftest import (
    CONFIGS,
    DEPLOY,
    ROOT,
    dockerfile_env,
    dockerfile_final_stage,
    dockerfile_instructions,
    dockerfile_json,
    load_yaml,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMPOSE = load_yaml(DEPLOY / "docker-compose.yml")
K8S_DOCUMENTS = [
    doc
    for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
    if path.name != "kustomization.yaml"
    for doc in yaml.safe_load_all(path.read_text())
]
K8S = {doc["kind"]: doc for doc in K8S_DOCUMENTS if doc["kind"] != "KafkaTopic"}
KAFKA_TOPICS = {
    doc["spec"]["topicName"]: doc["spec"] for doc in K8S_DOCUMENTS if doc["kind"] == "KafkaTopic"
}


def _run_config(argv: Sequence[str]) -> PurePosixPath:
    """Parse ``argv`` as the ``streamem`` command line; return the config path of ``run``."""
    assert argv[0] == "streamem" or argv[0].endswith("/streamem"), argv
    assert PYPROJECT["project"]["scripts"]["streamem"] == "streamem.cli:main"
    args = build_parser().parse_args(list(argv[1:]))
    assert args.command == "run"
    return PurePosixPath(args.config)


def _load(config: Path, environ: Mapping[str, Any], *, image: bool = True) -> Settings:
    """The config with ``environ`` over the image's environment (if in the image), as the
    daemon sees it."""
    assert config.resolve().parent == CONFIGS, f"{config} is not a file of configs/"
    base = dockerfile_env() if image else {}
    return load_config(config, {**base, **{k: str(v) for k, v in environ.items()}})


# ---- compose ------------------------------------------------------------------------------


def _compose_daemons() -> dict[str, tuple[dict[str, Any], Settings]]:
    """Every compose service that runs the daemon: name -> (service, the settings it loads)."""
    daemons = {}
    image = COMPOSE["x-streamem-image"]["image"]
    for name, service in COMPOSE["services"].items():
        if service.get("image") != image or service["command"][:1] != ["run"]:
            continue
        config = _run_config(
            service.get("entrypoint", dockerfile_json("ENTRYPOINT")) + service["command"]
        )
        mounts = dict(reversed(volume.split(":")[:2]) for volume in service["volumes"])
        daemons[name] = service, _load(DEPLOY / mounts[str(config)], service["environment"])
    return daemons


def _compose_topics() -> dict[str, tuple[int, str | None]]:
    """The topics the one-shot service creates: name -> (partitions, topic config)."""
    topics: dict[str, tuple[int, str | None]] = {}
    for spec in COMPOSE["services"]["topics"]["environment"]["TOPICS"].split():
        name, partitions, *config = spec.split(":", 2)
        topics[name] = int(partitions), config[0] if config else None
    return topics


def test_compose_runs_two_replicas_of_one_group_on_a_config_of_configs() -> None:
    daemons = _compose_daemons()
    assert len(daemons) == 2
    host_ports, state_volumes = set(), set()
    for service, settings in daemons.values():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert settings.metrics.enabled
        assert settings.metrics.address == "0.0.0.0"
        ((host, container),) = (port.split(":") for port in service["ports"])
        assert int(container) == settings.metrics.port
        host_ports.add(host)
        volumes = [v for v in service["volumes"] if v.split(":")[1] == str(settings.state.dir)]
        assert volumes, f"state.dir {settings.state.dir} is not on a volume"
        state_volumes.add(volumes[0].split(":")[0])
        assert state_volumes <= set(COMPOSE["volumes"])
    assert len(host_ports) == len(state_volumes) == 2  # each replica its own port and state
    settings = [settings for _, settings in daemons.values()]
    assert len({s.kafka.group_id for s in settings}) == 1  # one consumer group
    statistics = {s.output.statistics_topic for s in settings}
    assert len(statistics) == 1  # ... that learns one model
    assert None not in statistics


def test_compose_wires_kafka_topics_producer_and_prometheus_to_the_daemons() -> None:
    services = COMPOSE["services"]
    daemons = _compose_daemons()
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["kafka"]["image"].startswith("apache/kafka:")
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    topics = _compose_topics()
    for _, settings in daemons.values():
        assert settings.kafka.bootstrap_servers == [advertised]
        assert set(topics) == {
            *settings.kafka.topics,
            settings.output.topic,
            settings.output.dead_letter_topic,
            settings.output.statistics_topic,
        }
        assert all(topics[topic][0] >= len(daemons) for topic in settings.kafka.topics)
        assert topics[str(settings.output.statistics_topic)][1] == "cleanup.policy=compact"

    producer = _compose_producer()
    assert all(producer.topic in settings.kafka.topics for _, settings in daemons.values())
    assert producer.bootstrap_servers == advertised

    targets = [
        target
        for job in load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
        if job["job_name"] == "streamem"
        for group in job["static_configs"]
        for target in group["targets"]
    ]
    assert targets == [f"{name}:{s.metrics.port}" for name, (_, s) in daemons.items()]
    assert set(services["prometheus"]["depends_on"]) == set(daemons)


def test_the_topic_script_creates_each_topic_with_its_partitions_and_config(
    tmp_path: Path,
) -> None:
    """The one-shot script, run by bash with a stand-in for ``kafka-topics.sh`` that records
    its arguments (compose turns ``$$`` into ``$``)."""
    service = COMPOSE["services"]["topics"]
    assert service["entrypoint"] == ["/bin/bash", "-c"]
    (script,) = service["command"]
    calls = tmp_path / "calls"
    stand_in = tmp_path / "kafka-topics.sh"
    stand_in.write_text(f'#!/bin/bash\nprintf "%s|" "$@" >> {calls}\necho >> {calls}\n')
    stand_in.chmod(0o755)
    script = script.replace("$$", "$").replace("/opt/kafka/bin/kafka-topics.sh", str(stand_in))
    environment = {"PATH": "/usr/bin:/bin", "TOPICS": service["environment"]["TOPICS"]}
    subprocess.run(["bash", "-c", script], env=environment, check=True, timeout=30)
    created = {}
    for line in calls.read_text().splitlines():
        words = line.rstrip("|").split("|")
        options = dict(zip(words[0::2], words[1::2], strict=False))
        assert words[:3] == ["--bootstrap-server", "kafka:9092", "--create"], words
        created[options["--topic"]] = int(options["--partitions"]), options.get("--config")
    assert created == _compose_topics()


def _compose_producer() -> Any:
    """The parsed ``streamem produce`` command line of the compose producer."""
    service = COMPOSE["services"]["sensors"]
    argv = service.get("entrypoint", dockerfile_json("ENTRYPOINT")) + service["command"]
    assert argv[0] == "streamem" or argv[0].endswith("/streamem"), argv
    args = build_parser().parse_args(list(argv[1:]))
    assert args.command == "produce"
    return args


def test_the_producer_writes_what_the_config_reads() -> None:
    from streamem.commands.produce import MALFORMED, synthetic_records, with_malformed
    from streamem.service.codecs import RecordRejected, decode
    from streamem.synthetic import SensorStream

    ((_, settings), *_) = _compose_daemons().values()
    producer = _compose_producer()
    assert producer.file is None  # the synthetic stream
    assert producer.bad_every == 1000
    stream = SensorStream(change_after=producer.change_after, seed=producer.seed)
    values = [value for _, value in islice(with_malformed(synthetic_records(stream), 4), 8)]
    assert [v == MALFORMED for v in values] == [False, False, False, True] * 2
    for value in values[:3]:
        assert decode(value, settings.input).shape == (1, len(settings.input.features))
    with pytest.raises(RecordRejected):
        decode(MALFORMED, settings.input)


# ---- Kubernetes ---------------------------------------------------------------------------


def _k8s_daemon() -> tuple[dict[str, Any], dict[str, Any], Settings]:
    pod = K8S["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container.get("command", dockerfile_json("ENTRYPOINT")) + container["args"]
    config = _run_config(argv)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = K8S["ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][config.name]
    assert text == (CONFIGS / config.name).read_text(), "the ConfigMap differs from configs/"
    env = {item["name"]: item["value"] for item in container["env"]}
    return pod, container, _load(CONFIGS / config.name, env)


def test_k8s_probes_and_ports_are_the_configs_metrics_port() -> None:
    _, container, settings = _k8s_daemon()
    assert settings.metrics.address == "0.0.0.0"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == settings.metrics.port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == settings.metrics.port
    service_port = K8S["Service"]["spec"]["ports"][0]
    assert (
        ports.get(service_port["targetPort"], service_port["targetPort"]) == settings.metrics.port
    )
    endpoint = K8S["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert ports[endpoint["port"]] == settings.metrics.port
    assert endpoint["path"] == "/metrics"


def test_k8s_state_is_on_a_writable_volume_and_the_pod_runs_as_the_images_user() -> None:
    pod, container, settings = _k8s_daemon()
    scratch = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounted[str(settings.state.dir)] in scratch  # the replicas' state is in a topic
    user = next(rest for word, rest in dockerfile_final_stage() if word == "USER")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_k8s_runs_three_replicas_of_one_model_on_the_topics_it_creates() -> None:
    deployment = K8S["Deployment"]["spec"]
    _, _, settings = _k8s_daemon()
    assert deployment["replicas"] == 3
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert settings.output.statistics_topic is not None  # the replicas learn one model
    assert set(KAFKA_TOPICS) == {
        *settings.kafka.topics,
        settings.output.topic,
        settings.output.dead_letter_topic,
        settings.output.statistics_topic,
    }
    for topic in settings.kafka.topics:
        assert KAFKA_TOPICS[topic]["partitions"] >= deployment["replicas"]  # work for each
    assert KAFKA_TOPICS[settings.output.statistics_topic]["config"]["cleanup.policy"] == "compact"
    for spec in KAFKA_TOPICS.values():
        assert spec["config"]["min.insync.replicas"] < spec["replicas"]


def test_k8s_selectors_labels_and_the_alerts_job_agree() -> None:
    labels = K8S["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert K8S["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert K8S["Service"]["spec"]["selector"].items() <= labels.items()
    monitor = K8S["PodMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["jobLabel"]] == "streamem"  # the job the alert rules select
    kustomization = load_yaml(DEPLOY / "k8s" / "kustomization.yaml")
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# ---- systemd ------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "streamem.service"


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_runs_the_daemon_hardened_and_unprivileged() -> None:
    service = _unit()["Service"]
    config = _run_config(shlex.split(service["ExecStart"]))
    name, value = service["Environment"].split("=", 1)
    settings = _load(CONFIGS / config.name, {name: value}, image=False)
    assert settings.metrics.address == "127.0.0.1"  # loopback unless the operator says otherwise
    assert str(settings.state.dir).startswith(f"/var/lib/{service['StateDirectory']}")
    assert service["User"] not in ("root", "0")
    for key, expected in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "KillSignal": "SIGTERM",
    }.items():
        assert service[key] == expected, key


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not a CI tool (the Debian image has no systemd): a visible skip
        pytest.skip("systemd-analyze is not installed")
    streamem = Path(sys.executable).with_name("streamem")
    assert streamem.is_file(), "the streamem console script is not installed beside Python"
    unit = tmp_path / "streamem.service"  # the same unit, with an ExecStart that exists here
    unit.write_text(UNIT.read_text().replace("/opt/streamem/bin/streamem", str(streamem)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# ---- Dockerfile and install steps ---------------------------------------------------------

PIP_INSTALL = re.compile(r'pip install [^"\n]*"\.\[([a-z,]+)\]"')


def _extras(text: str) -> list[set[str]]:
    """The extras of every ``pip install ... ".[extras]"`` in ``text``."""
    return [set(match.split(",")) for match in PIP_INSTALL.findall(text)]


def _expand(extras: set[str]) -> set[str]:
    """``extras`` and the extras they include (``all`` is ``streamem[river,service,test]``)."""
    defined = PYPROJECT["project"]["optional-dependencies"]
    out = set(extras)
    for extra in extras:
        for requirement in defined[extra]:
            if match := re.fullmatch(r"streamem\[([a-z,]+)\]", requirement):
                out |= _expand(set(match[1].split(",")))
    return out


def test_the_images_install_step_is_the_tested_one() -> None:
    tested = _expand(set().union(*_extras((ROOT / "scripts" / "test").read_text())))
    assert "service" in tested
    dockerfile = "\n".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    installs = {
        "Dockerfile": _extras(dockerfile),
        "systemd unit": _extras(UNIT.read_text()),
        "README": _extras((ROOT / "README.md").read_text()),
    }
    for where, found in installs.items():
        assert {"service"} in found, f'{where}: no pip install ".[service]"'
        for extras in found:
            assert extras <= tested, f"{where} installs extras the tests do not: {extras}"
    assert len(_extras(dockerfile)) == 1


def test_the_dockerfile_is_multi_stage_slim_unprivileged_and_checks_healthz() -> None:
    instructions = dockerfile_instructions()
    final = dockerfile_final_stage()
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert len(stages) == 2
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim\b", stage) for stage in stages)
    final_runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "build-essential" not in final_runs
    assert "pip install" not in final_runs
    assert any(word == "COPY" and rest.startswith("--from=build ") for word, rest in final)
    user = next(rest for word, rest in final if word == "USER")
    assert user.split(":")[0] not in ("root", "0")
    healthcheck = next(rest for word, rest in final if word == "HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert "/healthz" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    default = load_config(None, dockerfile_env())
    assert f"'{default.metrics.port}'" in healthcheck
    assert f"EXPOSE {default.metrics.port}" in "\n".join(f"{w} {r}" for w, r in final)
    config = _run_config(dockerfile_json("ENTRYPOINT") + dockerfile_json("CMD"))
    assert (CONFIGS / config.name).is_file()


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            copied |= {source.rstrip("/") for source in shlex.split(rest)[:-1]}
    assert copied == allowed
    for source in copied:
        assert (ROOT / source).exists(), source
