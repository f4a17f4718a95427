"""The README's metrics table lists exactly the metrics the daemon exports, and the README says
how the alert rules are tested."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"{title}\n")
    following = re.compile(r"^#{2,3} ", re.MULTILINE).search(README, start + len(title) + 1)
    return README[start : following.start() if following else len(README)]


def test_the_readme_lists_every_exported_metric_and_no_other(
    exported: dict[str, set[str]],
) -> None:
    rows = re.findall(
        r"^\| `(streamem_[a-z_]+)(?:\{[a-z,]+\})?` \| (\w+) \|",
        _section("### Metrics"),
        re.MULTILINE,
    )
    listed = [name for name, _ in rows]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(exported)


def test_the_readme_gives_the_promtool_commands() -> None:
    deploy = _section("## Deploy")
    for command in (
        "promtool check config deploy/prometheus/prometheus.yml",
        "promtool check rules deploy/prometheus/alerts.yml",
        "promtool test rules deploy/prometheus/alerts.test.yml",
    ):
        assert command in deploy
