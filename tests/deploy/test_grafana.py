"""deploy/grafana: the provisioned datasource and dashboard fit together, every panel queries
something, and every metric name a panel uses is one the daemon exports (issue 5, acceptance 3).
Grafana itself cannot be installed here, so the dashboard is checked as JSON, not rendered."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import DEPLOY, load_yaml, metric_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "streamem.json").read_text())


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        exprs.append(variable["query"]["query"])
    return exprs


def test_every_metric_on_the_dashboard_is_exported(exported_samples: set[str]) -> None:
    used = set().union(*(metric_names(expr) for expr in _queries(DASHBOARD)))
    assert not used - exported_samples, f"not exported: {sorted(used - exported_samples)}"


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(expr) for expr in _queries(DASHBOARD)))
    for name in (
        "streamem_batch_mean_log_likelihood",
        "streamem_log_likelihood_change",
        "streamem_parameter_change",
        "streamem_step_size",
        "streamem_component_weight",
        "streamem_records_consumed_total",
        "streamem_consumer_lag_records",
        "streamem_records_rejected_total",
        "streamem_batch_duration_seconds_bucket",
    ):
        assert name in used, name


def test_every_panel_queries_the_provisioned_datasource() -> None:
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    uids = {source["uid"] for source in datasources["datasources"]}
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] in uids, panel["title"]


def test_the_provider_loads_the_folder_that_compose_mounts() -> None:
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "streamem.yml")["providers"][0]
    volumes = load_yaml(DEPLOY / "docker-compose.yml")["services"]["grafana"]["volumes"]
    mounts = dict(volume.split(":")[:2][::-1] for volume in volumes)
    assert (DEPLOY / mounts[provider["options"]["path"]] / "streamem.json").is_file()
    assert (DEPLOY / mounts["/etc/grafana/provisioning"] / "datasources").is_dir()


def test_the_dashboard_shows_each_replica_of_a_scale_out_group() -> None:
    """Partitions, the publishing replica, the model version and the merged statistics' age,
    one line per replica (not summed over the group)."""
    per_replica = {
        name
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
        if "{{instance}}" in target.get("legendFormat", "") and "sum" not in target["expr"]
        for name in metric_names(target["expr"])
    }
    for name in (
        "streamem_assigned_partitions",
        "streamem_publishing_replica",
        "streamem_model_version",
        "streamem_merged_statistics_age_seconds",
    ):
        assert name in per_replica, name
