"""deploy/prometheus: promtool accepts the config and the rules, the alert unit tests pass, and
every metric the rules use is one the daemon exports (issue 5, acceptance 3)."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, load_yaml, metric_names
from tests.integration.servers import require

PROMETHEUS = DEPLOY / "prometheus"


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_promtool_accepts(args: list[str]) -> None:
    done = subprocess.run(
        [require("promtool"), *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _rules() -> list[dict]:
    return [
        rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def test_the_rules_use_only_exported_metrics(exported_samples: set[str]) -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in _rules()))
    assert used, "no streamem metric found in the rules"
    assert used <= exported_samples, f"not exported: {sorted(used - exported_samples)}"


def test_every_issue_alert_exists_and_has_unit_tests() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    assert alerts == {
        "StreamemDown",
        "StreamemConsumerLagGrowing",
        "StreamemLogLikelihoodDropped",
        "StreamemDriftDetected",
        "StreamemDeadLetterRateHigh",
        "StreamemNoModelPublished",
        "StreamemNoPublishingReplica",
        "StreamemCheckpointFailing",
        "StreamemAnomalyRateHigh",
    }
    tested: dict[str, list[bool]] = {}
    for case in load_yaml(PROMETHEUS / "alerts.test.yml")["tests"]:
        for check in case["alert_rule_test"]:
            tested.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
    for alert in alerts:  # a firing and a quiet evaluation for each
        assert set(tested.get(alert, [])) == {True, False}, alert


def test_the_rules_select_the_job_that_prometheus_scrapes() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert config["rule_files"] == ["alerts.yml"]
    assert 'up{job="streamem"}' in " ".join(rule["expr"] for rule in _rules())
    assert "streamem" in jobs
